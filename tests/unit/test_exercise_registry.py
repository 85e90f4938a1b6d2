"""The exercise mechanism itself (no root needed): registry, discovery, verdicts."""

from __future__ import annotations

import importlib

import pytest

from contain.lab.exercises import (
    ExerciseError,
    exercise,
    reference,
    reference_solution,
    registry,
    stub,
    verdict,
)
from contain.process import ChildError

# ``contain.lab.exercises`` as a package attribute is the listing function: take the module.
ex = importlib.import_module("contain.lab.exercises")


@pytest.fixture
def scratch_exercise() -> object:
    """Register a throw-away exercise 99.double and remove it afterwards."""

    @exercise("99.double", hint="multiply by two")
    def check_double(fn):  # type: ignore[no-untyped-def]
        """Write double(x)."""
        if fn(2) != 4:  # not `assert`: pytest would rewrite its message
            raise AssertionError(f"double(2) gave {fn(2)!r}")

    @reference("99.double")
    def double(x: int) -> int:
        return 2 * x

    yield check_double
    ex._EXERCISES.pop("99.double", None)
    ex._SOLUTIONS.pop("99.double", None)


def test_chapter_modules_are_discovered() -> None:
    names = set(registry())
    assert {"00.cgroup-version", "01.pivot", "01.mountinfo", "01.static"} <= names


def test_every_exercise_has_a_reference_solution_and_a_hint() -> None:
    for name, exercise_ in registry().items():
        assert callable(reference_solution(name)), name
        assert exercise_.hint.strip(), name
        assert exercise_.title.strip(), name


def test_verdicts(scratch_exercise: object, capsys: pytest.CaptureFixture[str]) -> None:
    assert verdict("99.double", lambda x: 2 * x) == ("passed", "[99.double] ✅ passed")
    status, line = verdict("99.double", lambda x: x + 1)
    assert status == "failed"
    assert line == "[99.double] ❌ failed: double(2) gave 3 — hint: multiply by two"
    not_yet = ("[99.double] ⏳ not attempted yet: write your function above and run this "
               "cell again (stuck? lab.hint('99.double'))")
    assert verdict("99.double", stub) == ("not-attempted", not_yet)
    assert ex.check("99.double", lambda x: 2 * x) is True
    assert ex.check("99.double", stub) is False
    assert capsys.readouterr().out.splitlines() == ["[99.double] ✅ passed", not_yet]


def test_an_exception_is_a_failure_with_its_type(scratch_exercise: object) -> None:
    status, line = verdict("99.double", lambda x: {}[x])
    assert status == "failed" and "KeyError: 2" in line


def test_not_implemented_from_a_child_counts_as_not_attempted(scratch_exercise: object) -> None:
    def from_child(x: int) -> int:
        raise ChildError("your turn", "NotImplementedError")

    assert verdict("99.double", from_child)[0] == "not-attempted"


def test_bad_names_and_duplicates_are_refused(scratch_exercise: object) -> None:
    with pytest.raises(ExerciseError, match="NN.short-name"):
        exercise("pivot", hint="x")
    with pytest.raises(ExerciseError, match="registered twice"):
        exercise("99.double", hint="x")(lambda fn: None)
    with pytest.raises(ExerciseError, match="no exercise named"):
        ex.check("99.nope", stub)


def test_lab_package_binds_the_functions_not_the_modules() -> None:
    import contain.lab.reset  # noqa: F401
    import contain.lab.show  # noqa: F401
    from contain import lab

    assert callable(lab.show) and lab.show.__module__ == "contain.lab.show"
    assert callable(lab.reset) and callable(lab.exercises) and callable(lab.sh)
