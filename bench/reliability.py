"""Reliability runs: load, soak, a worker killed under load, overload (the long versions).

    python -m bench.reliability load      [--seconds 60]   mixed traffic at 32 connections
    python -m bench.reliability soak      [--seconds 600]  RSS and file descriptors over time,
                                                          with model reloads in between
    python -m bench.reliability kill      [--seconds 20]   kill -9 a worker mid-load
    python -m bench.reliability overload  [--seconds 15]   far more connections than capacity
    python -m bench.reliability all                        each of the above, short (20, 60, 20 and 15 s)

The scenarios are tools/reliability.py's (the tests run short variants
and assert on them); this prints their figures for RELIABILITY.md. wrk is
Debian's, installed if missing.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys

from tools.loadgen import ensure_wrk
from tools.reliability import Scenario, kill_worker, load, overload, soak


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", choices=["load", "soak", "kill", "overload", "all"])
    parser.add_argument("--seconds", type=float)
    args = parser.parse_args(argv)
    # Stopped with SIGTERM (or SIGINT, which a background job ignores): still stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    scenario = Scenario()
    try:
        if args.run in ("load", "all"):
            load(scenario, args.seconds or (60 if args.run == "load" else 20))
        if args.run in ("soak", "all"):
            soak(scenario, args.seconds or (600 if args.run == "soak" else 60))
        if args.run in ("kill", "all"):
            kill_worker(scenario, args.seconds or 20)
        if args.run in ("overload", "all"):
            overload(scenario, args.seconds or 15)
    finally:
        shutil.rmtree(scenario.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
