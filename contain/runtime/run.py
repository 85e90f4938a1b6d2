"""`contain run`: one container from start to finish, undoing every step on the way out.

Each step below adds one kernel mechanism from one chapter; a learner who stopped
after chapter N has this function with the steps up to N. Whatever fails, the
``ExitStack`` undoes the steps that had been done, in reverse order.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path

from contain import linux, namespaces, process, rootfs
from contain.namespaces import Namespace, flags
from contain.runtime.spec import RunSpec, data_root

DEFAULT_ENV = {"PATH": process.DEFAULT_PATH, "HOME": "/root", "TERM": "xterm"}


class RunError(RuntimeError):
    """A problem with what the user asked for, with the fix in the message."""


def check_privileges() -> None:
    if os.geteuid() != 0:
        raise RunError("contain run needs root: run it with sudo (or as root in the lab VM)")


def run(spec: RunSpec) -> int:
    """Run ``spec`` in the foreground; returns the command's exit status."""
    check_privileges()
    with ExitStack() as undo:
        container = start(spec, undo)
        container.forward_signals()
        return container.wait()


def start(spec: RunSpec, undo: ExitStack) -> process.Process:
    """Start the container; ``undo`` collects the clean-up of every step taken."""
    base = rootfs.check_rootfs(spec.rootfs) if spec.rootfs else rootfs.default_rootfs(data_root())
    root = str(base)
    env = {**DEFAULT_ENV, "HOSTNAME": spec.hostname or spec.id, **spec.env}

    def prepare() -> None:  # in the container, as PID 1, before exec
        if Namespace.NET in spec.namespaces:
            namespaces.loopback_up()  # a new network namespace's lo starts down
        if Namespace.UTS in spec.namespaces:
            linux.sethostname(spec.hostname or spec.id)
        if Namespace.MNT in spec.namespaces:
            rootfs.setup_root(root, proc=Namespace.PID in spec.namespaces)
        else:
            rootfs.chroot(root)

    hooks = process.Hooks(prepare=prepare)
    userns = Namespace.USER in spec.namespaces
    if userns:  # the parent maps root inside to an unprivileged range outside
        hooks.unshared = lambda pid: namespaces.write_id_maps(pid, spec.uid_maps, spec.gid_maps)
    if Namespace.TIME in spec.namespaces:  # in A, after unshare, before the first fork
        hooks.in_namespaces = lambda: namespaces.set_time_offsets(spec.time_offsets)
    container = process.spawn(
        spec.argv, flags=flags(spec.namespaces), hooks=hooks, env=env, cwd=spec.cwd,
        init=spec.init, become_root=userns,
    )
    undo.callback(_kill, container)
    if spec.pid_file:
        _write_pid_file(spec.pid_file, container.pid)
        undo.callback(_unlink, spec.pid_file)
    return container


def _kill(container: process.Process) -> None:
    """On the way out: make sure nothing of the container is still running."""
    if container.returncode is None:
        container.send_signal(9)
        container.wait()


def _write_pid_file(path: Path, pid: int) -> None:
    """Write the PID atomically, so a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{pid}\n")
    os.rename(tmp, path)


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
