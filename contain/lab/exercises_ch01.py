"""Chapter 1's exercises: pivot_root, parsing mountinfo, static binaries.

Every check works on real files and a real kernel; the pivot check runs the learner's
function in a child with a fresh mount namespace, on a scratch busybox root it removes
afterwards (also when the answer is wrong).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from contain.lab.exercises import exercise

# A nudge, not the answer: the failure reason printed before it says what went wrong.
PIVOT_HINT = ("section 3 of this notebook walks through the sequence; when pivot_root fails, its "
              "errno names the trap (section 5, and ERRORS in pivot_root(2)); if the old root is "
              "still listed, read the NOTES of pivot_root(2) on pivot_root('.', '.')")


def _pivot_facts(fn: Callable[[str], None], root: str, marker: str) -> dict[str, Any]:
    """In a child: new mount namespace, the learner's pivot, then look around."""
    from contain import linux, rootfs

    linux.unshare(linux.CLONE_NEWNS)
    # As on a systemd host, where / is a shared mount (systemd makes it so at boot). Private
    # first: on a real systemd host the new namespace's mounts are peers of the host's, so
    # only a fresh peer group keeps the sharing inside this child's namespace.
    linux.make_private("/")
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_SHARED)
    fn(root)
    facts: dict[str, Any] = {
        "inside": os.path.exists("/etc/contain-check-root"),
        "host_visible": os.path.exists(marker),
        "mounts": None,
    }
    try:  # only in *our* namespace, so our /proc mount below cannot propagate anywhere
        linux.make_private("/")
    except linux.SyscallError:
        pass  # "/" is not a mount point: there was no pivot_root
    else:
        os.makedirs("/proc", exist_ok=True)
        linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
        with open("/proc/self/mountinfo") as f:
            facts["mounts"] = sorted(linux.unescape_mountinfo(line.split()[4]) for line in f)
        linux.umount("/proc", linux.MNT_DETACH)
    rootfs.break_out_of_chroot()
    facts["escaped"] = os.path.exists(marker)
    return facts


@exercise("01.pivot", hint=PIVOT_HINT)
def check_pivot(fn: Callable[[str], None]) -> None:
    """Write pivot_into(new_root): the pivot_root sequence that the chroot escape cannot undo."""
    from contain import process, rootfs
    from contain.lab.reset import mounts_under, remove_tree, workdir

    work = workdir("check-pivot")
    try:
        root = work / "rootfs"
        rootfs.build_busybox(root)
        (root / "etc/contain-check-root").write_text("inside\n")
        marker = work / "host-marker"
        marker.write_text("the host\n")
        facts = process.call_in_child(_pivot_facts, fn, str(root), str(marker))
        leaked = mounts_under(work)
    finally:
        remove_tree(work)
    assert not leaked, ("a mount of yours appeared on the host: it propagated, because the "
                        "mounts were still shared when you mounted")
    assert facts["inside"], "after your function, / is not the new root"
    assert not facts["host_visible"], "after your function the host's files are still visible"
    assert facts["mounts"] is not None, ("/ is not a mount point afterwards: chroot only changes "
                                         "path lookups; use pivot_root")
    assert facts["mounts"] == ["/", "/proc"], (
        f"mount points inside are {facts['mounts'][:6]}...: the old root is still attached; "
        "detach it with umount2('.', MNT_DETACH)")
    assert not facts["escaped"], "the chroot escape still reaches the host's files"


# mountinfo escapes space, tab, newline and backslash in paths as octal (proc(5)).
SAMPLE = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
61 22 0:50 / /mnt/my\\040disk rw,relatime shared:30 master:2 - tmpfs tmpfs rw
62 22 0:51 /sub /srv/tab\\011and\\134slash rw,relatime - tmpfs tmpfs rw
"""
SAMPLE_POINTS = ["/", "/proc", "/mnt/my disk", "/srv/tab\tand\\slash"]


@exercise("01.mountinfo",
          hint="proc(5) names every field of /proc/PID/mountinfo, and says how a path with "
               "unusual characters is written there; compare the sample's odd paths with it")
def check_mountinfo(fn: Callable[[str], list[str]]) -> None:
    """Write mount_points(text): the mount points listed in /proc/self/mountinfo."""
    from contain import linux

    got = fn(SAMPLE)
    assert list(got) == SAMPLE_POINTS, f"for the sample you returned {list(got)!r}"
    with open("/proc/self/mountinfo") as f:
        real = f.read()
    expected = [linux.unescape_mountinfo(line.split()[4]) for line in real.splitlines()]
    got = list(fn(real))
    assert got == expected, (
        f"for this machine's mountinfo you returned {len(got)} mount points, expected "
        f"{len(expected)}; first difference: "
        f"{next(((a, b) for a, b in zip(got, expected, strict=False) if a != b), None)}")


@exercise("01.static",
          hint="elf(5): which program header asks the kernel to start a loader first? And "
               "not every file you are given is an ELF program")
def check_static(fn: Callable[[str], bool]) -> None:
    """Write is_static(path): does this program run without a dynamic loader?"""
    from contain import rootfs

    busybox = rootfs.find_busybox()
    assert fn(busybox) is True, f"{busybox} is statically linked, you said {fn(busybox)!r}"
    python = os.path.realpath(sys.executable)
    assert fn(python) is False, f"{python} needs ld-linux, you said {fn(python)!r}"
    for path in ("/bin/ls", "/etc/os-release", "/etc/hostname"):
        if os.path.exists(path):
            assert fn(path) is False, f"{path} is not a static program, you said {fn(path)!r}"
