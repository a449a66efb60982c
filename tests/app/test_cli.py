import os
import secrets
import subprocess
import sys


def _cbrain(args, settings):
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "CBRAIN_HOME": str(settings.home),
        "CBRAIN_ENV": "test",
        "CBRAIN_PEPPER": settings.pepper.get_secret_value(),
        "CBRAIN_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_brand_create_prints_a_working_key_as_last_line(settings, client):
    slug = f"cli-{secrets.token_hex(4)}"
    out = _cbrain(["brand", "create", slug], settings)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    resp = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == 200
    assert resp.json()["brand"] == slug
    assert resp.json()["scopes"] == ["ingest", "read"]
    assert slug in _cbrain(["brand", "list"], settings).stdout
    dup = _cbrain(["brand", "create", slug], settings)
    assert dup.returncode == 1 and "already exists" in dup.stderr


async def test_key_create_and_revoke(settings, client):
    slug = f"cli-{secrets.token_hex(4)}"
    assert _cbrain(["brand", "create", slug], settings).returncode == 0
    out = _cbrain(["key", "create", slug, "--scope", "read", "--scope", "pii:read"], settings)
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    resp = await client.get("/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert resp.json()["scopes"] == ["pii:read", "read"]
    bad = _cbrain(["key", "create", slug, "--scope", "superuser"], settings)
    assert bad.returncode == 1 and "superuser" in bad.stderr
    listed = _cbrain(["key", "list", slug], settings).stdout
    assert key not in listed
    assert _cbrain(["key", "revoke", slug, key[:10]], settings).returncode == 0


def test_migrate_reports_up_to_date(settings):
    out = _cbrain(["migrate"], settings)
    assert out.returncode == 0, out.stderr
    assert "up to date" in out.stdout


def test_unknown_brand_is_named_in_the_error(settings):
    out = _cbrain(["key", "create", "nope-brand", "--scope", "read"], settings)
    assert out.returncode == 1 and "nope-brand" in out.stderr


def test_help_lists_commands():
    out = subprocess.run(
        [sys.executable, "-m", "app.cli", "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0
    for cmd in ("migrate", "serve", "brand", "key"):
        assert cmd in out.stdout
