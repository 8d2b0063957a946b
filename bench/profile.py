"""Where a request's time goes: a sampled profile of loaded workers, as microseconds per step.

    python -m bench.profile                         # versions 1 and 3, three payloads, and the obvious app
    python -m bench.profile --models 3 --cells predict_png28 --seconds 10

For each server (ours serving each ``--models`` version in its default
configuration; the obvious app, ``bench/reference_app.py``, in its best one,
sync x 2, serving the MLP) and each payload, wrk drives it with 32
connections while py-spy samples every worker (``--subprocesses``; idle
threads are not sampled, so a sample is time a worker spent working or
waiting for the GIL). Each sample is put in the step its innermost
recognised frame belongs to (``STEPS``, in order: the first pattern a frame
matches names its step); samples in no step are the worker's own overhead
(gunicorn's loop, sockets, Flask's and Werkzeug's dispatch). A sample whose
innermost frame waits (in the selector, on a queue or a lock, for a
client's close) is counted as waiting, shown (its sampled time per request)
but not added to the worker's time. The workers' CPU time (user and system,
from /proc) per request wrk completed is divided among the steps by their
share of the working samples, so a sample taken while a thread waited to be
scheduled or for the GIL weighs as little as the CPU it used. py-spy slows what it samples a little, so the request rate under
profiling (printed) is below ``bench.serve``'s. Needs ``py-spy`` (``pip
install py-spy``) and wrk; writes the raw profiles to ``bench/out/``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from evaluation.card import markdown_table
from tools.loadgen import REPO, Server, bench_run, ensure_wrk, run_wrk, settings_from

RATE = 500  # samples a second per process
# (step, frame pattern): a frame is "function (path:line)"; the innermost frame that matches
# any pattern names the sample's step, patterns tried in this order for each frame.
STEPS = [
    ("waiting (not work)", r"Selector\.select \(|select \(selectors|_worker \(concurrent/futures/thread\.py|Condition\.wait \("
                           r"|Event\.wait \(|close_graceful \(gunicorn/util\.py|socket\.accept \(|ModelRegistry\.start"),
    ("metrics", r"prometheus_client/|service/metrics\.py"),
    ("access log", r"service/(requestlog|logs)\.py|logging/__init__\.py"),
    ("JSON", r"orjson|flask/json/|json/encoder|service/schemas\.py|service/__init__\.py|OrjsonProvider|jsonify"),
    ("digit score and verdict", r"model/ood\.py|inference\.py:\d+\)$|assess \("),
    ("forward pass", r"model/(network|layers|conv|losses)\.py|Predictor.__call__|^forward \(bench"),
    ("decoding", r"decode_image|^(ImageFile\.load|open|Image\.open) \(PIL|PIL/(Png|Jpeg|Gif|Bmp|Tiff|WebP)ImagePlugin"),
    ("preprocessing", r"imaging/(preprocessing|kernels|numbers)\.py|model/mnistform\.py|^to_input \("
                      r"|^Image\.(convert|resize) \(PIL"),
    ("body parsing", r"werkzeug/(formparser|sansio/multipart|datastructures|wsgi)\.py|service/uploads\.py"
                     r"|get_data|_load_form_data|files \("),
    ("HTTP parsing", r"gunicorn/http/"),
]
ORDER = [name for name, _ in STEPS[1:]] + ["worker and framework", STEPS[0][0]]
WORK = ORDER[:-1]  # the steps that are work: waiting is reported, not counted in the worker's time
_PATTERNS = [(name, re.compile(pattern)) for name, pattern in STEPS]


def _step(frames: list[str]) -> str:
    """Return the step of one sample's stack (outermost frame first): waiting if its innermost
    frame waits (for a connection, a queue, a lock, the client's close), else the step of the
    innermost frame that matches one."""
    if frames and _PATTERNS[0][1].search(frames[-1]):
        return _PATTERNS[0][0]
    for frame in reversed(frames):
        for name, pattern in _PATTERNS[1:]:
            if pattern.search(frame):
                return name
    return "worker and framework"


def attribute(raw: str, master: int) -> tuple[Counter, int]:
    """Return (samples per step, samples) of py-spy's raw output for the workers of ``master``
    (with ``--subprocesses`` each stack starts with its processes: the master, then the worker)."""
    steps: Counter = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        processes = [f for f in frames if f.startswith("process ")]
        if not count.isdigit() or [p.split(":")[0] for p in processes] == [f"process {master}"]:
            continue  # the master's own samples (it only watches its workers)
        steps[_step(frames[len(processes):])] += int(count)
    return steps, sum(steps[name] for name in WORK)


def _workers_cpu(server: Server) -> float:
    """Return the CPU seconds (user + system) the workers of ``server`` have used so far."""
    ticks = 0
    for pid in server.workers():
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return ticks / os.sysconf("SC_CLK_TCK")


def profile(server: Server, manifest: Path, seconds: float, connections: int, raw_path: Path) -> dict:
    """Drive ``server`` with wrk for ``seconds`` while py-spy samples its workers; return the
    requests completed, the rate, the workers' CPU time per request, and how it divides into
    steps (each step's share of the working samples)."""
    cpu_before = _workers_cpu(server)
    spy = subprocess.Popen([shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
                            "--pid", str(server.pid), "--subprocesses", "--rate", str(RATE),
                            "--duration", str(int(seconds)), "--format", "raw", "-o", str(raw_path)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = run_wrk(server.url, manifest, connections, seconds)
    cpu = _workers_cpu(server) - cpu_before
    spy.wait(seconds + 30)
    steps, total = attribute(raw_path.read_text(), server.pid)
    requests = max(1, int(result["requests"]))
    cpu_us = cpu / requests * 1e6
    per_request = {name: steps[name] / max(total, 1) * cpu_us for name in WORK}
    per_request[ORDER[-1]] = steps[ORDER[-1]] / RATE / requests * 1e6
    return {"requests": requests, "rps": result["rps"], "errors": result["errors"], "samples": total,
            "us": per_request, "us_total": cpu_us}


def table(rows: list[tuple[str, dict]]) -> str:
    """Return a Markdown table: one column per profile, one row per step (microseconds per request)."""
    lines = markdown_table(["step", *(name for name, _ in rows)],
                           [[step, *(f"{r['us'][step]:,.0f}" for _, r in rows)] for step in ORDER]
                           + [["**worker CPU time per request**", *(f"**{r['us_total']:,.0f}**" for _, r in rows)],
                              ["req/s while profiled", *(f"{r['rps']:,.0f}" for _, r in rows)]])
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="1,3", help="bundled versions ours serves, one server each")
    parser.add_argument("--cells", default="predict_png28,predict_canvas280,predict_jpeg1mp")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for our servers (e.g. THREADS=2), repeatable")
    parser.add_argument("--reference-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting for the obvious app (default: its best, sync x 2), repeatable")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ensure_wrk()
    _, work, manifests, cells = bench_run("profile", args.cells)
    servers = []
    for i, version in enumerate(args.models.split(",")):
        artifacts = work / f"artifacts-{version}"
        shutil.copytree(REPO / "artifacts" / "mnist" / version, artifacts / "mnist" / version)
        env = settings_from(args.env)
        servers.append(Server(f"ours v{version}", "service:create_app()", 18421 + i,
                              {**env, "ARTIFACTS_DIR": str(artifacts)}, work / f"ours-{version}.log"))
    if not args.no_reference:
        reference = {"WORKER_CLASS": "sync", "WORKERS": "2", "THREADS": "1",
                     **settings_from(args.reference_env)}
        servers.append(Server(f"obvious app (MLP), {reference['WORKER_CLASS']} x{reference['WORKERS']}",
                              "bench.reference_app:app", 18420,
                              {"REFERENCE_ARTIFACT": str(REPO / "artifacts" / "mnist" / "1" / "model.npz"),
                               **reference}, work / "reference.log"))
    results = {}
    try:
        for server in servers:
            server.wait_ready()
        for cell in cells:
            for server in servers:
                run_wrk(server.url, manifests[cell.name], 8, 2)  # warm-up
                raw = work / f"{server.name.split()[0]}-{server.name.split()[1]}-{cell.name}.txt"
                results[cell.name, server.name] = profile(server, manifests[cell.name], args.seconds,
                                                          args.connections, raw)
                r = results[cell.name, server.name]
                print(f"# {cell.name} {server.name}: {r['rps']:,.0f} req/s, {r['samples']} samples, "
                      f"{r['errors']} errors", file=sys.stderr)
    finally:
        for server in servers:
            server.stop()
    for cell in cells:
        print(f"\n{cell.payload}, {args.connections} connections: microseconds of worker time per request\n")
        print(table([(server.name, results[cell.name, server.name]) for server in servers]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
