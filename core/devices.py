"""Choosing the compute device (CUDA, Apple MPS, CPU) and the fastest safe dtype for it."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import torch

from core.datatypes import DEVICE_CHOICES, Precision

log = logging.getLogger(__name__)

__all__ = [
    "autocast",
    "available_devices",
    "cpu_supports_bf16",
    "describe_device",
    "encoder_dtype",
    "pick_device",
]


def available_devices() -> list[str]:
    """Device names usable here, best first; "cpu" is always last."""
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(requested: str = "auto") -> torch.device:
    """ "auto" picks CUDA, then MPS, then CPU; asking for one that is absent raises ValueError."""
    if requested not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {requested!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    have = available_devices()
    if requested == "auto":
        return torch.device(have[0])
    if requested not in have:
        raise ValueError(
            f"device {requested!r} is not available here (available: {', '.join(have)})"
        )
    return torch.device(requested)


@functools.cache
def cpu_supports_bf16() -> bool:
    """True where the CPU has native bf16 matrix instructions (AVX512-BF16 or AMX)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def encoder_dtype(device: torch.device, precision: Precision) -> torch.dtype:
    """The dtype the image encoder runs in for a precision choice (core.datatypes.Precision).

    "fp32" everywhere by default: bf16 kernels round differently on AMX and on AVX512-BF16, which
    changed one caption in six between two kinds of CPU. "auto" keeps the old fast path (fp16
    on CUDA, bf16 on CPUs that have it natively, fp32 elsewhere).
    """
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        if device.type == "cpu" and not cpu_supports_bf16():
            log.warning("this CPU has no bf16 instructions: bf16 is emulated here, and slow")
        return torch.bfloat16
    if precision != "auto":
        raise ValueError(f"unknown precision {precision!r}")
    if device.type == "cuda":
        return torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device, enabled: bool = True) -> torch.autocast:
    """bf16 autocast where it is fast (CUDA, and CPUs with native bf16); a no-op elsewhere.

    The one place that decides mixed precision for training and feature caching.
    """
    fast = device.type == "cuda" or (device.type == "cpu" and cpu_supports_bf16())
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and fast)


def describe_device(device: torch.device) -> str:
    """A human-readable name, e.g. "CUDA (NVIDIA H100)" or "CPU (2 threads)"."""
    if device.type == "cuda":
        return f"CUDA ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple GPU (MPS)"
    n = torch.get_num_threads()
    return f"CPU ({n} thread{'' if n == 1 else 's'})"
