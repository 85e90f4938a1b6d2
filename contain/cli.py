"""The ``contain`` command line: a thin layer that turns arguments into a RunSpec.

Errors are one line on stderr and a non-zero exit status, following ``docker run``:
125 when contain itself fails, 126 when the command cannot be executed, 127 when it
does not exist, and otherwise the command's own exit status.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

EXIT_RUNTIME_ERROR = 125


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    """The parser for every command, or with ``verb`` for that one only.

    argparse builds each sub-parser eagerly (and looks up translations for each of
    its messages): building only the one asked for keeps ``contain run`` ~6 ms faster.
    """
    parser = argparse.ArgumentParser(
        prog="contain", description="A container runtime built chapter by chapter."
    )
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND", required=True)
    if verb is None:
        sub.add_parser("version", help="print the version")
        sub.add_parser("doctor", help="check that this machine is ready for the course "
                       "(exit 1 if something required is missing)")
    if verb in (None, "chroot"):
        _chroot_parser(sub)
    if verb in (None, "run"):
        _run_parser(sub)
    if verb is None:
        _other_parsers(sub)
    return parser


def _chroot_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    chroot = sub.add_parser("chroot", help="run a command in a root filesystem with chroot(2) "
                            "(chapter 1: no isolation, escapable)")
    chroot.add_argument("rootfs", type=Path)
    chroot.add_argument("command", nargs=argparse.REMAINDER)


def _run_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    run = sub.add_parser("run", help="run a command in a new container")
    run.add_argument("--rootfs", type=Path, help="root filesystem directory "
                     "(default: a busybox root built on first use)")
    run.add_argument("--hostname", help="the container's hostname (default: its id)")
    run.add_argument("--init", action="store_true",
                     help="run an init as PID 1 that reaps zombies and forwards signals")
    run.add_argument("--pid-file", type=Path, help="write the container's PID 1 (host view) here")
    run.add_argument("-e", "--env", action="append", default=[], metavar="NAME=VALUE",
                     help="set an environment variable")
    run.add_argument("-w", "--workdir", default="/", help="working directory inside")
    run.add_argument("--rm", action="store_true",
                     help="remove the container's writable layer when it exits")
    run.add_argument("--name", dest="container_id", metavar="ID",
                     help="the container's id (default: 12 random hex digits)")
    run.add_argument("--namespaces", "--ns", metavar="KINDS",
                     help="comma-separated namespaces to isolate (default: "
                     "mnt,uts,ipc,pid,net,cgroup; also user, time)")
    run.add_argument("--userns", action="store_true",
                     help="add a user namespace: root inside is uid 100000 outside")
    run.add_argument("--uidmap", action="append", metavar="IN:OUT:COUNT",
                     help="uid map line for --userns (repeatable; default 0:100000:65536)")
    run.add_argument("--gidmap", action="append", metavar="IN:OUT:COUNT",
                     help="gid map line for --userns (default: the uid map)")
    run.add_argument("--time-offset", metavar="monotonic=S,boottime=S",
                     help="shift the clocks in a new time namespace (implies it)")
    _limit_options(run)
    run.add_argument("command", nargs=argparse.REMAINDER)


def _other_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    rm = sub.add_parser("rm", help="remove stopped containers (their writable layers)")
    rm.add_argument("ids", nargs="+", metavar="ID")
    sub.add_parser("cleanup", help="remove every container whose contain process is gone: "
                   "writable layers, cgroups, leftover processes (never a live one)")

    rootfs = sub.add_parser("rootfs", help="manage root filesystems")
    rootfs_sub = rootfs.add_subparsers(dest="rootfs_verb", metavar="ACTION", required=True)
    build = rootfs_sub.add_parser("build", help="build the busybox root filesystem into DIR")
    build.add_argument("directory", type=Path)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    first = argv[0] if argv else None
    parser = build_parser(first if first in ("chroot", "run") else None)
    args = parser.parse_args(argv)
    try:
        return dispatch(parser, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line, never a traceback
        from contain.process import ChildError

        code = exc.exit_code if isinstance(exc, ChildError) else EXIT_RUNTIME_ERROR
        print(f"contain: {exc}", file=sys.stderr)
        return code


def dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.verb == "version":
        from contain import __version__

        print(f"contain {__version__}")
        return 0
    if args.verb == "doctor":
        from contain.lab import preflight

        return preflight.main()
    if args.verb == "rootfs":
        from contain import rootfs

        print(rootfs.build_busybox(args.directory))
        return 0
    if args.verb == "chroot":
        return chroot(parser, args)
    if args.verb == "run":
        return run(parser, args)
    if args.verb in ("rm", "cleanup"):
        from contain.runtime import state

        if args.verb == "rm":
            for cid in args.ids:
                state.remove_container(cid)
                print(cid)
        else:
            for cid in state.cleanup():
                print(f"removed {cid}")
        return 0
    parser.error(f"unknown command {args.verb}")
    return 2  # not reached


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    command: list[str] = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        parser.error(f"{args.verb}: give the command to run, e.g. contain {args.verb} ... /bin/sh")
    return command


def chroot(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from contain.runtime import run as runtime

    return runtime.chroot(args.rootfs, _command(parser, args))


def run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from contain.runtime import run as runtime
    from contain.runtime.spec import RunSpec, check_hostname

    env = {}
    for item in args.env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--env {item!r}: use NAME=VALUE")
        env[name] = value
    if args.hostname is not None:
        check_hostname(args.hostname)
    spec = RunSpec(
        argv=_command(parser, args), rootfs=args.rootfs, hostname=args.hostname,
        init=args.init, pid_file=args.pid_file, env=env, cwd=args.workdir,
    )
    spec.rm = args.rm
    if args.container_id:
        from contain.runtime.state import check_id

        spec.id = check_id(args.container_id)
    spec.isolate(args.namespaces, userns=args.userns, uidmap=args.uidmap or (),
                 gidmap=args.gidmap or (), time_offset=args.time_offset)
    spec.limit(
        cpus=args.cpus, cpu_shares=args.cpu_shares, cpu_weight=args.cpu_weight,
        memory=args.memory, memory_swap=args.memory_swap, pids_limit=args.pids_limit,
        blkio_weight=args.blkio_weight, device_read_bps=args.device_read_bps,
        device_write_bps=args.device_write_bps, cpuset_cpus=args.cpuset_cpus,
        cpuset_mems=args.cpuset_mems, cgroup_conf=args.cgroup_conf,
    )
    spec.stats_file = args.stats_file
    return runtime.run(spec)


def _limit_options(run: argparse.ArgumentParser) -> None:
    """Chapter 3: cgroup limits, spelled as in ``docker run`` (parsed in contain.cgroups)."""
    group = run.add_argument_group("resource limits (cgroups)")
    group.add_argument("--cpus", help="CPU time per wall time, e.g. 0.5 = half a CPU")
    group.add_argument("--cpu-shares", help="relative CPU weight, v1 style (2-262144, "
                       "default 1024)")
    group.add_argument("--cpu-weight", help="relative CPU weight, v2 style (1-10000, "
                       "default 100)")
    group.add_argument("-m", "--memory", help="memory limit, e.g. 256m; the OOM killer acts "
                       "beyond it")
    group.add_argument("--memory-swap", help="memory + swap limit (at least --memory; -1: "
                       "unlimited swap)")
    group.add_argument("--pids-limit", help="most processes (and threads) at once")
    group.add_argument("--blkio-weight", help="relative I/O weight 10-1000 (needs the BFQ "
                       "scheduler or io.cost)")
    group.add_argument("--device-read-bps", action="append", default=[], metavar="DEV:RATE",
                       help="limit reads from a block device, e.g. /dev/vda:1m")
    group.add_argument("--device-write-bps", action="append", default=[], metavar="DEV:RATE",
                       help="limit writes to a block device, e.g. /dev/vda:1m")
    group.add_argument("--cpuset-cpus", help="CPUs to run on, e.g. 0 or 0-1")
    group.add_argument("--cpuset-mems", help="memory nodes to use, e.g. 0")
    group.add_argument("--cgroup-conf", action="append", default=[], metavar="CTRL.FILE=VALUE",
                       help="write any cgroup file, e.g. memory.high=64m (repeatable)")
    group.add_argument("--stats-file", type=Path, metavar="PATH",
                       help="write the cgroup's final stats (CPU, memory, OOM kills) as JSON")
