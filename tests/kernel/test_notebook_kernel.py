"""A live Jupyter kernel keeps its namespaces, root and cgroup while chapters' code runs in it."""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyter_client  # in the venv (vm/provision.sh): a missing one is a failure, not a skip
import pytest

REPO = Path(__file__).resolve().parents[2]
NAMESPACES = ("mnt", "uts", "ipc", "net", "pid", "user", "cgroup", "time")

CHAPTER_1 = """
import os
from contain import linux, process, rootfs

def pivot_and_escape(root):
    linux.unshare(linux.CLONE_NEWNS | linux.CLONE_NEWUTS)
    linux.sethostname("inside")
    rootfs.pivot_into(root)
    rootfs.break_out_of_chroot()
    return os.path.exists("/etc/os-release"), os.uname().nodename

print(process.call_in_child(pivot_and_escape, ROOT), process.thread_count() > 1)
"""


@pytest.fixture
def kernel() -> Iterator[tuple[Any, Any]]:
    manager = jupyter_client.KernelManager(kernel_name="python3")
    manager.start_kernel(cwd=str(REPO))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        yield manager, client
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def execute(client: Any, code: str) -> str:
    """Run code in the kernel; return its stdout, fail on an error."""
    msg_id = client.execute(code)
    out = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=60)
        except queue.Empty:
            raise AssertionError("the kernel did not answer") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        kind, content = msg["msg_type"], msg["content"]
        if kind == "stream":
            out.append(content["text"])
        elif kind == "error":
            raise AssertionError("\n".join(content["traceback"]))
        elif kind == "status" and content["execution_state"] == "idle":
            return "".join(out)


def test_kernel_namespaces_unchanged_by_chapter_1(kernel: tuple[Any, Any], tmp_path: Path,
                                                  no_new_mounts: None) -> None:
    from contain import rootfs

    manager, client = kernel
    pid = manager.provisioner.process.pid
    root = rootfs.build_busybox(tmp_path / "root")
    execute(client, "import os; print(os.getpid())")  # the kernel is up and running code
    before = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}
    root_before = os.readlink(f"/proc/{pid}/root")
    output = execute(client, f"ROOT = {str(root)!r}\n" + CHAPTER_1)
    assert output == "(False, 'inside') True\n"  # pivoted, no escape; kernel multi-threaded
    after = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}
    assert after == before
    assert os.readlink(f"/proc/{pid}/root") == root_before == "/"
    assert execute(client, "print(os.uname().nodename)") == os.uname().nodename + "\n"


CHAPTERS_2_TO_4 = """
import contain
from contain import linux, process

def every_namespace():
    flags = 0
    for flag in (linux.CLONE_NEWUSER, linux.CLONE_NEWNS, linux.CLONE_NEWUTS, linux.CLONE_NEWIPC,
                 linux.CLONE_NEWNET, linux.CLONE_NEWCGROUP, linux.CLONE_NEWPID,
                 linux.CLONE_NEWTIME):
        flags |= flag
    linux.unshare(flags)  # EINVAL in a multi-threaded process: fine in a forked child
    return os.getpid() > 0

print(process.call_in_child(every_namespace))
done = contain.run(["/bin/sh", "-c", "hostname; echo $$"], hostname="box", rm=True,
                   memory="64m", userns=True)
print(done.returncode, done.stdout.split())
"""


def test_kernel_unchanged_by_chapters_2_to_4(kernel: tuple[Any, Any],
                                            contain_env: dict[str, str]) -> None:
    manager, client = kernel
    pid = manager.provisioner.process.pid
    execute(client, "import os")
    before = {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES}
    cgroup_before = Path(f"/proc/{pid}/cgroup").read_text()
    env = {k: contain_env[k] for k in ("CONTAIN_ROOT", "CONTAIN_STATE")}
    output = execute(client, f"os.environ.update({env!r})\n" + CHAPTERS_2_TO_4)
    assert output == "True\n0 ['box', '1']\n"
    assert {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in NAMESPACES} == before
    assert Path(f"/proc/{pid}/cgroup").read_text() == cgroup_before
    assert os.readlink(f"/proc/{pid}/root") == "/"
