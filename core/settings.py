"""One settings object, loaded once per entry point and passed down.

Secrets are `SecretStr`. In development the pepper and the encryption key are generated into
`CBRAIN_HOME/secrets.json` on first run; in production a missing or placeholder secret is
refused at start-up.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.errors import ConfigError

_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "placeholder", "xxx", "todo", "test"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", alias="CBRAIN_ENV"
    )
    home: Path = Field(Path(".cbrain"), alias="CBRAIN_HOME")
    database_url: str | None = Field(None, alias="DATABASE_URL")
    redis_url: str | None = Field(None, alias="REDIS_URL")
    pepper: SecretStr | None = Field(None, alias="CBRAIN_PEPPER")
    encryption_key: SecretStr | None = Field(None, alias="CBRAIN_ENCRYPTION_KEY")
    log_level: str = Field("INFO", alias="CBRAIN_LOG_LEVEL")
    db_pool_min: int = Field(2, alias="CBRAIN_DB_POOL_MIN")
    db_pool_max: int = Field(16, alias="CBRAIN_DB_POOL_MAX")
    # Requests per minute per API key; 0 disables the limiter.
    rate_limit_per_minute: int = Field(6000, alias="CBRAIN_RATE_LIMIT_PER_MINUTE")
    public_base_url: str = Field("http://127.0.0.1:8000", alias="CBRAIN_PUBLIC_URL")

    anthropic_api_key: SecretStr | None = Field(None, alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(None, alias="ANTHROPIC_BASE_URL")
    assistant_model: str = Field("claude-sonnet-5", alias="ASSISTANT_MODEL")
    # The assistant's budgets per question: model turns, tokens (input + output, all turns),
    # wall-clock seconds; the SDK's per-request timeout and retries; conversation memory.
    assistant_max_turns: int = Field(8, alias="ASSISTANT_MAX_TURNS")
    assistant_max_tokens: int = Field(1500, alias="ASSISTANT_MAX_TOKENS")
    assistant_token_budget: int = Field(80_000, alias="ASSISTANT_TOKEN_BUDGET")
    assistant_timeout_s: float = Field(90.0, alias="ASSISTANT_TIMEOUT_S")
    assistant_request_timeout_s: float = Field(45.0, alias="ASSISTANT_REQUEST_TIMEOUT_S")
    assistant_max_retries: int = Field(2, alias="ASSISTANT_MAX_RETRIES")
    assistant_memory_ttl_s: int = Field(3 * 86400, alias="ASSISTANT_MEMORY_TTL_S")
    assistant_memory_turns: int = Field(6, alias="ASSISTANT_MEMORY_TURNS")
    slack_api_base: str = Field("https://slack.com/api/", alias="SLACK_API_BASE")
    gorgias_base_url: str | None = Field(None, alias="GORGIAS_BASE_URL")
    # One Slack app installed in many workspaces: one signing secret for the app (a workspace
    # connected with its own app's secret uses that one instead).
    slack_signing_secret: SecretStr | None = Field(None, alias="SLACK_SIGNING_SECRET")
    # Gorgias API budget per account (API-key integrations: 40 requests / 20 s, leaky bucket).
    gorgias_rate_limit: int = Field(40, alias="GORGIAS_RATE_LIMIT")
    gorgias_rate_window_s: float = Field(20.0, alias="GORGIAS_RATE_WINDOW_S")
    # A 429's Retry-After longer than this is not waited out inline: the delivery stays
    # pending and the sweeper retries it.
    gorgias_max_retry_after_s: float = Field(30.0, alias="GORGIAS_MAX_RETRY_AFTER_S")
    gorgias_timeout_s: float = Field(15.0, alias="GORGIAS_TIMEOUT_S")
    twilio_api_base: str = Field("https://api.twilio.com", alias="TWILIO_API_BASE")
    shopify_api_base: str | None = Field(None, alias="SHOPIFY_API_BASE")

    @model_validator(mode="after")
    def _resolve_home(self) -> Settings:
        self.home = Path(self.home).expanduser().resolve()
        return self

    @cached_property
    def secrets(self) -> tuple[bytes, bytes]:
        """(pepper, encryption key) as raw bytes, generated in development when absent."""
        pepper = _secret_value(self.pepper)
        key = _secret_value(self.encryption_key)
        if pepper is None or key is None:
            if self.environment == "production":
                raise ConfigError(
                    "CBRAIN_PEPPER and CBRAIN_ENCRYPTION_KEY must be set (and not placeholders) "
                    "in production"
                )
            stored = _load_or_create_dev_secrets(self.home)
            pepper = pepper or stored["pepper"]
            key = key or stored["encryption_key"]
        key_bytes = _decode_key(key)
        return pepper.encode(), key_bytes


def _secret_value(value: SecretStr | None) -> str | None:
    if value is None:
        return None
    raw = value.get_secret_value().strip()
    if raw.lower() in _PLACEHOLDERS or len(raw) < 16:
        return None
    return raw


def _decode_key(value: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except ValueError as exc:
        raise ConfigError("CBRAIN_ENCRYPTION_KEY must be 32 bytes, base64-encoded") from exc
    if len(key) != 32:
        raise ConfigError("CBRAIN_ENCRYPTION_KEY must be 32 bytes, base64-encoded")
    return key


def _load_or_create_dev_secrets(home: Path) -> dict[str, str]:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    values = {
        "pepper": secrets.token_urlsafe(32),
        "encryption_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    # O_EXCL: two processes starting at once must not write two different secrets.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return json.loads(path.read_text())
    with os.fdopen(fd, "w") as fh:
        json.dump(values, fh)
    return values


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment; keyword overrides win (used by tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
