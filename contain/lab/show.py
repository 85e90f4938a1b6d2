"""Show the source of a package function, class or module in a notebook.

Notebooks never paste package code into cells: they show the real thing, so what a
learner reads is what runs. The header names the object by module and qualified name
only (no file paths or line numbers), so the output is the same on every machine.
"""

from __future__ import annotations

import inspect
import sys
import textwrap
import types
from typing import Any


def _in_ipython() -> bool:
    ipython = sys.modules.get("IPython")
    return ipython is not None and ipython.get_ipython() is not None


def name_of(obj: Any) -> str:
    """``contain.rootfs.pivot_into``: the module and qualified name of ``obj``."""
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    target = inspect.unwrap(obj)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}.{getattr(target, '__qualname__', getattr(target, '__name__', '?'))}"


def source_of(obj: Any) -> str:
    """The source text of ``obj`` (decorators included), dedented."""
    target = obj if isinstance(obj, types.ModuleType) else inspect.unwrap(obj)
    try:
        return textwrap.dedent(inspect.getsource(target)).rstrip() + "\n"
    except (OSError, TypeError) as exc:
        raise TypeError(f"cannot show {name_of(obj)}: no Python source ({exc})") from None


def show(obj: Any) -> None:
    """Display the source of ``obj``: highlighted in a notebook, plain text elsewhere."""
    title = name_of(obj)
    source = source_of(obj)
    if _in_ipython():
        from IPython.display import Markdown, display

        display(Markdown(f"`{title}`\n\n```python\n{source}```"))  # type: ignore[no-untyped-call]
    else:
        print(f"# {title}\n{source}", end="")
