#!/usr/bin/env bash
# vm/provision.sh — idempotent set-up of a contain lab machine (Debian 12 / Ubuntu 24.04), as root.
#
#   sudo bash vm/provision.sh            system packages, venv at $CONTAIN_VENV, editable install, kernel spec
#   sudo bash vm/provision.sh --test     … plus the test-only tools (runc, qemu, vagrant)
#   sudo bash vm/provision.sh --lab      … plus the JupyterLab token and config in /etc/contain (used by lab.sh)
#   sudo bash vm/provision.sh --service  … plus --lab and the systemd unit contain-lab.service (used by Vagrant)
#
# Run it as often as you like: a second run installs nothing, touches no network and says so.
# Environment: CONTAIN_VENV (default /opt/contain/venv), CONTAIN_ETC (default /etc/contain),
# CONTAIN_LAB_PORT (default 8888, the port the service listens on), CONTAIN_ALLOW_UNSUPPORTED=1
# (try an unsupported distribution anyway); for tests: CONTAIN_OS_RELEASE (os-release file to
# read), CONTAIN_SYSTEMD_UNIT_DIR (write the unit there and leave systemctl alone).
set -euo pipefail

PROG="provision.sh"
die() { echo "$PROG: error: $*" >&2; exit 1; }
note() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }

WANT_TEST=0 WANT_LAB=0 WANT_SERVICE=0
for arg in "$@"; do
    case "$arg" in
        --test) WANT_TEST=1 ;;
        --lab) WANT_LAB=1 ;;
        --service) WANT_SERVICE=1; WANT_LAB=1 ;;
        -h|--help) sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option '$arg' (use --test, --lab, --service or --help)" ;;
    esac
done

[[ $EUID -eq 0 ]] || die "must run as root: use 'sudo bash ${BASH_SOURCE[0]}${*:+ $*}'"

# The checkout this script lives in: a fresh clone elsewhere re-points the editable install to itself.
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
VENV="${CONTAIN_VENV:-/opt/contain/venv}"
ETC="${CONTAIN_ETC:-/etc/contain}"
LAB_PORT="${CONTAIN_LAB_PORT:-8888}"
SYS_PYTHON=/usr/bin/python3     # the distro's python, never a pyenv/asdf shim on PATH
CHANGES=()
changed() { CHANGES+=("$*"); note "$*"; }

# --- distribution -----------------------------------------------------------------------------
OS_RELEASE="${CONTAIN_OS_RELEASE:-/etc/os-release}"
[[ -r "$OS_RELEASE" ]] || die "cannot read $OS_RELEASE: unsupported system (need Debian 12 or Ubuntu 24.04)"
# shellcheck disable=SC1090
OS_ID="$(. "$OS_RELEASE"; echo "${ID:-unknown}")"
# shellcheck disable=SC1090
OS_VERSION="$(. "$OS_RELEASE"; echo "${VERSION_ID:-unknown}")"
case "$OS_ID:$OS_VERSION" in
    debian:12|ubuntu:24.04) ;;
    *)
        if [[ "${CONTAIN_ALLOW_UNSUPPORTED:-}" == 1 ]]; then
            warn "unsupported distribution $OS_ID $OS_VERSION: trying anyway (CONTAIN_ALLOW_UNSUPPORTED=1)"
        else
            die "unsupported distribution '$OS_ID $OS_VERSION': need Debian 12 or Ubuntu 24.04 (or use Vagrant, see README)"
        fi ;;
esac
ARCH="$(dpkg --print-architecture)"

# --- system packages --------------------------------------------------------------------------
PACKAGES=(python3-venv python3-dev libffi-dev busybox-static iproute2 nftables e2fsprogs procps psmisc)
if [[ $WANT_TEST == 1 ]]; then
    PACKAGES+=(runc vagrant)          # runc: benchmark referee; vagrant: `vagrant validate` offline
    if [[ $ARCH == amd64 ]]; then
        # The vm test tier boots Debian's kernel under QEMU's software emulation; it fetches the
        # kernel itself with `apt-get download linux-image-amd64` (zstd: for compressed modules).
        PACKAGES+=(qemu-system-x86 zstd)
    else
        note "architecture $ARCH: skipping qemu-system-x86 (the vm test tier runs on x86_64 hosts only)"
    fi
fi

is_installed() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == "ii "* ]]; }
MISSING=()
for pkg in "${PACKAGES[@]}"; do is_installed "$pkg" || MISSING+=("$pkg"); done
APT_UPDATED=0
apt_update() {
    (( APT_UPDATED )) && return 0
    apt-get update -qq || die "apt-get update failed (network? proxy?)"
    APT_UPDATED=1
}
# The vm tier resolves and downloads linux-image-amd64 through apt: it needs package lists.
if [[ $WANT_TEST == 1 && $ARCH == amd64 ]] && ! compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; then
    apt_update
    changed "apt: refreshed the package lists (the vm test tier downloads linux-image-amd64)"
fi
if (( ${#MISSING[@]} )); then
    export DEBIAN_FRONTEND=noninteractive
    note "installing ${MISSING[*]}"
    apt_update
    INSTALL=()
    for pkg in "${MISSING[@]}"; do
        if [[ -n "$(apt-cache policy "$pkg" 2>/dev/null | awk '/Candidate:/ && $2 != "(none)" {print $2}')" ]]; then
            INSTALL+=("$pkg")
        elif [[ $WANT_TEST == 1 && $pkg =~ ^(vagrant|runc|qemu-system-x86|zstd)$ ]]; then
            warn "package $pkg is not available on $OS_ID $OS_VERSION: the tests that need it will fail"
        else
            die "package $pkg is not available from apt on $OS_ID $OS_VERSION"
        fi
    done
    if (( ${#INSTALL[@]} )); then
        apt-get install -y -qq --no-install-recommends "${INSTALL[@]}" >/dev/null \
            || die "apt-get install ${INSTALL[*]} failed"
        changed "apt: installed ${INSTALL[*]}"
    fi
fi

# --- the venv ---------------------------------------------------------------------------------
[[ -x $SYS_PYTHON ]] || die "$SYS_PYTHON not found (python3 should come with python3-venv)"
SYS_PYVER="$("$SYS_PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
venv_ok() {
    [[ -x "$VENV/bin/python" ]] || return 1
    local v
    v="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || return 1
    [[ $v == "$SYS_PYVER" ]] || return 1
    # created from the distro python, not from some other interpreter
    grep -qE "^home = /usr/bin/?$" "$VENV/pyvenv.cfg" 2>/dev/null
}
if ! venv_ok; then
    if [[ -e $VENV ]]; then
        note "venv $VENV is broken or not from $SYS_PYTHON $SYS_PYVER: recreating it"
        rm -rf "$VENV"
    fi
    mkdir -p "$(dirname "$VENV")"
    "$SYS_PYTHON" -m venv --upgrade-deps "$VENV" >/dev/null || die "could not create the venv $VENV"
    changed "venv: created $VENV with $SYS_PYTHON ($SYS_PYVER)"
fi

# --- the editable install (pip only when pyproject.toml, the checkout or python changed) -------
STAMP="$VENV/.contain-provision-stamp"
[[ -f "$REPO/pyproject.toml" ]] || die "$REPO/pyproject.toml not found: is $REPO a contain checkout?"
# editable_mode=compat: a plain .pth path entry. The default "strict" mode installs an import
# hook that costs ~10 ms at every start of `contain` and can make `contain` a namespace package.
want_stamp="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) repo=$REPO python=$SYS_PYVER mode=compat"
installed_from() {  # the directory `import contain` resolves to, without executing the package
    (cd / && "$VENV/bin/python" -c 'import importlib.util as u; s = u.find_spec("contain")
print(list(s.submodule_search_locations or [""])[0] if s else "")' 2>/dev/null)
}
if [[ "$(cat "$STAMP" 2>/dev/null)" == "$want_stamp" && -x "$VENV/bin/contain" \
      && "$(installed_from)" == "$REPO/contain" ]]; then
    note "pip: up to date (pyproject.toml unchanged, contain is installed from $REPO)"
else
    note "pip: installing -e ${REPO}[dev] into $VENV"
    rm -f "$STAMP"
    PIP_LOG="$VENV/.contain-pip.log"
    if ! PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
        "$VENV/bin/python" -m pip install --config-settings editable_mode=compat \
        --editable "${REPO}[dev]" > "$PIP_LOG" 2>&1; then
        tail -n 25 "$PIP_LOG" >&2
        die "pip install -e ${REPO}[dev] failed (full log: $PIP_LOG)"
    fi
    [[ "$(installed_from)" == "$REPO/contain" ]] \
        || die "after pip install, 'contain' does not resolve to $REPO/contain"
    echo "$want_stamp" > "$STAMP"
    changed "pip: installed -e ${REPO}[dev] (stamp $STAMP)"
fi
# Byte-compile the package: with PYTHONDONTWRITEBYTECODE set (as on some machines) every start
# of `contain` would otherwise recompile its modules. Only changed files are rewritten.
"$VENV/bin/python" -m compileall -q "$REPO/contain" >/dev/null || die "compileall $REPO/contain failed"

# --- the Jupyter kernel spec (in the venv, so JupyterLab runs notebooks with the venv python) ---
KERNEL_JSON="$VENV/share/jupyter/kernels/contain/kernel.json"
kernel_ok() {
    "$VENV/bin/python" - "$KERNEL_JSON" "$VENV/bin/python" <<'EOF' 2>/dev/null
import json, sys
spec = json.load(open(sys.argv[1]))
sys.exit(0 if spec["argv"][0] == sys.argv[2] and spec["display_name"] == "Python 3 (contain, root)" else 1)
EOF
}
if ! kernel_ok; then
    "$VENV/bin/python" -m ipykernel install --prefix "$VENV" --name contain \
        --display-name "Python 3 (contain, root)" >/dev/null || die "could not install the kernel spec"
    changed "jupyter: kernel spec 'contain' (Python 3 (contain, root)) in $VENV/share/jupyter/kernels"
fi

# --- user namespaces on Ubuntu 24.04 (AppArmor blocks unprivileged ones) -----------------------
USERNS_SYSCTL=/proc/sys/kernel/apparmor_restrict_unprivileged_userns
if [[ -e $USERNS_SYSCTL ]]; then
    dropin=/etc/sysctl.d/60-contain-userns.conf
    line="kernel.apparmor_restrict_unprivileged_userns = 0"
    if [[ "$(cat "$dropin" 2>/dev/null)" != *"$line"* ]]; then
        printf '# contain: the rootless chapter needs unprivileged user namespaces\n%s\n' "$line" > "$dropin"
        changed "sysctl: wrote $dropin"
    fi
    if [[ "$(cat "$USERNS_SYSCTL")" != 0 ]]; then
        if sysctl -q -w kernel.apparmor_restrict_unprivileged_userns=0 >/dev/null 2>&1; then
            changed "sysctl: kernel.apparmor_restrict_unprivileged_userns=0"
        else
            warn "could not set kernel.apparmor_restrict_unprivileged_userns=0 now (takes effect at boot)"
        fi
    fi
fi

# --- the lab: token and JupyterLab config, root only ------------------------------------------
write_if_changed() {  # write_if_changed FILE MODE < content ; returns 0 if it changed the file
    local file=$1 mode=$2 tmp
    tmp="$(mktemp "$file.XXXXXX")"
    cat > "$tmp"
    chmod "$mode" "$tmp"
    if [[ -f $file ]] && cmp -s "$tmp" "$file" && [[ "$(stat -c %a "$file")" == "$mode" ]]; then
        rm -f "$tmp"; return 1
    fi
    mv -f "$tmp" "$file"
}
LAB_CHANGED=0
if [[ $WANT_LAB == 1 ]]; then
    install -d -m 700 "$ETC"
    TOKEN_FILE="$ETC/jupyter-token"
    if [[ ! -s $TOKEN_FILE ]]; then
        (umask 077; "$SYS_PYTHON" -c 'import secrets; print(secrets.token_hex(24))' > "$TOKEN_FILE")
        changed "lab: generated a token in $TOKEN_FILE"
    fi
    if [[ "$(stat -c %a "$TOKEN_FILE")" != 600 ]]; then chmod 600 "$TOKEN_FILE"; changed "lab: chmod 600 $TOKEN_FILE"; fi
    # The token is read from the file at start-up: it never appears on a command line (ps).
    if write_if_changed "$ETC/jupyter_lab_config.py" 600 <<EOF
# Written by vm/provision.sh (contain). Used by vm/lab.sh and contain-lab.service:
#   jupyter lab --config=$ETC/jupyter_lab_config.py
# Command-line options (--ip, --port, --ServerApp.root_dir=…) override these values.
c = get_config()  # noqa: F821
c.ServerApp.ip = "0.0.0.0"
c.ServerApp.port = $LAB_PORT
c.ServerApp.port_retries = 0
c.ServerApp.open_browser = False
c.ServerApp.allow_root = True
c.ServerApp.root_dir = "$REPO/notebooks"
c.ServerApp.default_url = "/lab"
c.IdentityProvider.token = open("$TOKEN_FILE").read().strip()
c.MultiKernelManager.default_kernel_name = "contain"
EOF
    then changed "lab: wrote $ETC/jupyter_lab_config.py"; LAB_CHANGED=1; fi
fi

# --- the service (Vagrant) --------------------------------------------------------------------
if [[ $WANT_SERVICE == 1 ]]; then
    # CONTAIN_SYSTEMD_UNIT_DIR (for tests) only writes the unit there: systemctl is then left alone.
    UNIT_DIR="${CONTAIN_SYSTEMD_UNIT_DIR:-/etc/systemd/system}"
    UNIT="$UNIT_DIR/contain-lab.service"
    UNIT_CHANGED=0
    install -d -m 755 "$UNIT_DIR"
    if write_if_changed "$UNIT" 644 <<EOF
# Written by $REPO/vm/provision.sh --service (contain). Edit that script, not this file.
[Unit]
Description=contain course: JupyterLab as root on port $LAB_PORT
After=network-online.target local-fs.target remote-fs.target
Wants=network-online.target
StartLimitIntervalSec=0

[Service]
Type=simple
User=root
Environment=CONTAIN_VENV=$VENV
WorkingDirectory=/
# The synced folder may be mounted after boot: wait for the notebooks, then start.
ExecStartPre=/usr/bin/timeout 120 /bin/sh -c 'until [ -d "$REPO/notebooks" ]; do sleep 1; done'
ExecStart=$VENV/bin/jupyter lab --config=$ETC/jupyter_lab_config.py
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
EOF
    then changed "service: wrote $UNIT"; UNIT_CHANGED=1; fi
    if [[ -n ${CONTAIN_SYSTEMD_UNIT_DIR:-} ]]; then
        note "service: CONTAIN_SYSTEMD_UNIT_DIR is set: wrote $UNIT only, systemctl left alone"
    elif [[ -d /run/systemd/system ]]; then
        [[ $UNIT_CHANGED == 1 ]] && systemctl daemon-reload
        if ! systemctl is-enabled --quiet contain-lab.service 2>/dev/null; then
            systemctl enable --quiet contain-lab.service
            changed "service: enabled contain-lab.service"
        fi
        pip_ran=0
        for c in "${CHANGES[@]}"; do [[ $c == pip:* || $c == venv:* ]] && pip_ran=1; done
        if [[ $UNIT_CHANGED == 1 || $LAB_CHANGED == 1 || $pip_ran == 1 ]]; then
            systemctl restart contain-lab.service
            changed "service: (re)started contain-lab.service"
        elif ! systemctl is-active --quiet contain-lab.service; then
            systemctl start contain-lab.service
            changed "service: started contain-lab.service"
        fi
    else
        warn "systemd is not running here (PID 1 is $(ps -o comm= -p 1 2>/dev/null || echo '?')): wrote $UNIT but did not enable or start it"
    fi
fi

# --- summary ----------------------------------------------------------------------------------
echo
if (( ${#CHANGES[@]} )); then
    note "done, ${#CHANGES[@]} change(s):"
    printf '  - %s\n' "${CHANGES[@]}"
else
    note "nothing changed: everything was already in place"
fi
note "venv $VENV (python $SYS_PYVER), contain installed from $REPO"
if [[ $WANT_SERVICE == 1 ]]; then
    note "lab URL: sudo $REPO/vm/lab-url"
fi
