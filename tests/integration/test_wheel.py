"""A built wheel is all of Baeum: installed into a fresh virtualenv, away from the checkout,
it migrates, collects its static files and serves the API, the workbench (in Korean) and
the API documentation."""

import os
import shutil
import subprocess
import sys
import sysconfig
import time
import venv
from pathlib import Path

import pytest
import requests

from tests.integration.test_embedded_server import free_port

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "config" / "locale" / "ko" / "LC_MESSAGES" / "django.mo"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh virtualenv holding the wheel; its dependencies are the project's own."""
    if not CATALOGUE.exists():
        pytest.skip("compile the catalogue first: make messages")
    work = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(work), str(ROOT)],
        check=True,
        capture_output=True,
        cwd=work,
    )
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools' scratch copy of the tree
    (wheel,) = work.glob("baeum-*.whl")
    env_dir = work / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
    )
    # The dependencies come from the project's environment (no download in a test): a path
    # entry, which does not run that environment's own .pth files (nor its editable Baeum).
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (site / "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "PYTHONPATH", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(BAEUM_DATA_DIR=str(work / "data"), DJANGO_DEBUG="0")
    run_dir = work / "elsewhere"
    run_dir.mkdir()
    return env_dir, env, run_dir


def test_the_wheel_carries_the_code_not_the_checkout(installed):
    env_dir, env, run_dir = installed
    where = subprocess.check_output(
        [str(env_dir / "bin" / "python"), "-c", "import config, staff; print(config.__file__)"],
        cwd=run_dir,
        env=env,
        text=True,
    )
    assert str(env_dir) in where and str(ROOT) not in where


def test_the_installed_wheel_migrates_and_serves(installed):
    env_dir, env, run_dir = installed
    baeum = str(env_dir / "bin" / "baeum")
    for command in (["migrate", "--noinput"], ["collectstatic", "--noinput"], ["check"]):
        done = subprocess.run([baeum, *command], cwd=run_dir, env=env, capture_output=True)
        assert done.returncode == 0, done.stderr.decode()[-2000:]
    port = free_port()
    server = subprocess.Popen(
        [
            str(env_dir / "bin" / "python"),
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
        ],
        cwd=run_dir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"{base}/api/v1/programs/", timeout=5)
                break
            except requests.RequestException:
                time.sleep(0.3)
        assert requests.get(f"{base}/api/v1/programs/", timeout=10).status_code == 200
        login = requests.get(f"{base}/staff/login/", timeout=10)
        assert login.status_code == 200 and "로그인" in login.text  # template and catalogue
        assert requests.get(f"{base}/static/staff/staff.css", timeout=10).status_code == 200
        docs = requests.get(f"{base}/api/v1/docs/", timeout=10)
        assert docs.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=20)
    # The pain.001 schema every bank file is checked against travels with the code.
    xsd = subprocess.check_output(
        [
            str(env_dir / "bin" / "python"),
            "-c",
            "from payments.bankfiles import PAIN001_XSD; print(PAIN001_XSD.is_file())",
        ],
        cwd=run_dir,
        env={**env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        text=True,
    )
    assert xsd.strip() == "True"
    assert shutil.which("baeum", path=str(env_dir / "bin"))
