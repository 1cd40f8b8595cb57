"""The krwatch command line as a user runs it."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.integration._processes import KRWATCH, REPOSITORY, Krwatch, free_port


def run_krwatch(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*KRWATCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPOSITORY,
    )


BROKEN = """
server:
  listen: 127.0.0.1:9464
  lissen: oops
storage:
  retention: 5 days
sources:
  - name: file
    type: cvs
kpis:
  - name: orders
    source: nowhere
"""


def test_check_accepts_example_config() -> None:
    result = run_krwatch("check", "-c", "config.example.yaml")
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout


def test_check_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = run_krwatch("check", "-c", str(path))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert any(
        f"{path}:4:" in line and "lissen" in line and "listen" in line for line in lines
    ), result.stderr
    assert any(f"{path}:6:" in line and "retention" in line for line in lines), (
        result.stderr
    )
    assert any(f"{path}:9:" in line and "cvs" in line for line in lines), result.stderr
    assert any("nowhere" in line for line in lines), result.stderr


def test_run_refuses_broken_config_with_all_problems(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = run_krwatch("run", "-c", str(path))
    assert result.returncode == 1
    assert "not started" in result.stderr
    assert "lissen" in result.stderr
    assert "retention" in result.stderr


def test_run_reports_missing_config(tmp_path: Path) -> None:
    result = run_krwatch("run", "-c", str(tmp_path / "absent.yaml"))
    assert result.returncode == 1
    assert "absent.yaml" in result.stderr


def test_check_reports_yaml_syntax_error_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  listen: [127.0.0.1\n")
    result = run_krwatch("check", "-c", str(path))
    assert result.returncode == 1
    assert f"{path}:" in result.stderr


def test_run_reports_address_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = example_config(tmp_path, port, "config.yaml")
        result = run_krwatch("run", "-c", str(path))
    assert result.returncode == 1
    assert (
        f"Cannot listen on 127.0.0.1:{port}: Address already in use." in result.stderr
    )


def example_config(tmp_path: Path, port: int, name: str) -> Path:
    config = (REPOSITORY / "config.example.yaml").read_text()
    config = config.replace("listen: 127.0.0.1:9464", f"listen: 127.0.0.1:{port}")
    config = config.replace("path: data/krwatch.db", f"path: {tmp_path / 'k.db'}")
    config = config.replace("examples/", f"{REPOSITORY}/examples/")
    path = tmp_path / name
    path.write_text(config)
    return path


def test_run_refuses_store_of_running_daemon(tmp_path: Path) -> None:
    first_port = free_port()
    first = Krwatch(
        example_config(tmp_path, first_port, "first.yaml"),
        first_port,
        tmp_path / "first.log",
    )
    first.start()
    try:
        second = run_krwatch(
            "run", "-c", str(example_config(tmp_path, free_port(), "b.yaml"))
        )
    finally:
        code = first.stop()

    assert second.returncode == 1
    assert first.process is not None
    assert (
        f"Another krwatch process (PID {first.process.pid}) is using the store "
        f"{tmp_path / 'k.db'}" in second.stderr
    )
    assert code == 0
