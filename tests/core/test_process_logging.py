"""The RRN-redacting filter in every process: a Celery worker or beat (whose logging Celery
sets up) and gunicorn (its own error and access logs, query strings included)."""

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RRN = "850315-1234567"

# Celery sets up a process's logging as a worker or beat does, then logs through the
# root logger, a task logger and the stdout Celery redirects into its log.
CELERY_LOGGING = """
import logging, sys
from celery.utils.log import get_task_logger
from config.celery import app
app.conf.worker_hijack_root_logger = sys.argv[1] == "hijack"
app.log.setup(loglevel="INFO", redirect_stdouts=True)
logging.getLogger("eligibility.imports").warning("root logger: rrn %s", sys.argv[2])
get_task_logger("eligibility.tasks").warning("task logger: rrn %s", sys.argv[2])
print(f"printed: rrn {sys.argv[2]}")
"""


def _env(tmp_path) -> dict:
    return {
        **os.environ,
        "BAEUM_DATA_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }


@pytest.mark.parametrize("mode", ["keep-django-logging", "hijack"])
def test_a_celery_process_logs_no_rrn(tmp_path, mode):
    result = subprocess.run(
        [sys.executable, "-c", CELERY_LOGGING, mode, RRN],
        cwd=ROOT,
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    output = result.stdout + result.stderr
    for line in ("root logger: rrn", "task logger: rrn", "printed: rrn"):
        assert f"{line} ******-*******" in output, output
    assert RRN not in output and RRN.replace("-", "") not in output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_access_and_error_logs_carry_no_rrn(tmp_path):
    # Started as the README and compose.yaml start it: gunicorn.conf.py is found by itself.
    port = _free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "1",
                "config.wsgi",
            ],
            cwd=ROOT,
            env=_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/no-such-page/?rrn={RRN}&q={RRN.replace('-', '')}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url, timeout=5)
            except urllib.error.HTTPError as exc:
                assert exc.code == 404
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        time.sleep(0.5)
    finally:
        server.terminate()
        server.wait(timeout=30)
    text = log.read_text()
    assert "GET /no-such-page/?rrn=******-*******" in text, text
    assert RRN not in text and RRN.replace("-", "") not in text
