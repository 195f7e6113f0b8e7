"""`opreid_bench.engine.hardware`: the machine a run's times were measured on."""

from __future__ import annotations

from pathlib import Path

from opreid_bench.engine.hardware import cpu_model


def test_cpu_model_reads_cpuinfo(tmp_path: Path) -> None:
    """Run times name the CPU they were measured on (x86 and ARM cpuinfo layouts)."""
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9R14 96-Core Processor\n")
    arm = tmp_path / "arm"
    arm.write_text("processor\t: 0\nBogoMIPS\t: 50.00\n\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert cpu_model(x86) == "AMD EPYC 9R14 96-Core Processor"
    assert cpu_model(arm) == "Raspberry Pi 4 Model B Rev 1.4"
    assert cpu_model(tmp_path / "missing")  # falls back to what platform knows, never empty
