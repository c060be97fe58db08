"""Goals: the figure each scenario should reach, printed (and stored in the JSON) beside the
measured one.  A goal compares one figure of a server's summary with a fixed target, or with a
multiple of the same figure of another server in the scenario (nginx, Gunicorn) or of the same
server in another scenario of the same run (async-hello's 64 connections)."""

from dataclasses import dataclass

from benchlib.text import fmt_metric, print_rows


@dataclass
class Goal:
    text: str                  # what it says, e.g. "CPU us/req <= nginx's"
    metric: str                # key in a server's summary; "a.b" for a nested one
    op: str                    # "<=" or ">="
    target: float = None       # a fixed target; if None, `factor` times the metric of:
    ref_server: str = None     # another server of this scenario, or
    ref_scenario: str = None   # the same server in another scenario (default: this one)
    factor: float = 1.0
    servers: tuple = ("gcorn",)

    def evaluate(self, scenario, report):
        """One row per server the goal is about and that was measured: the goal, the measured
        value, the target, and whether it was met (None if a figure is missing)."""
        rows = []
        for server in self.servers:
            measured = figure(report, scenario, server, self.metric)
            if measured is None and server not in report["scenarios"][scenario]["servers"]:
                continue
            rows.append({"scenario": scenario, "server": server, "goal": self.text,
                         "metric": self.metric, "measured": measured,
                         "target": self.target_for(scenario, server, report),
                         "reference": self.reference(scenario, server)})
            r = rows[-1]
            r["met"] = (None if r["measured"] is None or r["target"] is None else
                        r["measured"] <= r["target"] if self.op == "<=" else
                        r["measured"] >= r["target"])
        return rows

    def target_for(self, scenario, server, report):
        if self.target is not None:
            return self.target
        value = figure(report, self.ref_scenario or scenario, self.ref_server or server,
                       self.metric)
        return None if value is None else self.factor * value

    def reference(self, scenario, server):
        """What the target was taken from, e.g. "1.5 x async-hello gcorn"."""
        if self.target is not None:
            return "fixed"
        ref = " ".join([self.ref_scenario or "", self.ref_server or server]).strip()
        return ref if self.factor == 1.0 else "%g x %s" % (self.factor, ref)


def figure(report, scenario, server, metric):
    """A (dotted) metric of a server's summary in a scenario of report, or None."""
    value = (report["scenarios"].get(scenario, {}).get("servers", {}).get(server, {})
             .get("summary"))
    for key in metric.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def verdict(met):
    return {True: "met", False: "NOT MET", None: "no figure"}[met]


def print_goals(rows, with_scenario=False):
    """The goal rows of one scenario (or of the whole run, with_scenario) as a table."""
    table = []
    for r in rows:
        table.append(([r["scenario"]] if with_scenario else [])
                     + [r["server"], r["goal"], fmt_metric(r["metric"], r["measured"]),
                        fmt_metric(r["metric"], r["target"]), r["reference"], verdict(r["met"])])
    header = (["scenario"] if with_scenario else []) + ["server", "goal", "measured", "target",
                                                         "target from", "verdict"]
    names = len(header) - 4             # [scenario,] server, goal: left-aligned, as the last two
    print_rows(header, table, left=list(range(names)) + [len(header) - 2, len(header) - 1])
