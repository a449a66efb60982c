import json

import pytest

from core.errors import ConfigError
from core.logging import _redaction_processor, redact_text
from core.settings import load_settings


def test_development_generates_secrets_once(tmp_path):
    s1 = load_settings(CBRAIN_HOME=str(tmp_path), CBRAIN_ENV="development")
    s2 = load_settings(CBRAIN_HOME=str(tmp_path), CBRAIN_ENV="development")
    assert s1.secrets == s2.secrets
    stored = json.loads((tmp_path / "secrets.json").read_text())
    assert set(stored) == {"pepper", "encryption_key"}
    assert oct((tmp_path / "secrets.json").stat().st_mode)[-3:] == "600"


@pytest.mark.parametrize("pepper", [None, "changeme", "short"])
def test_production_refuses_missing_or_placeholder_secrets(tmp_path, pepper):
    kwargs = {
        "CBRAIN_HOME": str(tmp_path),
        "CBRAIN_ENV": "production",
        "CBRAIN_ENCRYPTION_KEY": "rGcsWnU0mOv6Jn4vhC2v1Bq3tW3P0fJxg4Ix0kH5w8Y=",
    }
    if pepper:
        kwargs["CBRAIN_PEPPER"] = pepper
    with pytest.raises(ConfigError, match="CBRAIN_PEPPER"):
        _ = load_settings(**kwargs).secrets
    assert not (tmp_path / "secrets.json").exists()


def test_production_refuses_a_malformed_key(tmp_path):
    s = load_settings(
        CBRAIN_HOME=str(tmp_path),
        CBRAIN_ENV="production",
        CBRAIN_PEPPER="x" * 40,
        CBRAIN_ENCRYPTION_KEY="not-base64-32-bytes-at-all",
    )
    with pytest.raises(ConfigError, match="32 bytes"):
        _ = s.secrets


def test_redaction_removes_emails_phones_and_names():
    assert redact_text("mail jane.doe+x@gmail.com or call +44 7700 900123") == (
        "mail [email] or call [phone]"
    )
    out = _redaction_processor(
        None, "info", {"event": "x", "first_name": "Jane", "payload": {"email": "a@b.co", "n": 3}}
    )
    assert out["first_name"] == "[redacted]"
    assert out["payload"] == {"email": "[redacted]", "n": 3}
