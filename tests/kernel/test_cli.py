"""The `contain` command line, run as a real process: acceptance and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from contain import rootfs

Contain = Callable[..., subprocess.CompletedProcess[str]]
REPO = Path(__file__).resolve().parents[2]


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("contain: "), lines[0]
    return lines[0]


def test_run_shows_the_busybox_root_not_the_host(contain: Contain, busybox_rootfs: Path,
                                                  no_new_mounts: None) -> None:
    result = contain("run", "--rootfs", str(busybox_rootfs), "/bin/sh", "-c",
                     "ls /; cat /proc/1/cmdline")
    assert result.returncode == 0, result.stderr
    *listing, cmdline = result.stdout.splitlines()
    assert set(listing) == {n for n in os.listdir(busybox_rootfs) if not n.startswith(".")}
    assert "linuxrc" in listing  # a busybox root's, not this host's
    # PID 1 is the command: sh, or cat when busybox sh execs its last command directly.
    assert cmdline in ("/bin/sh\0-c\0ls /; cat /proc/1/cmdline\0", "cat\0/proc/1/cmdline\0")


def test_exit_status_passes_through(contain: Contain, busybox_rootfs: Path,
                                    no_new_mounts: None) -> None:
    result = contain("run", "--rootfs", str(busybox_rootfs), "/bin/sh", "-c", "exit 42")
    assert result.returncode == 42
    assert result.stderr == ""


def test_missing_rootfs(contain: Contain, tmp_path: Path, no_new_mounts: None) -> None:
    result = contain("run", "--rootfs", str(tmp_path / "nope"), "/bin/sh")
    assert result.returncode == 125
    line = one_error_line(result)
    assert str(tmp_path / "nope") in line and "does not exist" in line


def test_rootfs_without_the_command(contain: Contain, busybox_rootfs: Path,
                                    no_new_mounts: None) -> None:
    result = contain("run", "--rootfs", str(busybox_rootfs), "/usr/bin/python3")
    assert result.returncode == 127
    assert one_error_line(result) == "contain: executable file not found: '/usr/bin/python3'"


def test_an_empty_directory_as_rootfs(contain: Contain, tmp_path: Path,
                                      no_new_mounts: None) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = contain("run", "--rootfs", str(empty), "/bin/sh")
    assert result.returncode in (125, 127)
    one_error_line(result)


# The interpreter may live where uid 65534 cannot read it (pyenv under /root), so the
# CLI's modules are imported as root and privileges dropped right before main().
AS_NOBODY = """
import os, sys
import contain.cli, contain.runtime.run, contain.process, contain.rootfs, contain.lab.preflight
import gettext, locale, json, pickle, traceback, platform, shutil  # imported lazily later
contain.cli.build_parser().parse_args(sys.argv[1:])  # argparse's own lazy imports
os.setgroups([]); os.setresgid(65534, 65534, 65534); os.setresuid(65534, 65534, 65534)
sys.exit(contain.cli.main(sys.argv[1:]))
"""


def run_as_nobody(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", AS_NOBODY, *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_non_root_caller(contain_env: dict[str, str], busybox_rootfs: Path,
                         no_new_mounts: None) -> None:
    result = run_as_nobody(contain_env, "run", "--rootfs", str(busybox_rootfs), "/bin/true")
    assert result.returncode == 125
    line = one_error_line(result)
    assert "root" in line and "sudo" in line


def test_doctor_as_nobody_says_what_is_missing(contain_env: dict[str, str]) -> None:
    result = run_as_nobody(contain_env, "doctor")
    assert result.returncode == 1
    assert "root             MISSING" in result.stdout
    assert "sudo bash vm/provision.sh" in result.stdout


MISSING_BUSYBOX = """
import sys
import contain.rootfs
contain.rootfs.BUSYBOX_CANDIDATES = (sys.argv[1],)  # a dynamic binary: not usable
from contain.cli import main
sys.exit(main(sys.argv[2:]))
"""


def test_missing_busybox_static(contain_env: dict[str, str], tmp_path: Path,
                                no_new_mounts: None) -> None:
    env = {**contain_env, "CONTAIN_ROOT": str(tmp_path / "fresh-root")}
    result = subprocess.run(
        [sys.executable, "-c", MISSING_BUSYBOX, os.path.realpath(sys.executable),
         "run", "/bin/true"], env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 125
    line = one_error_line(result)
    assert "busybox" in line and "apt-get install busybox-static" in line
    leftovers = list((tmp_path / "fresh-root").rglob("*"))
    assert all(p.is_dir() and not any(p.iterdir()) for p in leftovers), leftovers


def test_default_rootfs_is_built_on_first_use(contain: Contain, contain_env: dict[str, str],
                                              no_new_mounts: None) -> None:
    result = contain("run", "/bin/sh", "-c", "echo $$")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1\n"
    root = Path(contain_env["CONTAIN_ROOT"]) / "rootfs/busybox"
    assert rootfs.is_static(str(root / "bin/busybox"))


def test_chroot_verb(contain: Contain, busybox_rootfs: Path) -> None:
    result = contain("chroot", str(busybox_rootfs), "/bin/ls", "/")
    assert result.returncode == 0, result.stderr
    assert "linuxrc" in result.stdout.split()


def test_help_and_version(contain: Contain) -> None:
    from contain import __version__

    result = contain("--help")
    assert result.returncode == 0
    for verb in ("run", "chroot", "doctor", "version"):
        assert verb in result.stdout
    result = contain("version")
    assert (result.returncode, result.stdout) == (0, f"contain {__version__}\n")


def test_run_without_a_command_is_a_usage_error(contain: Contain) -> None:
    result = contain("run")
    assert result.returncode == 2
    assert "give the command to run" in result.stderr


def test_doctor(contain: Contain) -> None:
    result = contain("doctor")
    assert result.returncode == 0, result.stdout
    assert "cgroups" in result.stdout and "busybox-static   ok" in result.stdout


@pytest.mark.parametrize("verb", ["run", "chroot"])
def test_unknown_option_fails_cleanly(contain: Contain, verb: str) -> None:
    result = contain(verb, "--no-such-option")
    assert result.returncode == 2
