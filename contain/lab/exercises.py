"""Exercises: the learner writes a function, a check runs real assertions against it.

One mechanism for every chapter:

* A notebook has an exercise cell with a stub the learner edits (its body is
  ``raise NotImplementedError("your turn")``) and a check cell
  ``passed = lab.check("01.pivot", my_pivot)`` (assign the result: a bare call would
  add an ``Out[]`` value, and nbval ignores a trailing ``;``).
* :func:`check` runs the registered check and PRINTS a deterministic verdict instead
  of raising, so a notebook always runs top to bottom (CI runs the committed stub)::

      [01.pivot] ✅ passed
      [01.pivot] ❌ failed: <why> — hint: <hint>
      [01.pivot] ⏳ not attempted yet: write your function above and run this cell again
                 (stuck? lab.hint("01.pivot"))

  It returns ``True`` only when the check passed. Nothing later in a notebook may
  depend on an exercise's result. The hint appears after a wrong answer, not before
  the first try (the committed notebooks show the stubs' output on GitHub).
* :func:`hint` prints an exercise's hint; :func:`solution` shows the reference
  solution's source; :func:`exercises` lists them.

How a chapter adds its exercises (no shared file to edit):

1. Create ``contain/lab/exercises_chNN.py`` (NN = two-digit chapter number). In it::

       from contain.lab.exercises import exercise

       @exercise("02.hostname", hint="sethostname only changes the caller's UTS namespace")
       def check_hostname(fn: Callable[[str], str]) -> None:
           \"\"\"One-line title shown by lab.exercises().\"\"\"
           got = contain.process.call_in_child(...)   # real work in a child
           assert got == ..., "what went wrong, in words a learner understands"

   A check takes the learner's function and returns ``None`` when it is right; it
   raises ``AssertionError("why")`` (or any exception) when it is not. Do namespace
   work in a child (``contain.process.call_in_child``), never in the notebook kernel,
   and clean up whatever the check creates, also when it fails.
2. Put the reference solutions in ``contain/lab/solutions_chNN.py``::

       from contain.lab.exercises import reference

       @reference("02.hostname")
       def hostname_in_new_uts(name: str) -> str:
           ...

3. Test them in ``tests/unit/test_exercises.py`` style: every registered exercise is
   checked there automatically (reference passes, stub fails); add plausible wrong
   answers in your own ``tests/*/test_exercises_chNN.py``.

Discovery is lazy: the first call to :func:`check`, :func:`solution`, :func:`exercises`
or :func:`registry` imports every ``exercises_ch*.py`` and ``solutions_ch*.py`` module
found next to this file (plus ``solutions.py``, chapters 0-1), in name order. A module
that fails to import is reported by name, never silently skipped. Exercise names are
``"NN.short-name"`` and unique; registering a name twice is an error.

Import from this module by its full name (``from contain.lab.exercises import exercise``):
``contain.lab.exercises`` as an attribute of the package is the listing function.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

NAME = re.compile(r"^\d\d\.[a-z0-9][a-z0-9-]*$")
MAX_WHY = 400  # characters of the failure reason shown in a verdict


@dataclass(frozen=True)
class Exercise:
    """A registered exercise: its name, a hint, and the check that judges an answer."""

    name: str
    hint: str
    check: Callable[[Callable[..., Any]], None]
    title: str


_EXERCISES: dict[str, Exercise] = {}
_SOLUTIONS: dict[str, Callable[..., Any]] = {}
_loaded = False


class ExerciseError(LookupError):
    """An unknown exercise name, a duplicate, or a chapter module that does not import."""


def exercise(name: str, *, hint: str, title: str | None = None) -> Callable[[F], F]:
    """Register ``check_fn(learner_fn) -> None`` as the check of exercise ``name``."""
    if not NAME.match(name):
        raise ExerciseError(f"exercise name {name!r}: use 'NN.short-name', e.g. '01.pivot'")

    def register(check_fn: F) -> F:
        if name in _EXERCISES and _EXERCISES[name].check is not check_fn:
            raise ExerciseError(f"exercise {name!r} is registered twice")
        doc = (check_fn.__doc__ or name).strip().splitlines()[0]
        _EXERCISES[name] = Exercise(name, hint, check_fn, title or doc)
        return check_fn

    return register


def reference(name: str) -> Callable[[F], F]:
    """Register a function as the reference solution of exercise ``name``."""

    def register(fn: F) -> F:
        if name in _SOLUTIONS and _SOLUTIONS[name] is not fn:
            raise ExerciseError(f"a reference solution for {name!r} is registered twice")
        _SOLUTIONS[name] = fn
        return fn

    return register


def _chapter_modules() -> list[str]:
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("exercises_ch*.py"))
    names += ["solutions"] + sorted(p.stem for p in here.glob("solutions_ch*.py"))
    return [f"contain.lab.{name}" for name in names]


def load_all() -> None:
    """Import every chapter's exercise and solution module (once)."""
    global _loaded
    if _loaded:
        return
    for module in _chapter_modules():
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise ExerciseError(f"{module} does not import: {type(exc).__name__}: {exc}") from exc
    _loaded = True


def registry() -> dict[str, Exercise]:
    """Every registered exercise, by name, in name order."""
    load_all()
    return dict(sorted(_EXERCISES.items()))


def get(name: str) -> Exercise:
    exercises_ = registry()
    if name not in exercises_:
        raise ExerciseError(f"no exercise named {name!r}; known: {', '.join(exercises_)}")
    return exercises_[name]


def reference_solution(name: str) -> Callable[..., Any]:
    """The reference solution of ``name`` as a function (for tests)."""
    get(name)
    if name not in _SOLUTIONS:
        raise ExerciseError(f"exercise {name!r} has no reference solution yet")
    return _SOLUTIONS[name]


def stub(*_args: Any, **_kwargs: Any) -> Any:
    """What every exercise cell starts as."""
    raise NotImplementedError("your turn")


# --- verdicts ----------------------------------------------------------------------------
def _not_attempted(exc: BaseException) -> bool:
    """NotImplementedError anywhere in the chain, also when it came back from a child."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, NotImplementedError):
            return True
        if getattr(seen, "kind", None) == "NotImplementedError":  # process.ChildError
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _why(exc: BaseException) -> str:
    kind = getattr(exc, "kind", None) or type(exc).__name__
    text = " ".join(str(exc).split())
    if isinstance(exc, AssertionError) and text:
        why = text
    elif text:
        why = f"{kind}: {text}"
    else:
        why = f"{kind} (an assertion without a message)"
    return why if len(why) <= MAX_WHY else why[: MAX_WHY - 1] + "…"


def verdict(name: str, fn: Callable[..., Any]) -> tuple[str, str]:
    """Run the check; return ``(status, line)`` with status passed/failed/not-attempted."""
    ex = get(name)
    try:
        ex.check(fn)
    except Exception as exc:
        if _not_attempted(exc):
            return "not-attempted", (f"[{name}] ⏳ not attempted yet: write your function above "
                                     f"and run this cell again (stuck? lab.hint({name!r}))")
        return "failed", f"[{name}] ❌ failed: {_why(exc)} — hint: {ex.hint}"
    return "passed", f"[{name}] ✅ passed"


def check(name: str, fn: Callable[..., Any]) -> bool:
    """Check the learner's ``fn`` for exercise ``name``; print the verdict, return passed."""
    status, line = verdict(name, fn)
    print(line)
    return status == "passed"


def hint(name: str) -> None:
    """Print the hint of exercise ``name``."""
    print(f"[{name}] hint: {get(name).hint}")


def solution(name: str) -> None:
    """Show the reference solution of exercise ``name`` (try it yourself first!)."""
    from contain.lab.show import show

    show(reference_solution(name))


def exercises(chapter: str = "") -> list[Exercise]:
    """Print and return the course's exercises (``chapter="01"``: only that chapter's)."""
    found = [ex for ex in registry().values() if ex.name.startswith(chapter)]
    for ex in found:
        print(f"{ex.name:<22} {ex.title}")
    return found
