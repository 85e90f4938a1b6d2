"""Chapter 0's exercise: tell the cgroup version from /proc/self/mountinfo."""

from __future__ import annotations

from collections.abc import Callable

from contain.lab.exercises import exercise

# Three machines' worth of mountinfo lines (trimmed). The optional fields before " - "
# vary in number ("shared:5", "master:1"...), so the filesystem type is not at a fixed
# position counted from the left.
V2 = """\
24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw
"""
V1 = """\
24 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
31 24 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime shared:7 master:2 - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
"""
HYBRID = V1 + "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
NONE = "24 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
# A trap: a directory *named* cgroup2 holding an ordinary filesystem.
DECOY = NONE + "50 24 0:40 / /srv/cgroup2 rw,relatime shared:3 - tmpfs cgroup2 rw\n"


@exercise("00.cgroup-version",
          hint="proc(5) describes the fields of /proc/PID/mountinfo: some are optional, so "
               "count from the separator, not from the left; and a path's name proves nothing")
def check_cgroup_version(fn: Callable[[str], str]) -> None:
    """Write cgroup_version(mountinfo): v1, v2, hybrid or none, from /proc/self/mountinfo."""
    from contain.lab import preflight

    for text, expected in ((V2, "v2"), (V1, "v1"), (HYBRID, "hybrid"), (NONE, "none"),
                           (DECOY, "none")):
        got = fn(text)
        assert got == expected, (
            f"for a {expected} machine your function returned {got!r} (expected {expected!r})")
    with open("/proc/self/mountinfo") as f:
        real = f.read()
    assert fn(real) == preflight.cgroup_version(real), (
        f"on this machine: {fn(real)!r}, but preflight says {preflight.cgroup_version(real)!r}")
