"""docker's go-units: human sizes and durations, as docker prints them. Pure functions, used by the
engine (ps STATUS) and the CLI (tables) alike."""

from __future__ import annotations

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _custom_size(size: float, precision: int, base: float, units: tuple[str, ...]) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return f"{size:.{precision}g}{units[i]}"


def human_size(n: float, precision: int = 3) -> str:
    """go-units HumanSizeWithPrecision(n, precision): decimal units (``187MB``, ``0B``). docker's tables
    use 3 significant digits; HumanSize (reclaimed space, progress bars) is precision 4 (``12.35MB``)."""
    return _custom_size(float(n), precision, 1000.0, _DECIMAL_UNITS)


def bytes_size(n: float) -> str:
    """go-units BytesSize: binary units, 4 significant digits: ``7.763GiB``."""
    return _custom_size(float(n), 4, 1024.0, _BINARY_UNITS)


def human_duration(seconds: float) -> str:
    """go-units HumanDuration: ``Less than a second``, ``About a minute``, ``3 hours``, ``2 weeks``…"""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)  # Go's Duration.Round(time.Hour): halves away from zero
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"
