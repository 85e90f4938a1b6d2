"""The process model: fresh single-threaded children, sync pipes, a real PID 1.

Why a child process at all? Namespaces belong to processes, and some of them can
only be entered by a process that has exactly one thread: ``unshare(CLONE_NEWUSER)``
and ``setns`` into a mount namespace fail with EINVAL otherwise (unshare(2), setns(2)),
and ``unshare(CLONE_NEWNS)`` would change only the calling thread. A Jupyter kernel
runs a dozen threads, and it must never change its own namespaces anyway. ``fork()``
copies only the calling thread, so a forked child is single-threaded: it does the
namespace work, and the kernel (or the ``contain`` CLI) stays as it was.

A container start is two forks (see :func:`spawn`)::

    contain (parent)                 intermediate (A)              init (B), PID 1
    ----------------                 ----------------              ---------------
    fork ------------------------->  wait for "go"
    send "go" ---------------------> unshare(CLONE_NEW...)
                                     report "unshared"
    write uid/gid maps (--userns)
    send "go" ---------------------> fork ---------------------->  v1: join the cgroup
                                     report B's pid                hostname, mounts,
    v2 or --userns: join B to                                      pivot_root
      the cgroup (`started` hook)                                  wait for "go"
    send "go" ------------------------------------------------->  unshare(CLONE_NEWCGROUP)
    read errors until EOF            forward signals, wait         exec the command (or
    wait for A                       for B, exit with its status   run an init)

``unshare(CLONE_NEWPID)`` does not move the caller, only its future children, so
B is the first process of the new PID namespace: PID 1. A stays behind to relay
signals and the exit status, outside the container's cgroup (neither pids.max nor
the OOM killer counts it, so it lives to report a 137). B joins its cgroup before it
execs (on cgroup v1 by itself, cheaply; see CgroupV1.join_self; otherwise the parent
moves it while it prepares its root), and creates its cgroup namespace only then, so
the namespace is rooted at the container's own cgroup. Errors before ``exec`` travel
back over a pipe and are
raised in the parent as :class:`ChildError` with the child's own message.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

from contain import linux

T = TypeVar("T")

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Signals the parent passes on to the container (SIGKILL and SIGSTOP cannot be caught).
FORWARDED_SIGNALS = (
    signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGTERM,
    signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH, signal.SIGCONT,
)


class ChildError(RuntimeError):
    """An error raised in a child process, re-raised in the parent.

    ``kind`` is the child's exception type name (``"SyscallError"``...), ``exit_code``
    follows the shell's conventions: 126 cannot execute, 127 not found, 125 otherwise.
    """

    def __init__(self, message: str, kind: str = "Error", exit_code: int = 125) -> None:
        super().__init__(message)
        self.kind = kind
        self.exit_code = exit_code


def thread_count(pid: int | str = "self") -> int:
    """Threads of a process, from /proc/PID/status (a Jupyter kernel has ~13)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    raise RuntimeError("no Threads: line in /proc/self/status")


def exit_status(wait_status: int) -> int:
    """A wait(2) status as a shell exit code: the code, or 128 + the signal number."""
    if os.WIFSIGNALED(wait_status):
        return 128 + os.WTERMSIG(wait_status)
    return os.waitstatus_to_exitcode(wait_status)


def _plain_stdio() -> None:
    """Point sys.stdout/stderr at fds 1 and 2 in a forked child.

    In a Jupyter kernel ``sys.stdout`` is a ZeroMQ stream served by a thread the child
    does not have; fds 1 and 2 are captured by the kernel and do reach the notebook.
    """
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115


def _fork() -> int:
    # Flush first, or the child inherits (and later writes out) the parent's buffers.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    return os.fork()


# --- one function in one child ------------------------------------------------------
def call_in_child(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a fresh single-threaded child; return its result.

    The child may unshare namespaces, chroot or mount: none of it touches the caller.
    The result (or the exception) comes back pickled over a pipe.
    """
    import pickle  # here, not at the top: `contain run` never needs it
    import traceback

    read_end, write_end = os.pipe()
    pid = _fork()
    if pid == 0:  # the child
        os.close(read_end)
        try:
            _plain_stdio()
            outcome: tuple[str, Any] = ("ok", fn(*args, **kwargs))
        except BaseException as exc:  # everything goes back to the parent
            outcome = ("error", (type(exc).__name__, str(exc), traceback.format_exc()))
        try:
            payload = pickle.dumps(outcome)
        except Exception as exc:
            payload = pickle.dumps(("error", ("PicklingError", str(exc), "")))
        with open(write_end, "wb") as pipe:
            pipe.write(payload)
        sys.stdout.flush()
        os._exit(0)
    os.close(write_end)
    with open(read_end, "rb") as pipe:
        payload = pipe.read()
    _, wait_status = os.waitpid(pid, 0)
    if not payload:
        raise ChildError(f"the child died without an answer (status {exit_status(wait_status)})")
    status, value = pickle.loads(payload)
    if status == "error":
        kind, message, _ = value
        raise ChildError(message, kind)
    return value  # type: ignore[no-any-return]


# --- a container's processes ---------------------------------------------------------
@dataclass
class Hooks:
    """What the parent and the children do at each step of :func:`spawn`.

    Each hook is optional, listed in the order they run. ``unshared`` gets the
    intermediate's PID (A), whose ``/proc/PID/uid_map`` and network namespace the
    parent sets up; ``started`` gets PID 1's host PID (B), to put it in its cgroup.
    """

    unshared: Callable[[int], None] | None = None  # parent: A is in its new namespaces
    in_namespaces: Callable[[], None] | None = None  # A: after unshare, before the fork
    prepare: Callable[[], None] | None = None  # B: PID 1, before exec (mounts, hostname)
    started: Callable[[int], None] | None = None  # parent: while B prepares; B waits for it


@dataclass
class Process:
    """A running container: the intermediate ``relay`` and the container's PID 1."""

    relay: int
    pid: int  # the container's PID 1 as the host sees it
    returncode: int | None = None
    _forwarding: dict[int, Any] = field(default_factory=dict)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.relay, signum)
            except ProcessLookupError:
                pass

    def wait(self) -> int:
        """Wait for the container to end; returns its shell-style exit status."""
        if self.returncode is None:
            try:
                _, status = os.waitpid(self.relay, 0)
            except ChildProcessError:
                raise ChildError("the container's relay process was reaped by someone else: "
                                 "its exit status is lost") from None
            self.returncode = exit_status(status)
            self.stop_forwarding()
        return self.returncode

    def forward_signals(self, signals: Sequence[int] = FORWARDED_SIGNALS) -> None:
        """Pass the parent's signals on to the container (as ``docker run`` does)."""
        for signum in signals:
            self._forwarding[signum] = signal.signal(
                signum, lambda s, _frame: self.send_signal(s)
            )

    def stop_forwarding(self) -> None:
        for signum, previous in self._forwarding.items():
            signal.signal(signum, previous)
        self._forwarding.clear()


def spawn(
    argv: Sequence[str],
    *,
    flags: int = 0,
    hooks: Hooks | None = None,
    env: dict[str, str] | None = None,
    cwd: str = "/",
    init: bool = False,
    become_root: bool = False,
) -> Process:
    """Start ``argv`` in new namespaces (``flags``: ``linux.CLONE_NEW*``).

    Returns once the command has been exec'd, or raises :class:`ChildError` with the
    child's message if any step before exec failed. ``init=True`` runs an init as
    PID 1 that reaps zombies and forwards signals, with the command as its child
    (``docker run --init``); otherwise the command itself is PID 1. That init is this
    very Python process, forked: easy to read, but ~15 MiB resident where Docker's
    ``tini`` takes under 1 MiB. ``become_root``:
    switch to uid/gid 0 of a new user namespace once the maps are written.
    """
    if thread_count() > 1:
        raise ChildError(
            "spawn() must run in a single-threaded process; from a notebook use "
            "contain.run(...), which starts the contain CLI as a fresh process",
            "RuntimeError",
        )
    hooks = hooks or Hooks()
    env = dict(env) if env is not None else {"PATH": DEFAULT_PATH, "HOME": "/root"}
    go_read, go_write = os.pipe()  # parent -> A, then B: "carry on"
    # The cgroup namespace is unshared by B, just before exec: only then is B in its
    # cgroup, and a cgroup namespace is rooted at the cgroup its creator is in.
    cgroupns, flags = flags & linux.CLONE_NEWCGROUP, flags & ~linux.CLONE_NEWCGROUP
    msg_read, msg_write = os.pipe2(os.O_CLOEXEC)  # A and B -> parent: events, errors
    parent_pid = os.getpid()

    relay = _fork()
    if relay == 0:
        os.close(go_write)
        os.close(msg_read)
        _intermediate(argv, flags, hooks, env, cwd, init, become_root, parent_pid,
                      go_read, msg_write, cgroupns)
    os.close(go_read)
    os.close(msg_write)
    events = os.fdopen(msg_read, "r")
    try:
        os.write(go_write, b"g")
        _expect(events, "unshared")
        if hooks.unshared:
            hooks.unshared(relay)
        os.write(go_write, b"g")
        pid = int(_expect(events, "pid"))
        # B prepares its root while we run the `started` hook (the runtime's cgroup join
        # where B cannot join by itself); B execs only after our third "g".
        if hooks.started:
            try:
                hooks.started(pid)
            except Exception:
                # If B died in prepare (the hook then fails with ESRCH), B's own error
                # says why. Closing our end makes a waiting B exit, so this read ends.
                os.close(go_write)
                go_write = -1
                _expect(events, None)
                raise
        try:
            os.write(go_write, b"g")
        except BrokenPipeError:
            pass  # B died in prepare: its error is waiting in `events`
        # Read until EOF: B's end closes on a successful exec (O_CLOEXEC), or B
        # reports what went wrong first.
        _expect(events, None)
    except BaseException:
        _kill_and_reap(relay)
        raise
    finally:
        if go_write >= 0:
            os.close(go_write)
        events.close()
    return Process(relay=relay, pid=pid)


def _expect(events: Any, name: str | None) -> Any:
    """Read the next event from the children; raise the child's error if one comes."""
    line = events.readline()
    if not line:
        if name is None:
            return None
        raise ChildError(f"the container process died before it reported {name!r}")
    event = json.loads(line)
    if "error" in event:
        raise ChildError(event["error"], event.get("kind", "Error"), event.get("code", 125))
    if name is None or name not in event:
        raise ChildError(f"unexpected message from the container process: {line.strip()}")
    return event[name]


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _send(fd: int, **event: Any) -> None:
    os.write(fd, (json.dumps(event) + "\n").encode())


class ExecError(Exception):
    """execve(2) failed: the shell's exit codes, 127 not found and 126 not executable."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _exec(argv: Sequence[str], env: dict[str, str]) -> NoReturn:
    """execvpe(3): search PATH (from ``env``) for ``argv[0]`` and replace this process."""
    try:
        os.execvpe(argv[0], list(argv), env)
    except FileNotFoundError:
        where = "" if "/" in argv[0] else " in $PATH"
        raise ExecError(f"executable file not found{where}: {argv[0]!r}", 127) from None
    except PermissionError:
        raise ExecError(f"cannot execute {argv[0]!r}: permission denied", 126) from None
    except OSError as exc:
        raise ExecError(f"cannot execute {argv[0]!r}: {exc.strerror}", 126) from None


def _report_and_exit(fd: int, exc: BaseException) -> NoReturn:
    code = exc.code if isinstance(exc, ExecError) else 125
    message = str(exc)
    try:
        _send(fd, error=message, kind=type(exc).__name__, code=code)
    finally:
        os._exit(code)


def _intermediate(
    argv: Sequence[str], flags: int, hooks: Hooks, env: dict[str, str], cwd: str,
    init: bool, become_root: bool, parent_pid: int, go: int, msg: int, cgroupns: int,
) -> NoReturn:
    """Process A: unshare, let the parent finish, fork PID 1, relay its exit status."""
    try:
        # Die with the parent: a killed `contain` must not leave a container behind.
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)
        _await(go)
        linux.unshare(flags)
        if hooks.in_namespaces:
            hooks.in_namespaces()
        _send(msg, unshared=True)
        _await(go)
        if become_root:
            _become_root()
        init_pid = os.fork()
        if init_pid == 0:
            _container_init(argv, hooks, env, cwd, init, go, msg, cgroupns)
        os.close(go)
        # Forward signals *before* the parent hears from us: spawn() returns once our
        # end of msg is closed, and a SIGTERM arriving earlier would kill the relay.
        _forward_to(init_pid)
        _send(msg, pid=init_pid)
        os.close(msg)
    except BaseException as exc:
        _report_and_exit(msg, exc)
    _relay(init_pid)


def _await(fd: int) -> None:
    if os.read(fd, 1) != b"g":
        os._exit(1)  # the parent gave up on us


def _forward_to(child: int) -> None:
    """Pass the signals a container should get on to ``child``."""
    for signum in FORWARDED_SIGNALS:
        signal.signal(signum, lambda s, _f: _kill_quietly(child, s))


def _relay(child: int) -> NoReturn:
    """Leave with PID 1's status (signals are already forwarded to it)."""
    _, status = os.waitpid(child, 0)
    _exit_like(status)


def _kill_quietly(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _exit_like(status: int) -> NoReturn:
    """Exit with the status of a child: same code, or 128 + signal (as a shell does)."""
    os._exit(exit_status(status))


def _become_root() -> None:
    """Take uid/gid 0 of the new user namespace, whose maps the parent has written.

    Done in A before B is forked, so PID 1 is root of the namespace from the start (and
    the kernel lets only a mapped uid mount an overlay there). Changing the effective
    uid clears the parent-death signal and makes the process non-dumpable, which hands
    /proc/self to the host's root (prctl(2)): set both again. Until now A was the host's
    uid 0 (unmapped inside, shown as 65534): that is when to open anything under the
    host's root-owned 0700 directories (see Hooks.in_namespaces).
    """
    os.setresgid(0, 0, 0)
    os.setresuid(0, 0, 0)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    linux.prctl(linux.PR_SET_DUMPABLE, 1)


def _container_init(
    argv: Sequence[str], hooks: Hooks, env: dict[str, str], cwd: str, init: bool,
    go: int, msg: int, cgroupns: int,
) -> NoReturn:
    """Process B, PID 1 of the new PID namespace: prepare, then exec or supervise."""
    try:
        # Our parent is A; if A is killed (because `contain` was), so are we, and
        # when PID 1 dies the kernel kills every process in its namespace.
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
        if hooks.prepare:
            hooks.prepare()
        try:
            os.chdir(cwd)
        except OSError as exc:
            raise ChildError(f"working directory {cwd!r} in the container: {exc.strerror} "
                             "(create it in the image or choose another with -w)") from None
        _await(go)  # the parent has finished its `started` hook: we are in our cgroup
        if cgroupns:
            linux.unshare(cgroupns)
        _close_inherited_fds(keep=msg)
        if not init:
            _exec(argv, env)  # msg closes here (O_CLOEXEC)
        child = _exec_child(argv, env, msg)
    except BaseException as exc:
        _report_and_exit(msg, exc)
    _forward_to(child)  # before msg closes: a PID 1 without handlers ignores SIGTERM
    os.close(msg)
    _reap_until(child)


def _close_inherited_fds(keep: int) -> None:
    """Close every file descriptor but stdin, stdout, stderr and ``keep``.

    Whoever started `contain` may have left fds open (a shell's ``exec 7</``, a test
    harness's pipes). An fd to a host directory is a way out of the container:
    ``/proc/self/fd/7/etc/shadow`` reaches the host's file whatever our root is (runc's
    CVE-2024-21626 was this bug). ``keep`` is the error pipe, closed by exec itself.
    """
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _exec_child(argv: Sequence[str], env: dict[str, str], msg: int) -> int:
    """Fork the command as PID 2 and wait until its exec succeeded or failed."""
    check_read, check_write = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(check_read)
        os.setsid()  # its own session, as the foreground process of the container
        try:
            _exec(argv, env)
        except BaseException as exc:
            _report_and_exit(check_write, exc)
    os.close(check_write)
    with os.fdopen(check_read, "rb") as check:
        failure = check.read()
    if failure:  # pass the child's error on to the parent unchanged
        os.write(msg, failure)
        os._exit(json.loads(failure).get("code", 125))
    return child


def _reap_until(child: int) -> NoReturn:
    """The init's loop: reap every zombie until the command itself exits.

    Orphans in the namespace are re-parented to PID 1, which must wait() for them or
    they stay zombies forever. PID 1 ignores signals it has no handler for (even
    SIGTERM), which is why this init has handlers that pass them on (installed by the
    caller, before the parent is told the container started).
    """
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            _exit_like(status)
