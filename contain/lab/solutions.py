"""Reference solutions for the exercises of chapters 0 and 1.

Each is registered with ``@reference("NN.name")`` and shown by ``lab.solution(...)``.
Later chapters put theirs in ``solutions_chNN.py`` (see contain/lab/exercises.py).
"""

from __future__ import annotations
