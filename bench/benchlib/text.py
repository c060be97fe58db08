"""Formatting of bench/run's figures and tables."""

import statistics


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None



def fmt_us(us):
    if us is None:
        return "-"
    if us < 1000:
        return "%.0fus" % us
    if us < 1e6:
        return "%.2fms" % (us / 1e3)
    return "%.2fs" % (us / 1e6)


def fmt(v, spec, scale=1):
    return "-" if v is None else spec % (v * scale)


def fmt_errors(e):
    parts = ["%s=%d" % (k, v) for k, v in e.items() if v]
    return ",".join(parts) if parts else "0"

