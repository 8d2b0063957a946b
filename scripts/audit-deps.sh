#!/usr/bin/env bash
# Audit the pinned runtime dependencies (requirements.lock) for known
# vulnerabilities with pip-audit, in a throwaway virtual environment.
#
# - A vulnerability that is not acknowledged in scripts/audit-ignore.txt
#   (one "ID  reason" per line) fails the run.
# - pip-audit needs PyPI's JSON API (or OSV) for the advisories. Machines that
#   reach only the package index (this project's CI) cannot get them: the
#   script then says so plainly and how many packages went unaudited, instead
#   of pretending that "no known vulnerabilities" means anything.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${AUDIT_VENV:-$HOME/.cache/mnist-service/audit-venv}
[ -x "$venv/bin/pip-audit" ] || { python3 -m venv "$venv" && "$venv/bin/pip" install -q "pip-audit>=2.7" 2>/dev/null; }

ignore=()
while read -r id _; do
  [ -n "$id" ] && [ "${id#\#}" = "$id" ] && ignore+=(--ignore-vuln "$id")
done < scripts/audit-ignore.txt

report=$(mktemp)
trap 'rm -f "$report"' EXIT
set +e
"$venv/bin/pip-audit" -r requirements.lock --progress-spinner off --format json --output "$report" \
  "${ignore[@]}" 2>/dev/null
status=$?
set -e
python3 - "$report" "$status" <<'PY'
import json, sys
report, status = json.load(open(sys.argv[1])), int(sys.argv[2])
deps = report.get("dependencies", [])
skipped = [d for d in deps if d.get("skip_reason")]
audited = [d for d in deps if not d.get("skip_reason")]
vulns = [(d["name"], d["version"], v["id"]) for d in audited for v in d.get("vulns", [])]
print(f"pip-audit: {len(audited)} of {len(deps)} pinned packages audited, {len(vulns)} known vulnerabilities")
for name, version, vid in vulns:
    print(f"  {name} {version}: {vid}")
if skipped and not audited:
    print("  the advisory service (PyPI JSON API / OSV) is unreachable from this machine: nothing could be\n"
          "  audited here; run scripts/audit-deps.sh where pypi.org/pypi/<name>/json is reachable")
    sys.exit(0)
sys.exit(1 if vulns or status not in (0, 1) else 0)
PY
