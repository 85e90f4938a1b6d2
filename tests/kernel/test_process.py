"""The process model against the real kernel: children, PID 1, exit statuses, signals."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contain import linux, process

ALL_NS = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")
ALL_FLAGS = (linux.CLONE_NEWNS | linux.CLONE_NEWUTS | linux.CLONE_NEWIPC | linux.CLONE_NEWNET
             | linux.CLONE_NEWPID | linux.CLONE_NEWUSER | linux.CLONE_NEWCGROUP
             | linux.CLONE_NEWTIME)


def ns_links(pid: int | str = "self") -> dict[str, str]:
    return {name: os.readlink(f"/proc/{pid}/ns/{name}") for name in ALL_NS}


# --- call_in_child -------------------------------------------------------------------
def test_call_in_child_returns_the_value() -> None:
    assert process.call_in_child(lambda a, b=0: (a + b, os.getpid()), 2, b=3)[0] == 5
    assert process.call_in_child(os.getpid) != os.getpid()


def test_call_in_child_reraises_with_the_childs_message() -> None:
    def fail() -> None:
        raise ValueError("bad value in the child")

    with pytest.raises(process.ChildError, match="^bad value in the child$") as caught:
        process.call_in_child(fail)
    assert caught.value.kind == "ValueError"


def test_a_syscall_error_in_the_child_keeps_its_message(tmp_path: Path) -> None:
    with pytest.raises(process.ChildError) as caught:
        process.call_in_child(linux.umount, str(tmp_path))
    assert caught.value.kind == "SyscallError"
    assert str(caught.value).startswith("umount2(")


def test_a_child_that_dies_is_reported() -> None:
    with pytest.raises(process.ChildError, match="died without an answer"):
        process.call_in_child(os._exit, 3)


@pytest.fixture
def threads() -> Iterator[int]:
    """Make this process multi-threaded, like a Jupyter kernel."""
    stop = threading.Event()
    started = [threading.Thread(target=stop.wait, daemon=True) for _ in range(4)]
    for thread in started:
        thread.start()
    yield process.thread_count()
    stop.set()
    for thread in started:
        thread.join()


def _unshare_everything() -> dict[str, str]:
    linux.unshare(ALL_FLAGS)
    links = {name: os.readlink(f"/proc/self/ns/{name}")
             for name in ("mnt", "uts", "ipc", "net", "user", "cgroup")}
    return links


def test_unshare_in_a_child_of_a_multithreaded_process_leaves_the_caller_alone(
        threads: int) -> None:
    assert threads >= 5
    before = ns_links()
    inside = process.call_in_child(_unshare_everything)
    assert ns_links() == before
    for name, link in inside.items():
        assert link != before[name], name  # the child really moved
    assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")


def test_spawn_refuses_a_multithreaded_process(threads: int) -> None:
    with pytest.raises(process.ChildError, match="single-threaded"):
        process.spawn(["/bin/true"])


# --- spawn -------------------------------------------------------------------------------
def _run(argv: list[str], out: str, flags: int = 0, init: bool = False) -> tuple[int, str]:
    """In a (single-threaded) child: spawn argv with stdout to ``out``; exit code, error."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    try:
        proc = process.spawn(argv, flags=flags, init=init)
    except process.ChildError as exc:
        return exc.exit_code, str(exc)
    return proc.wait(), ""


def test_exit_status_passes_through(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert process.call_in_child(_run, ["/bin/sh", "-c", "exit 7"], out) == (7, "")
    assert process.call_in_child(_run, ["/bin/true"], out) == (0, "")


def test_missing_command_is_127_with_a_clear_message(tmp_path: Path) -> None:
    code, message = process.call_in_child(_run, ["/no/such/command"], str(tmp_path / "out"))
    assert code == 127
    assert message == "executable file not found: '/no/such/command'"


def test_killed_by_a_signal_is_128_plus_n(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    assert process.call_in_child(_run, ["/bin/sh", "-c", "kill -TERM $$"], out)[0] == 143
    assert process.call_in_child(_run, ["/bin/sh", "-c", "kill -KILL $$"], out)[0] == 137


def test_the_command_is_pid_1_in_a_new_pid_namespace(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, _ = process.call_in_child(
        _run, ["/bin/sh", "-c", "echo $$"], str(out), flags=linux.CLONE_NEWPID)
    assert code == 0
    assert out.read_text() == "1\n"


def test_with_init_the_command_is_pid_2(tmp_path: Path) -> None:
    out = tmp_path / "out"
    process.call_in_child(_run, ["/bin/sh", "-c", "echo $$"], str(out),
                          flags=linux.CLONE_NEWPID, init=True)
    assert out.read_text() == "2\n"


def _children(pid: int) -> dict[int, str]:
    """{child pid: state letter} of ``pid``'s children, from /proc/*/stat."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found[int(entry)] = fields[0]
    return found


def _wait_for(predicate, what: str, limit: float = 20.0):  # type: ignore[no-untyped-def]
    """Poll until predicate() is truthy (a bound, not a timing assertion)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


def _signal_test(init: bool, marker: str, via_relay: bool) -> dict[str, object]:
    """Start a sleeping container, orphan a process in it, send SIGTERM, report."""
    # A subshell starts a background job and exits: the job is orphaned and
    # re-parented to PID 1. It waits until PID 1 has become `sleep` (a shell PID 1
    # would reap it while waiting for the subshell), touches the marker file and exits.
    script = f"(/bin/sh -c 'sleep 0.3; echo > {marker}' &); exec /bin/sleep 1000"
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    proc = process.spawn(["/bin/sh", "-c", script], flags=linux.CLONE_NEWPID, init=init)
    try:
        _wait_for(lambda: os.path.exists(marker), "the orphan ran")
        if init:  # init reaps the orphan: only the command is left as its child
            _wait_for(lambda: len(_children(proc.pid)) == 1, "init reaped the orphan")
            zombies = [p for p, s in _children(proc.pid).items() if s == "Z"]
        else:  # PID 1 is `sleep`, which never wait()s: the orphan stays a zombie
            zombies = _wait_for(
                lambda: [p for p, s in _children(proc.pid).items() if s == "Z"], "a zombie")
        if via_relay:
            proc.send_signal(signal.SIGTERM)
        else:
            os.kill(proc.pid, signal.SIGTERM)  # straight to PID 1, as `docker stop` does
        # If SIGTERM was accepted it already decided the exit status; SIGKILL (from
        # outside the namespace, so never ignored) ends an ignoring PID 1.
        if not init:
            os.kill(proc.pid, signal.SIGKILL)
        status = proc.wait()
    finally:
        if proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return {"zombies": len(zombies), "status": status}


@pytest.mark.parametrize("via_relay", [False, True], ids=["to-pid1", "via-relay"])
def test_init_reaps_zombies_and_forwards_sigterm(tmp_path: Path, via_relay: bool) -> None:
    facts = process.call_in_child(_signal_test, True, str(tmp_path / "ran"), via_relay)
    assert facts == {"zombies": 0, "status": 128 + signal.SIGTERM}


def test_without_init_pid_1_ignores_sigterm_and_keeps_zombies(tmp_path: Path) -> None:
    # Straight to PID 1: the kernel drops (or accepts) the signal before kill() returns.
    facts = process.call_in_child(_signal_test, False, str(tmp_path / "ran"), False)
    assert facts["zombies"] == 1
    assert facts["status"] == 128 + signal.SIGKILL  # SIGTERM did nothing


def test_exit_status_helper() -> None:
    assert process.exit_status(3 << 8) == 3
    assert process.exit_status(signal.SIGKILL) == 137


def test_command_not_in_path_names_the_search(tmp_path: Path) -> None:
    code, message = process.call_in_child(_run, ["no-such-command"], str(tmp_path / "out"))
    assert (code, message) == (127, "executable file not found in $PATH: 'no-such-command'")


def test_not_executable_is_126(tmp_path: Path) -> None:
    code, message = process.call_in_child(_run, ["/etc/passwd"], str(tmp_path / "out"))
    assert (code, message) == (126, "cannot execute '/etc/passwd': permission denied")
