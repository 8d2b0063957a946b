"""Serving benchmark: the product against the obvious implementation, under wrk.

    python -m bench.serve                      # full run: every cell, 3 rounds, ~10 s per cell
    python -m bench.serve --model 2            # the same with the bundled default (the CNN)
    python -m bench.serve --seconds 5 --rounds 1 --cells predict_png28   # a quick look
    python -m bench.serve --seconds 5 --rounds 1 --connections 32 --cells read_jpeg1mp --no-reference
                                               # /v1/read: a 4-digit number in a 1 MP photo (ours only)

Three servers run under gunicorn with ``gunicorn.conf.py`` on 127.0.0.1:
ours (``service:create_app()``, its default configuration), and the obvious
Flask app (``bench.reference_app:app``) twice: in its best configuration
(``sync``, 2 workers: what gunicorn's docs advise for a CPU-bound app) and
under ours. Like for like, every server serves the same artifact: ``--model
1`` (the default here) is the MLP the obvious app serves too; with ``--model
2`` ours serves the bundled CNN against the obvious app's MLP. For every cell
(endpoint x payload x concurrency) wrk drives one server after the other,
round after round in alternating order, so drift on this shared 2-core
machine hits them alike; the table reports the median over rounds and the
ratio to the obvious app's best. Requests rotate among many distinct images
(``tools/wrk_rotate.lua``). Results go to
``bench/out/serve-<timestamp>.json`` and are printed as a Markdown table for
``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import sys

from tools.loadgen import CELLS, OUT, REPO, Server, bench_run, ensure_wrk, run_wrk, settings_from

REFERENCE_BEST = {"WORKER_CLASS": "sync", "WORKERS": "2"}
OURS_ONLY = {"read_jpeg1mp"}  # cells of routes the obvious app does not have (/v1/read)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per cell and server")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--cells", default=",".join(c.name for c in CELLS))
    parser.add_argument("--model", default="1",
                        help="bundled version every server serves (1: the MLP; the newest: the default CNN)")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for our server only (e.g. WORKER_CLASS=sync), repeatable; the "
                             "obvious app's 'our config' column keeps the defaults")
    args = parser.parse_args(argv)
    # Stopped with SIGTERM (or SIGINT, which a background job ignores): still stop the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    connections = [int(c) for c in args.connections.split(",")]
    stamp, work, manifests, cells = bench_run("serve", args.cells)
    # One version, alone in its artifacts directory, for ours. The obvious app reads only
    # the MLP format: it serves version 1 (the same model when --model is 1).
    artifacts = work / "artifacts" / "mnist"
    shutil.copytree(REPO / "artifacts" / "mnist" / args.model, artifacts / args.model)
    model_path = REPO / "artifacts" / "mnist" / "1" / "model.npz"
    ours_env = {**settings_from(args.env), "ARTIFACTS_DIR": str(work / "artifacts"),
                "ACCESS_LOG": "true"}
    servers = [Server("ours", "service:create_app()", 18411, ours_env, work / "ours.log")]
    if not args.no_reference:
        ref = {"REFERENCE_ARTIFACT": str(model_path)}
        servers.append(Server("reference", "bench.reference_app:app", 18412, {**ref, **REFERENCE_BEST},
                              work / "reference.log"))
        servers.append(Server("reference_ours", "bench.reference_app:app", 18413, ref,
                              work / "reference-ours.log"))
    results: dict[tuple[str, int, str], list[dict]] = {}
    try:
        for server in servers:
            server.wait_ready()
        for server in servers:  # warm up: every worker booted, caches and allocators primed
            for cell in cells:
                if cell.name not in OURS_ONLY or server.name == "ours":
                    run_wrk(server.url, manifests[cell.name], 8, 2)
        print(f"# {len(cells)} cells x {len(connections)} concurrencies x {args.rounds} rounds x "
              f"{len(servers)} servers, {args.seconds:g} s each", file=sys.stderr)
        for round_ in range(args.rounds):
            for cell in cells:
                for c in connections:
                    for server in (servers if round_ % 2 == 0 else servers[::-1]):
                        if cell.name in OURS_ONLY and server.name != "ours":
                            continue
                        r = run_wrk(server.url, manifests[cell.name], c, args.seconds)
                        results.setdefault((cell.name, c, server.name), []).append(r)
                        print(f"round {round_ + 1} {cell.name:18s} c={c:<3d} {server.name:15s} "
                              f"{r['rps']:9.1f} req/s p99 {r['p99_us'] / 1000:7.2f} ms "
                              f"errors {r['errors']}", file=sys.stderr, flush=True)
    finally:
        for server in servers:
            server.stop()

    def median(cell: str, c: int, server: str, key: str) -> float | None:
        rows = results.get((cell, c, server))
        return statistics.median(r[key] for r in rows) if rows else None

    table = []
    for cell in cells:
        for c in connections:
            row = {"cell": cell.name, "endpoint": cell.endpoint, "payload": cell.payload, "connections": c}
            for server in ("ours", "reference", "reference_ours"):
                if (cell.name, c, server) not in results:
                    continue
                row[server] = {k: median(cell.name, c, server, k)
                               for k in ("rps", "p50_us", "p90_us", "p99_us")}
                row[server]["images_per_s"] = row[server]["rps"] * cell.images_per_request
                row[server]["errors"] = sum(r["errors"] for r in results[(cell.name, c, server)])
            table.append(row)
    report = {
        "date": stamp, "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}",
        "command": " ".join(["python -m bench.serve", *(argv if argv is not None else sys.argv[1:])]),
        "seconds": args.seconds, "rounds": args.rounds, "model": args.model,
        "reference_best": REFERENCE_BEST, "rows": table,
    }
    (OUT / f"serve-{stamp}.json").write_text(json.dumps(report, indent=2))
    print(markdown(report))
    return 0


def markdown(report: dict) -> str:
    lines = ["| endpoint | payload | conns | req/s | images/s | p50 ms | p99 ms | errors "
             "| obvious app, sync x2: req/s | p99 ms | ratio | obvious app, our config: req/s | ratio |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for row in report["rows"]:
        ours = row.get("ours")
        if ours is None:
            continue
        cells = [row["endpoint"], row["payload"], str(row["connections"]), f"{ours['rps']:,.0f}",
                 f"{ours['images_per_s']:,.0f}", f"{ours['p50_us'] / 1000:.2f}", f"{ours['p99_us'] / 1000:.2f}",
                 str(ours["errors"])]
        for name, with_p99 in (("reference", True), ("reference_ours", False)):
            ref = row.get(name)
            if ref is None:
                cells += ["", "", ""] if with_p99 else ["", ""]
                continue
            ratio = f"{ours['rps'] / ref['rps']:.2f}x" if ref["rps"] else "n/a"
            cells += [f"{ref['rps']:,.0f}"] + ([f"{ref['p99_us'] / 1000:.2f}"] if with_p99 else []) + [ratio]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

if __name__ == "__main__":
    sys.exit(main())
