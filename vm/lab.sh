#!/usr/bin/env bash
# vm/lab.sh — one command starts the lab on a Debian 12 / Ubuntu 24.04 machine, as root:
#   sudo bash vm/lab.sh [--ip ADDR] [--port N]
# Provisions the machine (vm/provision.sh --lab: packages, venv, kernel spec, token), then runs
# JupyterLab in the foreground with the course notebooks. Ctrl-C stops it.
# Defaults: --ip 127.0.0.1 (env CONTAIN_LAB_IP), --port 8888 (env CONTAIN_LAB_PORT).
# Listening on anything but 127.0.0.1 exposes a root shell to whoever has the token: think twice.
set -euo pipefail
die() { echo "lab.sh: error: $*" >&2; exit 1; }

IP="${CONTAIN_LAB_IP:-127.0.0.1}"
PORT="${CONTAIN_LAB_PORT:-8888}"
while (( $# )); do
    case "$1" in
        --ip) [[ $# -ge 2 ]] || die "--ip needs an address"; IP=$2; shift 2 ;;
        --ip=*) IP=${1#--ip=}; shift ;;
        --port) [[ $# -ge 2 ]] || die "--port needs a number"; PORT=$2; shift 2 ;;
        --port=*) PORT=${1#--port=}; shift ;;
        -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$1' (use --ip ADDR, --port N or --help)" ;;
    esac
done
if ! [[ $PORT =~ ^[0-9]+$ ]] || (( PORT < 1 || PORT > 65535 )); then die "bad port '$PORT'"; fi
[[ $EUID -eq 0 ]] || die "must run as root (the course needs root): use 'sudo bash ${BASH_SOURCE[0]}'"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CONTAIN_VENV:-/opt/contain/venv}"
ETC="${CONTAIN_ETC:-/etc/contain}"

# CONTAIN_LAB_PORT here means this foreground lab's port, not the service's: don't let it leak.
env -u CONTAIN_LAB_PORT bash "$REPO/vm/provision.sh" --lab

if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
    die "port $PORT is already in use (the contain-lab service? 'systemctl status contain-lab'); pick another with --port"
fi

case "$IP" in 0.0.0.0|::|"") URL_HOST=127.0.0.1 ;; *:*) URL_HOST="[$IP]" ;; *) URL_HOST=$IP ;; esac
url="$(CONTAIN_ETC="$ETC" CONTAIN_LAB_HOST="$URL_HOST" CONTAIN_LAB_PORT="$PORT" bash "$REPO/vm/lab-url")"
cat <<MSG

  contain lab: JupyterLab as root, notebooks in $REPO/notebooks
  open  $url
  stop  Ctrl-C

MSG
cd "$REPO/notebooks"
exec "$VENV/bin/jupyter" lab --config="$ETC/jupyter_lab_config.py" \
    --ip="$IP" --port="$PORT" --ServerApp.root_dir="$REPO/notebooks"
