"""Formatting of bench/run's figures and tables."""

import statistics


def median_of(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def spread(name, values):
    """{name: median, name_min: ..., name_max: ...} of the values that are not None (Nones if
    there are none): a figure over the runs, as the tables show it."""
    values = [v for v in values if v is not None]
    if not values:
        return {name: None, name + "_min": None, name + "_max": None}
    return {name: statistics.median(values), name + "_min": min(values),
            name + "_max": max(values)}


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


def fmt_range(low, high, spec):
    """"(min-max)" of a figure over the runs."""
    return "(%s-%s)" % (fmt(low, spec), fmt(high, spec))


def fmt_errors(e):
    parts = ["%s=%d" % (k, v) for k, v in e.items() if v]
    return ",".join(parts) if parts else "0"



def print_rows(header, rows, left=1):
    """A table: the first `left` columns (or those whose indexes are in `left`) left-aligned
    (names), the others right-aligned (numbers); nothing if there are no rows."""
    if not rows:
        return
    lefts = set(range(left)) if isinstance(left, int) else set(left)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    for cells in [header] + rows:
        print("  ".join(str(c).ljust(w) if i in lefts else str(c).rjust(w)
                        for i, (c, w) in enumerate(zip(cells, widths))).rstrip())


# How a goal's figure is shown, by the last part of its metric's name.
METRIC_FORMATS = {
    "requests_per_s": lambda v: "%.0f req/s" % v,
    "cpu_us_per_req": lambda v: "%.1f us/req" % v,
    "p99_us": fmt_us,
    "gb_per_s": lambda v: "%.2f GB/s" % v,
    "rss_growth_mib": lambda v: "%.1f MiB" % v,
    "boot_ms": lambda v: "%.1f ms" % v,
    "hup_ms": lambda v: "%.0f ms" % v,
}


def fmt_metric(metric, value):
    if value is None:
        return "-"
    return METRIC_FORMATS.get(metric.rsplit(".", 1)[-1], lambda v: "%.3g" % v)(value)


def summaries(result):
    """(server name, summary) of the servers of a scenario's result that have one."""
    return [(name, sr["summary"]) for name, sr in result["servers"].items() if "summary" in sr]
