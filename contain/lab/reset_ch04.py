"""Chapter 4's part of ``lab.reset()``: containers whose ``contain`` process is gone.

Their writable layers (and cgroups) are removed by ``contain cleanup``; a container
whose ``contain`` still runs is never touched.
"""

from __future__ import annotations


def reset() -> list[str]:
    from contain.runtime import state

    return [f"removed container {cid} (its writable layer and cgroup)"
            for cid in state.cleanup()]
