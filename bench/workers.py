"""Which gunicorn configuration serves fastest: ours and the obvious app, each in every candidate one.

    python -m bench.workers                                  # MLP and CNN, three payloads, 3 rounds
    python -m bench.workers --models 1 --cells predict_png28 --rounds 5 --seconds 5

Every configuration (``CONFIGS``: gunicorn's worker classes as shipped, two
workers) runs ours (serving each ``--models`` version) and the obvious app
(``bench/reference_app.py``, serving the MLP); wrk drives each server in
turn for every cell, in an order that rotates every round, so this shared
machine's drift falls on all of them alike. The table gives, per cell and
server, the median over rounds of req/s and p99, and marks each app's
fastest configuration: the obvious app's is the yardstick ``bench.serve``
should use, ours the default ``service/settings.py`` should have.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys

from evaluation.card import markdown_table
from tools.loadgen import REPO, Server, bench_run, ensure_wrk, run_wrk

CONFIGS = {  # two workers each
    "gthread-1": {"WORKER_CLASS": "gthread", "THREADS": "1"},
    "gthread-2": {"WORKER_CLASS": "gthread", "THREADS": "2"},
    "sync": {"WORKER_CLASS": "sync", "THREADS": "1"},
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,3", help="bundled versions ours serves (the obvious app: the MLP)")
    parser.add_argument("--cells", default="predict_png28,predict_canvas280,predict_jpeg1mp")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    _, work, manifests, cells = bench_run("workers", args.cells)
    mlp = REPO / "artifacts" / "mnist" / "1" / "model.npz"
    servers, port = [], 18440
    for config in args.configs.split(","):
        env = {**CONFIGS[config], "WORKERS": "2"}
        for version in args.models.split(","):
            artifacts = work / f"artifacts-{version}"
            if not artifacts.exists():
                shutil.copytree(REPO / "artifacts" / "mnist" / version, artifacts / "mnist" / version)
            servers.append(Server(f"ours v{version} {config}", "service:create_app()", port,
                                  {**env, "ARTIFACTS_DIR": str(artifacts)}, work / f"{port}.log"))
            port += 1
        servers.append(Server(f"obvious (MLP) {config}", "bench.reference_app:app", port,
                              {**env, "REFERENCE_ARTIFACT": str(mlp)}, work / f"{port}.log"))
        port += 1
    results: dict[tuple[str, str], list[dict]] = {}
    try:
        for server in servers:
            server.wait_ready()
            for cell in cells:
                run_wrk(server.url, manifests[cell.name], 8, 1)  # warm-up
        for round_ in range(args.rounds):
            order = servers[round_ % len(servers):] + servers[:round_ % len(servers)]
            for cell in cells:
                for server in (order if round_ % 2 == 0 else order[::-1]):
                    r = run_wrk(server.url, manifests[cell.name], args.connections, args.seconds)
                    results.setdefault((cell.name, server.name), []).append(r)
                    print(f"round {round_ + 1} {cell.name:18s} {server.name:34s} {r['rps']:8.0f} req/s "
                          f"p99 {r['p99_us'] / 1000:7.1f} ms errors {r['errors']}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()
    for cell in cells:
        print(f"\n{cell.payload}, {args.connections} connections, median of {args.rounds} rounds x "
              f"{args.seconds:g} s\n")
        rows = {}
        for server in servers:
            runs = results[cell.name, server.name]
            rows[server.name] = (statistics.median(r["rps"] for r in runs),
                                 statistics.median(r["p99_us"] for r in runs) / 1000, sum(r["errors"] for r in runs))
        best = {}
        for name, (rps, _, _) in rows.items():
            app = name.rsplit(" ", 1)[0]
            if rps > rows.get(best.get(app), (0,))[0]:
                best[app] = name
        print("\n".join(markdown_table(["server", "req/s", "p99 ms", "errors"], [
            [name + (" **(fastest)**" if best[name.rsplit(" ", 1)[0]] == name else ""), f"{rps:,.0f}", f"{p99:.1f}",
             str(errors)] for name, (rps, p99, errors) in rows.items()])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
