"""A stand-in for the pynvml module (the machine has no GPU): the only fake the tests allow, at the NVML boundary.

It raises pynvml's real error classes. Put it in a session with ``sys.modules["pynvml"] = FakeNvml()`` in a
conftest, or hand it to ``GpuProbe(nvml=...)``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pynvml

from pytest_llmbench.metrics.hardware.nvml import GIB


class FakeNvml:
    """The slice of the pynvml module GpuProbe uses, with devices and failures set by each test."""

    NVMLError = pynvml.NVMLError
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_ERROR_NOT_SUPPORTED = pynvml.NVML_ERROR_NOT_SUPPORTED
    NVML_ERROR_GPU_IS_LOST = pynvml.NVML_ERROR_GPU_IS_LOST
    NVML_ERROR_UNKNOWN = pynvml.NVML_ERROR_UNKNOWN
    NVML_ERROR_FUNCTION_NOT_FOUND = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH

    def __init__(self, count: int = 1, *, init_error: int | None = None, versioned_temperature: bool = True) -> None:
        self.devices: list[dict[str, Any]] = [
            {
                "name": f"Fake GPU {i}".encode(),  # older nvidia-ml-py returns bytes
                "util": 40 + i,
                "used": 6 * GIB,
                "total": 24 * GIB,
                "temp": 60,
                "power_mw": 250_000,
                "energy_mj": 1_000_000,
            }
            for i in range(count)
        ]
        self.failures: dict[tuple[int, str], int] = {}
        self.temperature_calls: list[str] = []
        self.calls = 0
        self.shutdowns = 0
        self._init_error = init_error
        if versioned_temperature:
            self.nvmlDeviceGetTemperatureV = self._temperature_v

    def _read(self, index: int, metric: str) -> int:
        self.calls += 1
        code = self.failures.get((index, metric))
        if code is not None:
            raise pynvml.NVMLError(code)
        value: int = self.devices[index][metric]
        return value

    def nvmlInit(self) -> None:
        if self._init_error is not None:
            raise pynvml.NVMLError(self._init_error)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlDeviceGetCount(self) -> int:
        return len(self.devices)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetName(self, handle: int) -> bytes:
        name: bytes = self.devices[handle]["name"]
        return name

    def nvmlDeviceGetUtilizationRates(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(gpu=self._read(handle, "util"), memory=10)

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> SimpleNamespace:
        return SimpleNamespace(used=self._read(handle, "used"), total=self.devices[handle]["total"])

    def _temperature_v(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        self.temperature_calls.append("versioned")
        code = self.failures.get((handle, "temperature_v"))
        if code is not None:
            raise pynvml.NVMLError(code)
        return self._read(handle, "temp")

    def nvmlDeviceGetTemperature(self, handle: int, sensor: int) -> int:
        assert sensor == pynvml.NVML_TEMPERATURE_GPU
        self.temperature_calls.append("legacy")
        return self._read(handle, "temp")

    def nvmlDeviceGetPowerUsage(self, handle: int) -> int:
        return self._read(handle, "power_mw")

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        energy = self._read(handle, "energy_mj")
        self.devices[handle]["energy_mj"] += 1000  # the counter climbs 1 J between reads
        return energy
