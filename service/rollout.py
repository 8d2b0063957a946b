"""Rollouts: a shadow version that runs beside the served one, a canary that answers some clients.

The state lives beside the pin, in ``<artifacts>/<model>/rollout.json``
(``read_state`` and ``write_state``; written atomically through the store,
so every worker, every replica on a shared volume and every restart agree
within ``POLL_INTERVAL``):

    {"shadow": "3", "canary": {"version": "4", "percent": 10}, "offered": "4", "changed_at": ...}

A **shadow** version runs beside the active one on a sample of requests and
never answers (``shadow.py`` compares them); a **canary** version answers
``percent`` of the clients, chosen by a hash of the client's key
(``canary_bucket``), so a client stays with one version while the setting is
unchanged. Under ``ROLLOUT_POLICY=staged`` the version being served is
pinned, and each newly published version becomes the shadow by itself, once
(``offered`` remembers it, so stopping that shadow by hand is respected);
pinning a version (promoting it) ends a shadow or canary of that same
version. ``Rollout`` holds one worker's loaded shadow and canary versions;
the registry drives it on every poll and on every management call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from model.artifact import InvalidArtifact
from model.store import ArtifactStore, VersionNotFound, is_version

__all__ = ["POLICIES", "ROLLOUT_FILE", "Rollout", "RolloutState", "canary_bucket", "read_state", "write_state"]

log = logging.getLogger("service.rollout")

POLICIES = ("newest", "staged")
ROLLOUT_FILE = "rollout.json"


def canary_bucket(key: str) -> float:
    """Return the client's place in [0, 100): the same key, the same place, in every process."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10000 / 100.0


@dataclass(frozen=True)
class RolloutState:
    """What ``rollout.json`` says: the shadow version, the canary ``(version, percent)``, and the
    newest version a staged rollout has made the shadow (each None when there is none)."""

    shadow: str | None = None
    canary: tuple[str, float] | None = None
    offered: str | None = None


def read_state(store: ArtifactStore) -> RolloutState:
    """Return the rollout state of ``store``'s model (an unreadable or malformed file counts
    as no rollout)."""
    data = store.read_json(ROLLOUT_FILE)
    if not isinstance(data, dict):
        return RolloutState()
    shadow, canary, offered = data.get("shadow"), data.get("canary"), data.get("offered")
    parsed = None
    if isinstance(canary, dict) and isinstance(canary.get("version"), str) and is_version(canary["version"]):
        percent = canary.get("percent")
        if isinstance(percent, (int, float)) and not isinstance(percent, bool) and 0 <= percent <= 100:
            parsed = (canary["version"], float(percent))
    return RolloutState(shadow if isinstance(shadow, str) and is_version(shadow) else None, parsed,
                        offered if isinstance(offered, str) and is_version(offered) else None)


def write_state(store: ArtifactStore, state: RolloutState) -> None:
    """Write the rollout state (its versions checked to exist); an empty state removes the file.

    Raises ``VersionNotFound`` for a version that is not there and ``StoreReadOnly`` for a
    directory that cannot be written.
    """
    for version in (state.shadow, state.canary and state.canary[0]):
        if version is not None:
            store.get(version)
    if state == RolloutState():
        store.remove(ROLLOUT_FILE)
        return
    canary = {"version": state.canary[0], "percent": state.canary[1]} if state.canary else None
    store.write_json(ROLLOUT_FILE, {"shadow": state.shadow, "canary": canary, "offered": state.offered,
                                    "changed_at": time.time()})


class Rollout:
    """One worker's shadow and canary versions, loaded (``served``'s kind of model), following
    ``rollout.json``.

    Parameters
    ----------
    store : the model's artifact store.
    policy : "newest" or "staged" (``POLICIES``).
    load : returns a loaded version (``ModelRegistry.get``), raising ``VersionNotFound`` or
        ``InvalidArtifact``.
    """

    def __init__(self, store: ArtifactStore, policy: str, load: Callable[[str], object]) -> None:
        if policy not in POLICIES:
            raise ValueError(f"unknown rollout policy {policy!r}; known: {POLICIES}")
        self.store, self.policy, self._load = store, policy, load
        self.shadow = None  # the loaded shadow version, or None
        self.canary = None  # (the loaded canary version, the percent of clients it answers), or None
        self._warning: str | None = None

    def for_client(self, key: str, current):
        """Return the model that answers the client with ``key``: the canary for its share of
        clients, else ``current``."""
        canary = self.canary
        if canary is not None and canary_bucket(key) < canary[1]:
            return canary[0]
        return current

    def follow(self, current, pinned: str | None, newest, failing: Callable[[object], bool]) -> None:
        """Load the state's shadow and canary versions (on every poll). Under the staged policy,
        pin ``current`` if nothing is pinned and offer ``newest`` (a ``VersionEntry``) as the
        shadow once, unless it is failing to load."""
        try:
            state = read_state(self.store)
            if self.policy == "staged" and current is not None:
                if pinned is None:
                    self.store.pin(current.version)
                if newest is not None and newest.number > int(current.version) \
                        and (state.offered is None or newest.number > int(state.offered)) and not failing(newest):
                    state = RolloutState(newest.version, state.canary, newest.version)
                    write_state(self.store, state)
                    log.info("staged rollout: new version is the shadow", extra={"version": newest.version})
        except OSError as exc:  # a read-only or briefly unreadable directory: keep what we have
            if str(exc) != self._warning:  # once per distinct problem, not on every poll
                self._warning = str(exc)
                log.warning("rollout state not updated", extra={"error": str(exc)})
            return
        self._warning = None
        self.shadow = self._loaded(state.shadow, current)
        model = self._loaded(state.canary[0], current) if state.canary else None
        self.canary = (model, state.canary[1]) if model is not None and state.canary[1] > 0 else None

    def _loaded(self, version: str | None, current):
        """Return a loaded rollout version (None if absent, the active one, or failing)."""
        if version is None or (current is not None and current.version == version):
            return None
        try:
            return self._load(version)
        except (VersionNotFound, InvalidArtifact, OSError):
            return None

    def set_shadow(self, version: str | None, current):
        """Make ``version`` the shadow (loaded and validated first), or stop the shadow with None."""
        served = None if version is None else self._load(version)
        write_state(self.store, replace(read_state(self.store), shadow=version))
        self.shadow = served if served is not None and served is not current else None
        return served

    def set_canary(self, version: str | None, percent: float):
        """Let ``version`` (loaded and validated first) answer ``percent`` of clients, or stop with None."""
        served = None if version is None else self._load(version)
        canary = None if version is None else (version, float(percent))
        write_state(self.store, replace(read_state(self.store), canary=canary))
        self.canary = (served, float(percent)) if served is not None and percent > 0 else None
        return served

    def promoted(self, version: str) -> None:
        """End a shadow or canary of ``version``, which is now pinned (the other one stays)."""
        state = read_state(self.store)
        shadow = None if state.shadow == version else state.shadow
        canary = None if state.canary and state.canary[0] == version else state.canary
        if (shadow, canary) != (state.shadow, state.canary):
            write_state(self.store, replace(state, shadow=shadow, canary=canary))
        self.shadow = None if shadow is None else self.shadow
        self.canary = None if canary is None else self.canary
