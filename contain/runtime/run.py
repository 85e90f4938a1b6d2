"""`contain run`: one container from start to finish, undoing every step on the way out.

Each step below adds one kernel mechanism from one chapter; a learner who stopped
after chapter N has this function with the steps up to N. Whatever fails, the
``ExitStack`` undoes the steps that had been done, in reverse order.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from contain import linux, namespaces, overlay, process, rootfs
from contain.namespaces import Namespace, flags
from contain.runtime import state
from contain.runtime.spec import RunSpec, data_root

if TYPE_CHECKING:
    from contain.cgroups import Cgroup

DEFAULT_ENV = {"PATH": process.DEFAULT_PATH, "HOME": "/root", "TERM": "xterm"}


class RunError(RuntimeError):
    """A problem with what the user asked for, with the fix in the message."""


def check_privileges() -> None:
    if os.geteuid() != 0:
        raise RunError("contain run needs root: run it with sudo (or as root in the lab VM)")


def chroot(root: str | Path, argv: list[str]) -> int:
    """Chapter 1's `contain chroot`: the command in ``root`` with chroot(2) alone.

    No namespaces and no cgroup: the host's processes, network and mounts stay in
    sight, and root can walk out (rootfs.break_out_of_chroot). For comparison only.
    """
    check_privileges()
    checked = str(rootfs.check_rootfs(root))
    child = process.spawn(argv, hooks=process.Hooks(prepare=lambda: rootfs.chroot(checked)))
    child.forward_signals()
    return child.wait()


def run(spec: RunSpec) -> int:
    """Run ``spec`` in the foreground; returns the command's exit status."""
    check_privileges()
    with signals_held() as held, ExitStack() as undo:
        container = start(spec, undo)
        container.forward_signals()  # from now until it exits, signals go to the container
        for signum in held:  # what arrived while it was being set up
            container.send_signal(signum)
        return container.wait()


HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


@contextmanager
def signals_held() -> Iterator[list[int]]:
    """Hold Ctrl-C and kill(1)'s signals while contain sets up or tears down.

    Dying half-way through either would leave a cgroup and a writable layer behind.
    A signal that arrives before the container exists is passed on to it once it does;
    one that arrives during the clean-up waits until the clean-up is done.
    """
    held: list[int] = []
    previous = {s: signal.signal(s, lambda signum, _frame: held.append(signum))
                for s in HELD_SIGNALS}
    try:
        yield held
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def start(spec: RunSpec, undo: ExitStack) -> process.Process:
    """Start the container; ``undo`` collects the clean-up of every step taken."""
    base = rootfs.check_rootfs(spec.rootfs) if spec.rootfs else rootfs.default_rootfs(data_root())
    root = str(base)
    if Namespace.MNT not in spec.namespaces:
        raise RunError("contain run mounts the container's writable layer in its own mount "
                       "namespace: keep 'mnt' in --namespaces")
    # Chapter 4: a fresh writable layer over the read-only base. Removed again if any
    # later step fails, and at exit with --rm; otherwise kept until 'contain rm ID'.
    layer, record = state.create(spec.id, root, rm=spec.rm)
    started = [False]
    undo.callback(_discard_layer, layer, spec.rm, started)
    merged = str(layer / "rootfs")
    env = {**DEFAULT_ENV, "HOSTNAME": spec.hostname or spec.id, **spec.env}
    userns = Namespace.USER in spec.namespaces
    # Chapter 3: the cgroup contain/<id>, with its limits, before the command runs in it.
    # PID 1 joins it before it execs, then unshares its cgroup namespace, rooted at this
    # cgroup ("0::/" in /proc/self/cgroup). On v1 PID 1 moves itself, the cheap way (see
    # CgroupV1.join_self); otherwise, and with --userns (PID 1 is then uid 100000 on the
    # host and may not write the cgroup's files), the parent adds it while it prepares.
    cg = _cgroup(spec, undo)
    joins_itself = cg.joins_self_cheaply and not userns

    def prepare() -> None:  # in the container, as PID 1, before exec
        if joins_itself:  # first, while the host's /sys/fs/cgroup is still in sight
            cg.join_self()
        if Namespace.NET in spec.namespaces:
            namespaces.loopback_up()  # a new network namespace's lo starts down
        if Namespace.UTS in spec.namespaces:
            linux.sethostname(spec.hostname or spec.id)
        # Private first: on a host whose / is shared (systemd) the overlay mount
        # would otherwise propagate back to the host's mount namespace.
        linux.make_private("/")
        # Mounted in the container's own mount namespace: when the container dies the
        # mount goes with it, so nothing is left mounted on the host, even after SIGKILL.
        lower, target, upper, work = (held.path(p) for p in paths)
        if held.fds:  # --userns: mount where uid 100000 can reach it (see _HeldPaths)
            target = _staging_root()
        overlay.mount([lower], target, upper, work)
        rootfs.setup_root(target, proc=Namespace.PID in spec.namespaces)

    hooks = process.Hooks(prepare=prepare, started=None if joins_itself else cg.add)
    if userns:  # the parent maps root inside to an unprivileged range outside

        def map_ids(pid: int) -> None:
            namespaces.write_id_maps(pid, spec.uid_maps, spec.gid_maps)
            # Overlay inside a user namespace writes its upper layer as the container's
            # root, so that layer must belong to root's id outside (an unmapped owner
            # would make every write EACCES/EPERM).
            uid = namespaces.translate(0, spec.uid_maps)
            gid = namespaces.translate(0, spec.gid_maps)
            if uid is not None and gid is not None:
                for name in ("upper", "work"):
                    os.chown(layer / name, uid, gid)

        hooks.unshared = map_ids
    held = _HeldPaths()
    paths = (root, merged, str(layer / "upper"), str(layer / "work"))

    def in_namespaces() -> None:  # in A, after unshare, before the first fork
        if Namespace.TIME in spec.namespaces:
            namespaces.set_time_offsets(spec.time_offsets)
        if userns:  # still the host's uid 0 here: open what root-owned 0700 dirs hide
            held.open(*paths)

    hooks.in_namespaces = in_namespaces
    container = process.spawn(
        spec.argv, flags=flags(spec.namespaces), hooks=hooks, env=env, cwd=spec.cwd,
        init=spec.init, become_root=userns,
    )
    undo.callback(_kill, container)
    record.pid, record.pid_start = container.pid, state.start_time(container.pid)
    state.save(layer, record)
    started[0] = True
    if spec.pid_file:
        _write_pid_file(spec.pid_file, container.pid)
        undo.callback(_unlink, spec.pid_file)
    return container


def _cgroup(spec: RunSpec, undo: ExitStack) -> Cgroup:
    """Make the container's cgroup; on the way out report OOM kills, then remove it."""
    from contain import cgroups

    cg = cgroups.create(cgroups.container_cgroup(spec.id), spec.limits)
    undo.callback(cg.remove)  # registered first, runs last: after the kill and the report
    for warning in cg.applied.warnings:
        print(f"contain: warning: {warning}", file=sys.stderr)
    undo.callback(_report_stats, spec, cg)
    return cg


def _report_stats(spec: RunSpec, cg: Cgroup) -> None:
    """After the container ended: say if the OOM killer struck, write --stats-file."""
    stats = cg.stats()
    if stats.oom_kills:
        from contain.cgroups.limits import mib

        limit = f" (memory limit {mib(stats.memory_limit)})" if stats.memory_limit else ""
        print(f"contain: the container was OOM-killed{limit}: {stats.oom_kills} process(es) "
              "killed by the kernel's OOM killer", file=sys.stderr)
    if spec.stats_file:
        spec.stats_file.write_text(json.dumps(stats.to_dict(), indent=1) + "\n")


class _HeldPaths:
    """Directories opened by A while it is still the host's root, used by path in B.

    With --userns, PID 1 is uid 100000 on the host and may not walk through root-owned
    0700 directories (the state and data roots) to reach its layers. A opens them first
    (O_PATH); its children inherit the fds, and ``/proc/self/fd/N`` names each directory
    without looking up its parents (proc(5)).
    """

    def __init__(self) -> None:
        self.fds: dict[str, int] = {}

    def open(self, *paths: str) -> None:
        for path in paths:
            self.fds[path] = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def path(self, path: str) -> str:
        """The path to use in B: the held fd's name, or ``path`` itself if none is held."""
        return f"/proc/self/fd/{self.fds[path]}" if path in self.fds else path


STAGING = "/tmp"  # exists on every host and anyone may walk through it


def _staging_root() -> str:
    """A mount point for the container's root that uid 100000 can reach.

    ``/proc/self/fd/N`` leads to a directory, but not to a mount made on top of it
    later, so the overlay goes onto a fresh tmpfs over /tmp -- in the container's own
    private mount namespace only; the host's /tmp is untouched and the tmpfs disappears
    with the namespace.
    """
    linux.mount("tmpfs", STAGING, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755,size=16k")
    target = os.path.join(STAGING, "rootfs")
    os.mkdir(target)
    return target


def _discard_layer(layer: Path, rm: bool, started: list[bool]) -> None:
    """Remove the writable layer with --rm, or when the container never started."""
    if rm or not started[0]:
        state.remove_tree(layer)


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
