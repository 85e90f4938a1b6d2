"""Reference solutions for chapter 4 (try the exercises first!)."""

from __future__ import annotations

from contain.lab.exercises import reference


@reference("04.lowerdir")
def overlay_options(layers: list[str], upper: str, work: str) -> str:
    # Layers come base first (the order they were built); overlay wants the top first.
    lower = ":".join(reversed(layers))
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


@reference("04.whiteout-name")
def whiteout_entry(path: str) -> str:
    head, _, name = path.strip("/").rpartition("/")
    return f"{head}/.wh.{name}" if head else f".wh.{name}"
