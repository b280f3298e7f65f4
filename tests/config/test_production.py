"""The production shape: compose.yaml and .env.example agree with the settings, and with
them `check --deploy` is clean, HSTS and the HTTPS redirect are on (not for /health/), and
the cache is shared. No Docker engine runs here: the file's structure is what is checked,
and the settings are loaded in a process of their own as a container would load them."""

import base64
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("migrate", "web", "worker", "worker-long", "beat")
# Made afresh for each run where .env.example says change-me.
SECRETS = {
    "DJANGO_SECRET_KEY": lambda: secrets.token_urlsafe(50),
    "BAEUM_ENCRYPTION_KEYS": lambda: "k1:" + base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "BAEUM_HMAC_KEY": lambda: base64.urlsafe_b64encode(os.urandom(32)).decode(),
    "POSTGRES_PASSWORD": lambda: secrets.token_urlsafe(16),
}


def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in (ROOT / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def settings_names() -> set[str]:
    """Every environment variable config/settings.py reads."""
    source = (ROOT / "config" / "settings.py").read_text()
    pattern = r'(?:os\.environ\.get|env_bool|env_int|_secret)\(\s*"([A-Z0-9_]+)"'
    return set(re.findall(pattern, source))


def interpolated(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Z0-9_]+)\}", lambda m: env[m.group(1)], str(value))


def production_env(tmp_path) -> dict[str, str]:
    """What a container of compose.yaml's web service gets, secrets made for this run."""
    example = env_example()
    example.update({name: SECRETS[name]() for name, v in example.items() if v == "change-me"})
    web = compose()["services"]["web"]
    env = {**example, **{k: interpolated(v, example) for k, v in web["environment"].items()}}
    # The volume's path on this machine; nothing outside the test's own directory.
    env["BAEUM_DATA_DIR"] = str(tmp_path)
    return env


def run_with(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BAEUM_", "DJANGO_"))}
    clean.pop("DATABASE_URL", None)
    clean.pop("CELERY_BROKER_URL", None)
    return subprocess.run(
        [sys.executable, *args],
        env={**clean, **env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


# compose.yaml and .env.example


def test_compose_runs_every_part_of_the_production_shape():
    services = compose()["services"]
    assert set(services) == {*APP_SERVICES, "db", "redis"}
    assert services["db"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    command = {name: " ".join(str(services[name]["command"]).split()) for name in APP_SERVICES}
    assert command["web"].startswith("gunicorn config.wsgi --bind 0.0.0.0:8000")
    # One worker on each queue: intake and messages never wait behind a long job.
    assert command["worker"].startswith("celery -A config worker -Q default")
    assert command["worker-long"].startswith("celery -A config worker -Q long")
    assert command["beat"].startswith("celery -A config beat")
    assert "manage.py migrate --noinput" in command["migrate"]
    assert "manage.py collectstatic --noinput" in command["migrate"]
    for name in ("web", "worker", "worker-long", "beat"):
        depends = services[name]["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
    for name in APP_SERVICES:
        assert services[name]["depends_on"]["db"] == {"condition": "service_healthy"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}
    assert "/health/" in " ".join(services["web"]["healthcheck"]["test"])


def test_every_process_shares_the_settings_and_the_data_directory():
    services = compose()["services"]
    web = services["web"]
    data_dir = web["environment"]["BAEUM_DATA_DIR"]
    for name in APP_SERVICES:
        assert services[name]["env_file"] == ".env"
        assert services[name]["environment"] == web["environment"]
        mounts = {mount.split(":")[1]: mount.split(":")[0] for mount in services[name]["volumes"]}
        assert mounts[data_dir] == "baeum-data"
    assert "baeum-data" in compose()["volumes"]
    environment = web["environment"]
    assert environment["BAEUM_PRODUCTION"] == "1"
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert environment["DATABASE_URL"].split("@")[1].startswith("db:")
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:")
    assert environment["BAEUM_CACHE_URL"].startswith("redis://redis:")
    # The broker and the cache in separate Redis databases.
    assert environment["CELERY_BROKER_URL"] != environment["BAEUM_CACHE_URL"]
    assert "--schedule " + data_dir in services["beat"]["command"]


def test_env_example_names_only_what_the_settings_read():
    example = env_example()
    compose_text = (ROOT / "compose.yaml").read_text()
    used_by_compose = set(re.findall(r"\$\{([A-Z0-9_]+)\}", compose_text))
    assert used_by_compose <= set(example)  # every ${…} in compose.yaml is defined
    unknown = set(example) - settings_names() - used_by_compose
    assert not unknown, f"read by nothing: {unknown}"
    # Every secret is left for the operator to make, and the test knows how.
    placeholders = {name for name, value in example.items() if value == "change-me"}
    assert placeholders == set(SECRETS)


def test_the_secrets_production_requires_are_all_given():
    source = (ROOT / "config" / "settings.py").read_text()
    required = set(re.findall(r'_secret\(\s*"([A-Z0-9_]+)"', source)) | {"BAEUM_CACHE_URL"}
    given = set(env_example()) | set(compose()["services"]["web"]["environment"])
    assert required <= given


def test_the_readme_runs_production_with_compose():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Running in production", 1)[1].split("\n## ", 1)[0]
    assert "cp .env.example .env" in section
    assert "docker compose up" in section
    assert "/health/" in section


# The settings a container loads.


def test_check_deploy_is_clean_with_the_production_settings(tmp_path):
    done = run_with(
        production_env(tmp_path), "manage.py", "check", "--deploy", "--fail-level", "WARNING"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


PROBE = """
import json
import django
django.setup()
from django.conf import settings
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory
from rest_framework.settings import api_settings
from core.auth import client_ip

def status(path, secure):
    request = RequestFactory().get(
        path, HTTP_HOST="baeum.example.seoul.go.kr", secure=secure
    )
    redirect = SecurityMiddleware(lambda r: None).process_request(request)
    return redirect["Location"] if redirect else None

from django.http import HttpResponse
request = RequestFactory().get("/", secure=True, HTTP_HOST="baeum.example.seoul.go.kr")
response = SecurityMiddleware(lambda r: HttpResponse())(request)
spoofed = RequestFactory().get(
    "/", REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
)
print(json.dumps({
    "hsts": response.get("Strict-Transport-Security"),
    "api_redirect": status("/api/v1/rounds/", False),
    "health_redirect": status("/health/", False),
    "cache": settings.CACHES["default"]["BACKEND"],
    "num_proxies": api_settings.NUM_PROXIES,
    "client_ip": client_ip(spoofed),
    "cookies_secure": [settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE],
}))
"""


def test_production_turns_on_hsts_and_https_but_lets_the_load_balancer_in(tmp_path):
    done = run_with(production_env(tmp_path), "-c", PROBE)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["hsts"] == "max-age=31536000; includeSubDomains; preload"
    assert probe["api_redirect"] == "https://baeum.example.seoul.go.kr/api/v1/rounds/"
    assert probe["health_redirect"] is None
    assert probe["cache"] == "django.core.cache.backends.redis.RedisCache"
    assert probe["cookies_secure"] == [True, True]
    # .env.example's one trusted proxy: its hop is the client, what came before is not.
    assert probe["num_proxies"] == 1
    assert probe["client_ip"] == "203.0.113.7"


@pytest.mark.parametrize("missing", ["BAEUM_CACHE_URL", "DJANGO_SECRET_KEY"])
def test_production_refuses_to_start_without_its_shared_cache_or_secrets(tmp_path, missing):
    env = production_env(tmp_path)
    del env[missing]
    done = run_with(env, "manage.py", "check")
    assert done.returncode != 0
    assert f"{missing} must be set when BAEUM_PRODUCTION=1" in done.stderr


DOCUMENTED = (
    "BAEUM_CACHE_URL",
    "BAEUM_CACHE_KEY_PREFIX",
    "BAEUM_TRUSTED_PROXIES",
    "BAEUM_AUTH_RATE",
    "BAEUM_LOGIN_FAILURE_LIMIT",
    "BAEUM_LOGIN_LOCKOUT_MINUTES",
    "BAEUM_STAFF_TOKEN_HOURS",
    "BAEUM_CITIZEN_TOKEN_DAYS",
    "BAEUM_SSL_REDIRECT",
    "BAEUM_HSTS_SECONDS",
    "BAEUM_HSTS_INCLUDE_SUBDOMAINS",
    "BAEUM_HSTS_PRELOAD",
    "BAEUM_CSP_REPORT_ONLY",
    "BAEUM_JSON_MAX_BYTES",
    "BAEUM_JSON_MAX_DEPTH",
    "BAEUM_MAX_DOCUMENTS_PER_APPLICATION",
    "BAEUM_DOCUMENT_CHECK_SECONDS",
    "BAEUM_DOCUMENT_CHECK_MEMORY_MB",
    "BAEUM_DOCUMENT_MAX_PIXELS",
)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_each_sign_in_security_and_upload_setting_is_read_and_documented(name):
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert f"`{name}`" in table
    assert name in settings_names()


CURSORS_PROBE = """
import json
import django
django.setup()
from django.db import connection
print(json.dumps(connection.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS", False)))
"""


@pytest.mark.parametrize("value, disabled", [("1", True), ("0", False)])
def test_server_side_cursors_can_be_turned_off_for_a_transaction_pooler(tmp_path, value, disabled):
    env = production_env(tmp_path)
    env["DB_DISABLE_SERVER_SIDE_CURSORS"] = value
    done = run_with(env, "-c", CURSORS_PROBE)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) is disabled
