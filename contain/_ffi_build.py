"""Declarations for contain's syscall layer, compiled once into ``_linux_ffi.py``.

cffi's *in-line* ABI mode parses these declarations with pycparser on every import
(~80 ms, more than a whole ``runc run``). The *out-of-line* ABI mode parses them once,
here, and writes a small pure-Python module that imports in ~4 ms. The generated file
is committed; ``python -m contain._ffi_build`` regenerates it and a unit test checks
that it matches these declarations.
"""

from pathlib import Path

from cffi import FFI

CDEF = """
int mount(const char *source, const char *target, const char *filesystemtype,
          unsigned long mountflags, const void *data);
int umount2(const char *target, int flags);
int unshare(int flags);
int setns(int fd, int nstype);
int sethostname(const char *name, size_t len);
int prctl(int option, unsigned long arg2, unsigned long arg3,
          unsigned long arg4, unsigned long arg5);
long syscall(long number, ...);

/* capget(2)/capset(2): the kernel's own structs (linux/capability.h). */
typedef struct { uint32_t version; int pid; } cap_user_header_t;
typedef struct { uint32_t effective; uint32_t permitted; uint32_t inheritable; } cap_user_data_t;
"""


def make_ffi() -> FFI:
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source("contain._linux_ffi", None)  # None: ABI mode, no C compiler needed
    return ffi


def generate(target: Path | None = None) -> Path:
    target = target or Path(__file__).with_name("_linux_ffi.py")
    make_ffi().emit_python_code(str(target))
    return target


if __name__ == "__main__":
    print(generate())
