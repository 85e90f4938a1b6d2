"""Decoding /proc/PID/mountinfo path fields: only the kernel's four octal escapes."""

from __future__ import annotations

from pathlib import Path

import pytest

from contain import linux
from contain.cgroups import hierarchy
from contain.lab import solutions


@pytest.mark.parametrize(("field", "path"), [
    ("/mnt/plain", "/mnt/plain"),
    ("/mnt/a\\040b", "/mnt/a b"),
    ("/mnt/tab\\011nl\\012bs\\134", "/mnt/tab\tnl\nbs\\"),
    ("/mnt/caf\u00e9\\040ol\u00e9", "/mnt/caf\u00e9 ol\u00e9"),
    ("/mnt/\u65e5\u672c", "/mnt/\u65e5\u672c"),
    ("/mnt/x\\n", "/mnt/x\\n"),  # not an escape the kernel writes: left alone
])
def test_unescape_mountinfo(field: str, path: str) -> None:
    assert linux.unescape_mountinfo(field) == path
    line = f"36 35 98:0 / {field} rw,noatime master:1 - ext3 /dev/root rw"
    assert solutions.mount_points(line) == [path]


def test_cgroup_hierarchy_reads_escaped_mount_points(tmp_path: Path) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "30 25 0:26 /caf\u00e9\\040x / rw - ext4 /dev/sda1 rw\n"
        "31 25 0:27 /caf\u00e9\\040x /sys/fs/cgroup/m\u00e9m\\040ory rw,nosuid shared:9"
        " - cgroup cgroup rw,memory\n")
    (found,) = hierarchy.mounts(str(mountinfo))
    assert found.mount_point == "/sys/fs/cgroup/m\u00e9m ory"
    assert found.root == "/caf\u00e9 x"
    assert found.controllers == frozenset({"memory"})
