"""The syscall layer: the few Linux calls Python's ``os`` module does not have.

Everything a container runtime does comes down to a handful of system calls:
``unshare(2)`` and ``setns(2)`` for namespaces, ``mount(2)``/``umount2(2)`` and
``pivot_root(2)`` for the filesystem, ``sethostname(2)``, ``prctl(2)`` and
``capset(2)`` for the process itself. Python 3.11 has ``os.chroot`` but none of
these, so we call libc directly through cffi.

Every wrapper raises :class:`SyscallError` on failure: an ``OSError`` that names the
call, its arguments and the errno, plus a hint for the classic traps.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from contain._linux_ffi import ffi

libc: Any = ffi.dlopen(None)  # the C library already loaded in this process

# --- namespaces: clone(2) flags, see namespaces(7) -------------------------------
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# --- mount(2) flags ---------------------------------------------------------------
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_STRICTATIME = 1 << 24

# --- umount2(2) flags -----------------------------------------------------------
MNT_FORCE = 0x1
MNT_DETACH = 0x2

# --- prctl(2) options -----------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_GET_DUMPABLE = 3
PR_SET_DUMPABLE = 4
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39

# --- syscall numbers for calls glibc does not wrap --------------------------------
# The numbers differ per architecture (x86_64 kept the historical table; arm64 uses
# the "generic" one), so never hard-code one: look up the running machine.
_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {"pivot_root": 155, "capget": 125, "capset": 126, "seccomp": 317},
    "aarch64": {"pivot_root": 41, "capget": 90, "capset": 91, "seccomp": 277},
}
MACHINE = os.uname().machine  # not platform.machine(): `platform` costs ~1.5 ms to import


def syscall_number(name: str) -> int:
    try:
        return _SYSCALLS[MACHINE][name]
    except KeyError:
        raise OSError(errno.ENOSYS, f"contain does not know {name}'s number on {MACHINE}") from None


# --- errors ----------------------------------------------------------------------
# Hints for the traps that broke earlier courses (see the course's chapter 1).
_HINTS: dict[tuple[str, int], str] = {
    ("pivot_root", errno.EINVAL): (
        "pivot_root needs a new mount namespace whose mounts are private "
        "(mount('', '/', flags=MS_REC|MS_PRIVATE)) and a new root that is a mount point"
    ),
    ("pivot_root", errno.EBUSY): (
        "the new root must be a mount point: bind-mount it onto itself first"
    ),
    ("mount", errno.EPERM): "mounting needs CAP_SYS_ADMIN: run as root (sudo)",
    ("unshare", errno.EPERM): "creating namespaces needs root (sudo) or a user namespace",
    ("unshare", errno.EINVAL): (
        "unshare(CLONE_NEWUSER) fails in a multi-threaded process (a Jupyter kernel): "
        "fork a single-threaded child first"
    ),
    ("setns", errno.EINVAL): (
        "setns into a user or mount namespace fails in a multi-threaded process: "
        "fork a single-threaded child first"
    ),
}


class SyscallError(OSError):
    """A failed system call: ``mount('proc', '/proc', ...) failed: EPERM (...)``."""

    def __init__(self, call: str, args: tuple[object, ...], err: int) -> None:
        self.call = call
        self.call_args = args
        name = errno.errorcode.get(err, str(err))
        shown = ", ".join(_show(a) for a in args)
        message = f"{call}({shown}) failed: {name} ({os.strerror(err)})"
        hint = _HINTS.get((call, err))
        if hint:
            message += f"; hint: {hint}"
        super().__init__(err, message)

    def __str__(self) -> str:
        return str(self.strerror)


def _show(arg: object) -> str:
    if isinstance(arg, int) and arg > 255:
        return hex(arg)
    return repr(arg)


def _check(result: int, call: str, *args: object) -> int:
    if result == -1:
        raise SyscallError(call, args, ffi.errno)
    return result


def _c(s: str | bytes | None) -> Any:
    """A C string argument (NULL for None)."""
    if s is None:
        return ffi.NULL
    return os.fsencode(s)


# --- the wrappers -----------------------------------------------------------------
def mount(
    source: str | None, target: str, fstype: str | None = None, flags: int = 0,
    data: str | None = None,
) -> None:
    """mount(2). ``data`` is the comma-separated option string (e.g. ``"mode=755"``)."""
    _check(
        libc.mount(_c(source), _c(target), _c(fstype), flags, _c(data)),
        "mount", source, target, fstype, flags, data,
    )


def umount(target: str, flags: int = 0) -> None:
    """umount2(2). ``MNT_DETACH`` detaches now and frees the mount once it is unused."""
    _check(libc.umount2(_c(target), flags), "umount2", target, flags)


def make_private(target: str = "/") -> None:
    """Stop mount events leaking between namespaces (mount_namespaces(7)).

    On systemd hosts ``/`` is a *shared* mount, so new mounts in a fresh mount
    namespace would propagate back to the host, and pivot_root refuses (EINVAL).
    """
    mount(None, target, None, MS_REC | MS_PRIVATE)


def bind(source: str, target: str, recursive: bool = True, readonly: bool = False) -> None:
    """Bind-mount ``source`` on ``target``; a read-only bind needs a second, remount call."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if readonly:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2): make ``new_root`` the root of this mount namespace.

    glibc has no wrapper, so we go through ``syscall(2)``, whose variadic arguments
    must all be cdata.
    """
    result = libc.syscall(
        ffi.cast("long", syscall_number("pivot_root")),
        ffi.new("char[]", os.fsencode(new_root)),
        ffi.new("char[]", os.fsencode(put_old)),
    )
    _check(result, "pivot_root", new_root, put_old)


def unshare(flags: int) -> None:
    """unshare(2): move this process into new namespaces (CLONE_NEW* flags)."""
    _check(libc.unshare(flags), "unshare", flags)


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace that ``fd`` (an open /proc/PID/ns/* file) names."""
    _check(libc.setns(fd, nstype), "setns", fd, nstype)


def sethostname(name: str) -> None:
    """sethostname(2): only affects the caller's UTS namespace."""
    raw = name.encode()
    _check(libc.sethostname(raw, len(raw)), "sethostname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2), for the process attributes Python has no wrapper for."""
    return _check(libc.prctl(option, arg2, arg3, arg4, arg5), "prctl", option, arg2)


# capget(2)/capset(2) use version 3 of the kernel's structures: two 32-bit words
# per set, covering capabilities 0..63.
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capget(pid: int = 0) -> tuple[int, int, int]:
    """The (effective, permitted, inheritable) capability sets of ``pid`` as 64-bit masks."""
    header = ffi.new("cap_user_header_t *", {"version": _LINUX_CAPABILITY_VERSION_3, "pid": pid})
    data = ffi.new("cap_user_data_t[2]")
    result = libc.syscall(ffi.cast("long", syscall_number("capget")), header, data)
    _check(result, "capget", pid)
    return tuple(  # type: ignore[return-value]
        int(getattr(data[0], f)) | int(getattr(data[1], f)) << 32
        for f in ("effective", "permitted", "inheritable")
    )


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's capability sets (masks of 1 << CAP_*)."""
    header = ffi.new("cap_user_header_t *", {"version": _LINUX_CAPABILITY_VERSION_3, "pid": 0})
    data = ffi.new("cap_user_data_t[2]")
    for i in (0, 1):
        data[i].effective = (effective >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted = (permitted >> (32 * i)) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> (32 * i)) & 0xFFFFFFFF
    result = libc.syscall(ffi.cast("long", syscall_number("capset")), header, data)
    _check(result, "capset", hex(effective), hex(permitted), hex(inheritable))


def unescape_mountinfo(field: str) -> str:
    r"""A path field of /proc/PID/mountinfo as it really is.

    The kernel writes space, tab, newline and backslash as octal escapes (``\040``,
    ``\011``, ``\012``, ``\134``; proc(5)) and every other byte as it is, so only
    those escapes are decoded. (``.decode("unicode_escape")`` would also turn the
    UTF-8 bytes of a name like ``café`` into ``cafÃ©``.)
    """
    if "\\" not in field:
        return field
    import re  # here, not at the top: `contain run` imports this module

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), field)
