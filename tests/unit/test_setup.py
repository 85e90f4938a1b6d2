"""The set-up scripts: vm/*.sh, vm/lab-url, .ci/run and the Vagrantfile.

Tests marked ``kernel`` run the real provisioning script as root (as vm/test.sh does, right after
``vm/provision.sh --test``): on a provisioned machine they install nothing and touch no network.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VM = REPO / "vm"
SCRIPTS = ["vm/provision.sh", "vm/lab.sh", "vm/test.sh", "vm/lint.sh", "vm/lab-url", ".ci/run"]
VENV = Path(os.environ.get("CONTAIN_VENV", "/opt/contain/venv"))


def run(*cmd: str | Path, env: dict[str, str] | None = None, timeout: float = 600,
        cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(c) for c in cmd], env={**os.environ, **(env or {})}, cwd=cwd,
                          text=True, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)


# --- all scripts ------------------------------------------------------------------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_script_parses(script: str) -> None:
    result = run("bash", "-n", REPO / script)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_is_strict_and_executable(script: str) -> None:
    path = REPO / script
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "set -euo pipefail" in text
    # `vagrant ssh -c 'sudo …/vm/lab-url'` executes it directly: the mode bit matters.
    assert path.stat().st_mode & stat.S_IXUSR, f"{script} is not executable (git add --chmod=+x)"


@pytest.fixture
def world_readable_copy() -> Iterator[Path]:
    """A directory that an unprivileged user can read (pytest's tmp_path is root-only)."""
    d = Path(tempfile.mkdtemp(prefix="contain-setup-"))
    d.chmod(0o755)
    (d / "vm").mkdir(mode=0o755)
    for name in ("provision.sh", "lab.sh", "test.sh"):
        shutil.copy(VM / name, d / "vm" / name)
        (d / "vm" / name).chmod(0o644)
    yield d
    shutil.rmtree(d)


@pytest.mark.kernel
@pytest.mark.parametrize("script", ["provision.sh", "lab.sh", "test.sh"])
def test_not_root_is_one_clear_line(script: str, world_readable_copy: Path) -> None:
    result = run("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                 "bash", world_readable_copy / "vm" / script, cwd=world_readable_copy)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "root" in lines[0] and "sudo" in lines[0]
    assert result.stdout == ""


# --- provision.sh -----------------------------------------------------------------------------

@pytest.mark.kernel
def test_provision_rejects_an_unsupported_distribution(tmp_path: Path) -> None:
    os_release = tmp_path / "os-release"
    os_release.write_text('ID=fedora\nVERSION_ID="41"\n')
    result = run("bash", VM / "provision.sh", env={"CONTAIN_OS_RELEASE": str(os_release)})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "provision.sh: error: unsupported distribution 'fedora 41': need Debian 12 or Ubuntu 24.04 "
        "(or use Vagrant, see README)"
    ]


def test_provision_rejects_unknown_options() -> None:
    result = run("bash", VM / "provision.sh", "--frobnicate")
    assert result.returncode == 1
    assert "unknown option '--frobnicate'" in result.stderr


@pytest.mark.kernel
def test_provision_second_run_changes_nothing() -> None:
    """Run it twice (the first may still have work to do); the second must not run apt or pip."""
    first = run("bash", VM / "provision.sh", "--test")
    assert first.returncode == 0, first.stdout + first.stderr
    second = run("bash", VM / "provision.sh", "--test")
    assert second.returncode == 0, second.stdout + second.stderr
    out = second.stdout
    assert "nothing changed: everything was already in place" in out, out
    assert "pip: up to date" in out, out
    assert "pip: installing" not in out and "apt: installed" not in out, out


@pytest.mark.kernel
def test_provision_leaves_an_editable_install_of_this_checkout() -> None:
    provisioned = run("bash", VM / "provision.sh")
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    stamp = (VENV / ".contain-provision-stamp").read_text().split()
    assert stamp[0] == hashlib.sha256((REPO / "pyproject.toml").read_bytes()).hexdigest()
    assert f"repo={REPO}" in stamp
    # the distro's python, not a shim
    assert re.search(r"^home = /usr/bin/?$", (VENV / "pyvenv.cfg").read_text(), re.M)
    where = run(VENV / "bin" / "python", "-c",
                "import importlib.util as u; "
                "print(list(u.find_spec('contain').submodule_search_locations)[0])",
                cwd=Path("/"))
    assert where.stdout.strip() == str(REPO / "contain")
    assert (VENV / "bin" / "contain").exists()
    kernel = (VENV / "share/jupyter/kernels/contain/kernel.json").read_text()
    assert '"Python 3 (contain, root)"' in kernel and str(VENV / "bin" / "python") in kernel


@pytest.mark.kernel
def test_provision_service_files(tmp_path: Path) -> None:
    """--service writes token, config and unit; the token stays out of the unit and of argv."""
    env = {"CONTAIN_ETC": str(tmp_path / "etc"),
           "CONTAIN_SYSTEMD_UNIT_DIR": str(tmp_path / "units")}
    first = run("bash", VM / "provision.sh", "--service", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "generated a token" in first.stdout

    etc = tmp_path / "etc"
    token_file, config = etc / "jupyter-token", etc / "jupyter_lab_config.py"
    token = token_file.read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{48}", token)
    assert stat.S_IMODE(etc.stat().st_mode) == 0o700
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    from traitlets.config.loader import PyFileConfigLoader

    loaded = PyFileConfigLoader(config.name, path=str(etc)).load_config()
    assert loaded.IdentityProvider.token == token
    assert loaded.ServerApp.ip == "0.0.0.0" and loaded.ServerApp.port == 8888
    assert loaded.ServerApp.allow_root is True and loaded.ServerApp.open_browser is False
    assert loaded.ServerApp.root_dir == str(REPO / "notebooks")
    assert token not in config.read_text()

    unit = (tmp_path / "units" / "contain-lab.service").read_text()
    assert f"ExecStart={VENV}/bin/jupyter lab --config={config}\n" in unit
    assert "User=root" in unit and "WantedBy=multi-user.target" in unit
    assert token not in unit

    again = run("bash", VM / "provision.sh", "--service", env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing changed" in again.stdout, again.stdout
    assert token_file.read_text().strip() == token, "the token must be generated once"


# --- lab-url, lab.sh --------------------------------------------------------------------------

def test_lab_url_prints_the_url_with_the_token(tmp_path: Path) -> None:
    token_file = tmp_path / "jupyter-token"
    token_file.write_text("0123abcd\n")
    result = run(VM / "lab-url", env={"CONTAIN_TOKEN_FILE": str(token_file)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://127.0.0.1:8888/lab?token=0123abcd\n"

    moved = run(VM / "lab-url",
                env={"CONTAIN_TOKEN_FILE": str(token_file), "CONTAIN_LAB_PORT": "2222"})
    assert moved.stdout == "http://127.0.0.1:2222/lab?token=0123abcd\n"


def test_lab_url_without_a_token_says_what_to_do(tmp_path: Path) -> None:
    missing = run(VM / "lab-url", env={"CONTAIN_TOKEN_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 1 and missing.stdout == ""
    assert "no token file" in missing.stderr and "vm/lab.sh" in missing.stderr
    (tmp_path / "empty").write_text("\n")
    empty = run(VM / "lab-url", env={"CONTAIN_TOKEN_FILE": str(tmp_path / "empty")})
    assert empty.returncode == 1 and "is empty" in empty.stderr


@pytest.mark.parametrize("args, message", [
    (["--port", "http"], "bad port 'http'"),
    (["--port=70000"], "bad port '70000'"),
    (["--ip"], "--ip needs an address"),
    (["--browser"], "unknown option '--browser'"),
])
def test_lab_sh_rejects_bad_options_before_doing_anything(args: list[str], message: str) -> None:
    result = run("bash", VM / "lab.sh", *args)
    assert result.returncode == 1
    assert message in result.stderr
    assert "provision.sh" not in result.stdout


# --- test.sh and .ci/run ----------------------------------------------------------------------

@pytest.mark.kernel
def test_test_sh_fails_when_pytest_collects_nothing() -> None:
    result = run("bash", VM / "test.sh", "--collect-only", "-q", "-k", "no_test_has_this_name_xyz")
    assert result.returncode == 5, result.stdout[-2000:] + result.stderr[-2000:]
    assert "test.sh: FAILED: pytest collected no tests (exit 5)" in result.stdout
    assert "nothing changed" in result.stdout  # provisioning ran first, and had nothing to do


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    assert "sudo bash vm/test.sh" in readme and "sudo bash vm/lab.sh" in readme
    ci = (REPO / ".ci" / "run").read_text()
    assert re.search(r"^bash vm/test\.sh </dev/null$", ci, re.M)
    test_sh = (VM / "test.sh").read_text()
    assert 'bash "$REPO/vm/provision.sh" --test' in test_sh
    assert '"$VENV/bin/python" -m pytest "${args[@]}" "$@"' in test_sh


# --- Vagrantfile ------------------------------------------------------------------------------

def vagrant() -> str:
    found = shutil.which("vagrant")
    assert found, "vagrant is missing: run 'sudo bash vm/provision.sh --test' (vm/test.sh does)"
    return found


@pytest.fixture
def vagrant_project(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the Vagrantfile (validate writes .vagrant/ beside it), an offline environment."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "Vagrantfile", project / "Vagrantfile")
    stub = tmp_path / "bin"
    stub.mkdir()
    (stub / "VBoxManage").write_text("#!/bin/sh\necho 7.0.20r163906\n")
    (stub / "VBoxManage").chmod(0o755)
    env = {
        "VAGRANT_CWD": str(project),
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        "CONTAIN_VAGRANT_VALIDATE": "1",
        # the stub makes `vagrant validate` check the VirtualBox block
        "PATH": f"{stub}:{os.environ['PATH']}",
    }
    return project, env


@pytest.mark.parametrize("box", ["", "bento/ubuntu-24.04"])
def test_vagrant_validate(vagrant_project: tuple[Path, dict[str, str]], box: str) -> None:
    project, env = vagrant_project
    env = {**env, "CONTAIN_BOX": box}
    for args in (["validate", "-p"], ["validate"]):
        result = run(vagrant(), *args, env=env, cwd=project, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Vagrantfile validated successfully." in result.stdout


def test_vagrant_validate_checks_provider_settings(
    vagrant_project: tuple[Path, dict[str, str]],
) -> None:
    """Proves the stub really makes `vagrant validate` look inside the VirtualBox block."""
    project, env = vagrant_project
    vagrantfile = project / "Vagrantfile"
    vagrantfile.write_text(vagrantfile.read_text().replace(
        "vb.memory = MEMORY", "vb.memory = MEMORY\n    vb.no_such_setting = 1"))
    result = run(vagrant(), "validate", env=env, cwd=project, timeout=300)
    assert result.returncode != 0
    assert "no_such_setting" in result.stdout + result.stderr


def test_vagrant_requires_2_4(vagrant_project: tuple[Path, dict[str, str]]) -> None:
    project, env = vagrant_project
    env = {**env, "CONTAIN_VAGRANT_VALIDATE": ""}
    version = run(vagrant(), "--version", env=env, cwd=project).stdout
    m = re.search(r"(\d+)\.(\d+)", version)
    assert m, version
    result = run(vagrant(), "validate", "-p", env=env, cwd=project, timeout=300)
    if (int(m[1]), int(m[2])) < (2, 4):
        assert result.returncode != 0
        assert ">= 2.4.0" in result.stdout + result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr


def test_vagrantfile_settings() -> None:
    text = (REPO / "Vagrantfile").read_text()
    assert 'DEFAULT_BOX = "bento/debian-12"' in text
    assert 'LIBVIRT_BOX = "debian/bookworm64"' in text
    assert 'host_ip: "127.0.0.1"' in text and "auto_correct: true" in text
    assert 'GUEST_DIR = "/home/vagrant/contain"' in text
    assert 'inline: "bash #{GUEST_DIR}/vm/provision.sh --service"' in text
    assert "sudo #{GUEST_DIR}/vm/lab-url" in text
    for provider in ("virtualbox", "vmware_desktop", "parallels", "libvirt"):
        assert f'config.vm.provider "{provider}"' in text
    assert "box_architecture" not in text, "bento boxes are multi-arch: do not pin an architecture"
