#!/usr/bin/env python3
"""Convert KServe's CRDs to the strict JSON Schemas that validate-deploy.sh checks manifests with.

    python scripts/kserve-schemas.py KSERVE_CHECKOUT [--tag v0.20.0]

Reads ``config/crd/full/serving.kserve.io_{inferenceservices,servingruntimes}.yaml``
of a KServe release and writes ``deploy/kserve/schemas/<kind>-<version>.json.gz``:
each served version's ``openAPIV3Schema``, made strict the way kubeconform's
openapi2jsonschema does it (an object that lists its properties and does not
say ``x-kubernetes-preserve-unknown-fields`` allows no others, so a misspelt
field fails) with ``x-kubernetes-int-or-string`` as integer-or-string. The
files are kept in the repository (gzipped), so validation needs no network.
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
from pathlib import Path

import yaml

CRDS = {"inferenceservices": "v1beta1", "servingruntimes": "v1alpha1"}
OUT = Path(__file__).resolve().parents[1] / "deploy" / "kserve" / "schemas"


def strict(schema):
    """Return ``schema`` with additionalProperties false where properties are listed."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items()}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkout", type=Path, help="a git checkout of github.com/kserve/kserve")
    p.add_argument("--tag", default="v0.20.0", help="the release to read the CRDs of")
    args = p.parse_args()
    commit = subprocess.run(["git", "-C", str(args.checkout), "rev-parse", f"{args.tag}^{{commit}}"],
                            capture_output=True, text=True, check=True).stdout.strip()
    OUT.mkdir(parents=True, exist_ok=True)
    for plural, version in CRDS.items():
        text = subprocess.run(["git", "-C", str(args.checkout), "show",
                               f"{commit}:config/crd/full/serving.kserve.io_{plural}.yaml"],
                              capture_output=True, text=True, check=True).stdout
        crd = yaml.safe_load(text)
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        kind = crd["spec"]["names"]["kind"]
        schema = strict(served["schema"]["openAPIV3Schema"])
        schema["$comment"] = (f"{kind} {crd['spec']['group']}/{version} from KServe {args.tag} ({commit}), "
                              "made strict by scripts/kserve-schemas.py")
        schema["properties"]["apiVersion"] = {"const": f"{crd['spec']['group']}/{version}"}
        schema["properties"]["kind"] = {"const": kind}
        schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata", "spec"})
        path = OUT / f"{kind.lower()}-{version}.json.gz"
        data = json.dumps(schema, separators=(",", ":"), sort_keys=True).encode()
        path.write_bytes(gzip.compress(data, mtime=0))
        print(f"{path}: {len(data):,} bytes of schema, {path.stat().st_size:,} gzipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
