"""100 runs, 10 with the container SIGKILLed and 5 with `contain` itself SIGKILLed:
after `contain cleanup` no mount, cgroup, process or writable layer of ours remains,
and a live container is left alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from contain import cgroups
from contain.runtime import state


def wait_for(path: Path, timeout: float = 30) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = path.read_text()
            if text.endswith("\n"):
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise AssertionError(f"{path} never appeared")


def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "contain", "run", *args], env=env,
                            text=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_100_runs_with_kills_leave_nothing_after_cleanup(
        contain_env: dict[str, str], tmp_path: Path, no_new_mounts: None) -> None:
    env = contain_env
    state_dir = Path(env["CONTAIN_STATE"])
    tag = os.urandom(3).hex()  # cgroup names are host-wide: never collide with others
    ids: list[str] = []
    pids: list[tuple[int, int | None]] = []  # container PID 1s (pid, start time)

    # A live container that cleanup must not touch.
    live_id = f"live-{tag}"
    live = start(env, "--init", "--name", live_id, "--pid-file", str(tmp_path / "live.pid"),
                 "/bin/sleep", "60")
    live_pid = wait_for(tmp_path / "live.pid")

    try:
        # 85 ordinary runs: 75 with --rm, 10 kept (stopped containers) for cleanup.
        for i in range(85):
            cid = f"ok{i}-{tag}"
            ids.append(cid)
            args = ["--name", cid] + (["--rm"] if i < 75 else [])
            result = subprocess.run([sys.executable, "-m", "contain", "run", *args,
                                     "/bin/sh", "-c", "echo x > /tmp/x"],
                                    env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
        def sleeper(cid: str) -> tuple[subprocess.Popen[str], int]:
            """A running `contain run --rm ... sleep 30`; its container's PID 1."""
            ids.append(cid)
            pid_file = tmp_path / f"{cid}.pid"
            proc = start(env, "--rm", "--name", cid, "--pid-file", str(pid_file),
                         "/bin/sleep", "30")
            pid = wait_for(pid_file)
            pids.append((pid, state.start_time(pid)))
            return proc, pid

        # 10 runs whose container is SIGKILLed mid-run: contain cleans up itself (--rm).
        for i in range(10):
            proc, pid = sleeper(f"kc{i}-{tag}")
            os.kill(pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == 128 + signal.SIGKILL
            assert not (state_dir / ids[-1]).exists(), "contain removed the writable layer"
        # 5 runs where contain itself is SIGKILLed: stale state for cleanup to reclaim.
        for i in range(5):
            proc, _ = sleeper(f"kk{i}-{tag}")
            proc.kill()
            proc.wait(timeout=30)
        assert len(ids) == 100
        stale = sorted(os.listdir(state_dir))
        assert len(stale) == 10 + 5 + 1, stale  # kept + contain-killed + the live one

        cleaned = subprocess.run([sys.executable, "-m", "contain", "cleanup"], env=env,
                                 capture_output=True, text=True, timeout=120)
        assert cleaned.returncode == 0, cleaned.stderr
        assert len(cleaned.stdout.splitlines()) == 15

        # Nothing of the 100 is left: writable layers, cgroups, processes, mounts.
        assert os.listdir(state_dir) == [live_id]
        for cid in ids:
            assert not cgroups.driver()(cgroups.container_cgroup(cid)).exists(), cid
        for pid, started in pids:
            assert not state.alive(pid, started), f"container process {pid} survived"
        with open("/proc/self/mountinfo") as f:
            assert str(state_dir) not in f.read()
        # ...and the live container was not touched.
        assert live.poll() is None
        assert state.start_time(live_pid) is not None
        assert (state_dir / live_id / "state.json").exists()
        assert cgroups.driver()(cgroups.container_cgroup(live_id)).exists()
    finally:
        live.send_signal(signal.SIGTERM)  # --init passes it on to sleep; contain cleans up
        live.wait(timeout=30)
    assert subprocess.run([sys.executable, "-m", "contain", "rm", live_id], env=env,
                          capture_output=True, timeout=60).returncode == 0
    assert os.listdir(state_dir) == []
    assert not cgroups.driver()(cgroups.container_cgroup(live_id)).exists()


def test_rm_refuses_a_live_container(contain_env: dict[str, str], tmp_path: Path) -> None:
    cid = f"busy-{os.urandom(3).hex()}"
    proc = start(contain_env, "--init", "--rm", "--name", cid, "--pid-file", str(tmp_path / "p"),
                 "/bin/sleep", "30")
    try:
        wait_for(tmp_path / "p")
        result = subprocess.run([sys.executable, "-m", "contain", "rm", cid], env=contain_env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 125 and "is running" in result.stderr
        assert (Path(contain_env["CONTAIN_STATE"]) / cid).exists()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert not (Path(contain_env["CONTAIN_STATE"]) / cid).exists()


@pytest.mark.parametrize("cid", ["..", "."])
def test_rm_refuses_dot_ids_and_touches_nothing(contain: Any, contain_env: dict[str, str],
                                                cid: str) -> None:
    state_dir = Path(contain_env["CONTAIN_STATE"])
    marker = state_dir / "keep"
    marker.mkdir()
    result = contain("rm", cid)
    assert result.returncode == 125
    assert result.stderr.startswith("contain: invalid container id")
    assert marker.is_dir() and state_dir.parent.is_dir()
