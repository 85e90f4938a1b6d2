"""contain.lab helpers that need no root: preflight parsing and rendering, sh, show."""

from __future__ import annotations

import sys

import pytest

from contain.lab import preflight
from contain.lab.exercises_ch00 import DECOY, HYBRID, NONE, V1, V2
from contain.lab.shell import resolve, sh
from contain.lab.show import name_of, source_of


@pytest.mark.parametrize(("text", "version"),
                         [(V1, "v1"), (V2, "v2"), (HYBRID, "hybrid"), (NONE, "none"),
                          (DECOY, "none")])
def test_cgroup_version(text: str, version: str) -> None:
    assert preflight.cgroup_version(text) == version


def test_cgroup_mounts_of_this_machine() -> None:
    with open("/proc/self/mountinfo") as f:
        text = f.read()
    mounts = preflight.cgroup_mounts(text)
    expected = [line.split()[4] for line in text.splitlines()
                if line.partition(" - ")[2].split()[0] in ("cgroup", "cgroup2")]
    assert [point for point, _, _ in mounts] == expected


def test_render_names_what_is_missing_and_the_fix() -> None:
    checks = [preflight.Check("root", False, "running as uid 1000", "start the lab with sudo"),
              preflight.Check("kernel", True, "Linux 6.1"),
              preflight.Check("user namespaces", False, "disabled", "sysctl -w x=1",
                              required=False)]
    text = preflight.render(checks)
    assert "root             MISSING  running as uid 1000" in text
    assert "missing: root — fix: start the lab with sudo" in text
    assert "optional: user namespaces — fix: sysctl -w x=1" in text
    assert text.endswith("The lab is not ready. Most fixes at once: run: sudo bash vm/provision.sh")
    assert not preflight.ready(checks)
    assert preflight.ready(checks[1:])


def test_sh_runs_this_interpreters_contain() -> None:
    assert resolve("contain version") == f"{sys.executable} -m contain version"
    assert resolve("containers") == "containers"
    out = sh("contain version", quiet=True)
    assert out.startswith("contain ") and out.returncode == 0


def test_sh_failure() -> None:
    out = sh("echo oops; exit 4", check=False, quiet=True)
    assert (out, out.returncode) == ("oops\n", 4)
    with pytest.raises(RuntimeError, match="exited with status 4"):
        sh("exit 4", quiet=True)


def test_show_is_deterministic(capsys: pytest.CaptureFixture[str]) -> None:
    from contain import lab, rootfs

    assert name_of(rootfs.pivot_into) == "contain.rootfs.pivot_into"
    assert source_of(rootfs.pivot_into).startswith("def pivot_into(new_root: str | Path)")
    lab.show(rootfs.chroot)
    out = capsys.readouterr().out
    assert out.startswith("# contain.rootfs.chroot\ndef chroot(")
    assert "/work" not in out.splitlines()[0]
    with pytest.raises(TypeError, match="no Python source"):
        source_of(len)
