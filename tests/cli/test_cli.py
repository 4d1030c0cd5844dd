"""The command line as an operator or an installer uses it: real processes, real files."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

PASSWORD = "a long enough password"


def run(
    args: list[str], env: dict[str, str], stdin: str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "safecity", *args], input=stdin, capture_output=True, text=True, env=env,
        timeout=timeout, check=False,
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SAFECITY_")}
    return clean | {"SAFECITY_DATA_DIR": str(tmp_path / "data"), "SAFECITY_LOG_LEVEL": "WARNING"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_config_show_masks_secrets(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "safecity.toml"
    config.write_text('http_port = 9191\njwt_secret = "super-secret-signing-key-of-some-length"\n'
                      'database_url = "postgresql+asyncpg://city:hunter2@db.example/safecity"\n')
    shown = run(["config", "show", "--config", str(config)], env)
    assert shown.returncode == 0, shown.stderr
    settings = json.loads(shown.stdout)
    assert settings["http_port"] == 9191
    assert settings["jwt_secret"] == "********"
    assert "hunter2" not in shown.stdout
    assert "super-secret" not in shown.stdout
    assert settings["data_dir"] == env["SAFECITY_DATA_DIR"]


def test_bad_setting_is_a_clear_error_not_a_traceback(env: dict[str, str]) -> None:
    shown = run(["config", "show"], env | {"SAFECITY_HTTP_PORT": "eighty"})
    assert shown.returncode != 0
    assert "http_port" in shown.stderr
    assert "Traceback" not in shown.stderr


def test_user_add_reads_the_password_from_stdin_and_refuses_weak_ones(env: dict[str, str]) -> None:
    added = run(["user", "add", "olga", "--role", "operator", "--password-stdin"], env, stdin=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    again = run(["user", "add", "olga", "--role", "operator", "--password-stdin"], env, stdin=PASSWORD + "\n")
    assert again.returncode == 1
    assert "taken" in again.stderr
    weak = run(["user", "add", "timur", "--role", "operator", "--password-stdin"], env, stdin="short\n")
    assert weak.returncode == 1
    bad_role = run(["user", "add", "x", "--role", "superuser", "--password-stdin"], env, stdin=PASSWORD)
    assert bad_role.returncode == 2


def test_audit_verify_names_the_edited_record(env: dict[str, str]) -> None:
    for name in ("olga", "timur", "sardor"):
        assert run(["user", "add", name, "--role", "operator", "--password-stdin"], env, PASSWORD).returncode == 0
    ok = run(["audit", "verify"], env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.strip().startswith("ok: 3 records")

    database = Path(env["SAFECITY_DATA_DIR"]) / "safecity.db"
    with sqlite3.connect(database) as conn:  # an attacker with file access drops the guard and edits
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        triggers = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")]
        for trigger in triggers:
            if "update" in trigger:
                conn.execute(f'DROP TRIGGER "{trigger}"')
        conn.execute("UPDATE audit_log SET actor = 'nobody' WHERE seq = 2")
    broken = run(["audit", "verify"], env)
    assert broken.returncode == 1
    assert "record 2" in broken.stdout


def test_db_upgrade_is_idempotent(env: dict[str, str]) -> None:
    for _ in range(2):
        done = run(["db", "upgrade"], env)
        assert done.returncode == 0, done.stderr


def test_serve_answers_and_stops_cleanly_on_sigterm(env: dict[str, str]) -> None:
    http_port, dc09_port, osmand_port = free_port(), free_port(), free_port()
    serve_env = env | {"SAFECITY_HTTP_PORT": str(http_port), "SAFECITY_DC09_PORT": str(dc09_port),
                       "SAFECITY_OSMAND_PORT": str(osmand_port)}
    process = subprocess.Popen([sys.executable, "-m", "safecity", "serve"], env=serve_env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                ready = httpx.get(f"http://127.0.0.1:{http_port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "serve did not come up"
                time.sleep(0.1)
        assert ready.status_code == 200
        password = (Path(env["SAFECITY_DATA_DIR"]) / "initial-admin-password").read_text().strip()
        token = httpx.post(f"http://127.0.0.1:{http_port}/api/v1/auth/token",
                           data={"username": "admin", "password": password}, timeout=10)
        assert token.status_code == 200, token.text
        assert ready.json()["checks"] == {"database": "ok", "event_log": "ok"}
        metrics = httpx.get(f"http://127.0.0.1:{http_port}/metrics", timeout=5)
        assert "safecity_http_requests_total" in metrics.text
        assert 'route="/readyz"' in metrics.text
        with socket.create_connection(("127.0.0.1", dc09_port), timeout=5):
            pass  # the DC-09 receiver listens beside the API
        anonymous = httpx.get(f"http://127.0.0.1:{http_port}/api/v1/alarms", timeout=5)
        assert anonymous.status_code == 401
        assert anonymous.headers["content-type"] == "application/problem+json"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_import_roads_builds_the_graph_from_an_extract(env: dict[str, str]) -> None:
    from safecity.geo.roads import demo_extract_path

    done = run(["import", "roads", str(demo_extract_path())], env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (Path(env["SAFECITY_DATA_DIR"]) / "roads.graph.npz").is_file()
    bad = run(["import", "roads", "/etc/hostname"], env)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
