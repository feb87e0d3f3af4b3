"""Typed errors: one class per kind of failure, carrying the API's ``error.code``."""

from __future__ import annotations

import json
from typing import Dict, List, Mapping, Optional, Type, Union

JsonBody = Union[Dict[str, object], str, None]


class CabinetError(Exception):
    """Any error the API (or a signed storage URL) answered, or a local check that failed.

    ``status`` is the HTTP status (0 when no response came), ``code`` the API's stable
    ``error.code`` (e.g. ``quota_exceeded``), ``message`` its explanation, ``body`` the decoded
    response body (a dict for JSON, else the text).
    """

    def __init__(self, status: int, code: str, message: str, body: JsonBody = None) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.body = body


class InvalidRequest(CabinetError):
    """400: the request was malformed or a value is out of range."""


class Unauthorized(CabinetError):
    """401: the key is missing, wrong or revoked."""


class Forbidden(CabinetError):
    """403: the key may not do this (role or access rule)."""


class NotFound(CabinetError):
    """404: no such file, folder, upload or workspace."""


class Conflict(CabinetError):
    """409: the state forbids it (name taken, file in use, upload not live, parts missing...)."""


class PartsMissing(Conflict):
    """409 ``parts_missing``: complete was asked with parts still to send."""

    @property
    def missing_parts(self) -> List[int]:
        if isinstance(self.body, dict):
            error = self.body.get("error")
            if isinstance(error, dict):
                parts = error.get("missing_parts")
                if isinstance(parts, list):
                    return [int(p) for p in parts]
        return []


class TooLarge(CabinetError):
    """413: larger than the file size limit (or a body over its bound)."""


class Unprocessable(CabinetError):
    """422: the bytes did not match what was declared (size, checksum), or cannot be processed.

    On S3 storage, S3 itself refuses bytes whose checksum is not the declared one (400
    ``BadDigest``): that is this class too."""


class RateLimited(CabinetError):
    """429: too many requests or uploads at once; ``retry_after`` is in seconds when given."""

    def __init__(
        self, status: int, code: str, message: str, body: JsonBody = None, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(status, code, message, body)
        self.retry_after = retry_after


class QuotaExceeded(CabinetError):
    """507: the workspace's quota cannot hold it."""


class ServerError(CabinetError):
    """5xx: the server failed."""


class Unavailable(ServerError):
    """503, or the server could not be reached (status 0); ``retry_after`` is in seconds when the
    server said when to try again."""

    def __init__(
        self, status: int, code: str, message: str, body: JsonBody = None, retry_after: Optional[float] = None
    ) -> None:
        super().__init__(status, code, message, body)
        self.retry_after = retry_after


class IntegrityError(CabinetError):
    """The bytes stored or downloaded do not have the SHA-256 computed locally."""


_BY_STATUS: Dict[int, Type[CabinetError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: TooLarge,
    422: Unprocessable,
    429: RateLimited,
    507: QuotaExceeded,
    503: Unavailable,
}

_BY_CODE: Dict[str, Type[CabinetError]] = {
    "parts_missing": PartsMissing,
    "quota_exceeded": QuotaExceeded,
    "file_too_large": TooLarge,
    "payload_too_large": TooLarge,
    "rate_limited": RateLimited,
    "too_many_uploads": RateLimited,
    "unauthenticated": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    # S3's own codes, for signed URLs on S3 storage: the same failures as Cabinet's.
    "BadDigest": Unprocessable,
    "InvalidDigest": Unprocessable,
    "XAmzContentSHA256Mismatch": Unprocessable,
    "EntityTooLarge": TooLarge,
    "PreconditionFailed": Conflict,
    "SlowDown": RateLimited,
}


def _decode(content: bytes) -> JsonBody:
    if not content:
        return None
    try:
        value = json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")
    return value if isinstance(value, dict) else json.dumps(value)


def _xml_tag(text: str, tag: str) -> Optional[str]:
    start = text.find(f"<{tag}>")
    end = text.find(f"</{tag}>")
    if start < 0 or end < start:
        return None
    return text[start + len(tag) + 2 : end]


def error_from_response(status: int, headers: Mapping[str, str], content: bytes) -> CabinetError:
    """The typed error for an error response: by ``error.code`` first, then by status."""
    body = _decode(content)
    code = ""
    message = ""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = body["error"]
        assert isinstance(error, dict)
        code = str(error.get("code", ""))
        message = str(error.get("message", ""))
    elif isinstance(body, str):
        # S3's own answers (signed URLs on S3 storage) are XML.
        code = _xml_tag(body, "Code") or ""
        message = _xml_tag(body, "Message") or body[:200]
    if not code:
        code = f"http_{status}"
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else CabinetError
    if cls is RateLimited or cls is Unavailable:
        retry_after: Optional[float] = None
        raw = headers.get("retry-after")
        if raw is not None:
            try:
                retry_after = float(raw)
            except ValueError:
                retry_after = None
        if cls is RateLimited:
            return RateLimited(status, code, message, body, retry_after=retry_after)
        return Unavailable(status, code, message, body, retry_after=retry_after)
    return cls(status, code, message, body)


__all__ = [
    "CabinetError",
    "InvalidRequest",
    "Unauthorized",
    "Forbidden",
    "NotFound",
    "Conflict",
    "PartsMissing",
    "TooLarge",
    "Unprocessable",
    "RateLimited",
    "QuotaExceeded",
    "ServerError",
    "Unavailable",
    "IntegrityError",
    "error_from_response",
]
