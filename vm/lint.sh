#!/usr/bin/env bash
# vm/lint.sh — the linters, kept out of the test command:
#   bash vm/lint.sh        ruff check (contain, tests, bench) and mypy (strict, settings in pyproject.toml)
# Uses the venv from vm/provision.sh (provisions it first when run as root and it is missing).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CONTAIN_VENV:-/opt/contain/venv}"
if [[ ! -x $VENV/bin/ruff || ! -x $VENV/bin/mypy ]]; then
    if [[ $EUID -eq 0 ]]; then
        bash "$REPO/vm/provision.sh"
    else
        echo "lint.sh: error: no ruff/mypy in $VENV: run 'sudo bash vm/provision.sh' first" >&2
        exit 1
    fi
fi
cd "$REPO"
paths=()
for d in contain tests bench; do [[ -d $d ]] && paths+=("$d"); done
rc=0
echo "lint.sh: ruff check ${paths[*]}"
"$VENV/bin/ruff" check "${paths[@]}" || rc=1
echo "lint.sh: mypy"
"$VENV/bin/mypy" || rc=1
if (( rc == 0 )); then echo "lint.sh: clean"; else echo "lint.sh: FAILED"; fi
exit "$rc"
