"""Reading images out of HTTP requests.

``/v1/predict`` takes one image three ways: multipart/form-data with the file
in field ``image``; a raw body with an ``image/*`` content type; or JSON
``{"image": "<base64>"}`` (a ``data:image/...;base64,`` URL also works).
``/v1/predict/batch`` takes many files in the repeated multipart field
``images``. Anything else is a 400 or 415 that says what to send instead.
Body size is capped by Flask's ``MAX_CONTENT_LENGTH`` (413 before reading).

Multipart bodies are parsed by the ``multipart`` package (the parser Bottle
uses; a small state machine over the whole body, several times cheaper per
request than Werkzeug's event-driven form parser, which ``request.files``
would run), with the number of parts bounded (``MAX_BATCH_IMAGES`` plus a
few fields) and everything kept in memory (the body is already bounded).
"""

from __future__ import annotations

import base64
import binascii
import io

import multipart
import orjson
from flask import Request

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

__all__ = ["parse_json", "read_batch", "read_image", "read_image_with_fields"]

HOW_TO_SEND = ("send multipart/form-data with the file in field 'image', a raw body with an "
               "image/* Content-Type, or JSON {\"image\": \"<base64>\"}")


EXTRA_PARTS = 16  # form fields a multipart body may carry beside its images


def _parts(request: Request, max_images: int) -> list[multipart.MultipartPart]:
    """Return the parts of a multipart/form-data body, in order (400 for a malformed body, 413
    for more than ``max_images`` + ``EXTRA_PARTS`` parts)."""
    boundary = request.mimetype_params.get("boundary")
    if not boundary:
        raise BadRequest("multipart/form-data without a boundary parameter in its Content-Type")
    body = request.get_data(cache=False)
    try:
        return list(multipart.MultipartParser(io.BytesIO(body), boundary, len(body),
                                              part_limit=max_images + EXTRA_PARTS,
                                              memory_limit=len(body) + 1, spool_limit=len(body) + 1))
    except multipart.ParserLimitReached:
        raise PayloadTooLarge(f"more than {max_images + EXTRA_PARTS} parts in one multipart body") from None
    except multipart.MultipartError as exc:
        raise BadRequest(f"the body could not be read as a form ({exc})") from None


def _names(parts: list[multipart.MultipartPart], most: int = 10) -> list[str]:
    """Return up to ``most`` field names of a multipart form, for error messages."""
    names = sorted({part.name for part in parts})
    return names[:most] + ([f"... {len(names) - most} more"] if len(names) > most else [])


def _files(parts: list[multipart.MultipartPart], name: str) -> list[multipart.MultipartPart]:
    """Return the file parts (those with a filename) of field ``name``."""
    return [part for part in parts if part.name == name and part.filename is not None]


def parse_json(request: Request) -> object:
    """Return the request body parsed as JSON (400 when it is not valid JSON)."""
    try:
        return orjson.loads(request.get_data(cache=False))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _decode_base64(text: object) -> bytes:
    if not isinstance(text, str):
        raise BadRequest("'image' must be a base64 string")
    if text.startswith("data:"):
        header, _, text = text.partition(",")
        if not header.endswith(";base64"):
            raise BadRequest("a data URL in 'image' must be base64-encoded")
    try:
        # Line breaks and spaces are common (base64 wraps at 76 columns): drop them.
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest("'image' is not valid base64") from None


def read_image(request: Request) -> tuple[bytes, str | None]:
    """Return (image bytes, filename or None) of the single image in ``request``."""
    data, filename, _ = read_image_with_fields(request)
    return data, filename


def read_image_with_fields(request: Request) -> tuple[bytes, str | None, dict]:
    """Return (image bytes, filename or None, the other fields sent with it) of the single image
    in ``request``: the other form fields of a multipart body, the other keys of a JSON object,
    or the query arguments of a raw image body."""
    mimetype = request.mimetype
    if mimetype == "multipart/form-data":
        parts = _parts(request, 1)
        files = _files(parts, "image")
        if not files:
            raise BadRequest(f"no file in multipart field 'image' (fields sent: {_names(parts)}); {HOW_TO_SEND}")
        if len(files) > 1:
            raise BadRequest("send one file in field 'image'; use /v1/predict/batch for several")
        fields = {part.name: part.value for part in parts if part.filename is None}
        return files[0].raw, files[0].filename, fields
    if mimetype.startswith("image/"):
        return request.get_data(cache=False), None, request.args.to_dict()
    if mimetype == "application/json" or mimetype.endswith("+json"):
        body = parse_json(request)
        if not isinstance(body, dict) or "image" not in body:
            raise BadRequest("JSON bodies must be an object with a base64 'image' field")
        return _decode_base64(body["image"]), None, {k: v for k, v in body.items() if k != "image"}
    if not mimetype:
        raise BadRequest(f"no Content-Type; {HOW_TO_SEND}")
    raise UnsupportedMediaType(f"unsupported Content-Type {mimetype!r}; {HOW_TO_SEND}")


def read_batch(request: Request, max_images: int) -> list[tuple[bytes, str | None]]:
    """Return [(bytes, filename)] of the files in the repeated multipart field ``images``."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType(
            f"unsupported Content-Type {request.mimetype or 'none'!r}; send multipart/form-data "
            "with the files in the repeated field 'images'")
    parts = _parts(request, max_images)
    files = _files(parts, "images")
    if not files:
        raise BadRequest(f"no files in multipart field 'images' (fields sent: {_names(parts)})")
    if len(files) > max_images:
        raise PayloadTooLarge(f"{len(files)} images in one batch; the limit is {max_images}")
    return [(f.raw, f.filename) for f in files]
