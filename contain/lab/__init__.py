"""contain.lab: helpers for the course's notebooks.

    from contain import lab
    lab.show(contain.rootfs.pivot_into)   # the source of a package function
    lab.sh("contain run /bin/hostname")   # a shell command, printed
    lab.popen("run", "/bin/cat", stdin=PIPE)  # contain in the background
    lab.check("01.pivot", my_pivot)       # an exercise check: prints a verdict
    lab.hint("01.pivot")                  # a nudge
    lab.solution("01.pivot")              # the reference solution
    lab.exercises()                       # every exercise of the course
    lab.workdir("ch01")                   # a fresh /tmp/contain-lab-ch01
    lab.reset()                           # remove what the notebooks made
    lab.preflight.run()                   # is this machine ready for the course?

Nothing here is imported by ``contain run``. The functions named like their modules
(show, reset, exercises) are bound eagerly below, because importing a submodule sets
the package attribute of the same name to the module; these modules only import the
standard library at load time (IPython is imported when a notebook displays).
"""

from __future__ import annotations

import importlib
from typing import Any

from contain.lab.exercises import check, exercises, hint, solution
from contain.lab.reset import reset
from contain.lab.show import show

__all__ = ["check", "exercises", "hint", "preflight", "reset", "popen", "sh", "show", "solution",
           "workdir"]

_LAZY = {
    "sh": ("contain.lab.shell", "sh"),
    "popen": ("contain.lab.shell", "popen"),
    "preflight": ("contain.lab.preflight", None),
    "workdir": ("contain.lab.reset", "workdir"),
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'contain.lab' has no attribute {name!r}")
    module_name, attr = _LAZY[name]
    module = importlib.import_module(module_name)
    value = module if attr is None else getattr(module, attr)
    globals()[name] = value
    return value
