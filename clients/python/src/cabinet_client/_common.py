"""What the sync and async clients share: sources, hashing, resume state, query building."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Callable, Dict, List, Mapping, Optional, Tuple, Union

from .errors import CabinetError, IntegrityError
from .types import File, Upload

MiB = 1024 * 1024
DEFAULT_MULTIPART_THRESHOLD = 16 * MiB
DEFAULT_PART_SIZE = 16 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_URLS = 100
HASH_CHUNK = MiB
PROGRESS_CHUNK = 256 * 1024
"""A single PUT reports progress after each chunk of this size has been written."""

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, IO[bytes]]
"""What ``upload`` takes: a path, bytes, or a binary file object (seekable for multipart)."""

ProgressCallback = Callable[[int, int], object]
"""``on_progress(sent, total)``: bytes the server has, of the file's size."""

QueryValue = Union[str, int, bool, None]


class LocalSource:
    """The bytes to upload, readable by range from any thread."""

    def __init__(self, source: Source, name: Optional[str]) -> None:
        self.path: Optional[Path] = None
        self._data: Optional[memoryview] = None
        self._file: Optional[IO[bytes]] = None
        self._lock = threading.Lock()
        self.mtime_ns = 0
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._data = memoryview(bytes(source)) if not isinstance(source, bytes) else memoryview(source)
            self.size = len(self._data)
            self.name = name
        elif isinstance(source, (str, os.PathLike)):
            self.path = Path(os.fspath(source)).resolve()
            stat = self.path.stat()
            self.size = stat.st_size
            self.mtime_ns = stat.st_mtime_ns
            self.name = name or self.path.name
        elif hasattr(source, "read"):
            self._file = source
            self._start = source.tell() if source.seekable() else 0
            if source.seekable():
                end = source.seek(0, io.SEEK_END)
                source.seek(self._start)
                self.size = end - self._start
            else:
                # Not seekable: read it whole (it must then be small enough for memory).
                self._data = memoryview(source.read())
                self._file = None
                self.size = len(self._data)
            file_name = getattr(source, "name", None)
            self.name = name or (os.path.basename(file_name) if isinstance(file_name, str) else None)
        else:
            raise TypeError(f"cannot upload a {type(source).__name__}: give a path, bytes or a binary file object")
        if not self.name:
            raise ValueError("name= is required when uploading bytes or an unnamed file object")

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes from ``offset`` (fewer only at the end)."""
        if self._data is not None:
            return bytes(self._data[offset : offset + length])
        if self.path is not None:
            with open(self.path, "rb") as file:
                file.seek(offset)
                return file.read(length)
        assert self._file is not None
        with self._lock:
            self._file.seek(self._start + offset)
            return self._file.read(length)

    def sha256(self) -> str:
        digest = hashlib.sha256()
        offset = 0
        while offset < self.size:
            chunk = self.read(offset, min(HASH_CHUNK * 8, self.size - offset))
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
        return digest.hexdigest()


@dataclass
class UploadPlan:
    """The upload helper's settings for one file."""

    source: LocalSource
    sha256: Optional[str]
    folder_id: Optional[str]
    multipart: bool
    part_size: int
    concurrency: int


def part_range(part_number: int, part_size: int, size: int) -> Tuple[int, int]:
    """Offset and length of a 1-based part."""
    offset = (part_number - 1) * part_size
    return offset, min(part_size, size - offset)


def batches(numbers: List[int], size: int = MAX_PART_URLS) -> List[List[int]]:
    return [numbers[i : i + size] for i in range(0, len(numbers), size)]


class StateStore:
    """Where multipart uploads in progress are remembered, so the same upload resumes them.

    One small JSON file per upload, named by a key of the server, the source (a path with its
    size and modification time, or the content's SHA-256), the name and the folder.
    """

    def __init__(self, directory: Optional[Union[str, "os.PathLike[str]"]]) -> None:
        if directory is None:
            base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
            directory = os.path.join(base, "cabinet-client", "uploads")
        self.directory = Path(directory)

    @staticmethod
    def key(base_url: str, plan: UploadPlan) -> Optional[str]:
        source = plan.source
        if source.path is not None:
            identity = f"path:{source.path}:{source.size}:{source.mtime_ns}"
        elif plan.sha256 is not None:
            identity = f"sha256:{plan.sha256}:{source.size}"
        else:
            return None
        raw = json.dumps([base_url, identity, source.name, plan.folder_id, plan.part_size])
        return hashlib.sha256(raw.encode()).hexdigest()[:32]

    def load(self, key: str) -> Optional[str]:
        try:
            with open(self.directory / f"{key}.json") as file:
                state = json.load(file)
        except (OSError, ValueError):
            return None
        upload_id = state.get("upload_id") if isinstance(state, dict) else None
        return upload_id if isinstance(upload_id, str) else None

    def save(self, key: str, upload_id: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{key}.json.tmp"
        with open(tmp, "w") as file:
            json.dump({"upload_id": upload_id}, file)
        os.replace(tmp, self.directory / f"{key}.json")

    def forget(self, key: str) -> None:
        try:
            os.remove(self.directory / f"{key}.json")
        except OSError:
            pass


def query(params: Mapping[str, QueryValue]) -> Dict[str, str]:
    """Query parameters without the ``None`` ones, booleans spelled ``true``/``false``."""
    out: Dict[str, str] = {}
    for name, value in params.items():
        if value is None:
            continue
        out[name] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return out


def is_folder_id(value: str) -> bool:
    return value.startswith("fld_")


def split_folder_path(path: str) -> List[str]:
    return [part for part in path.strip().split("/") if part]


def resumable(upload: Upload, size: int) -> bool:
    """Whether an upload in progress can still take parts: open, the same size, and not about to
    expire (a minute to spare)."""
    if upload["status"] not in ("WAITING", "UPLOADING") or upload["size"] != size:
        return False
    try:
        expires = datetime.fromisoformat(upload["expires_at"].replace("Z", "+00:00"))
    except ValueError:
        return True
    return expires - timedelta(minutes=1) > datetime.now(timezone.utc)


RETRY_DELAYS = (0.25, 1.0, 3.0)
"""Waits before sending a part again after a network or server failure (then it gives up)."""

# The longest a server's Retry-After is waited for before a retry.
MAX_RETRY_AFTER = 60.0


def retry_delay(err: CabinetError, default: float) -> float:
    """How long to wait before sending again after ``err``: the server's ``Retry-After`` (429, 503)
    when it gave one, else ``default``."""
    retry_after = getattr(err, "retry_after", None)
    return min(retry_after, MAX_RETRY_AFTER) if retry_after else default


def retries_the_same_url(err: CabinetError) -> bool:
    """Whether an upload URL refused with ``err`` takes the same bytes again: 429 and 503 leave the
    upload waiting for them (a network failure may have ended it)."""
    return err.status in (429, 503)


def lost_on_the_network(err: BaseException) -> bool:
    """Whether ``err`` is a request that failed on the network: its answer, if any, never came."""
    return isinstance(err, CabinetError) and err.status == 0 and err.code == "connection_failed"


# How often, and how far apart, a stopped upload's cancel is tried while the server still sees its
# bytes arriving: about two seconds in all.
CANCEL_RETRIES = 40
CANCEL_RETRY_PAUSE = 0.05


def verified_file(upload: Upload, sha256: Optional[str]) -> File:
    """The file of a finished upload, checked against the local SHA-256."""
    file = upload.get("file")
    if upload.get("status") != "SUCCESS" or file is None:
        raise CabinetError(0, "upload_failed", f"upload {upload['id']} ended {upload['status']} ({upload.get('reason')})", None)
    if sha256 is not None and file["sha256"] != sha256:
        raise IntegrityError(0, "checksum_mismatch", f"stored sha256 {file['sha256']} is not the local {sha256}", None)
    return file


def with_length(headers: Optional[Mapping[str, str]], length: int) -> Dict[str, str]:
    """The headers to send a body with, its length declared (so a streamed body is not chunked)."""
    out = dict(headers or {})
    if not any(name.lower() == "content-length" for name in out):
        out["Content-Length"] = str(length)
    return out


def fileobj_writer(target: Union[str, "os.PathLike[str]", IO[bytes]]) -> Tuple[IO[bytes], bool]:
    """A binary file to write a download into, and whether we opened it (and must close it)."""
    if isinstance(target, (str, os.PathLike)):
        return open(target, "wb"), True
    return target, False
