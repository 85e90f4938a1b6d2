"""contain: a container runtime built chapter by chapter.

Submodules are imported on first use, so ``import contain`` (and the ``contain``
command) stay fast.
"""

from __future__ import annotations

__version__ = "0.1.0"
