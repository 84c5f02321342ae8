"""GPU paths through a stand-in NVML module (the machine has no GPU); it raises pynvml's real error classes."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pynvml
import pytest
from fake_nvml import FakeNvml

from pytest_llmbench.metrics.hardware.monitor import PerformanceMonitor
from pytest_llmbench.metrics.hardware.nvml import GpuProbe


def test_missing_library_means_no_devices_and_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # makes `import pynvml` raise ImportError
    probe = GpuProbe()
    assert probe.open() == []
    assert probe.sample() == []
    assert probe.unavailable_reason is not None
    assert "nvidia-ml-py is not installed" in probe.unavailable_reason


def test_no_library_injected_means_no_devices() -> None:
    probe = GpuProbe(nvml=None)
    assert probe.open() == []
    assert probe.unavailable_reason


def test_no_driver_means_no_devices_and_a_reason() -> None:
    probe = GpuProbe(nvml=FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED))
    assert probe.open() == []
    assert probe.sample() == []
    assert probe.unavailable_reason is not None
    assert "Driver Not Loaded" in probe.unavailable_reason


def test_a_host_without_a_gpu_reports_why() -> None:
    probe = GpuProbe(nvml=FakeNvml(count=0))
    assert probe.open() == [] and probe.sample() == []
    assert probe.unavailable_reason == "NVML found no GPU; GPU metrics are off"


def test_sample_converts_milliwatts_millijoules_and_bytes() -> None:
    probe = GpuProbe(nvml=FakeNvml(count=2))
    assert probe.open() == ["Fake GPU 0", "Fake GPU 1"]
    first, second = probe.sample()
    assert first == {
        "index": 0,
        "name": "Fake GPU 0",
        "gpu_util_pct": 40.0,
        "gpu_memory_used_gb": 6.0,
        "gpu_memory_total_gb": 24.0,
        "gpu_temperature_c": 60.0,
        "gpu_power_w": 250.0,
        "gpu_energy_counter_j": 1000.0,
    }
    assert second["gpu_util_pct"] == 41.0
    assert probe.unavailable_reason is None and probe.problems == []


def test_unsupported_metric_nulls_only_that_field() -> None:
    nvml = FakeNvml()
    nvml.failures[(0, "energy_mj")] = pynvml.NVML_ERROR_NOT_SUPPORTED
    probe = GpuProbe(nvml=nvml)
    probe.open()
    (device,) = probe.sample()
    assert device["gpu_energy_counter_j"] is None
    assert device["gpu_power_w"] == 250.0 and device["gpu_temperature_c"] == 60.0 and device["gpu_util_pct"] == 40.0
    assert probe.problems == []


def test_lost_gpu_nulls_its_fields_and_records_the_reason_once() -> None:
    nvml = FakeNvml(count=2)
    probe = GpuProbe(nvml=nvml)
    probe.open()
    assert probe.sample()[0]["gpu_power_w"] == 250.0
    nvml.failures[(0, "used")] = pynvml.NVML_ERROR_GPU_IS_LOST
    for _ in range(3):
        lost, healthy = probe.sample()
        fields = ("gpu_util_pct", "gpu_memory_used_gb", "gpu_temperature_c", "gpu_power_w", "gpu_energy_counter_j")
        assert all(lost[k] is None for k in fields)
        assert healthy["gpu_power_w"] == 250.0
    assert len(probe.problems) == 1 and "GPU 0 (Fake GPU 0) stopped answering" in probe.problems[0]


def test_unknown_error_counts_as_a_lost_gpu() -> None:
    nvml = FakeNvml()
    nvml.failures[(0, "power_mw")] = pynvml.NVML_ERROR_UNKNOWN
    probe = GpuProbe(nvml=nvml)
    probe.open()
    probe.sample()
    calls = nvml.calls
    (device,) = probe.sample()
    assert device["gpu_util_pct"] is None
    assert nvml.calls == calls  # a lost device is not asked again
    assert len(probe.problems) == 1


def test_versioned_temperature_call_is_preferred() -> None:
    nvml = FakeNvml()
    probe = GpuProbe(nvml=nvml)
    probe.open()
    probe.sample()
    assert nvml.temperature_calls == ["versioned"]


def test_missing_versioned_temperature_call_falls_back() -> None:
    nvml = FakeNvml(versioned_temperature=False)
    probe = GpuProbe(nvml=nvml)
    probe.open()
    assert probe.sample()[0]["gpu_temperature_c"] == 60.0
    assert nvml.temperature_calls == ["legacy"]


def test_driver_without_versioned_symbol_falls_back_for_good() -> None:
    nvml = FakeNvml()
    nvml.failures[(0, "temperature_v")] = pynvml.NVML_ERROR_FUNCTION_NOT_FOUND
    probe = GpuProbe(nvml=nvml)
    probe.open()
    assert probe.sample()[0]["gpu_temperature_c"] == 60.0
    probe.sample()
    assert nvml.temperature_calls == ["versioned", "legacy", "legacy"]
    assert probe.problems == []


def test_a_reading_stuck_on_another_thread_gives_null_figures_instead_of_waiting() -> None:
    nvml = FakeNvml()
    probe = GpuProbe(nvml=nvml, wait_s=0.1)
    probe.open()
    stuck, release = threading.Event(), threading.Event()
    power = nvml.nvmlDeviceGetPowerUsage

    def hang(handle: int) -> int:
        stuck.set()
        release.wait(10)
        return power(handle)

    nvml.nvmlDeviceGetPowerUsage = hang  # type: ignore[method-assign]  # the fake's reading hangs
    reader = threading.Thread(target=probe.sample)
    reader.start()
    assert stuck.wait(10)
    (device,) = probe.sample()
    assert device["name"] == "Fake GPU 0" and device["gpu_util_pct"] is None and device["gpu_power_w"] is None
    probe.close()
    assert nvml.shutdowns == 0  # NVML stays open under the hung call
    release.set()
    reader.join()
    probe.close()
    assert nvml.shutdowns == 1


def test_close_shuts_nvml_down_once() -> None:
    nvml = FakeNvml()
    probe = GpuProbe(nvml=nvml)
    probe.open()
    probe.close()
    probe.close()
    assert nvml.shutdowns == 1


def _run_monitor(nvml: FakeNvml, seconds: float = 0.4, **options: Any) -> PerformanceMonitor:
    monitor = PerformanceMonitor(interval=0.05, probe=GpuProbe(nvml=nvml), **options)
    monitor.start()
    time.sleep(seconds)
    monitor.stop()
    return monitor


def test_run_energy_is_the_energy_counter_delta() -> None:
    monitor = _run_monitor(FakeNvml())
    summary = monitor.summary()
    assert summary["samples"] >= 3
    assert summary["gpu_energy_j"] == pytest.approx(summary["samples"] - 1)  # the fake adds 1 J per read
    (device,) = summary["gpus"]
    assert device == {
        "index": 0,
        "name": "Fake GPU 0",
        "gpu_util_mean_pct": 40.0,
        "gpu_util_peak_pct": 40.0,
        "gpu_memory_mean_gb": 6.0,
        "gpu_memory_peak_gb": 6.0,
        "gpu_memory_total_gb": 24.0,
        "gpu_temperature_mean_c": 60.0,
        "gpu_temperature_peak_c": 60.0,
        "gpu_power_mean_w": 250.0,
        "gpu_power_peak_w": 250.0,
        "gpu_energy_j": pytest.approx(summary["samples"] - 1),
    }


def test_window_energy_is_the_counter_delta_over_its_samples() -> None:
    monitor = _run_monitor(FakeNvml())
    samples = monitor.samples()
    window = monitor.window(samples[0]["t"], samples[-1]["t"])
    assert window["samples"] == len(samples)
    assert window["gpu_energy_j"] == pytest.approx(len(samples) - 1)
    assert window["gpu_power_mean_w"] == 250.0 and window["gpu_memory_peak_gb"] == 6.0


def test_a_measured_block_gets_gpu_figures_and_energy_from_its_own_readings() -> None:
    monitor = PerformanceMonitor(interval=30.0, probe=GpuProbe(nvml=FakeNvml()))
    monitor.start()
    with monitor.measure() as window:
        pass
    monitor.stop()
    metrics = window.metrics
    assert metrics["gpu_util_mean_pct"] == 40.0 and metrics["gpu_util_peak_pct"] == 40.0
    assert metrics["gpu_memory_peak_gb"] == 6.0 and metrics["gpu_power_mean_w"] == 250.0
    assert metrics["gpu_energy_j"] == pytest.approx(1.0)  # the counter's climb between the block's two readings


def test_energy_without_a_counter_integrates_power() -> None:
    nvml = FakeNvml()
    nvml.failures[(0, "energy_mj")] = pynvml.NVML_ERROR_NOT_SUPPORTED
    summary = _run_monitor(nvml).summary()
    assert summary["gpu_energy_j"] == pytest.approx(250.0 * summary["duration_s"])


def test_gpu_temperature_alert_fires_once_per_device() -> None:
    monitor = _run_monitor(FakeNvml(count=2), gpu_temp_c=60)
    alerts = monitor.alerts()
    assert len(alerts) == 2
    assert "GPU 0 (Fake GPU 0) reached 60 °C" in alerts[0]


def test_lost_gpu_mid_run_keeps_the_monitor_sampling() -> None:
    nvml = FakeNvml()
    monitor = PerformanceMonitor(interval=0.05, probe=GpuProbe(nvml=nvml))
    monitor.start()
    time.sleep(0.2)
    nvml.failures[(0, "util")] = pynvml.NVML_ERROR_GPU_IS_LOST
    time.sleep(0.3)
    monitor.stop()
    last = monitor.samples()[-1]
    assert last["gpu"][0]["gpu_power_w"] is None and last["cpu_pct"] is not None
    assert sum("stopped answering" in p for p in monitor.problems) == 1
