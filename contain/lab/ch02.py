"""Chapter 2's notebook helpers: small demonstrations, detached containers, the explorer.

Every demonstration does its namespace work in a fresh child (``call_in_child``) or in
a container started by the ``contain`` CLI, so the notebook kernel keeps its own
namespaces. Containers started here are stopped and reaped by :class:`Detached`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from contain import linux, namespaces
from contain.namespaces import IdMap, Namespace
from contain.process import call_in_child

IPC_CREAT = 0o1000
IPC_RMID = 0


# --- IPC: a System V message queue ----------------------------------------------------------
def _queues() -> set[int]:
    """The keys of the message queues this process's IPC namespace has (proc(5))."""
    with open("/proc/sysvipc/msg") as f:
        return {int(line.split()[0]) for line in list(f)[1:] if line.strip()}


def ipc_queue_demo(key: int = 0x0C0FFEE) -> dict[str, bool]:
    """Make a message queue in a new IPC namespace; who can see it?

    Returns ``{"inside": ..., "host": ...}``: True where the queue's key is listed. The
    queue disappears with the namespace when the child exits: nothing to clean up.
    """
    libc = ctypes.CDLL(None, use_errno=True)

    def inside() -> bool:
        namespaces.unshare([Namespace.IPC])
        if libc.msgget(key, IPC_CREAT | 0o600) < 0:
            raise OSError(ctypes.get_errno(), "msgget failed")
        return key in _queues()

    seen_inside = call_in_child(inside)
    return {"inside": seen_inside, "host": key in _queues()}


# --- cgroup: a process's view of its own cgroup -----------------------------------------------
def cgroup2_mount() -> str:
    """Where the cgroup v2 hierarchy is mounted (unified or hybrid), from mountinfo."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    raise RuntimeError("no cgroup2 hierarchy is mounted")


def cgroup_ns_demo(name: str = "contain-ch02-demo") -> dict[str, str]:
    """The ``0::`` line of /proc/self/cgroup in a scratch cgroup, before and after
    unshare(CLONE_NEWCGROUP). The child moves itself back and the group is removed."""
    group = os.path.join(cgroup2_mount(), name)

    def view() -> str:
        with open("/proc/self/cgroup") as f:
            return next(line for line in f if line.startswith("0::")).strip()[3:]

    def inside() -> dict[str, str]:
        original = view()
        os.makedirs(group, exist_ok=True)
        try:
            with open(os.path.join(group, "cgroup.procs"), "w") as f:
                f.write("0")  # 0 means "the writing process"
            before = view()
            namespaces.unshare([Namespace.CGROUP])
            after = view()
        finally:
            with open(os.path.join(cgroup2_mount() + original, "cgroup.procs"), "w") as f:
                f.write("0")
        return {"host view": before, "inside a cgroup namespace": after}

    try:
        return call_in_child(inside)
    finally:
        if os.path.isdir(group):
            os.rmdir(group)


# --- user namespaces: what the kernel says a uid is outside ---------------------------------------
def kernel_translate(uid: int, maps: Sequence[IdMap]) -> int | None:
    """Ask the kernel: a process that is ``uid`` inside a user namespace with ``maps``
    is which uid outside? (None: the kernel refuses ``uid`` -- it is not mapped.)"""

    def probe() -> int | None:
        ready_r, ready_w = os.pipe()
        go_r, go_w = os.pipe()
        child = os.fork()
        if child == 0:
            os.close(ready_r)
            os.close(go_w)
            linux.unshare(linux.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(go_r, 1)
            try:
                os.setresuid(uid, uid, uid)
                os.write(ready_w, b"y")
            except OSError:
                os.write(ready_w, b"n")
            os.read(go_r, 1)
            os._exit(0)
        os.close(ready_w)
        os.close(go_r)
        try:
            os.read(ready_r, 1)
            namespaces.write_id_maps(child, maps, [IdMap(0, 0, 1)])
            os.write(go_w, b"g")
            mapped = os.read(ready_r, 1) == b"y"
            with open(f"/proc/{child}/status") as f:
                uid_line = next(line for line in f if line.startswith("Uid:"))
            return int(uid_line.split()[1]) if mapped else None
        finally:
            os.write(go_w, b"g")
            os.waitpid(child, 0)

    return call_in_child(probe)


# --- detached containers for the explorer ------------------------------------------------------
class Detached:
    """``contain run --rm --init --pid-file F ... sleep 600`` in the background, as a
    context manager.

    ``pid`` is the container's PID 1 as the host sees it. On exit (also after an error)
    the container gets SIGTERM -- its init forwards it to ``sleep`` -- and is reaped.
    With ``init=False`` PID 1 is ``sleep`` itself, which ignores SIGTERM (it has no
    handler, pid_namespaces(7)), so it is stopped with SIGKILL instead.
    """

    def __init__(self, *options: str, command: Sequence[str] = ("sleep", "600"),
                 init: bool = True) -> None:
        self._dir = tempfile.mkdtemp(prefix="contain-ch02-")
        self.pid_file = Path(self._dir) / "pid"
        self.init = init
        self.argv = [sys.executable, "-m", "contain", "run", "--rm",
                     *(["--init"] if init else []),
                     "--pid-file", str(self.pid_file), *options, *command]
        self.popen: subprocess.Popen[bytes] | None = None
        self.pid = 0

    def __enter__(self) -> Detached:
        self.popen = subprocess.Popen(self.argv, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while not self.pid_file.exists():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                error = self.popen.stderr.read().decode() if self.popen.stderr else ""
                self.stop()
                raise RuntimeError(f"the container did not start: {error.strip()}")
            time.sleep(0.01)
        self.pid = int(self.pid_file.read_text())
        return self

    def wait(self, timeout: float = 10) -> int:
        """Wait for ``contain run`` to exit; its status is the container's (143: SIGTERM)."""
        assert self.popen is not None, "the container was not started"
        return self.popen.wait(timeout=timeout)

    def stop(self) -> int | None:
        code = None
        if self.popen is not None:
            if self.popen.poll() is None:
                if self.init or not self.pid:
                    self.popen.send_signal(signal.SIGTERM)  # contain forwards it to PID 1
                else:
                    self._kill_pid1()
            try:
                code = self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._kill_pid1()  # forced from the host: the whole PID namespace goes
                try:
                    code = self.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.popen.kill()
                    code = self.popen.wait()
            if self.popen.stderr:
                self.popen.stderr.close()
        for path in (self.pid_file, Path(self._dir)):
            try:
                path.rmdir() if path.is_dir() else path.unlink()
            except FileNotFoundError:
                pass
        return code

    def _kill_pid1(self) -> None:
        """SIGKILL the container's PID 1 (an ancestor namespace may; the rest die with it)."""
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


# --- the explorer ----------------------------------------------------------------------
def share_rows(processes: dict[str, int]) -> list[str]:
    """The explorer's table as text: ✔ where a process shares the first one's namespace."""
    kinds = [kind.value for kind in Namespace]
    lines = [f"{'':<14}" + "".join(f"{k:>8}" for k in kinds)]
    for name, row in namespaces.share_table(processes):
        lines.append(f"{name:<14}" + "".join(f"{'✔' if row[Namespace(k)] else '✘':>8}"
                                              for k in kinds))
    return lines


def share_html(processes: dict[str, int]) -> str:
    """The same table as coloured HTML: green shared with the first process, red not."""
    kinds = list(Namespace)
    head = "".join(f"<th style='padding:4px 8px'>{k.value}</th>" for k in kinds)
    rows = []
    for name, row in namespaces.share_table(processes):
        cells = "".join(
            f"<td style='background:{'#c8f7c5' if row[k] else '#f7c5c5'};text-align:center'>"
            f"{'shared' if row[k] else 'own'}</td>" for k in kinds)
        rows.append(f"<tr><th style='text-align:left'>{name}</th>{cells}</tr>")
    return (f"<table><tr><th>compared with {next(iter(processes))}</th>{head}</tr>"
            + "".join(rows) + "</table>")


def explorer(processes: dict[str, int]) -> Any:
    """An ipywidgets explorer: tick processes; the table shows what they share with the
    first one ticked."""
    import ipywidgets as widgets  # type: ignore[import-untyped]

    boxes = {name: widgets.Checkbox(value=True, description=name) for name in processes}
    out = widgets.HTML()

    def redraw(_change: object = None) -> None:
        chosen = {n: processes[n] for n, box in boxes.items() if box.value}
        if len(chosen) < 2:
            out.value = "<i>tick two or more processes</i>"
            return
        try:
            out.value = share_html(chosen)
        except FileNotFoundError:
            out.value = "<i>one of these processes has ended</i>"

    for box in boxes.values():
        box.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(boxes.values())), out])
