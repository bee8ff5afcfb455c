"""Production settings: with DEBUG=0 and real values, Django's deploy checks are clean."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    test_only = ("DEBUG", "SECRET_KEY", "AUDIT_CHAIN_KEY", "ALLOWED_HOSTS", "DJANGO_ALLOW_ASYNC_UNSAFE")
    environment = {k: v for k, v in os.environ.items() if k not in test_only}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_is_clean_with_production_values():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="k" * 20 + "-production-secret-with-enough-entropy-9f8e7d6c5b4a",
        AUDIT_CHAIN_KEY="c" * 20 + "-audit-chain-key-kept-out-of-the-database-1a2b3c",
        ALLOWED_HOSTS="tutor.example.org",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", DEBUG="0", ALLOWED_HOSTS="tutor.example.org")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG=0" in result.stderr


def test_production_refuses_to_start_without_an_audit_chain_key():
    result = _manage(
        "check", DEBUG="0", SECRET_KEY="k" * 50, ALLOWED_HOSTS="tutor.example.org", AUDIT_CHAIN_KEY=""
    )
    assert result.returncode != 0
    assert "AUDIT_CHAIN_KEY must be set when DEBUG=0" in result.stderr


def test_a_malformed_boolean_names_the_variable():
    result = _manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be one of" in result.stderr
