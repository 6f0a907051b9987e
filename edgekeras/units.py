"""Sizes as people read them: one rule for every table and message that prints a size.

Binary units with their IEC names: 1 KiB = 1024 bytes, 1 MiB = 1024 KiB, 1 GiB = 1024 MiB.
Binary because the limits targets set (`max_size_kb`, `max_arena_kb`) and the runtimes'
memory figures (`peak_rss_mb`) already count in 1024s; IEC names so nobody has to guess.
"""

from __future__ import annotations

# (unit, bytes in it, decimals shown), largest first
_UNITS = (("GiB", 1024**3, 2), ("MiB", 1024**2, 2), ("KiB", 1024, 1))


def format_size(n_bytes):
    """`n_bytes` as text: '812 B', '153.6 KiB', '4.30 MiB', '1.25 GiB'.

    One decimal in KiB and two from MiB up, so every size carries about three significant
    digits; the unit is the largest one the size reaches.
    """
    n = float(n_bytes)
    for unit, size, decimals in _UNITS:
        if abs(n) >= size:
            return f"{n / size:.{decimals}f} {unit}"
    return f"{int(n)} B"
