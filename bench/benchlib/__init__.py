"""Helpers of bench/run: /proc readings, server processes, text output and the measurements beyond wrk."""

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
APPS = BENCH / "apps"


class Measurement:
    """How a scenario measures a server.  bench/run starts the servers, calls warmup() on each,
    then measure() once per repetition, the servers alternating; then summarize() per server (the
    runs into medians), notes() on each summary, compare() across the servers, print_table().
    expected_log: a regex of the server log lines the measurement itself causes (not problems)."""

    expected_log = None

    def warmup(self, server, scenario, args):
        pass

    def measure(self, server, scenario, args, rep):
        """One run; a dict with at least "server_alive"."""
        raise NotImplementedError

    def summarize(self, runs, scenario, args):
        raise NotImplementedError

    def notes(self, name, summary, scenario):
        return []

    def compare(self, result):
        pass

    def print_table(self, scenario, result, args):
        raise NotImplementedError
