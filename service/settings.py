"""Service configuration: one typed object, read from environment variables.

Variable names are unprefixed (``PORT``, ``ADMIN_TOKEN``, ...) because they
are what operators, the Dockerfile and the compose file set. Every field is
validated when the service starts; a bad value stops it with a message that
names the variable. README.md lists them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings", "SettingsError", "load_settings"]


class SettingsError(RuntimeError):
    """The environment holds an invalid setting."""


class Settings(BaseSettings):
    """Everything the service can be told, with defaults that run out of the box."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore",
                                      frozen=True)

    host: str = Field("0.0.0.0", description="Address gunicorn binds to.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port gunicorn binds to.")
    workers: int = Field(2, ge=1, le=64, description="gunicorn worker processes.")
    threads: int = Field(
        1, ge=1, le=64, description="Threads per gthread worker. One by default: the work is CPU-bound Python, "
        "so a second thread mostly waits for the GIL and adds latency (bench/RESULTS.md); the worker keeps "
        "connections alive either way. The sync worker class takes no threads.")
    worker_class: Literal["gthread", "sync", "gevent"] = Field(
        "sync", description="gunicorn worker class: sync (one request at a time per worker, the fastest "
        "measured for this CPU-bound app and the fairest under load; meant to run behind a buffering proxy "
        "such as deploy/nginx.conf), gthread (threads, keep-alive) or gevent (bench/RESULTS.md).")
    worker_connections: int = Field(
        64, ge=1, le=10_000, description="Most open (keep-alive) connections per gthread or gevent worker.")
    keepalive: int = Field(5, ge=0, le=300, description="Seconds an idle keep-alive connection stays open.")
    queue_timeout: float = Field(
        1.0, ge=0, le=300,
        description="Predictions that waited longer than this since they reached the proxy in front "
                    "(its X-Request-Start header) get a fast 503 with Retry-After instead of being "
                    "served late, under every worker class (0 = never shed).")
    control_socket: Path | None = Field(
        None, description="Path of gunicorn's control socket (for gunicornc); unset = no socket.")
    backlog: int = Field(256, ge=1, le=65_535, description="Pending connections the kernel queues.")
    max_requests: int = Field(
        0, ge=0, le=10_000_000,
        description="Recycle a worker after this many requests (plus up to 10% jitter); 0 = never. "
                    "Off by default: the soak shows no growth to bound, and a recycling gthread "
                    "worker drops the keep-alive requests queued behind it.")
    artifacts_dir: Path = Field(Path("artifacts"), description="Root of the versioned artifacts.")
    model_name: str = Field("mnist", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                            description="Model served: the sub-directory of ARTIFACTS_DIR.")
    admin_token: SecretStr | None = Field(
        None, description="Bearer token for management endpoints; unset disables them (403).")
    read_token: SecretStr | None = Field(
        None, description="If set, reading /v1/models and /metrics needs this or the admin token.")
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024, le=1024**3,
                                  description="Largest request body accepted (413 above).")
    max_image_pixels: int = Field(40_000_000, ge=784, le=500_000_000,
                                  description="Largest decoded image, width x height (413 above).")
    max_batch_images: int = Field(256, ge=1, le=10_000,
                                  description="Most images in one /v1/predict/batch request.")
    max_tensor_batch: int = Field(4096, ge=1, le=1_000_000,
                                  description="Largest N in a V2 infer request.")
    poll_interval: float = Field(2.0, gt=0, le=3600,
                                 description="Seconds between looks for new or pinned versions.")
    rollout_policy: Literal["newest", "staged"] = Field(
        "newest", description="newest: the newest valid version answers (unless pinned); staged: the served "
        "version stays pinned and each new version becomes the shadow until promoted.")
    shadow_sample: float = Field(1.0, ge=0, le=1, description="Share of prediction requests the shadow "
                                 "version also runs on (after the answer, on its own thread).")
    feedback_dir: Path = Field(Path("feedback"), description="Where POST /v1/feedback stores entries (a shared "
                               "volume for several replicas).")
    feedback_max_entries: int = Field(100_000, ge=1, description="Most feedback entries stored (507 above).")
    feedback_max_bytes: int = Field(256 * 1024 * 1024, ge=1024, description="Most bytes of feedback stored "
                                    "(507 above).")
    max_read_digits: int = Field(32, ge=1, le=1000, description="Most digits /v1/read reads in one image "
                                 "(422 too_many_digits above).")
    not_a_digit_below: float | None = Field(
        None, ge=0, le=1, description="Verdict 'not_a_digit' below this digit_score; unset: the model's own "
        "threshold (chosen on validation data when it was trained).")
    uncertain_below: float | None = Field(
        None, ge=0, le=1, description="Verdict 'uncertain' when the top probability is below this; unset: "
        "the model's own threshold.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO")
    access_log: bool = Field(True, description="One JSON line per request.")
    access_log_flush: float = Field(
        0.5, ge=0, le=60, description="Access-log lines are written in batches at least this "
        "often, in seconds; 0 writes each line at once.")
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS; empty = off.")
    timeout: int = Field(30, ge=1, le=3600, description="gunicorn worker timeout, seconds.")

    @field_validator("admin_token", "read_token")
    @classmethod
    def _strong_token(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None or token.get_secret_value() == "":
            return None
        if len(token.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (or unset)")
        return token

    @field_validator("worker_class")
    @classmethod
    def _installed(cls, worker_class: str) -> str:
        if worker_class == "gevent":
            import importlib.util

            if importlib.util.find_spec("gevent") is None:
                raise ValueError("the gevent worker class needs the gevent package (pip install gevent)")
        return worker_class

    @model_validator(mode="after")
    def _sync_is_sync(self) -> Settings:
        # gunicorn runs the gthread worker when a sync worker is given threads: refuse the
        # combination rather than run something other than what was asked for.
        if self.worker_class == "sync" and self.threads > 1:
            raise ValueError(f"WORKER_CLASS=sync runs one request at a time per worker, but THREADS="
                             f"{self.threads}: gunicorn would silently run its gthread worker instead. "
                             "Set THREADS=1 for sync, or WORKER_CLASS=gthread for threads")
        return self

    @field_validator("control_socket", "not_a_digit_below", "uncertain_below", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]


def load_settings(**overrides) -> Settings:
    """Return settings from the environment (and ``overrides``).

    Raises
    ------
    SettingsError : with one line per invalid variable, naming it.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            if not error["loc"]:  # a rule across variables: its message names them (the input is
                lines.append(f"  {error['msg'].removeprefix('Value error, ')}")  # every setting, tokens too)
                continue
            name = str(error["loc"][0]).upper()
            value = error.get("input")
            shown = "" if "token" in name.lower() else f" (got {value!r})"
            lines.append(f"  {name}: {error['msg']}{shown}")
        raise SettingsError("invalid configuration:\n" + "\n".join(lines)) from None
