"""Root filesystems: a reproducible busybox root, chroot (escapable), pivot_root (not)."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# --- /proc: the host-wide files are read-only ----------------------------------------
WRITE_PROC = (
    "cat /proc/sys/kernel/hostname >/dev/null || exit 3\n"
    "v=$(cat /proc/sys/kernel/printk_ratelimit)\n"
    "echo \"$v\" > /proc/sys/kernel/printk_ratelimit && echo wrote-sysctl\n"
    "FILE\n"
    "test -w /proc/sysrq-trigger && echo sysrq-writable\n"
    "echo renamed > /proc/self/comm && echo comm-ok\n"  # the process's own files stay rw
    "cat /proc/self/mountinfo >&2\n"
)


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_host_wide_proc_files_are_read_only(contain: Callable[..., Any], busybox_rootfs: Path,
                                            no_new_mounts: None, userns: bool) -> None:
    # ns_last_pid belongs to the container's PID namespace: root of a user namespace
    # may write it, unless /proc/sys is read-only (write the value it has: harmless).
    script = WRITE_PROC.replace(
        "FILE", "n=$(cat /proc/sys/kernel/ns_last_pid)\n"
                "echo \"$n\" > /proc/sys/kernel/ns_last_pid && echo wrote-ns_last_pid")
    extra = ["--userns"] if userns else []
    result = contain("run", "--rm", *extra, "--rootfs", str(busybox_rootfs), "/bin/sh", "-c",
                     script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["comm-ok"]
    assert result.stderr.count("Read-only file system") == 2, result.stderr
    # Each of them that this kernel has (no sysrq-trigger without CONFIG_MAGIC_SYSRQ)
    # is a read-only mount of its own; /proc itself stays read-write.
    options = {line.split()[4]: line.split()[5].split(",")
               for line in result.stderr.splitlines() if line[:1].isdigit()}
    assert "rw" in options["/proc"]
    present = [n for n in rootfs.PROC_READONLY if os.path.lexists(f"/proc/{n}")]
    assert "sys" in present
    for name in present:
        assert "ro" in options[f"/proc/{name}"], name


def _proc_sys_dev_targets(root: str) -> str:
    linux.unshare(linux.CLONE_NEWNS)
    rootfs.setup_root(root)
    return "unreachable"


@pytest.mark.parametrize("name", ["proc", "sys", "dev"])
def test_mount_target_symlink_out_of_the_root_is_refused(tmp_path: Path, no_new_mounts: None,
                                                         name: str) -> None:
    root = tmp_path / "root"
    for directory in ("proc", "sys", "dev"):
        (root / directory).mkdir(parents=True)
    (root / name).rmdir()
    (root / name).symlink_to("/")
    with pytest.raises(process.ChildError) as caught:
        process.call_in_child(_proc_sys_dev_targets, str(root))
    assert caught.value.kind == "RootfsError"
    assert str(caught.value) == (f"the root filesystem's /{name} is a symbolic link (to '/'), "
                                 f"which would lead the mount out of it: "
                                 f"make /{name} an empty directory")


def test_contain_run_refuses_an_image_whose_proc_is_a_symlink(
        contain: Callable[..., Any], busybox_rootfs: Path, tmp_path: Path,
        no_new_mounts: None) -> None:
    import shutil

    root = tmp_path / "evil"
    shutil.copytree(busybox_rootfs, root, symlinks=True)
    (root / "proc").rmdir()
    (root / "proc").symlink_to("/")
    result = contain("run", "--rm", "--rootfs", str(root), "/bin/true")
    assert result.returncode == 125
    assert result.stderr.splitlines() == [
        "contain: the root filesystem's /proc is a symbolic link (to '/'), which would lead "
        "the mount out of it: make /proc an empty directory"]


# --- mountinfo paths with a space and a non-ASCII letter --------------------------------
def _mount_and_read(point: str) -> dict[str, Any]:
    from contain.lab import solutions
    from contain.lab.reset import mounts_under

    linux.unshare(linux.CLONE_NEWNS)
    linux.make_private("/")
    linux.mount("tmpfs", point, "tmpfs", 0, "size=64k")
    with open("/proc/self/mountinfo") as f:
        text = f.read()
    return {
        "raw": [line.split()[4] for line in text.splitlines()],
        "decoded": [linux.unescape_mountinfo(line.split()[4]) for line in text.splitlines()],
        "solution": solutions.mount_points(text),
        "is_mount_point": rootfs.is_mount_point(point),
        "under": mounts_under(os.path.dirname(point)),
    }


def test_mountinfo_paths_with_space_and_accent(tmp_path: Path, no_new_mounts: None) -> None:
    point = tmp_path / "caf\u00e9 ol\u00e9"
    point.mkdir()
    seen = process.call_in_child(_mount_and_read, str(point))
    assert str(tmp_path / "caf\u00e9\\040ol\u00e9") in seen["raw"]  # as the kernel writes it
    assert str(point) in seen["decoded"]
    assert str(point) in seen["solution"]
    assert seen["is_mount_point"] is True
    assert seen["under"] == [str(point)]


# --- make_private once, sysfs rules ----------------------------------------------------
def _count_make_private(root: str) -> int:
    calls = []
    real = linux.make_private

    def counting(target: str = "/") -> None:
        calls.append(target)
        real(target)

    linux.make_private = counting  # type: ignore[assignment]  # in this child only
    linux.unshare(linux.CLONE_NEWNS)
    rootfs.setup_root(root)
    return len(calls)


def test_setup_root_makes_the_mounts_private_once(scratch_root: Path,
                                                  no_new_mounts: None) -> None:
    assert process.call_in_child(_count_make_private, str(scratch_root)) == 1


def _mount_sysfs(target: str, flags: int) -> str:
    if flags & linux.CLONE_NEWUSER:
        linux.unshare(linux.CLONE_NEWUSER)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        for name in ("uid_map", "gid_map"):  # map ourselves: root -> root
            with open(f"/proc/self/{name}", "w") as f:
                f.write("0 0 1")
        flags &= ~linux.CLONE_NEWUSER
    linux.unshare(linux.CLONE_NEWNS | flags)
    linux.make_private("/")
    try:
        linux.mount("sysfs", target, "sysfs", linux.MS_RDONLY)
    except OSError as exc:
        return errno.errorcode[exc.errno]
    with open("/proc/self/mountinfo") as f:
        return next(line.split(" - ")[1].split()[0] for line in f
                    if line.split()[4] == target)


def test_who_may_mount_sysfs(tmp_path: Path, no_new_mounts: None) -> None:
    """mount_sys's docstring: EPERM only in a user namespace that does not own the netns."""
    target = str(tmp_path)
    assert process.call_in_child(_mount_sysfs, target, 0) == "sysfs"  # host's netns
    assert process.call_in_child(_mount_sysfs, target, linux.CLONE_NEWUSER) == "EPERM"
    assert process.call_in_child(
        _mount_sysfs, target, linux.CLONE_NEWUSER | linux.CLONE_NEWNET) == "sysfs"


def test_userns_without_a_network_namespace_binds_the_hosts_sys(
        contain: Callable[..., Any], busybox_rootfs: Path, no_new_mounts: None) -> None:
    """The case mount_sys falls back for: sysfs refused (EPERM), the host's /sys bound."""
    result = contain("run", "--rm", "--userns", "--ns", "mnt,uts,ipc,pid",
                     "--rootfs", str(busybox_rootfs), "/bin/sh", "-c",
                     "ls /sys/class/net; touch /sys/x")
    assert result.returncode != 0, result.stdout
    assert "lo" in result.stdout.split()
    assert "Read-only file system" in result.stderr
