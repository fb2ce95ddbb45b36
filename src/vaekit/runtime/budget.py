"""What the machine can do: the memory a computation may ask for, checked before it allocates.

A count that multiplies memory (``num_samples`` of the anomaly scores, ...) is refused with one
line when the work it asks for would take more than :data:`MEMORY_FRACTION` of the memory this
machine has available, instead of asking the allocator for hundreds of gigabytes (or swapping).
"""

from __future__ import annotations

import os

#: At most this fraction of the available memory is asked for by one computation.
MEMORY_FRACTION = 0.5


def available_bytes() -> int:
    """Memory available to new allocations: ``MemAvailable`` of /proc/meminfo (Linux), else the
    free physical pages (``os.sysconf``), else 4 GiB."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def check_memory(name: str, value: int, bytes_per_unit: float, what: str, fixed: float = 0.0) -> None:
    """Refuse ``value`` units of ``name`` when they need more than :data:`MEMORY_FRACTION` of the
    available memory: ``fixed + value * bytes_per_unit`` bytes.

    Raises:
        ValueError: naming ``name``, the value, the memory it needs, what the machine has, and the
            largest value that fits.
    """
    budget = MEMORY_FRACTION * available_bytes()
    need = fixed + value * bytes_per_unit
    if need <= budget:
        return
    largest = max(0, int((budget - fixed) // bytes_per_unit))
    raise ValueError(
        f"{name} {value} needs about {need / 2**30:,.1f} GiB of memory for {what}, more than half of the "
        f"{budget / MEMORY_FRACTION / 2**30:,.1f} GiB this machine has available; use at most {name} "
        f"{largest}" + (" (or score fewer features)" if largest < 1 else "")
    )
