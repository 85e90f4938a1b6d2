"""A container's state on the host: ``$CONTAIN_STATE/<id>/`` and how to clean it up.

Each container gets a directory under the state root (default ``/run/contain``)::

    <id>/state.json   who owns it: the contain process (pid + start time), PID 1, ...
    <id>/upper/       the writable layer: everything the container changed
    <id>/work/        overlayfs's scratch space (same filesystem as upper/)
    <id>/rootfs/      the mount point of the merged overlay -- in the container's
                      own mount namespace only, so the host never sees a mount here

The overlay is mounted inside the container's mount namespace, so it disappears by
itself when the last process of the container dies, even after SIGKILL. What can
outlive a killed ``contain`` is this directory (and the container's cgroup).

**Who may clean up what.** A container is *live* while its owner (the ``contain``
process that started it) runs: ``state.json`` records the owner's PID and its start
time from ``/proc/PID/stat``, so a recycled PID is not mistaken for the owner.
``contain cleanup`` removes every container whose owner is gone (stopped containers
kept without ``--rm``, and stale ones whose ``contain`` was SIGKILLed) and never
touches a live one. ``contain run`` does not reclaim stale state itself: that keeps
its start-up lean, and a stopped container stays inspectable until
``contain rm ID`` or ``contain cleanup``.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from contain.runtime.spec import state_root

STATE_FILE = "state.json"
CREATING = ".creating"  # suffix of a directory whose state.json is not in place yet


class StateError(RuntimeError):
    """A problem with the state directory, with the fix in the message."""


@dataclass
class State:
    id: str
    owner_pid: int  # the contain process
    owner_start: int  # its start time (clock ticks since boot), field 22 of /proc/PID/stat
    created: float
    rootfs: str  # the read-only base layer
    rm: bool  # remove the writable layer when the container exits
    pid: int | None = None  # the container's PID 1 as the host sees it
    pid_start: int | None = None


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` (field 22 of /proc/PID/stat), None if it does not exist.

    A PID is reused once its process is gone; the pair (pid, start time) is not.
    The command name (field 2) may contain spaces and ')' so split after the last ')'.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(data[data.rindex(b")") + 2:].split()[19])


def alive(pid: int | None, started: int | None) -> bool:
    return pid is not None and started is not None and start_time(pid) == started


def check_id(cid: str) -> str:
    """A container id names a directory and a cgroup, so it must be one plain name.

    "." or ".." would name the state root itself or its parent (and, as a cgroup,
    the hierarchy's root): refused, like anything that is not a simple file name.
    """
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", cid):
        raise StateError(f"invalid container id {cid!r}: use 1-64 letters, digits, '-', '_' "
                         "or '.', starting with a letter or digit")
    return cid


def container_dir(cid: str) -> Path:
    return state_root() / check_id(cid)


def create(cid: str, rootfs: str, *, rm: bool) -> tuple[Path, State]:
    """Make ``<id>/`` with state.json, upper/, work/ and rootfs/ -- atomically.

    Everything is built in ``<id>.creating`` and renamed into place, so a directory
    named after a container always has a state.json saying who owns it.
    """
    root = state_root()
    try:
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StateError(f"cannot create the state directory {str(root)!r} ({exc.strerror}): "
                         "set CONTAIN_STATE to a writable directory") from None
    me = os.getpid()
    state = State(id=cid, owner_pid=me, owner_start=start_time(me) or 0, created=time.time(),
                  rootfs=rootfs, rm=rm)
    final, temp = root / cid, root / f"{cid}{CREATING}"
    try:
        temp.mkdir(mode=0o700)
        for name in ("upper", "work", "rootfs"):
            (temp / name).mkdir(mode=0o755)
        save(temp, state)
        os.rename(temp, final)
    except OSError as exc:
        remove_tree(temp)
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise StateError(f"a container named {cid!r} already exists: "
                             "pick another id or 'contain rm' it") from None
        raise StateError(f"cannot write the state directory {str(root)!r} ({exc.strerror}): "
                         "set CONTAIN_STATE to a writable directory") from None
    return final, state


def save(directory: Path, state: State) -> None:
    """Write state.json atomically (write a temporary file, then rename)."""
    tmp = directory / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps(asdict(state)) + "\n")
    os.rename(tmp, directory / STATE_FILE)


def load(directory: Path) -> State | None:
    try:
        return State(**json.loads((directory / STATE_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def is_live(state: State | None) -> bool:
    """Is the owner still running (so the container is in use)?"""
    return state is not None and alive(state.owner_pid, state.owner_start)


def remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def remove(directory: Path, state: State | None) -> None:
    """Remove a container that is not live: its processes, cgroup and writable layer."""
    if state is not None and alive(state.pid, state.pid_start):
        # Its PID 1 survived the owner (it should not: PR_SET_PDEATHSIG). Killing
        # PID 1 kills the whole PID namespace, and with it the mount namespace.
        try:
            os.kill(state.pid, signal.SIGKILL)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass
        for _ in range(200):
            if not alive(state.pid, state.pid_start):
                break
            time.sleep(0.01)
    cid = state.id if state is not None else directory.name.removesuffix(CREATING)
    remove_cgroup(cid)
    remove_tree(directory)


def remove_cgroup(cid: str) -> None:
    """Kill and remove the container's cgroup ``contain/<id>`` if one is left.

    The cgroups module (chapter 3) owns cgroup paths and knows v1 from v2; we only ask
    it. ``remove()`` kills what is still in the group, then removes the directories.
    """
    from contain import cgroups

    cg = cgroups.driver()(cgroups.container_cgroup(check_id(cid)))
    if cg.exists():
        cg.remove()


def entries() -> list[tuple[Path, State | None]]:
    """Every container directory under the state root, with its state if readable."""
    root = state_root()
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        path = root / name
        if path.is_dir() and not path.is_symlink():
            found.append((path, load(path)))
    return found


def remove_container(cid: str) -> None:
    """``contain rm ID``: remove a stopped container; refuse a live one."""
    directory = container_dir(cid)
    if not directory.is_dir():
        raise StateError(f"no container {cid!r} in {str(state_root())!r}: "
                         "see the directories there for the ids")
    state = load(directory)
    if is_live(state):
        raise StateError(f"container {cid!r} is running (owner PID {state.owner_pid}): "  # type: ignore[union-attr]
                         "stop it first")
    remove(directory, state)


def cleanup() -> list[str]:
    """Remove every container whose owner is dead; return their ids.

    A directory without a readable state.json is either being created right now
    (``<id>.creating``, young) or debris; it is removed once it is older than a minute.
    """
    removed = []
    for directory, state in entries():
        if state is None:
            try:
                age = time.time() - directory.stat().st_mtime
            except FileNotFoundError:
                continue
            if age < 60:
                continue
        elif is_live(state):
            continue
        remove(directory, state)
        removed.append(state.id if state is not None else directory.name)
    return removed
