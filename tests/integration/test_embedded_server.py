"""The embedded SQLite mode serves concurrent clients without "database is locked"."""

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 16


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(data: Path, **extra_env):
    """Migrate, seed and serve Baeum on SQLite under `data` with gunicorn; yield the API."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL"}}
    env.update(BAEUM_DATA_DIR=str(data), BAEUM_AUTH_RATE="100000/min", DJANGO_DEBUG="0")
    env.update(extra_env)
    manage = [sys.executable, "manage.py"]
    subprocess.run(
        [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True
    )
    subprocess.run(
        [*manage, "seed_demo", "--applicants", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = (data / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--timeout",
            "60",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    # A loaded CI machine may take a while to boot two workers: wait up to a minute.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/programs/", timeout=5)
            break
        except requests.RequestException:
            time.sleep(0.2)
    yield base, data / "server.log"
    process.terminate()
    process.wait(timeout=20)
    log.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from serve(tmp_path_factory.mktemp("embedded"))


@pytest.fixture(scope="module")
def server_by_url(tmp_path_factory):
    """SQLite named by DATABASE_URL, as an operator pointing Baeum at a file would."""
    data = tmp_path_factory.mktemp("by-url")
    yield from serve(data, DATABASE_URL=f"sqlite:///{data / 'named.sqlite3'}")


def citizen_journey(base: str, i: int, round_id: int) -> list[int]:
    s = requests.Session()
    codes = []
    r = s.post(
        f"{base}/auth/register/",
        json={
            "username": f"load{i}",
            "password": "a-long-passphrase-9",
            "email": f"l{i}@example.org",
        },
    )
    codes.append(r.status_code)
    r = s.post(
        f"{base}/auth/token/", json={"username": f"load{i}", "password": "a-long-passphrase-9"}
    )
    codes.append(r.status_code)
    if r.status_code != 200:
        # Say what the server answered instead of failing on a missing token.
        return [*codes, r.text[:300]]
    s.headers["Authorization"] = f"Token {r.json()['token']}"
    r = s.put(
        f"{base}/me/profile/",
        json={
            "legal_name": "부하",
            "rrn": f"900101-1{i:06d}",
            "phone": "010-1234-5678",
            "email": f"l{i}@example.org",
            "district": "11440",
            "address": "서울",
            "bank_code": "004",
            "account_number": f"1234567{i:05d}",
            "account_holder": "부하",
            "consent_data_checks": True,
        },
    )
    codes.append(r.status_code)
    r = s.post(
        f"{base}/applications/",
        headers={"Idempotency-Key": f"k{i}"},
        json={
            "round": round_id,
            "income_category": "near_poor",
            "training": {
                "course_name": "용접",
                "institution": "폴리텍",
                "starts_on": "2026-12-01",
                "ends_on": "2027-02-01",
                "weekly_hours": 20,
            },
        },
    )
    codes.append(r.status_code)
    r = s.post(f"{base}/applications/{r.json()['id']}/submit/")
    codes.append(r.status_code)
    return codes


def run_citizens(base: str, log: Path, clients: int) -> None:
    url = f"{base}/rounds/?program=SCHOLARSHIP&status=open"
    rounds = requests.get(url, timeout=10).json()["results"]
    round_id = rounds[0]["id"]
    results: dict[int, list[int] | Exception] = {}

    def run(i):
        try:
            results[i] = citizen_journey(base, i, round_id)
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(results[i] == [201, 200, 200, 201, 200] for i in range(clients)), results
    assert "database is locked" not in log.read_text()


def test_sixteen_concurrent_citizens_on_sqlite(server):
    run_citizens(*server, CLIENTS)


def test_ten_concurrent_writers_on_sqlite_named_by_database_url(server_by_url):
    base, log = server_by_url
    run_citizens(base, log, 10)
    # The database is the file the URL names, in WAL mode like the default one.
    named = log.parent / "named.sqlite3"
    assert named.exists() and Path(f"{named}-wal").exists()
    assert not (log.parent / "baeum.sqlite3").exists()
