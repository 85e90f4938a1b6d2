"""Root filesystems: build one, enter it with chroot, then properly with pivot_root.

A container's root filesystem is an ordinary directory tree. ``chroot(2)`` changes
what ``/`` means for path lookups, but only that: the old root is still mounted, and
a root process can walk back out (:func:`break_out_of_chroot`). ``pivot_root(2)``
inside a new mount namespace swaps the namespace's root mount itself, and once the
old root is unmounted there is nothing left to walk back to.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Literal

from contain import linux

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
EPOCH = 0  # every file gets this mtime, so two builds are byte-for-byte the same

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n"
# Directories a container expects to find; /proc, /sys and /dev are mount points.
SKELETON = ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys", "dev",
            "run", "var/tmp", "home")


class RootfsError(RuntimeError):
    """A root filesystem problem, with the fix in the message."""


# --- building the default root filesystem ------------------------------------------
def is_static(path: str) -> bool:
    """True if the ELF file has no PT_INTERP segment, i.e. needs no dynamic loader.

    A dynamically linked busybox would need /lib/ld-linux*.so inside the new root.
    """
    with open(path, "rb") as elf:
        header = elf.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
            return False
        little = header[5] == 1
        order: Literal["little", "big"] = "little" if little else "big"
        phoff = int.from_bytes(header[32:40], order)
        phentsize = int.from_bytes(header[54:56], order)
        phnum = int.from_bytes(header[56:58], order)
        elf.seek(phoff)
        for _ in range(phnum):
            entry = elf.read(phentsize)
            if int.from_bytes(entry[0:4], order) == 3:  # PT_INTERP
                return False
    return True


def find_busybox() -> str:
    """The host's static busybox (Debian/Ubuntu package ``busybox-static``)."""
    for candidate in BUSYBOX_CANDIDATES:
        if os.path.exists(candidate) and is_static(candidate):
            return candidate
    raise RootfsError(
        "no static busybox found: install it with 'apt-get install busybox-static' "
        "(or run vm/provision.sh)"
    )


def build_busybox(target: str | Path) -> Path:
    """Build a busybox root filesystem at ``target`` (a new directory), offline.

    One static binary plus a symlink per applet, /etc/passwd and /etc/group, and the
    empty directories a container expects. Reproducible: fixed mtimes and modes.
    """
    import shutil  # imported here: `contain run` imports this module and needs neither
    import subprocess

    target = Path(target)
    busybox = find_busybox()
    applets = subprocess.run(
        [busybox, "--list-full"], check=True, capture_output=True, text=True
    ).stdout.split()
    target.mkdir(mode=0o755)
    for directory in SKELETON:
        (target / directory).mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(target / "tmp", 0o1777)
    os.chmod(target / "root", 0o700)
    shutil.copyfile(busybox, target / "bin/busybox")
    os.chmod(target / "bin/busybox", 0o755)
    for applet in applets:
        link = target / applet
        if link.name == "busybox" or link.exists():
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/bin/busybox")
    (target / "etc/passwd").write_text(PASSWD)
    (target / "etc/group").write_text(GROUP)
    (target / "etc/hostname").write_text("contain\n")
    _normalise(target)
    return target


def _normalise(root: Path) -> None:
    """Fixed ownership and mtimes everywhere, so the tree is reproducible."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            os.lchown(path, 0, 0)
            os.utime(path, (EPOCH, EPOCH), follow_symlinks=False)
    os.utime(root, (EPOCH, EPOCH))


def default_rootfs(state_root: str | Path) -> Path:
    """The busybox root filesystem under ``state_root``, built once and reused.

    Built in a temporary directory and renamed into place, so a crash or a
    concurrent build never leaves a half-written tree behind.
    """
    target = Path(state_root) / "rootfs" / "busybox"
    if target.is_dir():
        return target
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".busybox-", dir=target.parent))
    try:
        build_busybox(work / "rootfs")
        os.chmod(work / "rootfs", 0o755)
        try:
            os.rename(work / "rootfs", target)
        except OSError:
            if not target.is_dir():  # a concurrent build won the race otherwise
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def check_rootfs(path: str | Path) -> Path:
    """Validate a user-supplied root filesystem path (one clear line if unusable)."""
    root = Path(path)
    if not root.exists():
        raise RootfsError(f"root filesystem {str(root)!r} does not exist: "
                          "give a directory (e.g. one built with 'contain rootfs build DIR')")
    if not root.is_dir():
        raise RootfsError(f"root filesystem {str(root)!r} is not a directory")
    return root.resolve()


# --- chroot, and how to get out of it --------------------------------------------
def chroot(path: str | Path) -> None:
    """chroot(2) and move into the new root (chroot alone leaves the cwd outside it)."""
    os.chroot(path)
    os.chdir("/")


def break_out_of_chroot() -> None:
    """The classic chroot escape, for root: it works because chroot is only a lookup rule.

    1. chroot into a subdirectory, so the kernel's idea of our root moves deeper,
       while our working directory stays where it was: *outside* the new root.
    2. ``..`` from there is never checked against the root, so walk up to the top.
    3. chroot(".") makes the real root our root again.
    Inside a pivot_root'ed mount namespace step 2 ends at the container's own root,
    because the host's root is no longer mounted there.
    """
    os.makedirs("/.escape", exist_ok=True)
    fd = os.open("/", os.O_RDONLY)
    os.chroot("/.escape")  # our cwd is now outside our root
    os.fchdir(fd)
    os.close(fd)
    for _ in range(256):  # ".." at the real root is the root itself
        os.chdir("..")
    os.chroot(".")
    os.chdir("/")


# --- pivot_root and the filesystems a container expects ---------------------------------
def pivot_into(new_root: str | Path) -> None:
    """Make ``new_root`` the root of this (new) mount namespace and drop the old one.

    1. Make every mount private, or on a systemd host (where / is shared) mounts would
       propagate to the host and pivot_root fails with EINVAL (mount_namespaces(7)).
    2. The new root must be a mount point (EBUSY otherwise): if it is not one, bind
       it onto itself.
    3. ``pivot_root(".", ".")`` stacks the old root on top of the new one (see the
       NOTES in pivot_root(2)); unmounting "." then detaches the old root, leaving no
       path back to the host's files.
    """
    new_root = str(new_root)
    make_root_mount(new_root)  # steps 1 and 2
    switch_root(new_root)  # step 3


def make_root_mount(new_root: str) -> None:
    """Steps 1 and 2 of :func:`pivot_into`: no propagation, and ``new_root`` a mount point."""
    linux.make_private("/")
    if not is_mount_point(new_root):
        linux.bind(new_root, new_root)


def switch_root(new_root: str) -> None:
    """Step 3 of :func:`pivot_into`: swap the roots, then detach the old one."""
    os.chdir(new_root)
    linux.pivot_root(".", ".")
    linux.umount(".", linux.MNT_DETACH)
    os.chdir("/")


def is_mount_point(path: str) -> bool:
    """True if ``path`` is the root of a mount (per /proc/self/mountinfo)."""
    real = os.path.realpath(path)
    with open("/proc/self/mountinfo") as mountinfo:
        return any(linux.unescape_mountinfo(line.split()[4]) == real for line in mountinfo)


# Device nodes bind-mounted from the host: creating them with mknod needs
# CAP_MKNOD in the initial user namespace, which a rootless container lacks.
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
DEV_SYMLINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
                "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"}


# Files under /proc that reach past the container's namespaces (proc(5)):
# /proc/sys/* are the kernel's tunables, most of them global to the host (vm/*, a
# PID namespace's root may even write kernel/ns_last_pid); /proc/sysrq-trigger
# reboots or crashes the host with one write; /proc/irq/* and /proc/bus/* touch the
# hardware. Like runc, make each of them a read-only bind mount onto itself. (With
# CAP_SYS_ADMIN a container could still unmount them: dropping it is for later.)
PROC_READONLY = ("sys", "sysrq-trigger", "irq", "bus")


def mount_proc(root: str) -> None:
    """A new procfs shows the processes of the *caller's* PID namespace (proc(5)).

    But not only its own things: the files in PROC_READONLY act on the whole host,
    so they become read-only (a write fails with EROFS).
    """
    target = _mount_point(root, "proc")
    hardened = linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    linux.mount("proc", target, "proc", hardened)
    for name in PROC_READONLY:
        path = os.path.join(target, name)
        if os.path.lexists(path):
            linux.bind(path, path, recursive=False)
            # A read-only bind needs a remount (mount(2)); it sets the flags anew,
            # so repeat nosuid, nodev and noexec rather than drop them.
            linux.mount(None, path, None,
                        linux.MS_BIND | linux.MS_REMOUNT | linux.MS_RDONLY | hardened)


def mount_sys(root: str) -> None:
    """sysfs, read-only: a container may look at the kernel's objects but not tune them.

    A new sysfs shows the network devices of the caller's network namespace. Root in
    the initial user namespace may mount one anywhere; inside a user namespace the
    kernel refuses it (EPERM) unless that user namespace owns the caller's network
    namespace, i.e. the container has no network namespace of its own. Then bind
    the host's /sys, read-only.
    """
    target = _mount_point(root, "sys")
    flags = linux.MS_RDONLY | linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC
    try:
        linux.mount("sysfs", target, "sysfs", flags)
    except OSError as exc:  # a SyscallError: an OSError, but never a PermissionError
        if exc.errno != errno.EPERM:
            raise
        linux.bind("/sys", target, readonly=True)


def mount_dev(root: str) -> None:
    """A minimal /dev: a tmpfs with the harmless devices, its own ptys and /dev/shm."""
    dev = _mount_point(root, "dev")
    linux.mount("tmpfs", dev, "tmpfs", linux.MS_NOSUID | linux.MS_STRICTATIME, "mode=755,size=64k")
    for name in DEVICES:
        node = os.path.join(dev, name)
        open(node, "w").close()  # a file to bind the host's device onto
        linux.bind(f"/dev/{name}", node, recursive=False)
    for name, target in DEV_SYMLINKS.items():
        os.symlink(target, os.path.join(dev, name))
    pts = os.path.join(dev, "pts")
    os.mkdir(pts)
    # newinstance: ptys of our own, not the host's (devpts in the kernel docs).
    linux.mount("devpts", pts, "devpts", linux.MS_NOSUID | linux.MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=620")
    shm = os.path.join(dev, "shm")
    os.mkdir(shm)
    linux.mount("shm", shm, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC,
                "mode=1777,size=65536k")


def _mount_point(root: str, name: str) -> str:
    """``root/name`` as a directory to mount on, never a path leading out of ``root``.

    We mount *before* pivot_root, so the host resolves the path: an image whose
    ``/proc`` is a symlink to ``/`` would have us mount over the host's own ``/``
    (in our namespace, but still not the container's). Refuse symlinks.
    """
    path = resolve_in_root(root, name)
    if os.path.islink(path):
        raise RootfsError(f"the root filesystem's /{name} is a symbolic link (to "
                          f"{os.readlink(path)!r}), which would lead the mount out of it: "
                          f"make /{name} an empty directory")
    if not os.path.isdir(path):
        try:
            os.mkdir(path, 0o755)
        except OSError as exc:
            raise RootfsError(f"the root filesystem has no /{name} and it cannot be "
                              f"created ({exc.strerror}): add an empty /{name} directory") from exc
    return path


def resolve_in_root(root: str, rel: str, *, follow_last: bool = False) -> str:
    """``root/rel`` with every symlink on the way resolved *as if root were /*.

    An image may contain ``lib -> /usr/lib`` and then ``lib/x``: following that symlink
    on the host would reach the host's /usr/lib. Like openat2(RESOLVE_IN_ROOT), an
    absolute link target restarts at ``root`` and ``..`` never climbs above it.
    """
    done: list[str] = []
    todo = [p for p in rel.split("/") if p not in ("", ".")]
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        here = os.path.join(root, *done, part)
        is_last = not todo
        if (not is_last or follow_last) and os.path.islink(here):
            hops += 1
            if hops > 40:  # ELOOP, as the kernel would say
                raise RootfsError(f"too many symbolic links resolving {rel!r}")
            target = os.readlink(here)
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p not in ("", ".")] + todo
            continue
        done.append(part)
    return os.path.join(root, *done)


def setup_root(root: str, *, proc: bool = True) -> None:
    """Everything between "a directory" and "a container's /", then pivot into it.

    Runs inside the container's new mount namespace (and PID namespace, for /proc).
    """
    make_root_mount(root)  # first: the mounts below must not propagate to the host
    if proc:
        mount_proc(root)
    mount_sys(root)
    mount_dev(root)
    switch_root(root)


def file_kind(path: str) -> str:
    """'directory', 'symlink', 'character device'... for the notebook's listings."""
    mode = os.lstat(path).st_mode
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISREG, "file")):
        if test(mode):
            return name
    return "other"
