"""Python client for the Cabinet Files API (sync: ``Cabinet``; async: ``AsyncCabinet``)."""

from ._async import AsyncCabinet
from ._sync import Cabinet
from .errors import (
    CabinetError,
    Conflict,
    Forbidden,
    IntegrityError,
    InvalidRequest,
    NotFound,
    PartsMissing,
    QuotaExceeded,
    RateLimited,
    ServerError,
    TooLarge,
    Unauthorized,
    Unavailable,
    Unprocessable,
)
from .types import DownloadUrl, File, Folder, Item, PartList, Quota, Upload

__version__ = "0.1.0"

__all__ = [
    "Cabinet",
    "AsyncCabinet",
    "CabinetError",
    "Conflict",
    "Forbidden",
    "IntegrityError",
    "InvalidRequest",
    "NotFound",
    "PartsMissing",
    "QuotaExceeded",
    "RateLimited",
    "ServerError",
    "TooLarge",
    "Unauthorized",
    "Unavailable",
    "Unprocessable",
    "DownloadUrl",
    "File",
    "Folder",
    "Item",
    "PartList",
    "Quota",
    "Upload",
]
