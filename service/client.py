"""A small client for the service, built on requests, and a CLI on top of it.

    python -m service.client predict digit.png photo.jpg [--url URL] [--json]
    python -m service.client read postcode.jpg          # a whole number per image
    python -m service.client models [--url URL]
    python -m service.client pin 3 [--token TOKEN]     # or: pin latest

From Python::

    from service.client import Client
    client = Client("http://localhost:8000")
    client.predict("digit.png")["label"]
    client.read("meter.jpg")["text"]

Every failure raises ``ClientError``: ``Unreachable`` when no server answers
(connection refused, DNS, timeout), otherwise the server's JSON error with its
status and code. The CLI prints one line per problem and exits non-zero.
The URL defaults to ``$MNIST_URL`` or http://localhost:8000, the token to
``$ADMIN_TOKEN``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import requests

__all__ = ["Client", "ClientError", "Unreachable", "main"]

DEFAULT_URL = "http://localhost:8000"


class ClientError(Exception):
    """The request failed; ``status`` and ``code`` come from the server when it answered."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message, self.status, self.code = message, status, code


class Unreachable(ClientError):
    """No server answered at the URL."""


ImageInput = str | os.PathLike | bytes


def _read(image: ImageInput) -> tuple[str, bytes]:
    if isinstance(image, bytes):
        return "image", image
    path = Path(image)
    try:
        return path.name, path.read_bytes()
    except OSError as exc:
        raise ClientError(f"cannot read {path}: {exc.strerror or exc}") from None


class Client:
    """Talk to one service instance."""

    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0,
                 session: requests.Session | None = None):
        self.url = (url or os.environ.get("MNIST_URL") or DEFAULT_URL).rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()

    def _request(self, method: str, path: str, **kwargs) -> dict:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self.session.request(method, self.url + path, headers=headers,
                                            timeout=self.timeout, **kwargs)
        except requests.ConnectionError as exc:
            raise Unreachable(f"cannot reach {self.url}: {_reason(exc)}; is the service running "
                              "(make run) and the URL right?") from None
        except requests.Timeout:
            raise Unreachable(f"{self.url} did not answer within {self.timeout:g} s") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if not response.ok:
            if isinstance(body, dict) and "error" in body:
                raise ClientError(str(body["error"]), response.status_code, body.get("code"))
            raise ClientError(f"HTTP {response.status_code} from {self.url}{path}", response.status_code)
        if not isinstance(body, dict):
            raise ClientError(f"{self.url}{path} did not answer with JSON", response.status_code)
        return body

    def predict(self, image: ImageInput) -> dict:
        """Return the prediction for one image (a path or the file's bytes)."""
        name, data = _read(image)
        return self._request("POST", "/v1/predict", files={"image": (name, data)})

    def predict_batch(self, images: list[ImageInput]) -> list[dict]:
        """Return one prediction (or per-image error) per image, in order."""
        files = [("images", _read(image)) for image in images]
        return self._request("POST", "/v1/predict/batch", files=files)["predictions"]

    def read(self, image: ImageInput) -> dict:
        """Return the number read from one image of several digits: text, confidence, digits, marks."""
        name, data = _read(image)
        return self._request("POST", "/v1/read", files={"image": (name, data)})

    def models(self) -> dict:
        """Return the active model, every version and the load errors."""
        return self._request("GET", "/v1/models")

    def pin(self, version: str) -> dict:
        """Pin ``version`` ("latest" follows the newest again); needs the admin token."""
        return self._request("PUT", "/v1/models/active", json={"version": str(version)})

    def ready(self) -> bool:
        """Return whether the service has a validated model loaded."""
        try:
            self._request("GET", "/readyz")
        except ClientError as exc:
            if isinstance(exc, Unreachable):
                raise
            return False
        return True


def _reason(exc: requests.ConnectionError) -> str:
    text = str(exc)
    for hint in ("Connection refused", "Name or service not known", "No route to host",
                 "Temporary failure in name resolution", "Connection reset"):
        if hint in text:
            return hint.lower()
    return "connection failed"


# -- command line -------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m service.client",
                                     description="Use a running digit-recognition service.")
    parser.add_argument("--url", help=f"service URL (default: $MNIST_URL or {DEFAULT_URL})")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--json", action="store_true", help="print the raw JSON answers")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify image files (several go in one batch)")
    predict.add_argument("images", nargs="+", type=Path)
    read = commands.add_parser("read", help="read the whole number written in each image file")
    read.add_argument("images", nargs="+", type=Path)
    commands.add_parser("models", help="show the active model, versions and load errors")
    pin = commands.add_parser("pin", help="pin a version, or 'latest' to follow the newest")
    pin.add_argument("version")
    pin.add_argument("--token", help="admin token (default: $ADMIN_TOKEN)")
    return parser


def _print_predictions(files: list[Path], predictions: list[dict]) -> int:
    failed = 0
    width = max(len(str(f)) for f in files)
    for path, p in zip(files, predictions):
        if "error" in p:
            failed += 1
            print(f"{str(path):<{width}}  error ({p['status']} {p['code']}): {p['error']}")
        else:
            print(f"{str(path):<{width}}  {p['label']:>3}  {100 * p['confidence']:6.2f}%  "
                  f"(model {p['model']['name']} v{p['model']['version']})")
    return 1 if failed else 0


def _read_numbers(client: Client, files: list[Path], as_json: bool) -> int:
    """Read each file's number; print one line per file (or the JSON answers)."""
    failed, answers = 0, []
    width = max(len(str(f)) for f in files)
    for path in files:
        try:
            answer = client.read(path)
        except ClientError as exc:
            if isinstance(exc, Unreachable):
                raise
            failed += 1
            answers.append({"error": exc.message, "status": exc.status, "code": exc.code})
            if not as_json:
                print(f"{str(path):<{width}}  error ({exc.status} {exc.code}): {exc.message}")
            continue
        answers.append(answer)
        if not as_json:
            unsure = [d["label"] for d in answer["digits"] if d["verdict"] != "digit"]
            print(f"{str(path):<{width}}  {answer['text']:>8}  {100 * answer['confidence']:6.2f}%"
                  + (f"  (unsure of {', '.join(unsure)})" if unsure else "")
                  + (f"  ({len(answer['marks'])} marks left out)" if answer["marks"] else ""))
    if as_json:
        print(json.dumps(answers, indent=2))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    token = getattr(args, "token", None) or os.environ.get("ADMIN_TOKEN")
    client = Client(args.url, token=token if args.command == "pin" else None, timeout=args.timeout)
    try:
        if args.command == "predict":
            if len(args.images) == 1:
                answers = [client.predict(args.images[0])]
            else:
                answers = client.predict_batch(args.images)
            if args.json:
                print(json.dumps(answers, indent=2))
                return 1 if any("error" in a for a in answers) else 0
            return _print_predictions(args.images, answers)
        if args.command == "read":
            return _read_numbers(client, args.images, args.json)
        if args.command == "models":
            info = client.models()
            if args.json:
                print(json.dumps(info, indent=2))
                return 0
            accuracy = (info.get("metrics") or {}).get("test_accuracy")
            print(f"model {info['name']}: serving version {info['version']}"
                  + (f" (test accuracy {100 * accuracy:.2f}%)" if accuracy is not None else "")
                  + (f", pinned to {info['pinned']}" if info.get("pinned") else ", following the newest"))
            for v in info["versions"]:
                marks = ", ".join(m for m, on in (("active", v["active"]), ("pinned", v["pinned"]),
                                                  ("INVALID", not v["valid"])) if on)
                acc = f"{100 * v['test_accuracy']:.2f}%" if v["test_accuracy"] is not None else "n/a"
                print(f"  {v['version']:>4}  {v['created_at'] or '':32}  {acc:>7}  {marks}")
            if info.get("last_load_error"):
                e = info["last_load_error"]
                print(f"last load error (version {e['version']}): {e['message']}")
            return 0
        if not token:
            print("error: pinning needs the admin token: --token or $ADMIN_TOKEN", file=sys.stderr)
            return 2
        answer = client.pin(args.version)
        print(json.dumps(answer) if args.json else
              f"serving version {answer['version']}" +
              (" (pinned)" if answer["pinned"] else " (following the newest)"))
        return 0
    except ClientError as exc:
        where = f" [{exc.status} {exc.code}]" if exc.status else ""
        print(f"error{where}: {exc.message}", file=sys.stderr)
        return 3 if isinstance(exc, Unreachable) else 1


if __name__ == "__main__":
    sys.exit(main())
