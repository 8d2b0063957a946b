"""The served model: which version is active, loading it, and swapping it.

Each gunicorn worker owns one ``ModelRegistry`` (built in ``init_app`` after
the fork). It follows the newest valid version in the artifacts directory,
or the pinned one (the pin is a file, so every worker and every restart
agrees), and a background thread looks for changes every ``POLL_INTERVAL``
seconds.

A candidate version is loaded, validated and warmed up (one prediction whose
output is checked) before it replaces the current model, by a single
reference assignment. A request calls ``current()`` (or ``for_request``) once
and uses that ``ServedModel`` to the end, so a swap never mixes two versions.
A version that fails to load is recorded (``errors``, logs, metrics) and not
retried until its file changes; the current model keeps serving.

Rollouts (a shadow version, a canary version, the staged policy) follow
``rollout.json`` on every poll; ``rollout.py`` owns them.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from model.artifact import ArtifactMetadata, InvalidArtifact, LoadedModel, load_artifact, read_metadata
from model.data import INPUT_SIZE
from model.inference import Predictor
from model.ood import Verdicts
from model.store import LATEST, ArtifactStore, VersionEntry, VersionNotFound

from . import metrics
from .rollout import Rollout

__all__ = ["LoadError", "ModelRegistry", "ServedModel", "thresholds_in_effect"]

log = logging.getLogger("service.registry")

Signature = tuple[int, int, int]
_CACHED_VERSIONS = 4  # extra versions kept for /v2/models/{name}/versions/{v}


def _signature(path: os.PathLike) -> Signature:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


@dataclass(frozen=True)
class ServedModel:
    """One validated, warmed-up version; immutable, shared by all threads.

    Everything an answer needs that depends only on the version and the
    settings is here, computed once when the version loads: the predictor
    (``model.inference``), the labels, the reference answers name it by and
    the verdict's thresholds in effect.
    """

    name: str
    version: str
    loaded: LoadedModel
    signature: Signature
    loaded_at: float
    thresholds: Verdicts  # the settings' NOT_A_DIGIT_BELOW/UNCERTAIN_BELOW, else the model's own
    predictor: Predictor = field(init=False, repr=False)
    labels: list[str] = field(init=False, repr=False)
    ref: dict = field(init=False, repr=False)  # {"name", "version"}: how an answer names its model

    def __post_init__(self) -> None:  # derived once, read on every answer
        object.__setattr__(self, "predictor", self.loaded.predictor)
        object.__setattr__(self, "labels", self.loaded.metadata.labels)
        object.__setattr__(self, "ref", {"name": self.name, "version": self.version})

    @property
    def metadata(self) -> ArtifactMetadata:
        return self.loaded.metadata

    @property
    def architecture(self) -> str:
        """Return the network in one line: its kind and its layers."""
        net = self.loaded.net
        return f"{net.arch.upper()}: {net.describe()}"

    def scoring(self) -> dict:
        """Return how this version scores digit-ness and the thresholds in effect (/v1/models)."""
        ood = self.metadata.ood
        return {"method": ood.method if ood else "confidence",
                "not_a_digit_below": self.thresholds.not_a_digit_below,
                "uncertain_below": self.thresholds.uncertain_below,
                "model_thresholds": ood.thresholds.model_dump() if ood else None}


def thresholds_in_effect(loaded: LoadedModel, overrides: tuple[float | None, float | None]) -> Verdicts:
    """Return the verdict's thresholds: each override given (the settings'), else the model's own
    (``LoadedModel.thresholds``)."""
    own = loaded.thresholds
    not_a_digit, uncertain = overrides
    return Verdicts(own.not_a_digit_below if not_a_digit is None else not_a_digit,
                    own.uncertain_below if uncertain is None else uncertain)


@dataclass(frozen=True)
class LoadError:
    version: str
    message: str
    at: str  # ISO 8601, UTC


class ModelRegistry:
    """Loads versions from an ``ArtifactStore`` and holds the active one, and the shadow and
    canary versions of a rollout."""

    def __init__(self, store: ArtifactStore, policy: str = "newest",
                 thresholds: tuple[float | None, float | None] = (None, None)):
        self.store = store
        self.thresholds = thresholds  # the settings' overrides of every version's own
        self.rollout = Rollout(store, policy, self.get)
        self._current: ServedModel | None = None
        self._lock = threading.RLock()
        self._failed: dict[str, tuple[Signature, LoadError]] = {}
        self._cache: OrderedDict[str, ServedModel] = OrderedDict()
        self._metadata_cache: dict[str, tuple[Signature, ArtifactMetadata | None]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_poll: float | None = None
        self.poll_error: str | None = None

    # -- reading ------------------------------------------------------------

    def current(self) -> ServedModel | None:
        """Return the active model (or None before the first successful load)."""
        return self._current

    @property
    def policy(self) -> str:
        """Return the rollout policy (``ROLLOUT_POLICY``)."""
        return self.rollout.policy

    def for_request(self, client_key: str) -> ServedModel | None:
        """Return the model that answers the client with ``client_key``: the canary version for
        its share of clients, else the active one."""
        return self.rollout.for_client(client_key, self._current)

    def shadow(self) -> ServedModel | None:
        """Return the shadow version (None when there is none)."""
        return self.rollout.shadow

    def canary(self) -> tuple[ServedModel, float] | None:
        """Return (the canary version, the percent of clients it answers), or None."""
        return self.rollout.canary

    @property
    def errors(self) -> list[LoadError]:
        """Return the load errors of versions that are still failing, oldest first."""
        return sorted((e for _, e in self._failed.values()), key=lambda e: e.at)

    def get(self, version: str) -> ServedModel:
        """Return ``version``, loading and caching it if it is not the active one.

        Raises
        ------
        VersionNotFound : no such version.
        InvalidArtifact : the version fails validation.
        """
        current = self._current
        if current is not None and current.version == version:
            return current
        with self._lock:
            entry = self.store.get(version)
            cached = self._cache.get(version)
            if cached is not None and cached.signature == _signature(entry.path):
                self._cache.move_to_end(version)
                return cached
            served = self._load(entry)
            self._cache[version] = served
            while len(self._cache) > _CACHED_VERSIONS:
                self._cache.popitem(last=False)
            return served

    def versions(self) -> list[dict]:
        """Return every version, newest first, with created-at, test accuracy and state."""
        current, pinned = self._current, self.store.pinned()
        rows = []
        for entry in reversed(self.store.versions()):
            meta = self._metadata(entry)
            failed = self._failed.get(entry.version)
            rows.append({
                "version": entry.version,
                "created_at": meta.created_at.isoformat() if meta else None,
                "test_accuracy": meta.metrics.test_accuracy if meta else None,
                "active": current is not None and current.version == entry.version,
                "pinned": pinned == entry.version,
                "valid": meta is not None and failed is None,
            })
        return rows

    def _metadata(self, entry: VersionEntry) -> ArtifactMetadata | None:
        try:
            sig = _signature(entry.path)
        except OSError:
            return None
        cached = self._metadata_cache.get(entry.version)
        if cached is None or cached[0] != sig:
            try:
                meta = read_metadata(entry.path)
            except InvalidArtifact:
                meta = None
            cached = self._metadata_cache[entry.version] = (sig, meta)
        return cached[1]

    # -- loading ------------------------------------------------------------

    def _load(self, entry: VersionEntry) -> ServedModel:
        """Load, validate and warm up one version (raises InvalidArtifact)."""
        started = time.perf_counter()
        signature = _signature(entry.path)
        try:
            loaded = load_artifact(entry.path)
            if loaded.metadata.name != self.store.name:
                raise InvalidArtifact(f"{entry.path}: artifact is named {loaded.metadata.name!r}, "
                                      f"expected {self.store.name!r}")
            predictor = loaded.predictor
            for n in (1, 2):  # warms both the single-upload and the batch paths' buffers
                probs, scores = predictor(np.zeros((n, INPUT_SIZE), np.float32))
                if probs.shape != (n, len(loaded.labels)) or not np.isfinite(probs).all() \
                        or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-4):
                    raise InvalidArtifact(f"{entry.path}: warm-up prediction is not a probability vector")
                if scores.shape != (n,) or not ((scores >= 0) & (scores <= 1)).all():
                    raise InvalidArtifact(f"{entry.path}: warm-up digit scores are not in [0, 1]")
        except InvalidArtifact as exc:
            error = LoadError(entry.version, str(exc), datetime.now(timezone.utc).isoformat())
            self._failed[entry.version] = (signature, error)
            metrics.MODEL_LOADS.labels(result="failure").inc()
            log.error("model load failed", extra={"version": entry.version, "error": str(exc)})
            raise
        self._failed.pop(entry.version, None)
        metrics.MODEL_LOADS.labels(result="success").inc()
        log.info("model loaded", extra={"version": entry.version,
                                        "ms": round(1000 * (time.perf_counter() - started), 1)})
        return ServedModel(self.store.name, entry.version, loaded, signature, time.time(),
                           thresholds_in_effect(loaded, self.thresholds))

    def _failed_unchanged(self, entry: VersionEntry) -> bool:
        failed = self._failed.get(entry.version)
        if failed is None:
            return False
        try:
            return failed[0] == _signature(entry.path)
        except OSError:
            return True

    def _swap(self, served: ServedModel) -> None:
        previous = self._current
        self._current = served
        metrics.ACTIVE_VERSION.set(int(served.version))
        if previous is None or previous.version != served.version:
            log.info("model activated", extra={
                "version": served.version, "previous": previous.version if previous else None})

    def refresh(self) -> ServedModel | None:
        """Make the pinned version, or else the newest valid one, active.

        Candidates are tried newest first; a failing candidate is skipped (and
        remembered until its file changes) and the current model is kept when
        nothing better loads. Returns the active model.
        """
        with self._lock:
            try:
                entries = self.store.versions()
                pinned = self.store.pinned()
            except OSError as exc:  # e.g. the directory is briefly unreadable
                self.poll_error = f"cannot read {self.store.dir}: {exc}"
                log.warning("artifacts directory unreadable", extra={"error": str(exc)})
                return self._current
            self.poll_error = None
            self.last_poll = time.time()
            present = {e.version for e in entries}
            for version in list(self._failed):
                if version not in present:
                    del self._failed[version]
            if pinned is not None and pinned in present:
                candidates = [e for e in entries if e.version == pinned]
            else:
                candidates = list(reversed(entries))
            if self._first_loadable(candidates) is None and self._current is None \
                    and pinned is not None:
                # The pinned version cannot be served: fall back to the newest valid one.
                self._first_loadable([e for e in reversed(entries) if e.version != pinned])
            self.rollout.follow(self._current, pinned, entries[-1] if entries else None, self._failed_unchanged)
            return self._current

    def set_shadow(self, version: str | None) -> ServedModel | None:
        """Make ``version`` the shadow (validated first), or stop the shadow with None."""
        with self._lock:
            return self.rollout.set_shadow(version, self._current)

    def set_canary(self, version: str | None, percent: float) -> ServedModel | None:
        """Let ``version`` (validated first) answer ``percent`` of clients, or stop with None."""
        with self._lock:
            return self.rollout.set_canary(version, percent)

    def _first_loadable(self, candidates: list[VersionEntry]) -> ServedModel | None:
        """Activate the first candidate that is current or loads; return it (None if none)."""
        current = self._current
        for entry in candidates:
            if current is not None and entry.version == current.version:
                try:
                    unchanged = _signature(entry.path) == current.signature
                except OSError:
                    unchanged = True
                if unchanged or self._failed_unchanged(entry):
                    return current  # keeps serving the copy in memory
            elif self._failed_unchanged(entry):
                continue
            try:
                served = self._load(entry)
            except (InvalidArtifact, OSError):
                continue
            self._swap(served)
            return served
        return None

    def activate(self, version: str) -> ServedModel:
        """Pin ``version`` (or follow the newest with ``"latest"``) and make it active now.

        The version is validated before the pin is written, so a failing
        artifact is never pinned and the current model keeps serving.

        Raises
        ------
        VersionNotFound : no such version (404).
        InvalidArtifact : it fails validation (422).
        """
        with self._lock:
            if version == LATEST:
                self.store.pin(None)
                served = self.refresh()
                if served is None:
                    raise VersionNotFound("no valid version to serve")
                return served
            entry = self.store.get(version)
            current = self._current
            if current is not None and current.version == version \
                    and current.signature == _signature(entry.path):
                served = current
            else:
                served = self._load(entry)
            self.store.pin(version)
            self._swap(served)
            self.rollout.promoted(version)
            return served

    # -- polling --------------------------------------------------------------

    def start(self, interval: float) -> None:
        """Start the background thread that calls ``refresh`` every ``interval`` seconds."""
        if self._thread is not None:
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval):
                try:
                    self.refresh()
                except Exception:  # noqa: BLE001 - the poller must never die
                    log.exception("model refresh failed")

        self._thread = threading.Thread(target=loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


def init_app(app, store: ArtifactStore, poll_interval: float | None, policy: str = "newest",
             thresholds: tuple[float | None, float | None] = (None, None)) -> ModelRegistry:
    """Create the worker's registry, load the first model, start polling."""
    registry = ModelRegistry(store, policy, thresholds)
    registry.refresh()
    if poll_interval:
        registry.start(poll_interval)
    app.extensions["registry"] = registry
    return registry


def get_registry() -> ModelRegistry:
    from flask import current_app

    return current_app.extensions["registry"]


def current_model() -> ServedModel:
    """Return the model that answers this request: a canary version for its share of clients
    (by ``X-Client-ID``, else the request id), else the active one (503 ``NoModelReady`` when
    none)."""
    from flask import g, request

    registry = get_registry()
    if registry.canary() is None:
        served = registry.current()
    else:
        served = registry.for_request(request.headers.get("X-Client-ID") or g.get("request_id") or "")
    if served is None:
        from .errors import NoModelReady

        raise NoModelReady()
    return served
