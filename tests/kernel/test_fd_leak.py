"""No file descriptor of whoever starts contain may reach the container (runc CVE-2024-21626)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("init", [False, True], ids=["pid1", "init"])
def test_inherited_fds_are_closed_before_exec(
    busybox_rootfs: Path, contain_env: dict[str, str], init: bool
) -> None:
    host_root = os.open("/", os.O_RDONLY | os.O_DIRECTORY)  # a door to the host's files
    try:
        os.set_inheritable(host_root, True)
        script = (f"ls /proc/self/fd/{host_root}/etc >/dev/null 2>&1 && echo LEAK; "
                  "ls /proc/1/fd | tr '\\n' ' '")
        argv = [sys.executable, "-m", "contain", "run", "--rm", *(["--init"] if init else []),
                "/bin/sh", "-c", script]
        done = subprocess.run(argv, env=contain_env, capture_output=True, text=True,
                              pass_fds=(host_root,), timeout=60)
    finally:
        os.close(host_root)
    assert done.returncode == 0, done.stderr
    assert "LEAK" not in done.stdout
    assert done.stdout.split() == ["0", "1", "2"]  # PID 1 holds stdio and nothing else
