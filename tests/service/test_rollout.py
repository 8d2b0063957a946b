"""Shadow and canary versions, the staged rollout policy, and promotion, through the API."""


import numpy as np
import pytest

from model.store import ArtifactStore
from service import create_app, shadow
from service.rollout import canary_bucket, read_state
from service.schemas import ModelsResponse, RolloutResponse

from conftest import DIGIT_PNG, derive, publish_constant

TOKEN = "test-admin-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def two_versions(artifacts_dir):
    """Version 1 answers 3 (the fixture's), version 2 answers 5."""
    publish_constant(artifacts_dir, hot=5)
    return artifacts_dir


def app_for(settings, **changes):
    return create_app(derive(settings, **changes), poll=False)


def pin(client, version):
    r = client.put("/v1/models/active", json={"version": version}, headers=AUTH)
    assert r.status_code == 200, r.json


def test_a_shadow_is_compared_and_never_answers(settings, two_versions):
    app = app_for(settings)
    client = app.test_client()
    pin(client, "1")
    r = client.put("/v1/models/shadow", json={"version": "2"}, headers=AUTH)
    assert r.status_code == 200, r.json
    assert RolloutResponse.model_validate(r.json).shadow.version == "2"
    for _ in range(5):
        answer = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
        assert answer.json["predicted_class"] == 3 and answer.headers["X-Model-Version"] == "1"
    X = np.zeros((4, 784), np.float32)
    client.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "images", "datatype": "FP32", "shape": [4, 784], "data": X.ravel().tolist()}]})
    assert shadow.RUNNER.drain()
    info = ModelsResponse.model_validate(client.get("/v1/models").json).shadow
    assert info.version == "2" and info.compared >= 9 and info.agreed == 0 and info.disagreement_rate == 1.0
    assert info.top_confusions[0].answered == "3" and info.top_confusions[0].shadow == "5"
    text = client.get("/metrics").get_data(as_text=True)
    assert 'mnist_shadow_comparisons_total{result="disagree",version="2"}' in text
    # Stopping it: no shadow, nothing more compared.
    r = client.put("/v1/models/shadow", json={"version": None}, headers=AUTH)
    assert r.json["shadow"] is None and client.get("/v1/models").json["shadow"] is None


def test_shadow_sampling_skips_the_share_not_sampled(settings, two_versions):
    client = app_for(settings, shadow_sample=0.0).test_client()
    pin(client, "1")
    client.put("/v1/models/shadow", json={"version": "2"}, headers=AUTH)
    before = client.get("/v1/models").json["shadow"]["compared"]
    for _ in range(5):
        client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert shadow.RUNNER.drain()
    assert client.get("/v1/models").json["shadow"]["compared"] == before


def test_a_canary_answers_its_share_and_each_client_stays_put(settings, two_versions):
    client = app_for(settings).test_client()
    pin(client, "1")
    r = client.put("/v1/models/canary", json={"version": "2", "percent": 30}, headers=AUTH)
    assert r.status_code == 200 and r.json["canary"] == {"version": "2", "percent": 30.0}
    versions = {}
    for i in range(400):
        key = f"client-{i}"
        answer = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png",
                             headers={"X-Client-ID": key})
        versions[key] = answer.headers["X-Model-Version"]
        assert answer.json["predicted_class"] == (5 if versions[key] == "2" else 3)
        assert versions[key] == ("2" if canary_bucket(key) < 30 else "1")
    share = sum(v == "2" for v in versions.values()) / len(versions)
    assert 0.22 < share < 0.38
    again = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png",
                        headers={"X-Client-ID": "client-7"})
    assert again.headers["X-Model-Version"] == versions["client-7"]
    client.put("/v1/models/canary", json={"version": None}, headers=AUTH)
    assert client.get("/v1/models").json["canary"] is None


def test_canary_buckets_are_uniform_and_stable():
    buckets = np.array([canary_bucket(f"id-{i}") for i in range(20000)])
    assert 0 <= buckets.min() and buckets.max() < 100
    assert abs((buckets < 10).mean() - 0.10) < 0.01 and abs((buckets < 50).mean() - 0.5) < 0.015
    assert canary_bucket("same") == canary_bucket("same")


def test_promoting_ends_that_versions_shadow_and_canary(settings, two_versions):
    client = app_for(settings).test_client()
    pin(client, "1")
    client.put("/v1/models/shadow", json={"version": "2"}, headers=AUTH)
    client.put("/v1/models/canary", json={"version": "2", "percent": 10}, headers=AUTH)
    pin(client, "2")
    body = client.get("/v1/models").json
    assert body["version"] == "2" and body["shadow"] is None and body["canary"] is None
    assert read_state(ArtifactStore(two_versions, "mnist")).shadow is None


def test_staged_policy_pins_what_it_serves_and_shadows_each_new_version_once(settings, artifacts_dir):
    app = app_for(settings, rollout_policy="staged")
    client = app.test_client()
    registry = app.extensions["registry"]
    store = ArtifactStore(artifacts_dir, "mnist")
    assert store.pinned() == "1"
    publish_constant(artifacts_dir, hot=5)
    registry.refresh()
    body = client.get("/v1/models").json
    assert body["version"] == "1" and body["shadow"]["version"] == "2" and body["rollout_policy"] == "staged"
    answer = client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert answer.headers["X-Model-Version"] == "1"
    client.put("/v1/models/shadow", json={"version": None}, headers=AUTH)
    registry.refresh()  # stopped by hand: not made the shadow again
    assert client.get("/v1/models").json["shadow"] is None
    publish_constant(artifacts_dir, hot=7)
    registry.refresh()
    assert client.get("/v1/models").json["shadow"]["version"] == "3"
    pin(client, "3")
    body = client.get("/v1/models").json
    assert body["version"] == "3" and body["shadow"] is None


def test_every_worker_follows_the_rollout_file(settings, two_versions):
    """Two apps stand for two workers (or replicas) on one artifacts directory."""
    a, b = app_for(settings), app_for(settings)
    pin(a.test_client(), "1")
    a.test_client().put("/v1/models/canary", json={"version": "2", "percent": 100}, headers=AUTH)
    b.extensions["registry"].refresh()  # its next poll
    answer = b.test_client().post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert answer.headers["X-Model-Version"] == "2"


@pytest.mark.parametrize("path, body, status", [
    ("/v1/models/shadow", {"version": "9"}, 404),
    ("/v1/models/shadow", {"version": "x/../1"}, 404),
    ("/v1/models/shadow", {"versions": "2"}, 400),
    ("/v1/models/shadow", ["2"], 400),
    ("/v1/models/canary", {"version": "2", "percent": 101}, 400),
    ("/v1/models/canary", {"version": "2", "percent": "ten"}, 400),
    ("/v1/models/canary", {"version": "2", "percent": True}, 400),
    ("/v1/models/canary", {"version": "2", "share": 10}, 400),
    ("/v1/models/canary", {"version": 2, "percent": 10}, 400),
])
def test_rollout_requests_are_checked(settings, two_versions, path, body, status):
    client = app_for(settings).test_client()
    r = client.put(path, json=body, headers=AUTH)
    assert r.status_code == status and r.json["status"] == status, r.json


def test_rollout_management_needs_the_admin_token(settings, two_versions):
    client = app_for(settings).test_client()
    for path in ("/v1/models/shadow", "/v1/models/canary"):
        assert client.put(path, json={"version": "2", "percent": 5}).status_code == 401
        bad = {"Authorization": "Bearer wrong-token-0123456789"}
        assert client.put(path, json={"version": "2", "percent": 5}, headers=bad).status_code == 401
    disabled = app_for(settings, admin_token=None).test_client()
    assert disabled.put("/v1/models/shadow", json={"version": "2"}, headers=AUTH).status_code == 403


def test_the_grafana_dashboard_plots_metrics_the_service_exports(settings, two_versions):
    import json
    import re

    from conftest import REPO

    client = app_for(settings).test_client()
    pin(client, "1")
    client.put("/v1/models/shadow", json={"version": "2"}, headers=AUTH)
    client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    assert shadow.RUNNER.drain()
    exported = set(re.findall(r"^([a-z_]+)(?:\{| )", client.get("/metrics").get_data(as_text=True), re.M))
    dashboard = json.loads((REPO / "deploy" / "grafana" / "mnist-service.json").read_text())
    used = {name for panel in dashboard["panels"] for target in panel["targets"]
            for name in re.findall(r"\b(mnist_[a-z_]+)", target["expr"])}
    assert used and used - exported <= {"mnist_feedback_total", "mnist_shadow_dropped_total"}, used - exported


def test_drift_signals_count_every_answer_by_class(settings, two_versions):
    from prometheus_client import REGISTRY

    client = app_for(settings).test_client()
    pin(client, "1")  # answers 3
    def sample(name, **labels):  # summed over the labels not given
        return sum(s.value for family in REGISTRY.collect() for s in family.samples
                   if s.name == name and labels.items() <= s.labels.items())

    before = (sample("mnist_answers_total", predicted="3"), sample("mnist_confidence_count"),
              sample("mnist_input_ink_fraction_count"))
    client.post("/v1/predict", data=DIGIT_PNG, content_type="image/png")
    X = np.zeros((40, 784), np.float32)
    client.post("/v2/models/mnist/infer", json={"inputs": [
        {"name": "images", "datatype": "FP32", "shape": [40, 784], "data": X.ravel().tolist()}]})
    after = (sample("mnist_answers_total", predicted="3"), sample("mnist_confidence_count"),
             sample("mnist_input_ink_fraction_count"))
    assert after[0] - before[0] == 41  # every answer, by the class answered
    assert after[1] - before[1] == after[2] - before[2] == 1 + 16  # histograms: at most 16 rows a request
