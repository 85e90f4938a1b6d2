"""Chapter 2's exercises: which namespaces two processes share, and uid maps.

Both checks ask the kernel for the right answer: real processes in real namespaces for
"02.shared", and a real user namespace with the learner's map for "02.idmap".
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from typing import Any

from contain.lab.exercises import exercise
from contain.namespaces import IdMap, Namespace, identities, parse_id_maps


def _names(kinds: Any) -> set[str]:
    """Accept a set of Namespace members or of names ('uts')."""
    return {k.value if isinstance(k, Namespace) else str(k) for k in kinds}


@exercise("02.shared", hint="section 1 says when two processes are in the same namespace: "
                            "look at what /proc/PID/ns/KIND of each leads to, kind by kind")
def check_shared(fn: Callable[[int, int], Any]) -> None:
    """Write shared(pid_a, pid_b): the set of namespace kinds two processes share."""
    me = os.getpid()
    got = _names(fn(me, me))
    assert got == {k.value for k in Namespace}, (
        f"a process shares all eight namespaces with itself; you returned {sorted(got)}")
    sleeper = subprocess.Popen(["unshare", "--uts", "--ipc", "--net", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while identities(sleeper.pid)[Namespace.NET] == identities(me)[Namespace.NET]:
            assert time.monotonic() < deadline, "the test process did not start"
            time.sleep(0.01)
        got = _names(fn(me, sleeper.pid))
        expected = {"mnt", "pid", "user", "cgroup", "time"}
        assert got == expected, (f"a process started with `unshare --uts --ipc --net` shares "
                                 f"{sorted(expected)} with us; you returned {sorted(got)}")
    finally:
        sleeper.kill()
        sleeper.wait()


MAPS = "0 100000 1000\n1000 200000 10"
PROBES = (0, 5, 999, 1000, 1009, 1010, 65534)


@exercise("02.idmap", hint="each line maps a range of COUNT ids starting at INSIDE; find the "
                           "line whose range holds uid, then ask how far into it uid is")
def check_idmap(fn: Callable[[int, str], int | None]) -> None:
    """Write to_outside(uid, map_text): a uid inside a user namespace -> the uid outside."""
    from contain.lab.ch02 import kernel_translate

    maps: list[IdMap] = parse_id_maps(MAPS)
    for uid in PROBES:
        expected = kernel_translate(uid, maps)
        got = fn(uid, MAPS)
        assert got == expected, (f"uid {uid} inside with the map {MAPS!r}: the kernel says "
                                 f"{expected} outside, you returned {got!r}")
