"""How responses become error classes, for the statuses the real server cannot be made to give
on purpose (5xx) and for S3's XML refusals."""

from __future__ import annotations

import json

from cabinet_client import (
    CabinetError,
    Conflict,
    PartsMissing,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TooLarge,
    Unavailable,
    Unprocessable,
)
from cabinet_client.errors import error_from_response


def body(code: str, message: str = "m", **extra: object) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, **extra}}).encode()


def test_server_errors() -> None:
    internal = error_from_response(500, {}, body("internal"))
    assert type(internal) is ServerError and internal.code == "internal"
    unavailable = error_from_response(503, {}, body("unavailable"))
    assert isinstance(unavailable, Unavailable) and isinstance(unavailable, ServerError)
    assert unavailable.retry_after is None
    told_when = error_from_response(503, {"retry-after": "5"}, body("unavailable"))
    assert isinstance(told_when, Unavailable) and told_when.retry_after == 5.0
    bare = error_from_response(502, {}, b"<html>bad gateway</html>")
    assert type(bare) is ServerError and bare.code == "http_502"


def test_code_decides_before_status() -> None:
    assert isinstance(error_from_response(409, {}, body("parts_missing", missing_parts=[2, 3])), PartsMissing)
    missing = error_from_response(409, {}, body("parts_missing", missing_parts=[2, 3]))
    assert isinstance(missing, PartsMissing) and missing.missing_parts == [2, 3]
    limited = error_from_response(429, {"retry-after": "7"}, body("too_many_uploads"))
    assert isinstance(limited, RateLimited) and limited.retry_after == 7.0
    assert isinstance(error_from_response(507, {}, body("quota_exceeded")), QuotaExceeded)
    unknown = error_from_response(418, {}, body("teapot"))
    assert type(unknown) is CabinetError and unknown.status == 418


def test_s3_xml_refusals() -> None:
    def xml(code: str) -> bytes:
        return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>says S3</Message></Error>".encode()

    digest = error_from_response(400, {}, xml("BadDigest"))
    assert isinstance(digest, Unprocessable) and (digest.code, digest.message) == ("BadDigest", "says S3")
    assert isinstance(error_from_response(400, {}, xml("EntityTooLarge")), TooLarge)
    assert isinstance(error_from_response(412, {}, xml("PreconditionFailed")), Conflict)
    assert isinstance(error_from_response(503, {}, xml("SlowDown")), RateLimited)
