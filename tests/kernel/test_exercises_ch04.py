"""Chapter 4's exercise checks reject plausible wrong answers (reference/stub: test_exercises)."""

from __future__ import annotations

from contain.lab.exercises import reference_solution, stub, verdict


def test_lowerdir_in_build_order_fails() -> None:
    def base_first(layers: list[str], upper: str, work: str) -> str:
        return f"lowerdir={':'.join(layers)},upperdir={upper},workdir={work}"

    status, line = verdict("04.lowerdir", base_first)
    assert status == "failed" and "must win" in line
    assert verdict("04.lowerdir", reference_solution("04.lowerdir"))[0] == "passed"
    assert verdict("04.lowerdir", stub)[0] == "not-attempted"


def test_lowerdir_without_upper_fails() -> None:
    status, _ = verdict("04.lowerdir", lambda layers, u, w: "lowerdir=" + ":".join(layers[::-1]))
    assert status == "failed"


def test_whiteout_in_front_of_the_whole_path_fails() -> None:
    status, line = verdict("04.whiteout-name", lambda change: ".wh." + change.split()[-1])
    assert status == "failed" and "expected 'etc/.wh.motd'" in line
    assert verdict("04.whiteout-name", reference_solution("04.whiteout-name"))[0] == "passed"
    assert verdict("04.whiteout-name", stub)[0] == "not-attempted"


def whiteouts_only(change: str) -> str:
    """Right for deletions, but a replaced directory gets a whiteout, not an opaque marker."""
    head, _, name = change.split()[-1].strip("/").rpartition("/")
    return f"{head}/.wh.{name}" if head else f".wh.{name}"


def test_replaced_directory_as_a_whiteout_fails() -> None:
    status, line = verdict("04.whiteout-name", whiteouts_only)
    assert status == "failed" and "expected 'data/.wh..wh..opq'" in line


def test_absolute_entry_names_fail() -> None:
    def keeps_the_slash(change: str) -> str:
        path = change.split()[-1]
        if change.startswith("replaced"):
            return f"{path}/.wh..wh..opq"
        head, _, name = path.rpartition("/")
        return f"{head}/.wh.{name}" if head else f".wh.{name}"

    status, line = verdict("04.whiteout-name", keeps_the_slash)
    assert status == "failed" and "'/bin/.wh.ls'" in line
