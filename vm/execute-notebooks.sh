#!/usr/bin/env bash
# vm/execute-notebooks.sh — re-run notebooks in place so their committed outputs match the code:
#   sudo bash vm/execute-notebooks.sh [notebooks/NN-topic.ipynb …]   (default: all of them)
# Notebooks show package code (contain.lab.show) and real outputs; nbval in the test command
# compares those outputs, so re-run a chapter after changing code it shows or runs.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "execute-notebooks.sh: error: run as root: sudo bash $0" >&2; exit 1; }
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CONTAIN_VENV:-/opt/contain/venv}"
cd "$REPO"
if (($#)); then notebooks=("$@"); else notebooks=(notebooks/[0-9][0-9]-*.ipynb); fi
for nb in "${notebooks[@]}"; do
    echo "execute-notebooks.sh: $nb"
    "$VENV/bin/jupyter" nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.timeout=600 "$nb"
    # Drop the per-cell execution timestamps: they change on every run and bury real diffs.
    "$VENV/bin/python" - "$nb" <<'PY'
import sys, nbformat
nb = nbformat.read(sys.argv[1], as_version=4)
for cell in nb.cells:
    cell.metadata.pop("execution", None)
nbformat.write(nb, sys.argv[1])
PY
done
