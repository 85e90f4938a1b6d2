#!/usr/bin/env bash
# vm/test.sh — one command runs every test, as root:
#   sudo bash vm/test.sh [extra pytest arguments…]
# Provisions the machine with the test tools (vm/provision.sh --test), then runs ONE pytest over
# tests/ (unit, kernel, vm tiers) and notebooks/ (nbval) with the venv's python.
# Exits with pytest's status; "no tests collected" (pytest exit 5) is a failure too.
set -euo pipefail
[[ $EUID -eq 0 ]] || { echo "test.sh: error: must run as root (kernel tests need it): use 'sudo bash ${BASH_SOURCE[0]}'" >&2; exit 1; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CONTAIN_VENV:-/opt/contain/venv}"

bash "$REPO/vm/provision.sh" --test

cd "$REPO"
args=(tests)
[[ -d notebooks ]] && args+=(notebooks)
args+=(--nbval)
if [[ -f tests/nbval_sanitize.cfg ]]; then
    args+=(--nbval-sanitize-with tests/nbval_sanitize.cfg)
fi
echo
echo "test.sh: $VENV/bin/python -m pytest ${args[*]}${*:+ $*}"
set +e
"$VENV/bin/python" -m pytest "${args[@]}" "$@"
rc=$?
set -e
case $rc in
    0) echo "test.sh: all tests passed" ;;
    5) echo "test.sh: FAILED: pytest collected no tests (exit 5)" ;;
    *) echo "test.sh: FAILED: pytest exited with status $rc" ;;
esac
exit "$rc"
