"""Starts llama-cpp-python's server (``python -m pytest_llmbench.session.llama_launch ARGS``, the same ARGS).

One thing differs from ``python -m llama_cpp.server``: on a CPU that lists AMX while the kernel has no room for
its tile data (virtual machines such as Firecracker guests do this), the model is loaded without llama.cpp's extra
buffer types. llama-cpp-python builds llama.cpp for the machine it is built on (``-march=native``), so its AMX
kernels are compiled in and chosen for the weights; their first tile instruction then kills the server with
SIGILL at the first completion, after it has loaded and answered ``/v1/models``. Without extra buffers the plain
CPU kernels run (AVX-512 or AVX2): slower matrix products on such a machine, no crash on any.
"""

from __future__ import annotations

import ctypes
import platform
import runpy
import sys
from pathlib import Path

_ARCH_GET_XCOMP_SUPP = 0x1022  # arch_prctl: the extended states the kernel supports
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86_64


def amx_unusable(cpuinfo: str | None = None, supported: int | None = None) -> bool:
    """True when the CPU lists AMX tiles but the kernel does not support their state (no XTILEDATA)."""
    if sys.platform != "linux" or platform.machine() != "x86_64":
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
        except OSError:
            return False
    if " amx_tile" not in cpuinfo:
        return False
    if supported is None:
        value = ctypes.c_ulong(0)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syscall(_SYS_ARCH_PRCTL, _ARCH_GET_XCOMP_SUPP, ctypes.byref(value)) != 0:
                return True  # a kernel that cannot even say: AMX is not usable
        except (OSError, AttributeError):
            return False
        supported = value.value
    return not supported & (1 << _XFEATURE_XTILEDATA)


def without_extra_buffers() -> None:
    """Every model llama-cpp-python loads from here on uses no extra buffer types (AMX, repacked weights)."""
    import llama_cpp.llama_cpp as binding  # the module llama_cpp.Llama reads its default parameters from

    default = binding.llama_model_default_params

    def params() -> object:
        chosen = default()
        chosen.use_extra_bufts = False
        return chosen

    binding.llama_model_default_params = params


def main() -> None:
    if amx_unusable():
        print("llmbench: this CPU lists AMX but the kernel does not support its tile data: loading the model "
              "without extra buffer types", file=sys.stderr, flush=True)
        without_extra_buffers()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
