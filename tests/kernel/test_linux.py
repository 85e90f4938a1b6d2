"""The syscall layer against the real kernel: errors that explain themselves, constants, caps."""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

import pytest

from contain import linux, process

NS_FILES = {
    linux.CLONE_NEWNS: "mnt", linux.CLONE_NEWUTS: "uts", linux.CLONE_NEWIPC: "ipc",
    linux.CLONE_NEWNET: "net", linux.CLONE_NEWUSER: "user", linux.CLONE_NEWCGROUP: "cgroup",
    # these two move only the caller's future children
    linux.CLONE_NEWPID: "pid_for_children", linux.CLONE_NEWTIME: "time_for_children",
}


def _pivot_error(
    root: str, *, shared: bool, bind: bool
) -> tuple[int, str, str, tuple[object, ...]]:
    linux.unshare(linux.CLONE_NEWNS)
    if shared:  # as on a systemd host; only in this child's namespace
        linux.mount(None, "/", None, linux.MS_REC | linux.MS_SHARED)
    else:
        linux.make_private("/")
    if bind:
        linux.bind(root, root)
    os.chdir(root)
    try:
        linux.pivot_root(".", ".")
    except linux.SyscallError as exc:
        return exc.errno, str(exc), exc.call, exc.call_args
    return 0, "no error", "", ()


def test_pivot_root_einval_names_call_args_errno_and_hint(busybox_rootfs: Path,
                                                          no_new_mounts: None) -> None:
    err, message, call, args = process.call_in_child(
        _pivot_error, str(busybox_rootfs), shared=True, bind=True)
    assert err == errno.EINVAL
    assert call == "pivot_root" and args == (".", ".")
    assert message.startswith("pivot_root('.', '.') failed: EINVAL (Invalid argument); hint: ")
    assert "MS_REC|MS_PRIVATE" in message


def test_pivot_root_not_a_mount_point_names_the_fix(busybox_rootfs: Path,
                                                    no_new_mounts: None) -> None:
    err, message, call, _ = process.call_in_child(
        _pivot_error, str(busybox_rootfs), shared=False, bind=False)
    # EBUSY on most kernels; newer ones answer EINVAL for the same mistake.
    assert err in (errno.EBUSY, errno.EINVAL)
    assert message.startswith(f"pivot_root('.', '.') failed: {errno.errorcode[err]} (")
    assert "mount point" in message


def test_umount_error_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(linux.SyscallError) as caught:
        linux.umount(str(tmp_path))
    assert caught.value.errno == errno.EINVAL
    assert str(caught.value) == f"umount2({str(tmp_path)!r}, 0) failed: EINVAL (Invalid argument)"
    assert isinstance(caught.value, OSError)


def _mount_as_nobody(target: str) -> str:
    linux.unshare(linux.CLONE_NEWNS)  # should it succeed after all, nothing leaks
    linux.make_private("/")
    os.setresgid(65534, 65534, 65534)
    os.setresuid(65534, 65534, 65534)
    try:
        linux.mount("tmpfs", target, "tmpfs")
    except linux.SyscallError as exc:
        return str(exc)
    return "mounted"


def test_mount_eperm_hint(no_new_mounts: None) -> None:
    target = tempfile.mkdtemp(prefix="contain-test-")  # /tmp/...: nobody can reach it
    os.chmod(target, 0o755)
    try:
        message = process.call_in_child(_mount_as_nobody, target)
    finally:
        os.rmdir(target)
    assert message.startswith(f"mount('tmpfs', {target!r}, 'tmpfs', 0, None) failed: EPERM")
    assert "hint: mounting needs CAP_SYS_ADMIN" in message


def _ns_links_after_unshare(flag: int, name: str) -> tuple[str, str]:
    before = os.readlink(f"/proc/self/ns/{name}")
    linux.unshare(flag)
    if name != "pid_for_children":
        return before, os.readlink(f"/proc/self/ns/{name}")
    # A new PID namespace has no link until its first process (its PID 1) exists.
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        os.read(read_end, 1)
        os._exit(0)
    try:
        return before, os.readlink(f"/proc/{child}/ns/pid")
    finally:
        os.write(write_end, b"x")
        os.waitpid(child, 0)


@pytest.mark.parametrize("flag", list(NS_FILES), ids=list(NS_FILES.values()))
def test_clone_flags_create_the_namespace_they_name(flag: int) -> None:
    """Each CLONE_NEW* constant is right: unsharing it changes exactly that ns link."""
    name = NS_FILES[flag]
    before, after = process.call_in_child(_ns_links_after_unshare, flag, name)
    assert before.split(":")[0] == after.split(":")[0]
    assert before != after
    assert os.readlink(f"/proc/self/ns/{name}") == before  # the caller did not move


def _mount_options(target: str, flags: int) -> str:
    linux.unshare(linux.CLONE_NEWNS)
    linux.make_private("/")
    linux.mount("tmpfs", target, "tmpfs", flags, "size=64k")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == target:
                return line.split()[5]
    return ""


def test_mount_flags_show_up_in_mountinfo(tmp_path: Path, no_new_mounts: None) -> None:
    flags = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    options = process.call_in_child(_mount_options, str(tmp_path), flags).split(",")
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(options)


def test_capget_matches_proc_status() -> None:
    effective, permitted, inheritable = linux.capget()
    with open("/proc/self/status") as f:
        status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    assert effective == int(status["CapEff"], 16)
    assert permitted == int(status["CapPrm"], 16)
    assert inheritable == int(status["CapInh"], 16)
    assert effective & (1 << 21)  # CAP_SYS_ADMIN: we are root


def _drop_and_read() -> tuple[int, int, int]:
    linux.capset(0, 1 << 21, 0)
    return linux.capget()


def test_capset_in_a_child_changes_only_the_child() -> None:
    before = linux.capget()
    assert process.call_in_child(_drop_and_read) == (0, 1 << 21, 0)
    assert linux.capget() == before


def test_prctl_no_new_privs_in_a_child() -> None:
    def set_and_get() -> int:
        linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
        return linux.prctl(linux.PR_GET_NO_NEW_PRIVS)

    assert process.call_in_child(set_and_get) == 1
    assert linux.prctl(linux.PR_GET_NO_NEW_PRIVS) == 0


def test_syscall_numbers_are_per_machine() -> None:
    assert linux.syscall_number("pivot_root") > 0
    with pytest.raises(OSError, match="does not know"):
        linux.syscall_number("no_such_call")


def test_sethostname_only_in_new_uts() -> None:
    def rename() -> str:
        linux.unshare(linux.CLONE_NEWUTS)
        linux.sethostname("contain-test")
        return os.uname().nodename

    host = os.uname().nodename
    assert process.call_in_child(rename) == "contain-test"
    assert os.uname().nodename == host
