"""Judging ``/v1/read`` on whole numbers written by hand (made by ``evaluation.composed``).

``evaluate`` reads a set of uploads (``composed.make_set``) through a reader
(bytes -> text) and separates the two ways to be wrong:

    segmentation   the wrong number of digits (a touching pair read as one, a digit cut in two)
    recognition    the right number of digits, one or more of them wrong

beside exact matches (all, and numbers with touching digits), per-digit
accuracy (position by position on strings of the right length, otherwise
through the longest matching blocks), refusals (the 4xx: blank, no digits,
too many), failures (an exception: a 5xx) and the reading time; overall, per
upload kind and per touch style. ``python -m evaluation.numbers --dev`` or
``--report`` prints the tables. Nothing here trains anything.
"""

from __future__ import annotations

import difflib
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from .card import markdown_table
from .composed import TOUCHING_SHARE, make_set

__all__ = ["evaluate", "reader_for", "run", "sets_for", "tables"]


def _digits_right(truth: str, read: str) -> int:
    if len(truth) == len(read):
        return sum(a == b for a, b in zip(truth, read))
    return sum(block.size for block in difflib.SequenceMatcher(None, truth, read).get_matching_blocks())


@dataclass(frozen=True)
class _Outcome:
    """What the reader did with one case."""

    truth: str
    read: str | None  # None: refused (a 4xx) or failed
    failed: bool  # raised: the service would answer 5xx
    kind: str
    touch: str
    seconds: float


def _summary(outcomes: Sequence[_Outcome]) -> dict:
    """Return the shares of exact reads, segmentation and recognition errors, refusals and
    failures, per-digit accuracy and the reading time (ms) of ``outcomes``."""
    n = len(outcomes)
    if n == 0:
        return {"n": 0}
    answered = [o for o in outcomes if o.read is not None]
    exact = [o for o in answered if o.read == o.truth]
    touching = [o for o in outcomes if o.touch]
    digits = sum(len(o.truth) for o in outcomes)
    ms = sorted(round(1000 * o.seconds, 3) for o in outcomes)  # to the microsecond, as reported
    return {
        "n": n,
        "digits": digits,
        "exact": len(exact) / n,
        "touching_n": len(touching),
        "touching_exact": sum(o.read == o.truth for o in touching) / len(touching) if touching else None,
        "per_digit": sum(_digits_right(o.truth, o.read or "") for o in outcomes) / digits,
        "segmentation": sum(len(o.read) != len(o.truth) for o in answered) / n,
        "recognition": sum(len(o.read) == len(o.truth) and o.read != o.truth for o in answered) / n,
        "refused": sum(o.read is None and not o.failed for o in outcomes),
        "failed": sum(o.failed for o in outcomes),
        "invalid": sum(not (o.read.isdigit() and o.read.isascii()) for o in answered),
        "median_ms": statistics.median(ms),
        "p90_ms": _p90(ms),
        "times_ms": ms,
    }


def _p90(ms: Sequence[float]) -> float:
    """Return the 90th percentile of sorted ``ms`` (nearest rank)."""
    return ms[min(len(ms) - 1, int(0.9 * len(ms)))]


def evaluate(reader: Callable[[bytes], str | None], cases: Sequence[tuple[str, str | bool, str, bytes]]) -> dict:
    """Return how ``reader`` (bytes -> text, None when it refuses the upload) reads ``cases``
    (from ``make_set``): ``_summary``'s figures overall, ``by_kind`` (kind of upload) and
    ``by_touch`` (touch style), and the first misreadings (``errors``). An exception from the
    reader is a failure (the service would answer 5xx), counted, not raised."""
    return _report(_read(reader, cases))


def _read(reader: Callable[[bytes], str | None], cases: Sequence[tuple[str, str | bool, str, bytes]]
          ) -> list[_Outcome]:
    outcomes = []
    for text, touch, kind, data in cases:
        start = time.perf_counter()
        try:
            got, failed = reader(data), False
        except Exception:  # noqa: BLE001 - counted: the service would answer 500
            got, failed = None, True
        outcomes.append(_Outcome(text, got, failed, kind, str(touch or ""), time.perf_counter() - start))
    return outcomes


def _report(outcomes: Sequence[_Outcome]) -> dict:
    report = _summary(outcomes)
    report["by_kind"] = {kind: _summary([o for o in outcomes if o.kind == kind])
                         for kind in dict.fromkeys(o.kind for o in outcomes)}
    report["by_touch"] = {style: _summary([o for o in outcomes if o.touch == style])
                          for style in dict.fromkeys(o.touch for o in outcomes if o.touch)}
    report["errors"] = [{"truth": o.truth, "read": o.read, "kind": o.kind, "touching": o.touch, "failed": o.failed}
                        for o in outcomes if o.read != o.truth][:30]
    return report


# -- tables and the command line ---------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f}%"


def _row(name: str, r: dict) -> list[str]:
    touching = f"{_pct(r['touching_exact'])} of {r['touching_n']}" if r["touching_n"] else "-"
    return [name, str(r["n"]), _pct(r["exact"]), touching, _pct(r["per_digit"]), _pct(r["segmentation"]),
            _pct(r["recognition"]), str(r["refused"]), str(r["failed"]), f"{r['median_ms']:.1f}", f"{r['p90_ms']:.1f}"]


def tables(results: dict[str, dict]) -> str:
    """Return Markdown tables of ``evaluate``'s results per source (``results``: source ->
    report): one row per source, then one per upload kind and one per touch style."""
    header = ["", "numbers", "exact", "touching", "per digit", "segmentation", "recognition", "4xx", "5xx",
              "median ms", "p90 ms"]
    lines = markdown_table(["source", *header[1:]], [_row(name, r) for name, r in results.items()])
    for key, title in (("by_kind", "upload kind"), ("by_touch", "touch style")):
        for name, r in results.items():
            if len(results) > 1 and name == "all":
                continue
            lines += ["", f"**{name}, by {title}**", ""]
            lines += markdown_table([title, *header[1:]], [_row(k, v) for k, v in r[key].items()])
    return "\n".join(lines)


def reader_for(model, max_pixels: int = 40_000_000, **options) -> Callable[[bytes], str | None]:
    """Return bytes -> the text the service reads (``imaging.numbers``) with a loaded artifact,
    None where it refuses the upload (a 4xx); ``options`` go to ``read``."""
    from imaging.decode import ImageError
    from imaging.numbers import read, read_image

    def assess(X):
        return model.predictor.assess(X, model.thresholds)

    def reader(data: bytes) -> str | None:
        try:
            image, ink = read_image(data, max_pixels)
            return read(image, ink, assess, model.labels, 32, **options).text
        except ImageError:
            return None

    return reader


def sets_for(which: str, data_dir: str) -> dict[str, tuple[Sequence[np.ndarray], np.ndarray]]:
    """Return the digit sources of the development set ("dev": MNIST's training split) or of
    the report ("report": MNIST's test split and every available source of ``handwriting``)."""
    from model.data import load_dataset

    from .handwriting import SOURCES, SourceUnavailable, load_source

    mnist = load_dataset("mnist", data_dir, download=False, progress=False)
    if which == "dev":
        return {"mnist train": (mnist.train_images, mnist.train_labels)}
    sets = {"mnist test": (mnist.test_images, mnist.test_labels)}
    for name in SOURCES:
        try:
            source = load_source(name)
        except SourceUnavailable as exc:
            print(f"{name}: unavailable ({exc})")
            continue
        sets[name] = (source.images, source.labels)
    return sets


def run(reader: Callable[[bytes], str | None], sets: dict, n: int, seed: int = 0,
        touching_share: float = TOUCHING_SHARE) -> dict[str, dict]:
    """Return ``evaluate``'s report for ``n`` numbers of each set (source -> (images, labels)),
    and for all of them together ("all") when there are several."""
    results, every = {}, []
    for i, (name, (images, labels)) in enumerate(sets.items()):
        outcomes = _read(reader, make_set(images, labels, n, seed=seed + i, touching_share=touching_share))
        results[name] = _report(outcomes)
        every += outcomes
    if len(results) > 1:
        results["all"] = _report(every)
    return results


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(
        prog="python -m evaluation.numbers",
        description="Read composed handwritten numbers through the service's reader (imaging.numbers); "
                    "run with OPENBLAS_NUM_THREADS=1, as a gunicorn worker does, for its timing.")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--dev", action="store_true",
                       help="numbers of MNIST *training* digits: what the reader is tuned on")
    which.add_argument("--report", action="store_true",
                       help="numbers of MNIST test digits and of every source of other handwriting (the default)")
    p.add_argument("--artifact", help="model.npz or a version directory (default: the newest bundled)")
    p.add_argument("--data-dir", default="../shared/datasets")
    p.add_argument("--n", type=int, default=600, help="numbers per digit source")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--touching-share", type=float, default=TOUCHING_SHARE,
                   help="share of numbers with a touching pair (default 1/7)")
    p.add_argument("--json", help="write the results to this file")
    args = p.parse_args(argv)
    from model.artifact import load_artifact
    from model.store import ARTIFACT_FILE, ArtifactStore

    path = args.artifact or ArtifactStore("artifacts", "mnist").latest().path
    reader = reader_for(load_artifact(path if str(path).endswith(".npz") else f"{path}/{ARTIFACT_FILE}"))
    results = run(reader, sets_for("dev" if args.dev else "report", args.data_dir), args.n, args.seed,
                  args.touching_share)
    print(tables(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
