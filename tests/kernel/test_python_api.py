"""contain.run(...) from Python is the `contain run` command, callable from any process."""

import threading
from pathlib import Path

import contain


def test_run_from_a_multithreaded_process(
    busybox_rootfs: Path, contain_env: dict[str, str]
) -> None:
    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)  # like a Jupyter kernel: more than one thread
    worker.start()
    try:
        done = contain.run(["/bin/sh", "-c", "hostname; echo $$; cat /proc/self/cgroup"],
                           hostname="box", rm=True, memory="64m", env=["A=1"])
    finally:
        stop.set()
        worker.join()
    assert done.returncode == 0, done.stderr
    hostname, pid, *cgroup = done.stdout.split()
    assert (hostname, pid) == ("box", "1")
    assert "0::/" in cgroup


def test_options_become_flags(busybox_rootfs: Path, contain_env: dict[str, str]) -> None:
    done = contain.run(["/bin/sh", "-c", 'echo "$A-$B"'], rm=True, env=["A=1", "B=2"],
                       init=True, hostname=None)
    assert (done.returncode, done.stdout) == (0, "1-2\n")


def test_errors_come_back_as_exit_status_and_one_line(contain_env: dict[str, str]) -> None:
    done = contain.run(["no-such-command"], rm=True)
    assert done.returncode == 127
    assert done.stderr == "contain: executable file not found in $PATH: 'no-such-command'\n"
    done = contain.run(["/bin/true"], rm=True, workdir="/no/such/dir")
    assert done.returncode == 125
    assert done.stderr.startswith("contain: working directory '/no/such/dir' in the container")
    assert done.stderr.count("\n") == 1
