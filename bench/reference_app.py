"""The obvious implementation, kept as the benchmark's yardstick.

A Flask app that does what a first version would: Pillow
``convert("L").resize((28, 28))``, a NumPy forward pass, ``jsonify``. No
preprocessing beyond that, no metrics, no logging, no validation. It serves
the same artifact and the same routes as the product, so ``bench/serve.py``
can drive both with the same requests:

    gunicorn --config gunicorn.conf.py bench.reference_app:app
"""

from __future__ import annotations

import json
import os

import numpy as np
from flask import Flask, jsonify, request
from PIL import Image

ARTIFACT = os.environ.get("REFERENCE_ARTIFACT", "artifacts/mnist/1/model.npz")

with np.load(ARTIFACT, allow_pickle=False) as npz:
    meta = json.loads(str(npz["metadata"]))
    n_layers = len(meta["architecture"]["sizes"]) - 1
    WEIGHTS = [(npz[f"W{i}"], npz[f"b{i}"]) for i in range(n_layers)]

app = Flask(__name__)


def forward(x: np.ndarray) -> np.ndarray:
    for i, (W, b) in enumerate(WEIGHTS):
        x = x @ W + b
        if i < len(WEIGHTS) - 1:
            x = np.maximum(x, 0)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def to_input(file) -> np.ndarray:
    image = Image.open(file).convert("L").resize((28, 28))
    return np.asarray(image, dtype=np.float32).reshape(1, 784) / 255.0


@app.post("/v1/predict")
def predict():
    probs = forward(to_input(request.files["image"]))[0]
    return jsonify(predicted_class=int(probs.argmax()), probabilities=probs.tolist())


@app.post("/v1/predict/batch")
def predict_batch():
    x = np.concatenate([to_input(f) for f in request.files.getlist("images")])
    probs = forward(x)
    return jsonify(predictions=[{"predicted_class": int(p.argmax()), "probabilities": p.tolist()}
                                for p in probs])


@app.post("/v2/models/<name>/infer")
def infer(name):
    length = request.headers.get("Inference-Header-Content-Length")
    raw = request.get_data()
    if length:
        body = json.loads(raw[: int(length)])
        tensor = body["inputs"][0]
        dtype = np.uint8 if tensor["datatype"] == "UINT8" else np.float32
        x = np.frombuffer(raw[int(length):], dtype=dtype).reshape(-1, 784).astype(np.float32)
    else:
        body = json.loads(raw)
        tensor = body["inputs"][0]
        x = np.array(tensor["data"], dtype=np.float32).reshape(-1, 784)
    if tensor["datatype"] == "UINT8":
        x = x / 255.0
    probs = forward(x)
    return jsonify(model_name=name, outputs=[
        {"name": "probabilities", "datatype": "FP32", "shape": list(probs.shape),
         "data": probs.ravel().tolist()},
        {"name": "predicted_class", "datatype": "INT64", "shape": [len(probs)],
         "data": probs.argmax(axis=1).tolist()}])


@app.get("/healthz")
@app.get("/readyz")
def health():
    return jsonify(status="ok")
