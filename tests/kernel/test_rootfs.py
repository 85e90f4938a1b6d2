"""Root filesystems: a reproducible busybox root, chroot (escapable), pivot_root (not)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from contain import linux, process, rootfs


def tree(root: Path) -> list[tuple[str, int, str | None, int, int, int, int]]:
    """(path, mode, link target, mtime, size, uid, gid) of every entry under root."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            target = os.readlink(path) if os.path.islink(path) else None
            size = st.st_size if not os.path.isdir(path) or os.path.islink(path) else 0
            entries.append((os.path.relpath(path, root), st.st_mode, target, int(st.st_mtime),
                            size, st.st_uid, st.st_gid))
    return sorted(entries)


def test_busybox_build_is_reproducible(tmp_path: Path) -> None:
    first = tree(rootfs.build_busybox(tmp_path / "a"))
    second = tree(rootfs.build_busybox(tmp_path / "b"))
    assert first == second
    assert len(first) > 100
    assert {entry[3] for entry in first} == {rootfs.EPOCH}
    assert os.stat(tmp_path / "a").st_mtime == rootfs.EPOCH
    busybox = tmp_path / "a/bin/busybox"
    assert (busybox.read_bytes() == Path(rootfs.find_busybox()).read_bytes())
    assert os.readlink(tmp_path / "a/bin/sh") == "/bin/busybox"
    assert oct(os.stat(tmp_path / "a/tmp").st_mode & 0o7777) == "0o1777"


def test_missing_static_busybox_is_one_clear_error(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    dynamic = os.path.realpath(sys.executable)
    assert not rootfs.is_static(dynamic)
    monkeypatch.setattr(rootfs, "BUSYBOX_CANDIDATES", (dynamic, str(tmp_path / "absent")))
    with pytest.raises(rootfs.RootfsError, match="apt-get install busybox-static"):
        rootfs.build_busybox(tmp_path / "root")
    assert not (tmp_path / "root").exists()
    with pytest.raises(rootfs.RootfsError):
        rootfs.default_rootfs(tmp_path / "state")
    assert list((tmp_path / "state/rootfs").iterdir()) == []  # no half-built tree left


def test_default_rootfs_is_built_once(tmp_path: Path) -> None:
    first = rootfs.default_rootfs(tmp_path)
    (first / "etc/marker").write_text("x")
    assert rootfs.default_rootfs(tmp_path) == first
    assert (first / "etc/marker").exists()


def test_check_rootfs_messages(tmp_path: Path) -> None:
    with pytest.raises(rootfs.RootfsError, match="does not exist"):
        rootfs.check_rootfs(tmp_path / "nope")
    (tmp_path / "file").write_text("")
    with pytest.raises(rootfs.RootfsError, match="is not a directory"):
        rootfs.check_rootfs(tmp_path / "file")


def test_is_static() -> None:
    assert rootfs.is_static(rootfs.find_busybox())
    assert not rootfs.is_static(os.path.realpath(sys.executable))
    assert not rootfs.is_static("/etc/hostname")


def _escape_after_chroot(root: str) -> tuple[bool, bool]:
    rootfs.chroot(root)
    inside = os.path.exists("/etc/os-release")
    rootfs.break_out_of_chroot()
    return inside, os.path.exists("/etc/os-release")


def _escape_after_pivot(root: str) -> tuple[list[str], bool]:
    linux.unshare(linux.CLONE_NEWNS)
    rootfs.pivot_into(root)
    rootfs.break_out_of_chroot()
    return sorted(os.listdir("/")), os.path.exists("/etc/os-release")


@pytest.fixture
def scratch_root(tmp_path: Path) -> Path:
    return rootfs.build_busybox(tmp_path / "root")


def test_chroot_escape_reaches_the_host(scratch_root: Path) -> None:
    assert os.path.exists("/etc/os-release")  # the host has it, the busybox root does not
    inside, after = process.call_in_child(_escape_after_chroot, str(scratch_root))
    assert inside is False
    assert after is True


def test_chroot_escape_fails_after_pivot_into(scratch_root: Path, no_new_mounts: None) -> None:
    listing, host_visible = process.call_in_child(_escape_after_pivot, str(scratch_root))
    assert host_visible is False
    assert set(listing) == set(os.listdir(scratch_root))  # still the busybox root


def _setup_root_mounts(root: str) -> list[tuple[str, str]]:
    linux.unshare(linux.CLONE_NEWNS)
    rootfs.setup_root(root)
    with open("/proc/self/mountinfo") as f:
        return [(line.split()[4], line.split(" - ")[1].split()[0]) for line in f]


def test_setup_root_mounts_proc_sys_dev(scratch_root: Path, no_new_mounts: None) -> None:
    mounts = dict(process.call_in_child(_setup_root_mounts, str(scratch_root)))
    assert mounts["/proc"] == "proc"
    assert mounts["/sys"] == "sysfs"
    assert mounts["/dev"] == "tmpfs"
    assert mounts["/dev/pts"] == "devpts"
    assert mounts["/dev/shm"] == "tmpfs"
    assert "/dev/null" in mounts
    with open("/proc/self/mountinfo") as f:
        assert str(scratch_root) not in f.read()  # nothing of it on the host
