"""What every benchmark report shares: the machine it ran on, the load around it, the JSON file."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def cpu_model() -> str:
    """The CPU's model name and its bf16 instructions (they change reduced-precision results)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    name = next(
        (
            line.split(":", 1)[1].strip()
            for line in info.splitlines()
            if line.startswith("model name")
        ),
        platform.machine(),
    )
    flags = set(next((line for line in info.splitlines() if line.startswith("flags")), "").split())
    bf16 = [
        label
        for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16"))
        if flag in flags
    ]
    return f"{name} ({', '.join(bf16) if bf16 else 'no bf16 instructions'})"


def machine(**extra: object) -> dict:
    """The machine a report was measured on, with the benchmark's own fields after."""
    return {
        "system": f"{platform.system()} {platform.release()}",
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        **extra,
    }


def write_report(out: Path, report: dict) -> None:
    """Write the report as JSON (its folder made if need be) and print it."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))
