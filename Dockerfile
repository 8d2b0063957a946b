# mnist-service: the HTTP service and the trainer, in one image.
#
#   docker build -t mnist-service .
#   docker run --rm -p 8000:8000 --read-only --tmpfs /tmp mnist-service
#   docker run --rm ... mnist-service python train.py --help
#
# Two stages: "builder" installs the dependencies from requirements.lock into a
# virtual environment at /opt/venv; "runtime" is the same slim base with that
# venv, the source files the service runs from (as `make run` does) and the
# bundled artifact, and no compilers, pip or build tools. The venv holds only
# dependencies, so its 150 MB layer stays cached, and is shared by every
# image, until requirements.lock changes; a code change rebuilds and ships a few
# hundred KB. Written for the classic builder and BuildKit alike (no
# RUN --mount, no heredocs, no COPY --chmod).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

# binutils only for `strip` below; this stage is thrown away. Debian's
# versions are not pinned: the base image pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install --yes --no-install-recommends binutils \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# The dependencies, pinned in requirements.lock (reproducible builds; the set
# scripts/audit-deps.sh audits). Then drop what only installing
# needed: pip and setuptools, the packages' own test suites, type stubs, and
# the debugging symbols of extension modules (fontTools' and kiwisolver's
# alone are 15 MB). No .pyc files (--no-compile, 33 MB): they cost about
# 0.4 s of imports per worker start. matplotlib only draws the trainer's PNG
# plots, so the parts of fontTools it never uses there (font building and
# variation tools), its sample data and every font but DejaVu Sans and the
# last-resort font go; so does Pillow's AVIF codec (5 MB), a format the
# service does not accept. The plot smoke test below proves the rest works.
# Files that auditwheel rewrote with patchelf (those with an RPATH, and the
# vendored *.libs) are not stripped: strip corrupts them.
COPY requirements.lock ./
RUN pip install --no-cache-dir --no-compile -r requirements.lock \
 && pip uninstall --yes pip setuptools \
 && find /opt/venv -depth -type d -name tests -exec rm -rf '{}' + \
 && find /opt/venv -name '*.pyi' -delete \
 && sp=/opt/venv/lib/python3.11/site-packages \
 && for d in feaLib varLib ufoLib voltLib mtiLib otlLib cu2qu qu2cu designspaceLib svgLib colorLib merge diff; \
    do rm -rf "$sp/fontTools/$d"; done \
 && rm -rf "$sp"/matplotlib/mpl-data/sample_data "$sp"/PIL/_avif.*.so "$sp"/pillow.libs/libavif-*.so* \
 && find "$sp"/matplotlib/mpl-data/fonts/ttf -type f ! -name 'DejaVuSans*' ! -name 'LastResort*' -delete \
 && find /opt/venv -name '*.so*' -type f ! -path '*.libs/*' -exec sh -c \
      'for so; do readelf -d "$so" | grep -qE "R(UN)?PATH" || strip --strip-unneeded "$so"; done' sh '{}' + \
 && python -c "import numpy, flask, gunicorn, PIL.Image, pydantic_settings, matplotlib.pyplot, orjson"

# Fail the build, not the first start, when the code needs a module the venv
# lacks. (Nothing here reaches the runtime stage.)
COPY train.py gunicorn.conf.py ./
COPY model/ model/
COPY imaging/ imaging/
COPY service/ service/
COPY evaluation/ evaluation/
RUN python -c "import train, service, imaging, evaluation.card, evaluation.independent; service.create_app" \
 && python -c "import numpy as np, pathlib, evaluation.card as r; \
r._plot_curves([{'epoch': 1, 'train_loss': 1, 'val_loss': 1, 'train_accuracy': .9, 'val_accuracy': .9}], pathlib.Path('/tmp/c.png')); \
r._plot_confusion(np.eye(10, dtype=int), list('0123456789'), pathlib.Path('/tmp/m.png'))"


FROM ${PYTHON_IMAGE} AS runtime

# A fixed, unprivileged UID/GID (not 0, not a distribution's system range),
# so volume ownership and Kubernetes' runAsUser/fsGroup can name it.
ARG APP_UID=10001
RUN groupadd --gid "${APP_UID}" app \
 && useradd --uid "${APP_UID}" --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

# ARTIFACTS_DIR is absolute so the trainer and the service agree whatever the
# working directory. Everything that writes goes to /tmp (a tmpfs when the
# root filesystem is read-only), to the artifacts volume or to the feedback volume: matplotlib's
# cache, downloaded datasets, gunicorn's control socket (XDG_RUNTIME_DIR;
# else it tries $HOME/.gunicorn) and the Prometheus multiprocess directory.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    ARTIFACTS_DIR=/app/artifacts \
    FEEDBACK_DIR=/app/feedback \
    DATA_DIR=/data \
    MPLCONFIGDIR=/tmp/matplotlib \
    XDG_CACHE_HOME=/tmp/cache \
    XDG_RUNTIME_DIR=/tmp

WORKDIR /app
# The service and the trainer run from these files: /app is the working
# directory, first on sys.path, as the repository is for `make run`.
COPY gunicorn.conf.py train.py ./
COPY model/ model/
COPY imaging/ imaging/
COPY service/ service/
# train.py's evaluation on handwriting that is not MNIST's (its data packages are not in the
# image: those sources report themselves unavailable, MNIST's re-rendered uploads still run).
COPY evaluation/ evaluation/
# The bundled artifact. Owned by the app user: a named volume mounted here
# starts as a copy of it and must stay writable for the trainer and for pins.
COPY --chown=${APP_UID}:${APP_UID} artifacts/ artifacts/
# Where POST /v1/feedback stores entries: a volume in compose and Kubernetes
# (a named volume starts with this directory's owner); without one, feedback
# answers a clear error on a read-only root filesystem.
RUN install -d -o "${APP_UID}" -g "${APP_UID}" /app/feedback

USER ${APP_UID}:${APP_UID}
EXPOSE 8000

# Liveness only (the process answers); /readyz says whether a model is loaded.
# No curl in the slim base: Python's urllib does the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]

# gunicorn as PID 1 (exec form): SIGTERM makes the master stop accepting,
# let the workers finish their requests (graceful_timeout in gunicorn.conf.py)
# and exit 0. Give `docker stop` / Kubernetes more than that grace period.
STOPSIGNAL SIGTERM
CMD ["gunicorn", "--config", "gunicorn.conf.py", "service:create_app()"]
