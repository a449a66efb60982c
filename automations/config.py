"""Settings of the automation runner and its outbound channels, loaded once per runtime.

`core.settings.Settings` holds what every package shares (the Twilio and Slack base URLs);
the SMTP relay, the fallback Twilio credentials, the Slack bot token and the runner's
timings belong to automations alone, so they live here, read from the same environment and
`.env`, and are cached on the runtime (`rt.extras`) so one process loads them once.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

_EXTRAS_KEY = "automations.settings"


class AutomationSettings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    smtp_host: str = Field("127.0.0.1", alias="CBRAIN_SMTP_HOST")
    smtp_port: int = Field(25, alias="CBRAIN_SMTP_PORT")
    smtp_username: str | None = Field(None, alias="CBRAIN_SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, alias="CBRAIN_SMTP_PASSWORD")
    # "starttls" upgrades a plain connection, "tls" connects with TLS (port 465), "none" is
    # for a local relay or a test server only.
    smtp_security: str = Field("starttls", alias="CBRAIN_SMTP_SECURITY")
    smtp_from: str = Field("Customer Brain <no-reply@localhost>", alias="CBRAIN_SMTP_FROM")
    # Used when a brand has not stored its own (brand settings `twilio_account_sid` and the
    # brand's `twilio` secret, which is also the Auth Token that signs inbound webhooks).
    twilio_account_sid: str | None = Field(None, alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: SecretStr | None = Field(None, alias="TWILIO_AUTH_TOKEN")
    slack_bot_token: SecretStr | None = Field(None, alias="SLACK_BOT_TOKEN")
    # The same variables as core's settings; None means "use core's" (tests point these at
    # their local fakes without touching the shared settings object).
    twilio_api_base: str | None = Field(None, alias="TWILIO_API_BASE")
    slack_api_base: str | None = Field(None, alias="SLACK_API_BASE")

    send_timeout_s: float = Field(10.0, alias="CBRAIN_AUTOMATION_SEND_TIMEOUT")
    # Attempts inside one execution (tenacity, jittered exponential backoff from the initial
    # wait), then the run is rescheduled up to run_attempts times before it is failed.
    send_attempts: int = Field(3, alias="CBRAIN_AUTOMATION_SEND_ATTEMPTS")
    send_backoff_s: float = Field(0.5, alias="CBRAIN_AUTOMATION_SEND_BACKOFF")
    run_attempts: int = Field(5, alias="CBRAIN_AUTOMATION_RUN_ATTEMPTS")
    run_backoff_s: float = Field(60.0, alias="CBRAIN_AUTOMATION_RUN_BACKOFF")

    poll_s: float = Field(1.0, alias="CBRAIN_AUTOMATION_POLL")
    # Minimum time between stream reads: entries pile up meanwhile and are matched together
    # (people de-duplicated, bigger statements), which costs ingestion's shared CPU less per
    # event; a second of latency means nothing next to an hour's cart window.
    coalesce_s: float = Field(1.0, alias="CBRAIN_AUTOMATION_COALESCE")
    sweep_s: float = Field(30.0, alias="CBRAIN_AUTOMATION_SWEEP")
    sweep_budget_s: float = Field(10.0, alias="CBRAIN_AUTOMATION_SWEEP_BUDGET")
    # A worker that holds a run longer than this is presumed dead (see docs/automations.md).
    lease_s: float = Field(300.0, alias="CBRAIN_AUTOMATION_LEASE")
    concurrency: int = Field(8, alias="CBRAIN_AUTOMATION_CONCURRENCY")
    # Update the journeys of the people in each resolved batch (stage-change triggers fire
    # within seconds). Off: journeys move after scoring and in the daily pass only, and the
    # runner costs about half as much per event (docs/benchmarks.md).
    journeys_on_events: bool = Field(True, alias="CBRAIN_AUTOMATION_JOURNEYS_ON_EVENTS")


def automation_settings(rt: Any, **overrides: Any) -> AutomationSettings:
    """The runtime's automation settings (built on first use; overrides are for tests)."""
    if overrides:
        built = AutomationSettings(**overrides)  # type: ignore[arg-type]
        rt.extras[_EXTRAS_KEY] = built
        return built
    found = rt.extras.get(_EXTRAS_KEY)
    if found is None:
        found = AutomationSettings()  # type: ignore[call-arg]
        rt.extras[_EXTRAS_KEY] = found
    return found
