"""Property-based fuzzing of the whole HTTP API from its own OpenAPI document.

schemathesis (its CLI, against a real gunicorn) generates requests for every
operation in ``/openapi.json``, valid and invalid alike, runs its examples,
coverage, fuzzing and stateful phases, and checks every response: never a
5xx, only documented statuses and content types, bodies that match the
documented schemas, invalid requests rejected. Bounded by examples per
operation and a time budget; the seed makes a CI run repeatable.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import BUNDLED_ARTIFACTS
from live import live_server

TOKEN = "fuzz-admin-token-0123456789"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_schemathesis_finds_nothing(tmp_path):
    shutil.copytree(BUNDLED_ARTIFACTS, tmp_path / "artifacts")
    env = {"ARTIFACTS_DIR": tmp_path / "artifacts", "ADMIN_TOKEN": TOKEN, "ACCESS_LOG": "false",
           "MAX_TENSOR_BATCH": 64}
    with live_server(env, tmp_path) as server:
        # "Valid data must be accepted" cannot hold: schema-valid random bytes are
        # not images, and a 400 for them is the right answer.
        run = subprocess.run(
            [str(SCHEMATHESIS), "run", server.url + "/openapi.json", "--mode", "all",
             "--max-examples", "25", "--seed", "20261124", "--max-time", "60",
             "--exclude-checks", "positive_data_acceptance",
             "--header", f"Authorization: Bearer {TOKEN}", "--report-dir", str(tmp_path / "report")],
            capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert server.process.poll() is None, "the server died"
        log = server.log()
    summary = run.stdout[-3000:]
    print(summary)
    assert run.returncode == 0, summary
    cases = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert cases and int(cases.group(1)) == int(cases.group(2)) > 1000, summary
    assert "Traceback" not in log
