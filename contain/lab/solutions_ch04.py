"""Reference solutions for chapter 4 (try the exercises first!)."""

from __future__ import annotations

from contain.lab.exercises import reference


@reference("04.lowerdir")
def overlay_options(layers: list[str], upper: str, work: str) -> str:
    # Layers come base first (the order they were built); overlay wants the top first.
    lower = ":".join(reversed(layers))
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


@reference("04.whiteout-name")
def layer_entry(change: str) -> str:
    kind, _, path = change.rpartition(" ")
    path = path.strip("/")  # tar entry names are relative to the layer's root
    if kind == "replaced directory":
        # The opaque marker sits INSIDE the directory: hide everything below it.
        return f"{path}/.wh..wh..opq"
    # A whiteout sits next to the deleted name, in the same directory.
    head, _, name = path.rpartition("/")
    return f"{head}/.wh.{name}" if head else f".wh.{name}"
