"""OverlayFS: read-only layers, one writable layer on top, and the diff between them.

An overlay mount merges directories: ``lowerdir`` (one or more read-only layers,
the **leftmost wins**), ``upperdir`` (the writable layer) and ``workdir`` (overlay's
scratch space, on the same filesystem as ``upperdir``). A container writes only to
its upper dir:

* **copy-up**: the first write to a lower file copies it into the upper dir first;
  the lower file is never changed, so many containers can share one base layer.
* **whiteouts**: deleting a lower file leaves a character device 0/0 of that name in
  the upper dir, which hides the lower file.
* **opaque directories**: a directory deleted and created again is marked with the
  xattr ``trusted.overlay.opaque=y``, which hides everything below it in the lowers.

The upper dir *is* the container's change set. :func:`diff` turns it into an
OCI-style layer tar (whiteouts become ``.wh.NAME`` files, opaque directories a
``.wh..wh..opq`` file) and :func:`apply` extracts such a tar onto a directory,
refusing every entry that would land outside it.

Only ``os``, the syscall layer and rootfs are imported at the top: ``contain run``
imports this module, and ``tarfile`` is only needed for diff/apply.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

from contain import linux
from contain.rootfs import RootfsError, resolve_in_root

if TYPE_CHECKING:
    import tarfile

# mount(2) copies at most one page of option data and silently cuts the rest: a
# long ``lowerdir=`` list then names a truncated path and fails with a baffling
# ENOENT. 4096 bytes including the terminating NUL.
PAGE_LIMIT = 4095
# fs/overlayfs: OVL_MAX_STACK. More lowers fail with EINVAL.
MAX_LOWERS = 500

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class OverlayError(RuntimeError):
    """A problem with the layers the user gave, with the fix in the message."""


# --- mounting ------------------------------------------------------------------------
def check_layer(path: str | Path, role: str = "layer") -> str:
    """An absolute path to an existing directory, or one clear line saying what is wrong."""
    text = os.fspath(path)
    if not os.path.exists(text):
        raise OverlayError(f"{role} {text!r} does not exist: give an existing directory")
    if not os.path.isdir(text):
        raise OverlayError(f"{role} {text!r} is not a directory: a layer must be a directory "
                           "(extract a layer tar with contain.overlay.apply first)")
    # Overlay's option syntax uses ',' between options and ':' between lowers.
    if any(ch in text for ch in ",:\\"):
        raise OverlayError(f"{role} {text!r} contains ',', ':' or '\\', which overlay's "
                           "option string cannot carry: rename the directory")
    return os.path.abspath(text)


def lowerdir_option(lowers: Sequence[str]) -> str:
    """``lowerdir=top:...:bottom``: the first layer listed is the topmost (it wins)."""
    return "lowerdir=" + ":".join(lowers)


def options(lowers: Sequence[str], upper: str | None = None, work: str | None = None,
            *, userxattr: bool = False) -> str:
    """The option string for mount(2). Without an upper dir the overlay is read-only."""
    parts = [lowerdir_option(lowers)]
    if upper is not None:
        parts += [f"upperdir={upper}", f"workdir={work}"]
    if userxattr:
        # In a user namespace the trusted.* xattrs are out of reach, so overlay keeps
        # its whiteout/opaque marks in user.overlay.* instead (overlayfs docs).
        parts.append("userxattr")
    return ",".join(parts)


def in_user_namespace() -> bool:
    """True unless we are in the initial user namespace (whose map is the identity)."""
    with open("/proc/self/uid_map") as f:
        return f.read().split() != ["0", "0", "4294967295"]


def mount(lowers: Sequence[str | Path], target: str | Path, upper: str | Path | None = None,
          work: str | Path | None = None, *, userxattr: bool | None = None) -> str:
    """Mount an overlay of ``lowers`` (topmost first) with an optional writable layer.

    Returns the option string used. Handles the traps: more than MAX_LOWERS layers
    (EINVAL), option strings longer than a page (use paths relative to a common
    parent, resolved by the kernel against our working directory), and user
    namespaces (``userxattr``).
    """
    if not lowers:
        raise OverlayError("an overlay needs at least one lower (read-only) layer")
    if len(lowers) > MAX_LOWERS:
        raise OverlayError(f"{len(lowers)} layers: overlayfs stacks at most {MAX_LOWERS} "
                           "lower layers; squash some layers together")
    if (upper is None) != (work is None):
        raise OverlayError("give both an upper dir and a work dir, or neither")
    low = [check_layer(p, "layer") for p in lowers]
    up = check_layer(upper, "upper dir") if upper is not None else None
    wk = check_layer(work, "work dir") if work is not None else None
    target = check_layer(target, "mount point")
    if userxattr is None:
        userxattr = in_user_namespace()
    data = options(low, up, wk, userxattr=userxattr)
    if len(data) <= PAGE_LIMIT:
        linux.mount("overlay", target, "overlay", 0, data)
        return data
    # Too long for one page: chdir to the deepest common parent and pass short
    # relative paths; the kernel resolves them against our cwd while mounting.
    base = os.path.commonpath(low + [p for p in (up, wk) if p])
    short = options([os.path.relpath(p, base) for p in low],
                    os.path.relpath(up, base) if up else None,
                    os.path.relpath(wk, base) if wk else None, userxattr=userxattr)
    if len(short) > PAGE_LIMIT:
        raise OverlayError(f"the overlay options are {len(short)} bytes even with relative "
                           f"paths (mount(2) takes {PAGE_LIMIT}): keep the layers in one "
                           "directory with short names")
    here = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.chdir(base)
        linux.mount("overlay", target, "overlay", 0, short)
    finally:
        os.fchdir(here)
        os.close(here)
    return short


def unmount(target: str | Path) -> None:
    """Unmount an overlay (MNT_DETACH: lazily, if something still uses it)."""
    linux.umount(os.fspath(target), linux.MNT_DETACH)


# --- reading an upper dir ---------------------------------------------------------------
def is_whiteout(st: os.stat_result) -> bool:
    """Overlay records a deletion as a character device with device number 0/0."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def whiteout_name(path: str) -> str:
    """The layer entry that deletes ``path``: ``a/b/c`` -> ``a/b/.wh.c``."""
    head, _, name = path.strip("/").rpartition("/")
    entry = WHITEOUT_PREFIX + name
    return f"{head}/{entry}" if head else entry


def is_opaque(path: str) -> bool:
    """True if overlay marked this upper directory opaque (trusted.* or user.* with userxattr)."""
    for attr in ("trusted.overlay.opaque", "user.overlay.opaque"):
        try:
            if os.getxattr(path, attr, follow_symlinks=False) == b"y":
                return True
        except OSError:
            pass
    return False


def _walk(root: str) -> list[str]:
    """Every path under ``root``, relative, sorted (so a diff is reproducible)."""
    found: list[str] = []

    def visit(rel: str) -> None:
        full = os.path.join(root, rel) if rel else root
        for name in sorted(os.listdir(full)):
            child = f"{rel}/{name}" if rel else name
            found.append(child)
            if stat.S_ISDIR(os.lstat(os.path.join(root, child)).st_mode):
                visit(child)

    visit("")
    return found


def diff(upper: str | Path, out: str | Path | IO[bytes], *, mtime: int | None = None) -> None:
    """Write the changes recorded in ``upper`` as an OCI-style layer tar to ``out``.

    ``out`` is a path or a binary stream. ``mtime``: a fixed mtime for every entry
    (reproducible layers); None keeps the files' own. Entries are sorted; the
    ``uname``/``gname`` fields are left empty, so only numeric ids count.
    """
    import tarfile

    root = os.fspath(upper)
    seen: dict[tuple[int, int], str] = {}  # (dev, inode) -> first name: hard links
    stream = open(out, "wb") if isinstance(out, (str, Path)) else out  # noqa: SIM115
    try:
        with tarfile.open(fileobj=stream, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel in _walk(root):
                for info, data in _entries(root, rel, seen, mtime):
                    tar.addfile(info, data)
    finally:
        if stream is not out:
            stream.close()


def _entries(root: str, rel: str, seen: dict[tuple[int, int], str], mtime: int | None
             ) -> list[tuple[tarfile.TarInfo, IO[bytes] | None]]:
    import io
    import tarfile

    path = os.path.join(root, rel)
    st = os.lstat(path)

    def header(name: str, kind: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.uname = info.gname = ""
        info.mtime = st.st_mtime_ns // 1_000_000_000 if mtime is None else mtime
        return info

    if is_whiteout(st):
        info = header(whiteout_name(rel), tarfile.REGTYPE)
        info.mode = 0o644
        return [(info, None)]
    if stat.S_ISDIR(st.st_mode):
        entries: list[tuple[tarfile.TarInfo, IO[bytes] | None]] = [
            (header(rel, tarfile.DIRTYPE), None)]
        if is_opaque(path):
            marker = header(f"{rel}/{OPAQUE_MARKER}", tarfile.REGTYPE)
            marker.mode = 0o644
            entries.append((marker, None))
        return entries
    if stat.S_ISLNK(st.st_mode):
        info = header(rel, tarfile.SYMTYPE)
        info.linkname = os.readlink(path)
        return [(info, None)]
    if stat.S_ISREG(st.st_mode):
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in seen:  # a second name for a file already in the tar
            info = header(rel, tarfile.LNKTYPE)
            info.linkname = seen[key]
            return [(info, None)]
        seen[key] = rel
        info = header(rel, tarfile.REGTYPE)
        info.size = st.st_size
        with open(path, "rb") as f:
            return [(info, io.BytesIO(f.read()))]
    kinds = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
             stat.S_IFIFO: tarfile.FIFOTYPE}
    kind = kinds.get(stat.S_IFMT(st.st_mode))
    if kind is None:  # sockets cannot be stored in a tar
        return []
    info = header(rel, kind)
    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return [(info, None)]


# --- applying a layer ----------------------------------------------------------------------
class UnsafeLayerError(OverlayError):
    """A layer entry that would write outside the target directory."""


def safe_name(name: str) -> str:
    """A tar entry name as a clean relative path, or UnsafeLayerError.

    Absolute names and ``..`` components are how a malicious layer writes to
    ``/etc/passwd`` of the host ("tar slip"); we refuse them instead of "fixing" them.
    """
    if name.startswith("/"):
        raise UnsafeLayerError(f"layer entry {name!r} is an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UnsafeLayerError(f"layer entry {name!r} climbs out with '..'")
    return "/".join(parts)


def _in_root(root: str, rel: str, *, follow_last: bool = True) -> str:
    """rootfs.resolve_in_root: ``root/rel``, symlinks resolved as if root were /."""
    try:
        return resolve_in_root(root, rel, follow_last=follow_last)
    except RootfsError as exc:  # a symlink loop
        raise UnsafeLayerError(str(exc)) from exc


def _remove(path: str) -> None:
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def apply(layer: str | Path | IO[bytes], target: str | Path) -> None:
    """Extract an OCI-style layer tar onto ``target``, honouring whiteouts.

    ``.wh.NAME`` deletes NAME; ``.wh..wh..opq`` empties its directory of everything
    that came from earlier layers. Every entry is confined to ``target``: absolute
    names, ``..``, and paths or hard links through symlinks that leave it are refused
    before anything is written.
    """
    import tarfile

    root = os.path.realpath(target)
    if not os.path.isdir(root):
        raise OverlayError(f"cannot apply a layer to {os.fspath(target)!r}: not a directory")
    if isinstance(layer, (str, Path)):
        if not os.path.isfile(layer):
            raise OverlayError(f"layer {os.fspath(layer)!r} is not a file: give a layer tar")
        tar = tarfile.open(layer, mode="r:*")
    else:
        tar = tarfile.open(fileobj=layer, mode="r|*")
    created: set[str] = set()  # paths this layer wrote: an opaque marker spares them
    dirs: list[tuple[str, tarfile.TarInfo]] = []  # (name relative to root, entry)
    with tar:
        for info in tar:
            rel = safe_name(info.name)
            if not rel:
                continue
            parent_rel, _, name = rel.rpartition("/")
            parent = _in_root(root, parent_rel)
            if name == OPAQUE_MARKER:
                _make_opaque(parent, root, created)
                continue
            if name.startswith(WHITEOUT_PREFIX):
                hidden = name[len(WHITEOUT_PREFIX):]
                if hidden in ("", ".", ".."):
                    raise UnsafeLayerError(f"layer entry {info.name!r} is not a valid whiteout")
                _remove(os.path.join(parent, hidden))
                continue
            os.makedirs(parent, exist_ok=True)
            path = os.path.join(parent, name)
            _extract(tar, info, path, root)
            created.add(os.path.relpath(path, root))
            if info.isdir():
                dirs.append((os.path.relpath(path, root), info))
    for rel, info in reversed(dirs):  # children changed the mtimes: set them last
        _set_dir_mtime(root, rel, info.mtime)


def _set_dir_mtime(root: str, rel: str, mtime: float) -> None:
    """Set a directory's mtime, if ``rel`` still names a directory inside ``root``.

    Later entries may have replaced it (``.wh.d`` and then ``d -> /etc``): resolve
    the name again and never follow a symlink, or utime(2) would change the
    timestamps of a file outside the root.
    """
    try:
        path = _in_root(root, rel, follow_last=False)
        if not stat.S_ISDIR(os.lstat(path).st_mode):
            return
    except (OSError, UnsafeLayerError):  # gone, or now behind a file or a symlink loop
        return
    os.utime(path, (mtime, mtime), follow_symlinks=False)


def _make_opaque(directory: str, root: str, created: set[str]) -> None:
    if not os.path.isdir(directory):
        return
    for name in os.listdir(directory):
        path = os.path.join(directory, name)
        if os.path.relpath(path, root) not in created:
            _remove(path)


def _extract(tar: tarfile.TarFile, info: tarfile.TarInfo, path: str, root: str) -> None:
    import shutil

    existing = os.path.lexists(path)
    if info.isdir():
        if existing and not (os.path.isdir(path) and not os.path.islink(path)):
            os.unlink(path)
        os.makedirs(path, exist_ok=True)
    else:
        if existing:
            _remove(path)
        if info.isreg():
            source = tar.extractfile(info)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                if source is not None:
                    shutil.copyfileobj(source, f)
        elif info.issym():
            os.symlink(info.linkname, path)
            os.lchown(path, info.uid, info.gid)
            os.utime(path, (info.mtime, info.mtime), follow_symlinks=False)
            return
        elif info.islnk():
            source_rel = safe_name(info.linkname)
            head, _, last = source_rel.rpartition("/")
            source_path = os.path.join(_in_root(root, head), last)
            os.link(source_path, path, follow_symlinks=False)
            return  # a hard link shares the first name's inode and metadata
        elif info.ischr() or info.isblk() or info.isfifo():
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK if info.isblk() else stat.S_IFIFO
            os.mknod(path, kind | 0o600, os.makedev(info.devmajor, info.devminor))
        else:
            raise OverlayError(f"layer entry {info.name!r} has an unsupported type {info.type!r}")
    # chown clears the setuid/setgid bits, so chmod comes after it.
    os.lchown(path, info.uid, info.gid)
    os.chmod(path, info.mode)
    os.utime(path, (info.mtime, info.mtime))
