"""The committed out-of-line cffi module must match the declarations it is built from."""

from pathlib import Path

from contain import _ffi_build

GENERATED = Path(_ffi_build.__file__).with_name("_linux_ffi.py")


def test_generated_module_is_up_to_date(tmp_path: Path) -> None:
    fresh = _ffi_build.generate(tmp_path / "_linux_ffi.py")
    assert fresh.read_text() == GENERATED.read_text(), (
        "contain/_linux_ffi.py is stale: run 'python -m contain._ffi_build' and commit it"
    )


def test_every_declared_function_is_in_the_module() -> None:
    from contain._linux_ffi import ffi

    lib = ffi.dlopen(None)
    for name in ("mount", "umount2", "unshare", "setns", "sethostname", "prctl", "syscall"):
        assert callable(getattr(lib, name)), name
