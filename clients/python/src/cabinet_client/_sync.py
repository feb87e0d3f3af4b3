"""The synchronous client."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import IO, Dict, Sequence, Iterator, List, Mapping, Optional, Set, Union, cast

import httpx

from ._common import (
    CANCEL_RETRIES,
    CANCEL_RETRY_PAUSE,
    DEFAULT_MULTIPART_THRESHOLD,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    PROGRESS_CHUNK,
    LocalSource,
    ProgressCallback,
    QueryValue,
    Source,
    StateStore,
    UploadPlan,
    batches,
    fileobj_writer,
    is_folder_id,
    lost_on_the_network,
    part_range,
    resumable,
    retries_the_same_url,
    retry_delay,
    RETRY_DELAYS,
    query,
    split_folder_path,
    verified_file,
    with_length,
)
from .errors import (
    CabinetError,
    Conflict,
    IntegrityError,
    InvalidRequest,
    NotFound,
    PartsMissing,
    RateLimited,
    ServerError,
    Unavailable,
    error_from_response,
)
from .types import (
    DownloadUrl,
    Favorite,
    File,
    Folder,
    Item,
    JsonValue,
    PartList,
    PartUrl,
    Quota,
    RestoredFile,
    RestoredFolder,
    Upload,
    UploadTicket,
)

_UNSET: object = object()


class Cabinet:
    """A client of a Cabinet server's ``/v1`` API.

    >>> with Cabinet("http://127.0.0.1:8080", "cab_...") as cabinet:
    ...     file = cabinet.upload("report.pdf", folder="/Reports")

    ``multipart_threshold`` and ``part_size`` are the upload helper's defaults; ``state_dir`` is
    where multipart uploads in progress are remembered; a part whose sending failed (network,
    5xx, 429) is sent again after each of ``part_retries`` seconds (or the server's
    ``Retry-After``), then the upload stops (resumable); a whole file's single PUT answered 429 or
    503 is sent again to the same URL the same way. ``transport`` is httpx's, for tests and proxies.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 60.0,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = DEFAULT_PART_SIZE,
        state_dir: Optional[Union[str, "os.PathLike[str]"]] = None,
        transport: Optional[httpx.BaseTransport] = None,
        part_retries: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.part_retries = tuple(part_retries)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.state = StateStore(state_dir)
        self._api = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        # Signed URLs are their own credential: the key is never sent to storage.
        self._storage = httpx.Client(timeout=timeout, transport=transport)
        self.files = Files(self)
        self.folders = Folders(self)
        self.trash = Trash(self)
        self.uploads = Uploads(self)

    def close(self) -> None:
        self._api.close()
        self._storage.close()

    def __enter__(self) -> "Cabinet":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, QueryValue]] = None,
        json: Optional[Mapping[str, object]] = None,
    ) -> object:
        try:
            response = self._api.request(method, path, params=query(params or {}), json=json)
        except httpx.TransportError as err:
            raise Unavailable(0, "connection_failed", str(err) or type(err).__name__) from err
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def _send(
        self, method: str, url: str, body: Union[bytes, Iterator[bytes]], headers: Optional[Mapping[str, str]], length: int
    ) -> None:
        try:
            response = self._storage.request(method, url, content=body, headers=with_length(headers, length))
        except httpx.TransportError as err:
            raise Unavailable(0, "connection_failed", str(err) or type(err).__name__) from err
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content)

    def _pages(self, path: str, params: Mapping[str, QueryValue]) -> Iterator[Dict[str, object]]:
        cursor: Optional[str] = None
        while True:
            page = cast(Dict[str, object], self._request("GET", path, params={**params, "cursor": cursor}))
            for item in cast(List[Dict[str, object]], page["data"]):
                yield item
            next_cursor = page.get("next_cursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                return
            cursor = next_cursor

    def resolve_folder(self, folder: Optional[str], *, create: bool = False) -> Optional[str]:
        """A folder id for an id, ``root``/``/`` (None) or a path like ``/Photos/2024``, matched
        case-insensitively from the root; with ``create``, missing folders are made."""
        if folder is None or folder in ("", "/", "root"):
            return None
        if is_folder_id(folder):
            return folder
        parent: Optional[str] = None
        for name in split_folder_path(folder):
            found = next(
                (
                    f["id"]
                    for f in self.folders.list(parent=parent or "root", q=name)
                    if f["name"].casefold() == name.casefold()
                ),
                None,
            )
            if found is None:
                if not create:
                    raise NotFound(404, "not_found", f"no folder {folder}", None)
                try:
                    found = self.folders.create(name, parent=parent)["id"]
                except Conflict:  # made meanwhile by another client: use it
                    return self.resolve_folder(folder, create=False)
            parent = found
        return parent

    # -- uploads ----------------------------------------------------------------------------

    def upload(
        self,
        source: Source,
        *,
        name: Optional[str] = None,
        folder: Optional[str] = None,
        sha256: bool = True,
        on_progress: Optional[ProgressCallback] = None,
        part_size: Optional[int] = None,
        concurrency: int = 4,
        resume: bool = True,
        upload_id: Optional[str] = None,
        multipart_threshold: Optional[int] = None,
        mime_type: Optional[str] = None,
    ) -> File:
        """Upload a path, bytes or binary file object and return the stored file, verified.

        Files of ``multipart_threshold`` bytes or more go in parts of ``part_size``,
        ``concurrency`` at a time. The upload is remembered (``state_dir``) and calling
        ``upload`` again for the same source after an interruption sends only the parts the
        server does not have (``resume=False`` starts over); ``upload_id`` resumes a given one.
        ``on_progress(sent, total)`` is called as bytes reach the server; an exception it
        raises stops the upload, which stays resumable.
        """
        local = LocalSource(source, name)
        digest = local.sha256() if sha256 else None
        threshold = multipart_threshold if multipart_threshold is not None else self.multipart_threshold
        size_per_part = max(part_size or self.part_size, MIN_PART_SIZE, -(-local.size // 10_000))
        plan = UploadPlan(
            source=local,
            sha256=digest,
            folder_id=self.resolve_folder(folder, create=True),
            multipart=upload_id is not None or (local.size > 0 and local.size >= threshold),
            part_size=size_per_part,
            concurrency=max(1, concurrency),
        )
        progress: ProgressCallback = on_progress or (lambda _sent, _total: None)
        if not plan.multipart:
            return self._upload_single(plan, progress, mime_type)
        return self._upload_multipart(plan, progress, resume, upload_id, mime_type)

    def _still_waiting(self, upload_id: str) -> bool:
        """Whether the upload still waits for its bytes (False when that cannot be known)."""
        try:
            return self.uploads.get(upload_id)["status"] == "WAITING"
        except CabinetError:
            return False

    def _new_upload(self, plan: UploadPlan, mime_type: Optional[str], multipart: bool) -> UploadTicket:
        body: Dict[str, object] = {"name": plan.source.name, "size": plan.source.size}
        if plan.sha256:
            body["sha256"] = plan.sha256
        if plan.folder_id:
            body["folder_id"] = plan.folder_id
        if mime_type:
            body["mime_type"] = mime_type
        if multipart:
            body["multipart"] = True
            body["part_size"] = plan.part_size
        return cast(UploadTicket, self._request("POST", "/v1/uploads", json=body))

    def _upload_single(self, plan: UploadPlan, progress: ProgressCallback, mime_type: Optional[str]) -> File:
        ticket = self._new_upload(plan, mime_type, multipart=False)
        size = plan.source.size
        progress(0, size)
        assert ticket["upload_url"] is not None
        body = plan.source.read(0, size)

        def chunks() -> Iterator[bytes]:
            for offset in range(0, size, PROGRESS_CHUNK):
                chunk = body[offset : offset + PROGRESS_CHUNK]
                yield chunk
                progress(offset + len(chunk), size)

        try:
            for delay in (*self.part_retries, None):
                try:
                    self._send(ticket["method"] or "PUT", ticket["upload_url"], chunks(), ticket["headers"], size)
                    break
                except CabinetError as err:
                    # The server said to try again, and the upload still waits: the same URL. After
                    # a network failure (the answer lost, or the request never reached it) the
                    # upload is asked: one still waiting takes the bytes again.
                    if delay is None:
                        raise
                    lost = lost_on_the_network(err) and self._still_waiting(ticket["id"])
                    if not (retries_the_same_url(err) or lost):
                        raise
                    time.sleep(retry_delay(err, delay))
        except BaseException as err:
            # A small upload is not resumed: release its reservation now, not at its expiry. The
            # server may not yet have seen the body it was sending end (`upload_in_progress`).
            # After a network failure the bytes may have landed with the answer lost (on S3 the
            # server finishes such an upload itself): it is left to finish or expire.
            if lost_on_the_network(err):
                raise
            for _ in range(CANCEL_RETRIES):
                try:
                    self.uploads.cancel(ticket["id"])
                except Conflict as err:
                    if err.code == "upload_in_progress":
                        time.sleep(CANCEL_RETRY_PAUSE)
                        continue
                except CabinetError:
                    pass
                break
            raise
        upload = self.uploads.complete(ticket["id"])
        return verified_file(upload, plan.sha256)

    def _open_session(
        self, plan: UploadPlan, resume: bool, upload_id: Optional[str], key: Optional[str]
    ) -> Optional[Upload]:
        """The upload to resume, if any is still usable."""
        remembered = self.state.load(key) if key else None
        if remembered is not None and not resume and upload_id is None:
            try:  # starting over: release what the old upload holds
                self.uploads.cancel(remembered)
            except CabinetError:
                pass
        candidate = upload_id or (remembered if resume else None)
        if candidate is None:
            return None
        try:
            upload = self.uploads.get(candidate)
        except NotFound:
            if upload_id is not None:
                raise
            return None
        usable = upload["status"] == "SUCCESS" or resumable(upload, plan.source.size)
        if not usable:
            if upload_id is not None:
                raise CabinetError(0, "upload_not_resumable", f"upload {candidate} is {upload['status']}", None)
            return None
        return upload

    def _upload_multipart(
        self,
        plan: UploadPlan,
        progress: ProgressCallback,
        resume: bool,
        upload_id: Optional[str],
        mime_type: Optional[str],
    ) -> File:
        key = StateStore.key(self.base_url, plan)
        session = self._open_session(plan, resume, upload_id, key)
        if session is not None and session["status"] == "SUCCESS":
            if key:
                self.state.forget(key)
            return verified_file(session, plan.sha256)
        if session is None:
            uid = self._new_upload(plan, mime_type, multipart=True)["id"]
            if key:
                self.state.save(key, uid)
        else:
            uid = session["id"]
        try:
            for _ in range(3):
                listing = self.uploads.parts(uid)
                self._send_parts(uid, plan, listing, progress)
                try:
                    upload = self.uploads.complete(uid)
                    break
                except PartsMissing:
                    continue  # a part went missing meanwhile: list again, send it, complete again
            else:
                upload = self.uploads.complete(uid)
        except BaseException as err:
            try:
                setattr(err, "upload_id", uid)
            except AttributeError:
                pass
            raise
        if key:
            self.state.forget(key)
        return verified_file(upload, plan.sha256)

    def _send_parts(self, uid: str, plan: UploadPlan, listing: PartList, progress: ProgressCallback) -> None:
        size = plan.source.size
        part_size, part_count = listing["part_size"], listing["part_count"]
        have: Set[int] = {
            p["part_number"] for p in listing["parts"] if p["size"] == part_range(p["part_number"], part_size, size)[1]
        }
        missing = [n for n in range(1, part_count + 1) if n not in have]
        sent = sum(part_range(n, part_size, size)[1] for n in have)
        progress(sent, size)

        stopping = threading.Event()

        def send(part: PartUrl) -> int:
            offset, length = part_range(part["part_number"], part_size, size)
            body = plan.source.read(offset, length)
            for delay in (*self.part_retries, None):
                try:
                    self._send(part["method"], part["url"], body, part["headers"], length)
                    return length
                except (ServerError, RateLimited) as err:
                    if delay is None or stopping.is_set():
                        raise
                    if stopping.wait(retry_delay(err, delay)):
                        raise
            raise AssertionError("unreachable")

        with ThreadPoolExecutor(max_workers=plan.concurrency) as pool:
            for batch in batches(missing):
                urls = self.uploads.part_urls(uid, batch)
                pending: Set["Future[int]"] = {pool.submit(send, part) for part in urls}
                try:
                    while pending:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            sent += future.result()
                            progress(sent, size)
                except BaseException:
                    stopping.set()
                    for future in pending:
                        future.cancel()
                    wait(pending)
                    raise

    # -- search and quota ---------------------------------------------------------------------

    def search(
        self,
        q: str,
        *,
        folder: Optional[str] = None,
        recursive: Optional[bool] = None,
        tags: Optional[List[str]] = None,
        favorite: Optional[bool] = None,
        mime: Optional[str] = None,
        sort: Optional[str] = None,
        order: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[Item]:
        """Files and folders whose names contain ``q``, every page (each item has ``type``)."""
        params: Dict[str, QueryValue] = {
            "q": q,
            "folder_id": self.files._folder_param(folder),
            "recursive": recursive,
            "tags": ",".join(tags) if tags else None,
            "favorite": favorite,
            "mime": mime,
            "sort": sort,
            "order": order,
            "limit": page_size,
        }
        for item in self._pages("/v1/search", params):
            yield cast(Item, item)

    def quota(self) -> Quota:
        return cast(Quota, self._request("GET", "/v1/quota"))


class Files:
    """``/v1/files``."""

    def __init__(self, client: Cabinet) -> None:
        self._c = client

    def _folder_param(self, folder: Optional[str]) -> Optional[str]:
        if folder is None:
            return None
        if folder in ("root", "/"):
            return "root"
        return self._c.resolve_folder(folder)

    def list(
        self,
        *,
        folder: Optional[str] = None,
        recursive: Optional[bool] = None,
        q: Optional[str] = None,
        tags: Optional[List[str]] = None,
        tags_match: Optional[str] = None,
        favorite: Optional[bool] = None,
        mime: Optional[str] = None,
        trashed: Optional[bool] = None,
        referenced_by: Optional[str] = None,
        sort: Optional[str] = None,
        order: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[File]:
        """Every file matching, following ``next_cursor`` page after page."""
        params: Dict[str, QueryValue] = {
            "folder_id": self._folder_param(folder),
            "recursive": recursive,
            "q": q,
            "tags": ",".join(tags) if tags else None,
            "tags_match": tags_match,
            "favorite": favorite,
            "mime": mime,
            "trashed": trashed,
            "referenced_by": referenced_by,
            "sort": sort,
            "order": order,
            "limit": page_size,
        }
        for item in self._c._pages("/v1/files", params):
            yield cast(File, item)

    def get(self, file_id: str) -> File:
        return cast(File, self._c._request("GET", f"/v1/files/{file_id}"))

    def update(
        self,
        file_id: str,
        *,
        name: Optional[str] = None,
        folder: Union[str, None, object] = _UNSET,
        tags: Optional[List[str]] = None,
        alt_text: Union[str, None, object] = _UNSET,
        caption: Union[str, None, object] = _UNSET,
        copyright: Union[str, None, object] = _UNSET,
        metadata: Optional[Dict[str, JsonValue]] = None,
        is_favorite: Optional[bool] = None,
    ) -> File:
        """Rename, move (``folder``: id or path; None for the root), retag or describe a file.
        Arguments left out stay as they are; ``None`` clears a text field."""
        body: Dict[str, object] = {}
        if name is not None:
            body["name"] = name
        if folder is not _UNSET:
            body["folder_id"] = self._c.resolve_folder(cast(Optional[str], folder))
        if tags is not None:
            body["tags"] = tags
        if metadata is not None:
            body["metadata"] = metadata
        if is_favorite is not None:
            body["is_favorite"] = is_favorite
        for field, value in (("alt_text", alt_text), ("caption", caption), ("copyright", copyright)):
            if value is not _UNSET:
                body[field] = value
        return cast(File, self._c._request("PATCH", f"/v1/files/{file_id}", json=body))

    def delete(self, file_id: str, *, permanent: bool = False, force: bool = False) -> File:
        """To the trash, or purged with ``permanent``; ``force`` deletes a file in use."""
        params: Dict[str, QueryValue] = {"permanent": permanent or None, "force": force or None}
        return cast(File, self._c._request("DELETE", f"/v1/files/{file_id}", params=params))

    def restore(self, file_id: str) -> RestoredFile:
        return cast(RestoredFile, self._c._request("POST", f"/v1/files/{file_id}/restore"))

    def favorite(self, file_id: str, on: Optional[bool] = None) -> bool:
        """Toggle the favorite mark, or set it with ``on``; returns the new mark."""
        if on is not None:
            return self.update(file_id, is_favorite=on)["is_favorite"]
        return cast(Favorite, self._c._request("POST", f"/v1/files/{file_id}/favorite"))["is_favorite"]

    def download_url(
        self, file_id: str, *, expires_in: Optional[int] = None, download: bool = False, lasting: bool = False
    ) -> DownloadUrl:
        """A signed URL that needs no key (``lasting``: a permalink)."""
        params: Dict[str, QueryValue] = {
            "expires_in": expires_in,
            "download": download or None,
            "lasting": lasting or None,
        }
        return cast(DownloadUrl, self._c._request("GET", f"/v1/files/{file_id}/download-url", params=params))

    def download(
        self, file_id: str, target: Union[str, "os.PathLike[str]", IO[bytes]], *, verify: bool = True
    ) -> File:
        """Stream a file's bytes to a path or binary file object through its signed URL,
        checking their SHA-256 (a mismatch raises ``IntegrityError``; a path is then removed)."""
        file = self.get(file_id)
        url = self.download_url(file_id)["url"]
        out, owned = fileobj_writer(target)
        digest = hashlib.sha256()
        try:
            try:
                with self._c._storage.stream("GET", url) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise error_from_response(response.status_code, response.headers, response.content)
                    for chunk in response.iter_bytes():
                        digest.update(chunk)
                        out.write(chunk)
            except httpx.TransportError as err:
                raise Unavailable(0, "connection_failed", str(err) or type(err).__name__) from err
        finally:
            if owned:
                out.close()
        if verify and digest.hexdigest() != file["sha256"]:
            if owned:
                os.remove(cast(Union[str, "os.PathLike[str]"], target))
            raise IntegrityError(0, "checksum_mismatch", f"downloaded bytes are not sha256 {file['sha256']}", None)
        return file


class Folders:
    """``/v1/folders``."""

    def __init__(self, client: Cabinet) -> None:
        self._c = client

    def create(self, name: str, *, parent: Optional[str] = None, on_conflict: Optional[str] = None) -> Folder:
        """A folder under ``parent`` (id or path; the root by default). ``on_conflict="rename"``
        picks a free name instead of failing with ``Conflict``."""
        body: Dict[str, object] = {"name": name}
        parent_id = self._c.resolve_folder(parent)
        if parent_id:
            body["parent_id"] = parent_id
        return cast(Folder, self._c._request("POST", "/v1/folders", params={"on_conflict": on_conflict}, json=body))

    def get(self, folder: str) -> Folder:
        """A folder's details, with its ``path`` (by id or path)."""
        folder_id = self._c.resolve_folder(folder)
        if folder_id is None:
            raise InvalidRequest(0, "invalid_folder", "the root has no details: give a folder id or path", None)
        return cast(Folder, self._c._request("GET", f"/v1/folders/{folder_id}"))

    def list(
        self,
        *,
        parent: Optional[str] = None,
        q: Optional[str] = None,
        favorite: Optional[bool] = None,
        trashed: Optional[bool] = None,
        sort: Optional[str] = None,
        order: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[Folder]:
        """Every folder matching (``parent``: id, path or ``root``), page after page."""
        parent_param: Optional[str] = parent
        if parent is not None and parent not in ("root", "/") and not is_folder_id(parent):
            parent_param = self._c.resolve_folder(parent) or "root"
        elif parent == "/":
            parent_param = "root"
        params: Dict[str, QueryValue] = {
            "parent_id": parent_param,
            "q": q,
            "favorite": favorite,
            "trashed": trashed,
            "sort": sort,
            "order": order,
            "limit": page_size,
        }
        for item in self._c._pages("/v1/folders", params):
            yield cast(Folder, item)

    def update(
        self,
        folder_id: str,
        *,
        name: Optional[str] = None,
        parent: Union[str, None, object] = _UNSET,
        is_favorite: Optional[bool] = None,
    ) -> Folder:
        body: Dict[str, object] = {}
        if name is not None:
            body["name"] = name
        if parent is not _UNSET:
            body["parent_id"] = self._c.resolve_folder(cast(Optional[str], parent))
        if is_favorite is not None:
            body["is_favorite"] = is_favorite
        return cast(Folder, self._c._request("PATCH", f"/v1/folders/{folder_id}", json=body))

    def delete(
        self, folder_id: str, *, recursive: bool = False, permanent: bool = False, force: bool = False
    ) -> Folder:
        params: Dict[str, QueryValue] = {
            "recursive": recursive or None,
            "permanent": permanent or None,
            "force": force or None,
        }
        return cast(Folder, self._c._request("DELETE", f"/v1/folders/{folder_id}", params=params))

    def restore(self, folder_id: str) -> RestoredFolder:
        return cast(RestoredFolder, self._c._request("POST", f"/v1/folders/{folder_id}/restore"))

    def favorite(self, folder_id: str) -> bool:
        """Toggle the favorite mark; returns the new mark."""
        return cast(Favorite, self._c._request("POST", f"/v1/folders/{folder_id}/favorite"))["is_favorite"]


class Trash:
    """``/v1/trash``."""

    def __init__(self, client: Cabinet) -> None:
        self._c = client

    def list(self, *, limit: Optional[int] = None) -> Iterator[Item]:
        """What is in the trash, newest first (the API returns one page of up to 500)."""
        page = cast(Dict[str, object], self._c._request("GET", "/v1/trash", params={"limit": limit}))
        for item in cast(List[Item], page["data"]):
            yield item

    def empty(self) -> int:
        """Purge everything in the trash; returns how many items went."""
        return cast(Dict[str, int], self._c._request("DELETE", "/v1/trash"))["purged"]


class Uploads:
    """``/v1/uploads``: the steps the upload helper takes, for callers that want them."""

    def __init__(self, client: Cabinet) -> None:
        self._c = client

    def get(self, upload_id: str) -> Upload:
        return cast(Upload, self._c._request("GET", f"/v1/uploads/{upload_id}"))

    def parts(self, upload_id: str) -> PartList:
        """The parts the server has received so far."""
        return cast(PartList, self._c._request("GET", f"/v1/uploads/{upload_id}/parts"))

    def part_urls(self, upload_id: str, part_numbers: List[int]) -> List[PartUrl]:
        answer = self._c._request("POST", f"/v1/uploads/{upload_id}/parts", json={"part_numbers": part_numbers})
        return cast(Dict[str, List[PartUrl]], answer)["parts"]

    def complete(self, upload_id: str) -> Upload:
        return cast(Upload, self._c._request("POST", f"/v1/uploads/{upload_id}/complete"))

    def cancel(self, upload_id: str) -> Upload:
        return cast(Upload, self._c._request("DELETE", f"/v1/uploads/{upload_id}"))
