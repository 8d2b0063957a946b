"""ONNX export (model/export.py, train.py export): onnxruntime answers as the service does.

The reference is the service's own answer for the same pixels: the loaded model's
``inference.Predictor`` (probabilities and digit scores; the top probability as the digit score
when the artifact has none).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml

import train
from model.artifact import InvalidArtifact, build_metadata, load_artifact, save_artifact
from model.data import load_dataset, scale_pixels
from model.export import (INPUT_NAME, IR_VERSION, OPSET, OUTPUTS, UnsupportedLayer, build_onnx, export_onnx,
                          onnx_session, run_onnx)
from model.layers import Layer
from model.network import Network, mlp_layers
from evaluation.card import record_export, write_model_card
from model.store import ARTIFACT_FILE

from conftest import BUNDLED_ARTIFACTS, REPO

TOLERANCE = 1e-5
TRITON = REPO / "deploy" / "triton"
THRESHOLDS = {"not_a_digit_below": 0.5, "uncertain_below": 0.7}

# Every layer kind, convolutions with stride, bias and none, pooling of odd sizes (11 -> 5, 5 -> 2).
EVERY_KIND = [
    {"kind": "conv2d", "filters": 4, "kernel": 3, "stride": 2, "padding": 1, "bias": True},  # 14x14
    {"kind": "relu"},
    {"kind": "conv2d", "filters": 6, "kernel": 4, "bias": True},  # 11x11
    {"kind": "maxpool2d", "size": 2},  # 5x5, the last row and column dropped
    {"kind": "batchnorm"},
    {"kind": "relu"},
    {"kind": "conv2d", "filters": 5, "kernel": 3, "padding": 1, "bias": False},
    {"kind": "maxpool2d", "size": 2},  # 2x2
    {"kind": "dropout", "p": 0.3},
    {"kind": "flatten"},
    {"kind": "dense", "units": 16},
    {"kind": "batchnorm", "eps": 1e-3},
    {"kind": "relu"},
]


def _randomised(net: Network, seed: int) -> Network:
    """Give every bias and batch-normalisation array random values (initialisation leaves them trivial)."""
    rng = np.random.default_rng(seed)
    for name, a in net.arrays().items():
        kind = name.split(".")[1]
        if kind in ("b", "beta", "running_mean"):
            a[...] = rng.normal(0, 0.2, a.shape)
        elif kind in ("gamma", "running_var"):
            a[...] = rng.uniform(0.5, 1.5, a.shape)
    return net


def _ood(method: str, net: Network) -> tuple[dict | None, dict]:
    """Return (the artifact's ood block, its arrays) for a digit score ``method`` (None: none)."""
    if method == "none":
        return None, {}
    platt = {"msp": [6.0, -3.0], "energy": [0.5, -1.0], "outlier": [9.9, 3.5],
             "mahalanobis": [0.05, 2.0]}[method]
    block = {"method": method, "platt": platt, "thresholds": THRESHOLDS,
             "outlier_output": method == "outlier"}
    if method != "mahalanobis":
        return block, {}
    rng = np.random.default_rng(1)
    d = int(np.prod(net.shapes[-1]))
    A = rng.normal(0, 1, (d, d))
    precision = (A @ A.T / d + np.eye(d)).astype(np.float32)
    precision = (precision + precision.T) / 2
    return block, {"ood.means": rng.normal(0, 1, (10, d)).astype(np.float32), "ood.precision": precision}


def write_artifact(path: Path, layers: list[dict], input_shape=(1, 28, 28), method: str = "none",
                   temperature: float = 1.3, seed: int = 0) -> Path:
    """Save a seeded network of ``layers`` plus an output layer (11 units for ``outlier``)."""
    outputs = 11 if method == "outlier" else 10
    net = Network(input_shape, [*layers, {"kind": "dense", "units": outputs}], np.random.default_rng(seed),
                  temperature=temperature)
    _randomised(net, seed)
    net.layers[-1].params[0][...] *= 6  # logits far apart, as a trained network's
    ood, arrays = _ood(method, net)
    meta = build_metadata(net, name="mnist", labels=[str(d) for d in range(10)],
                          dataset={"name": "mnist", "test_size": 10000}, ood_arrays=arrays, ood=ood)
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_artifact(path, net, meta, arrays)


def assert_parity(loaded, session, X: np.ndarray) -> None:
    probs, scores = loaded.predictor(X)  # the service's answer
    onnx_probs, classes, onnx_scores = run_onnx(session, X)
    assert onnx_probs.shape == probs.shape and onnx_scores.shape == scores.shape == classes.shape
    assert onnx_probs.dtype == onnx_scores.dtype == np.float32 and classes.dtype == np.int64
    assert np.abs(onnx_probs - probs).max() <= TOLERANCE
    assert np.abs(onnx_scores - scores).max() <= TOLERANCE
    argmax = probs.argmax(axis=1)
    assert (classes == argmax).all() and (onnx_probs.argmax(axis=1) == argmax).all()


def exported(loaded, path: Path):
    export_onnx(loaded, path)
    return onnx_session(path, threads=1)


@pytest.fixture(scope="module")
def first_test(mnist_test) -> tuple[np.ndarray, np.ndarray]:
    """The first 1,000 MNIST test images (uint8 (n, 28, 28)) and labels, or synthetic ones."""
    return mnist_test[0][:1000], mnist_test[1][:1000]


@pytest.fixture(scope="module")
def pixels(first_test) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"uniform": rng.random((64, 784), dtype=np.float32),
            "uint8": scale_pixels(rng.integers(0, 256, (33, 28, 28), dtype=np.uint8)),
            "sparse": scale_pixels((rng.random((17, 28, 28)) < 0.15) * 255),
            "mnist": scale_pixels(first_test[0])}


# -- parity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["none", "msp", "energy", "outlier", "mahalanobis"])
def test_every_layer_kind_and_digit_score_answers_as_the_service(method, pixels, tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", EVERY_KIND, method=method))
    session = exported(loaded, tmp_path / "model.onnx")
    for X in pixels.values():
        assert_parity(loaded, session, X)


def test_an_mlp_with_every_layer_kind_it_can_have_answers_as_the_service(pixels, tmp_path):
    layers = [*mlp_layers([32], 10, dropout=0.2)[:-1], {"kind": "batchnorm"}, {"kind": "flatten"},
              {"kind": "relu"}]
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", layers, input_shape=(784,),
                                          method="outlier", temperature=1.0))
    session = exported(loaded, tmp_path / "model.onnx")
    for X in pixels.values():
        assert_parity(loaded, session, X)


@pytest.mark.parametrize("version", ["1", "3"])  # the format-1 MLP; the CNN with a "not a digit" output
def test_bundled_versions_answer_as_the_service(version, pixels, tmp_path):
    loaded = load_artifact(BUNDLED_ARTIFACTS / "mnist" / version / ARTIFACT_FILE)
    session = exported(loaded, tmp_path / "model.onnx")
    for X in pixels.values():
        assert_parity(loaded, session, X)


def test_preprocessed_uploads_each_classified_alone_answer_as_the_service(first_test, tmp_path):
    from evaluation.export_cli import preprocessed_uploads

    loaded = load_artifact(BUNDLED_ARTIFACTS / "mnist" / "3" / ARTIFACT_FILE)
    session = exported(loaded, tmp_path / "model.onnx")
    X = scale_pixels(preprocessed_uploads(*first_test, 17))  # one of every kind of upload
    for row in X:  # one upload a request, as /v1/predict classifies it
        assert_parity(loaded, session, row[None])


def test_the_batch_dimension_is_dynamic_and_the_model_checks(tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", EVERY_KIND, method="outlier"))
    session = exported(loaded, tmp_path / "model.onnx")
    model = onnx.load(tmp_path / "model.onnx")
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", OPSET)]
    (graph_input,) = model.graph.input
    dims = graph_input.type.tensor_type.shape.dim
    assert graph_input.name == INPUT_NAME and dims[0].dim_param == "N"
    assert [d.dim_value for d in dims[1:]] == [1, 28, 28]
    assert [o.name for o in model.graph.output] == list(OUTPUTS)
    for n in (1, 3, 300):
        probs, classes, scores = run_onnx(session, np.zeros((n, 784), np.float32))
        assert probs.shape == (n, 10) and classes.shape == scores.shape == (n,)
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["thresholds"]) == THRESHOLDS and props["digit_score"] == "outlier"
    assert props["weights_sha256"] == loaded.metadata.weights_sha256


def test_the_oldest_opset_the_graph_is_written_for_answers_the_same(pixels, tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", EVERY_KIND, method="energy"))
    export_onnx(loaded, tmp_path / "model.onnx", opset=13)
    assert onnx.load(tmp_path / "model.onnx").opset_import[0].version == 13
    assert_parity(loaded, onnx_session(tmp_path / "model.onnx", threads=1), pixels["mnist"])


def test_the_same_artifact_gives_the_same_bytes(tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", EVERY_KIND, method="mahalanobis"))
    first = export_onnx(loaded, tmp_path / "a.onnx")
    second = export_onnx(load_artifact(tmp_path / "model.npz"), tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert first["sha256"] == second["sha256"] and first["opset"] == OPSET


def test_importing_model_needs_no_onnx():
    code = "import sys, model, model.export; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# -- clear errors ------------------------------------------------------------------------------


class Tanh(Layer):
    kind = "tanh"

    def forward(self, X, training=False):
        return np.tanh(X)


def test_an_unsupported_layer_is_named_with_its_index(tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", [{"kind": "flatten"}, {"kind": "relu"}],
                                          input_shape=(784,)))
    loaded.predictor.net.layers[1] = Tanh()  # the network the export translates (as the service runs it)
    with pytest.raises(UnsupportedLayer, match=r"layer 1 \('tanh'\) has no ONNX translation; "
                                               r"supported kinds: batchnorm, conv2d, dense"):
        build_onnx(loaded)
    assert not (tmp_path / "model.onnx").exists()


def test_an_opset_the_graph_is_not_written_for_is_refused(tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / "model.npz", [], input_shape=(784,)))
    with pytest.raises(ValueError, match="opset 18 is not supported"):
        build_onnx(loaded, opset=18)


def _tampered(source: Path, target: Path) -> Path:
    """Copy an artifact with one weight changed and its recorded hash left as it was."""
    with np.load(source, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays["0.W"] = arrays["0.W"].copy()
    arrays["0.W"][0, 0] += 1.0
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, **arrays)
    return target


def test_a_tampered_artifact_is_refused_before_anything_is_written(tmp_path, capsys):
    bad = _tampered(write_artifact(tmp_path / "good" / "model.npz", [], input_shape=(784,)),
                    tmp_path / "bad" / "model.npz")
    with pytest.raises(InvalidArtifact, match="does not match the recorded .* \\(tampered or corrupt\\)"):
        load_artifact(bad)
    assert train.main(["export", str(bad), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "tampered or corrupt" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_the_cli_names_an_unsupported_layer(tmp_path, capsys, monkeypatch):
    import evaluation.export_cli as cli

    artifact = write_artifact(tmp_path / "model.npz", [{"kind": "relu"}], input_shape=(784,))
    real_load = cli.load_artifact

    def load_with_tanh(path):
        loaded = real_load(path)
        loaded.predictor.net.layers[0] = Tanh()
        return loaded

    monkeypatch.setattr(cli, "load_artifact", load_with_tanh)
    assert train.main(["export", str(artifact), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "layer 0 ('tanh') has no ONNX translation" in capsys.readouterr().err


# -- the CLI and the model card ----------------------------------------------------------------


def test_export_of_a_version_directory_checks_parity_and_records_it(mnist_source, tmp_path, capsys):
    directory, real = mnist_source
    version = tmp_path / "artifacts" / "mnist" / "4"
    loaded = load_artifact(write_artifact(version / ARTIFACT_FILE, [{"kind": "dense", "units": 24},
                                                                    {"kind": "relu"}], input_shape=(784,),
                                          method="outlier"))
    write_model_card(version, loaded.metadata, [], np.zeros((10, 10), np.int64), plots=False)
    args = ["export", str(version), "--format", "onnx", "--out", str(tmp_path / "out" / "model.onnx"),
            "--check", "--data-dir", str(directory), "--uploads", "34", *([] if real else ["--no-verify"])]
    for _ in range(2):  # a second export replaces the record: one entry, one section
        assert train.main(args) == 0
    out = capsys.readouterr().out
    assert "parity with the service" in out and ": passed" in out and "34 images" in out
    card = json.loads((version / "model-card.json").read_text())
    (entry,) = card["exports"]
    data = (tmp_path / "out" / "model.onnx").read_bytes()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["file"] == "model.onnx"
    assert entry["opset"] == OPSET and entry["parity"]["passed"]
    n = len(load_dataset("mnist", directory, download=False, verify=real, progress=False).test_labels)
    assert entry["parity"]["test"]["n"] == n and entry["parity"]["uploads"]["n"] == 34
    assert entry["parity"]["test"]["argmax_agree"] == n
    assert entry["parity"]["test"]["max_abs_diff_digit_score"] <= TOLERANCE
    markdown = (version / "model-card.md").read_text()
    assert markdown.count("## Exports") == 1 and entry["sha256"] in markdown
    assert "| preprocessed uploads | 34 |" in markdown


def test_record_export_keeps_the_rest_of_the_card(tmp_path):
    loaded = load_artifact(write_artifact(tmp_path / ARTIFACT_FILE, [], input_shape=(784,)))
    write_model_card(tmp_path, loaded.metadata, [], np.zeros((10, 10), np.int64), plots=False)
    before = (tmp_path / "model-card.md").read_text()
    facts = export_onnx(loaded, tmp_path / "m.onnx")
    record_export(tmp_path, {**facts, "file": "m.onnx"})
    record_export(tmp_path, {**facts, "file": "m.onnx"})
    after = (tmp_path / "model-card.md").read_text()
    assert after.startswith(before.rstrip("\n")) and after.count("## Exports") == 1
    assert "`input` FP32 [N, 1, 28, 28]" in after and "`digit_score` FP32 [N]" in after


# -- the Triton model repository and the InferenceService --------------------------------------


def test_the_triton_model_is_the_export_of_a_bundled_version(tmp_path):
    shipped = TRITON / "mnist" / "1" / "model.onnx"
    props = {p.key: p.value for p in onnx.load(shipped).metadata_props}
    matches = [p for p in sorted(BUNDLED_ARTIFACTS.glob("mnist/*/model.npz"))
               if load_artifact(p).metadata.weights_sha256 == props["weights_sha256"]]
    assert matches, "deploy/triton/mnist/1/model.onnx exports no bundled version: run make triton-model"
    export_onnx(load_artifact(matches[0]), tmp_path / "again.onnx")
    assert (tmp_path / "again.onnx").read_bytes() == shipped.read_bytes(), "stale: run make triton-model"


DTYPES = {"TYPE_FP32": onnx.TensorProto.FLOAT, "TYPE_INT64": onnx.TensorProto.INT64}


def _model_config(path: Path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(path.read_text(), model_config_pb2.ModelConfig())  # unknown fields fail


def test_the_triton_config_matches_the_exported_model():
    from tritonclient.grpc import model_config_pb2

    for config_path in sorted(TRITON.glob("*/config.pbtxt")):
        config = _model_config(config_path)
        model = onnx.load(config_path.parent / "1" / "model.onnx")
        assert config.name == config_path.parent.name and config.platform == "onnxruntime_onnx"
        assert config.max_batch_size >= 64 and config.HasField("dynamic_batching")
        batching = config.dynamic_batching
        assert batching.preferred_batch_size and max(batching.preferred_batch_size) <= config.max_batch_size
        assert 0 < batching.max_queue_delay_microseconds <= 10_000
        declared = [*config.input, *config.output]
        graph = {v.name: v for v in [*model.graph.input, *model.graph.output]}
        assert sorted(t.name for t in declared) == sorted(graph)
        for tensor in declared:
            value = graph[tensor.name].type.tensor_type
            dims = value.shape.dim
            assert dims[0].dim_param, f"{tensor.name}: the model's first dimension must be the batch"
            shape = list(tensor.reshape.shape) if tensor.HasField("reshape") else list(tensor.dims)
            assert shape == [d.dim_value for d in dims[1:]], tensor.name
            assert value.elem_type == DTYPES[model_config_pb2.DataType.Name(tensor.data_type)], tensor.name


def test_a_misspelt_triton_config_field_fails_to_parse(tmp_path):
    from google.protobuf import text_format

    bad = tmp_path / "config.pbtxt"
    bad.write_text((TRITON / "mnist" / "config.pbtxt").read_text().replace("max_batch_size", "max_batch"))
    with pytest.raises(text_format.ParseError):
        _model_config(bad)


def test_the_triton_inferenceservice_validates_against_kserve_crd_schema():
    import jsonschema_rs

    schema = json.load(gzip.open(REPO / "deploy" / "kserve" / "schemas" / "inferenceservice-v1beta1.json.gz"))
    manifest = yaml.safe_load((REPO / "deploy" / "kserve" / "inferenceservice-triton.yaml").read_text())
    validator = jsonschema_rs.validator_for(schema)
    assert [e.message for e in validator.iter_errors(manifest)] == []
    misspelt = {**manifest, "spec": {**manifest["spec"], "predictorr": {}}}
    assert not validator.is_valid(misspelt)  # the schema is strict
    model = manifest["spec"]["predictor"]["model"]
    assert model["runtime"] == "kserve-tritonserver" and model["protocolVersion"] == "v2"
    assert model["modelFormat"]["name"] == "onnx"
