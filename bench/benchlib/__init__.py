"""Helpers of bench/run: /proc readings, server processes, text output and the measurements beyond wrk."""

from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
APPS = BENCH / "apps"
