"""The NVML boundary: the one module that talks to pynvml, so that no GPU failure reaches a test run.

NVML is machine-wide, so one probe in one process (the controller) is enough. Every read is
guarded: an unsupported metric becomes None, a lost GPU turns that device's figures to None,
and nothing here raises once the probe is open.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

GIB = 2**30

# Error codes (stable across nvidia-ml-py versions) that mean "this device is gone until reset".
_LOST_CODES = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_UNKNOWN")
# Error codes from the versioned temperature call that mean "use the old call instead".
_NO_VERSIONED_CODES = ("NVML_ERROR_FUNCTION_NOT_FOUND", "NVML_ERROR_ARGUMENT_VERSION_MISMATCH")

_IMPORT = object()  # default for GpuProbe(nvml=...): import the real module


def import_nvml() -> ModuleType:
    """Import nvidia-ml-py's pynvml; the old `pynvml` PyPI package warns on import, fatal under -W error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import pynvml

    module: ModuleType = pynvml
    return module


class GpuProbe:
    """Reads per-device figures through NVML; `nvml` may be a stand-in module object for tests.

    Pass `nvml=None` for "no library". After open(), `unavailable_reason` says why there are no
    devices (the caller warns once), and `problems` lists each mid-run trouble once. The sampling
    thread and callers' measure() blocks share one probe, so reads and close() take turns; one that
    waits over `wait_s` for another thread's call gives up, so a hung driver call cannot stall a
    measured block or stop() for good.
    """

    def __init__(self, nvml: Any = _IMPORT, *, wait_s: float = 2.0) -> None:
        self.unavailable_reason: str | None = None
        self.problems: list[str] = []
        self.names: list[str] = []
        self._nvml: Any = None
        self._handles: list[Any] = []
        self._lost: set[int] = set()
        self._versioned_temperature = True
        self._initialized = False
        self._lock = threading.Lock()
        self._wait_s = wait_s
        if nvml is _IMPORT:
            try:
                nvml = import_nvml()
            except ImportError as exc:
                self.unavailable_reason = f"nvidia-ml-py is not installed ({exc}); GPU metrics are off"
                return
        if nvml is None:
            self.unavailable_reason = "no NVML library; GPU metrics are off"
            return
        self._nvml = nvml

    def open(self) -> list[str]:
        """Start NVML and list device names; an empty list (with the reason set) when there is no GPU."""
        nvml = self._nvml
        if nvml is None or self._initialized:
            return list(self.names)
        try:
            nvml.nvmlInit()
        except (nvml.NVMLError, OSError) as exc:
            self.unavailable_reason = f"NVML could not start ({exc}); GPU metrics are off"
            return []
        self._initialized = True
        try:
            count = nvml.nvmlDeviceGetCount()
            self._handles = [nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
            self.names = [_text(nvml.nvmlDeviceGetName(h)) for h in self._handles]
        except nvml.NVMLError as exc:
            self.unavailable_reason = f"NVML could not list devices ({exc}); GPU metrics are off"
            self.close()
            return []
        if not self._handles:
            self.unavailable_reason = "NVML found no GPU; GPU metrics are off"
        return list(self.names)

    def sample(self) -> list[dict[str, Any]]:
        """One dict per device; a field is None where the card cannot or can no longer say.

        All fields are None when another thread's reading does not finish within `wait_s`.
        """
        if not self._lock.acquire(timeout=self._wait_s):
            return [_figures(i, name) for i, name in enumerate(self.names)]
        try:
            return [self._sample_device(i, h) for i, h in enumerate(self._handles)]
        finally:
            self._lock.release()

    def close(self) -> None:
        """Shut NVML down, unless a reading on another thread hangs (then it stays open until exit)."""
        if not self._initialized or not self._lock.acquire(timeout=self._wait_s):
            return
        try:
            self._initialized = False
            self._handles = []
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass
        finally:
            self._lock.release()

    def _sample_device(self, index: int, handle: Any) -> dict[str, Any]:
        nvml = self._nvml
        read = self._read
        memory = read(index, "memory", lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        utilization = read(index, "utilization", lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        temperature = read(index, "temperature", lambda: self._temperature(handle))
        milliwatts = read(index, "power", lambda: nvml.nvmlDeviceGetPowerUsage(handle))
        millijoules = read(index, "energy", lambda: nvml.nvmlDeviceGetTotalEnergyConsumption(handle))
        return _figures(
            index,
            self.names[index],
            util=None if utilization is None else float(utilization.gpu),
            memory_used=None if memory is None else memory.used / GIB,
            memory_total=None if memory is None else memory.total / GIB,
            temperature=None if temperature is None else float(temperature),
            power=None if milliwatts is None else milliwatts / 1000.0,
            energy_counter=None if millijoules is None else millijoules / 1000.0,
        )

    def _read(self, index: int, metric: str, read: Callable[[], Any]) -> Any:
        if index in self._lost:
            return None
        nvml = self._nvml
        try:
            return read()
        except nvml.NVMLError as exc:
            if self._code_is(exc, "NVML_ERROR_NOT_SUPPORTED"):
                return None
            if any(self._code_is(exc, name) for name in _LOST_CODES):
                self._lost.add(index)
                device = self.names[index]
                self._note(f"GPU {index} ({device}) stopped answering ({exc}); its figures are null from now on")
            else:
                self._note(f"GPU {index} {metric}: {exc}")
            return None

    def _temperature(self, handle: Any) -> int:
        """Prefer nvmlDeviceGetTemperatureV (the old call is deprecated in CUDA 13); fall back for old drivers."""
        nvml = self._nvml
        sensor = nvml.NVML_TEMPERATURE_GPU
        versioned = getattr(nvml, "nvmlDeviceGetTemperatureV", None)
        if versioned is not None and self._versioned_temperature:
            try:
                return int(versioned(handle, sensor))
            except nvml.NVMLError as exc:
                if not any(self._code_is(exc, name) for name in _NO_VERSIONED_CODES):
                    raise
                self._versioned_temperature = False
        return int(nvml.nvmlDeviceGetTemperature(handle, sensor))

    def _code_is(self, exc: Exception, name: str) -> bool:
        code = getattr(self._nvml, name, None)
        return code is not None and getattr(exc, "value", None) == code

    def _note(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def _figures(
    index: int,
    name: str,
    *,
    util: float | None = None,
    memory_used: float | None = None,
    memory_total: float | None = None,
    temperature: float | None = None,
    power: float | None = None,
    energy_counter: float | None = None,
) -> dict[str, Any]:
    """One device's sample. The energy counter is the card's running total since the driver loaded;
    windows and summaries turn differences of it into `gpu_energy_j`."""
    return {
        "index": index,
        "name": name,
        "gpu_util_pct": util,
        "gpu_memory_used_gb": memory_used,
        "gpu_memory_total_gb": memory_total,
        "gpu_temperature_c": temperature,
        "gpu_power_w": power,
        "gpu_energy_counter_j": energy_counter,
    }


def _text(name: str | bytes) -> str:
    return name.decode(errors="replace") if isinstance(name, bytes) else str(name)
