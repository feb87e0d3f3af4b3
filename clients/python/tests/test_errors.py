"""Every error class, provoked from the real server."""

from __future__ import annotations

import os

import pytest

from cabinet_client import (
    Cabinet,
    CabinetError,
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    PartsMissing,
    QuotaExceeded,
    RateLimited,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unprocessable,
)
from conftest import MiB, Server


def test_unauthorized(server: Server) -> None:
    with Cabinet(server.url, "cab_not-a-real-key") as cabinet:
        with pytest.raises(Unauthorized) as err:
            cabinet.quota()
    assert err.value.status == 401
    assert err.value.code == "unauthenticated"
    assert isinstance(err.value.body, dict) and "error" in err.value.body


def test_forbidden(server: Server) -> None:
    with Cabinet(server.url, server.workspace_key(role="read")) as cabinet:
        with pytest.raises(Forbidden) as err:
            cabinet.upload(b"nope", name="nope.txt")
    assert err.value.status == 403


def test_not_found(cabinet: Cabinet) -> None:
    with pytest.raises(NotFound) as err:
        cabinet.files.get("file_01m8pc6g5e6hw3rxseqstw5y0s")
    assert (err.value.status, err.value.code) == (404, "not_found")
    with pytest.raises(NotFound):
        cabinet.folders.get("/no/such/folder")


def test_conflict(cabinet: Cabinet, folder: str) -> None:
    cabinet.folders.create("twice", parent=folder)
    with pytest.raises(Conflict) as err:
        cabinet.folders.create("twice", parent=folder)
    assert (err.value.status, err.value.code) == (409, "name_taken")
    renamed = cabinet.folders.create("twice", parent=folder, on_conflict="rename")
    assert renamed["name"] == "twice (2)"


def test_parts_missing(cabinet: Cabinet, folder: str) -> None:
    ticket = cabinet._request(
        "POST", "/v1/uploads", json={"name": "half.bin", "size": 6 * MiB, "multipart": True, "part_size": 5 * MiB}
    )
    upload_id = ticket["id"]  # type: ignore[index]
    with pytest.raises(PartsMissing) as err:
        cabinet.uploads.complete(upload_id)
    assert isinstance(err.value, Conflict)
    assert err.value.missing_parts == [1, 2]
    cabinet.uploads.cancel(upload_id)


def test_quota_exceeded(server: Server) -> None:
    with Cabinet(server.url, server.workspace_key(quota_bytes=1000)) as cabinet:
        cabinet.upload(os.urandom(600), name="fits.bin")
        with pytest.raises(QuotaExceeded) as err:
            cabinet.upload(os.urandom(600), name="does-not-fit.bin")
    assert (err.value.status, err.value.code) == (507, "quota_exceeded")


def test_too_large(server: Server) -> None:
    with Cabinet(server.url, server.workspace_key(max_file_bytes=500)) as cabinet:
        with pytest.raises(TooLarge) as err:
            cabinet.upload(os.urandom(501), name="big.bin")
    assert err.value.status == 413
    assert err.value.code == "file_too_large"


def test_invalid_request(cabinet: Cabinet) -> None:
    with pytest.raises(InvalidRequest) as err:
        list(cabinet.files.list(sort="shoe_size"))
    assert (err.value.status, err.value.code) == (400, "invalid_sort")
    with pytest.raises(InvalidRequest) as err:
        cabinet.upload(b"x", name="a/b.txt")
    assert err.value.code == "invalid_name"


def test_unprocessable_checksum_mismatch(cabinet: Cabinet) -> None:
    ticket = cabinet._request("POST", "/v1/uploads", json={"name": "lie.txt", "size": 5, "sha256": "0" * 64})
    with pytest.raises(Unprocessable) as err:
        cabinet._send(ticket["method"], ticket["upload_url"], b"hello", ticket["headers"], 5)  # type: ignore[index]
        cabinet.uploads.complete(ticket["id"])  # type: ignore[index]
    # Cabinet's storage endpoint answers 422 checksum_mismatch; S3 checks the declared checksum
    # itself and answers 400 BadDigest.
    assert (err.value.status, err.value.code) in ((422, "checksum_mismatch"), (400, "BadDigest"))


def test_rate_limited(limited_server: Server) -> None:
    with Cabinet(limited_server.url, limited_server.key) as cabinet:
        with pytest.raises(RateLimited) as err:
            for _ in range(20):
                cabinet.quota()
    assert err.value.status == 429
    assert err.value.code == "rate_limited"
    assert err.value.retry_after is not None and err.value.retry_after > 0


def test_unavailable_when_nothing_listens() -> None:
    with Cabinet("http://127.0.0.1:9", "cab_x", timeout=5) as cabinet:
        with pytest.raises(Unavailable) as err:
            cabinet.quota()
    assert err.value.status == 0 and err.value.code == "connection_failed"
    assert isinstance(err.value, CabinetError)
