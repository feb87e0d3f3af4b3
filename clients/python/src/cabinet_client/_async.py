"""The asynchronous client: the same surface as ``Cabinet``, with ``await`` and ``async for``."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import IO, AsyncIterator, Callable, Dict, Sequence, List, Mapping, Optional, Set, TypeVar, Union, cast

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
T = TypeVar("T")


async def _in_thread(func: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, func)


class AsyncCabinet:
    """The async client of a Cabinet server's ``/v1`` API (same arguments as ``Cabinet``).

    >>> async with AsyncCabinet("http://127.0.0.1:8080", "cab_...") as cabinet:
    ...     file = await cabinet.upload("report.pdf", folder="/Reports")
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
        transport: Optional[httpx.AsyncBaseTransport] = None,
        part_retries: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.part_retries = tuple(part_retries)
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.state = StateStore(state_dir)
        self._api = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
        )
        self._storage = httpx.AsyncClient(timeout=timeout, transport=transport)
        self.files = AsyncFiles(self)
        self.folders = AsyncFolders(self)
        self.trash = AsyncTrash(self)
        self.uploads = AsyncUploads(self)

    async def aclose(self) -> None:
        await self._api.aclose()
        await self._storage.aclose()

    async def __aenter__(self) -> "AsyncCabinet":
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    # -- plumbing ---------------------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Optional[Mapping[str, QueryValue]] = None,
        json: Optional[Mapping[str, object]] = None,
    ) -> object:
        try:
            response = await self._api.request(method, path, params=query(params or {}), json=json)
        except httpx.TransportError as err:
            raise Unavailable(0, "connection_failed", str(err) or type(err).__name__) from err
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    async def _send(
        self,
        method: str,
        url: str,
        body: Union[bytes, AsyncIterator[bytes]],
        headers: Optional[Mapping[str, str]],
        length: int,
    ) -> None:
        try:
            response = await self._storage.request(method, url, content=body, headers=with_length(headers, length))
        except httpx.TransportError as err:
            raise Unavailable(0, "connection_failed", str(err) or type(err).__name__) from err
        if response.status_code >= 400:
            raise error_from_response(response.status_code, response.headers, response.content)

    async def _pages(self, path: str, params: Mapping[str, QueryValue]) -> AsyncIterator[Dict[str, object]]:
        cursor: Optional[str] = None
        while True:
            page = cast(Dict[str, object], await self._request("GET", path, params={**params, "cursor": cursor}))
            for item in cast(List[Dict[str, object]], page["data"]):
                yield item
            next_cursor = page.get("next_cursor")
            if not isinstance(next_cursor, str) or not next_cursor:
                return
            cursor = next_cursor

    async def resolve_folder(self, folder: Optional[str], *, create: bool = False) -> Optional[str]:
        """See ``Cabinet.resolve_folder``."""
        if folder is None or folder in ("", "/", "root"):
            return None
        if is_folder_id(folder):
            return folder
        parent: Optional[str] = None
        for name in split_folder_path(folder):
            found: Optional[str] = None
            async for candidate in self.folders.list(parent=parent or "root", q=name):
                if candidate["name"].casefold() == name.casefold():
                    found = candidate["id"]
                    break
            if found is None:
                if not create:
                    raise NotFound(404, "not_found", f"no folder {folder}", None)
                try:
                    found = (await self.folders.create(name, parent=parent))["id"]
                except Conflict:  # made meanwhile by another client: use it
                    return await self.resolve_folder(folder, create=False)
            parent = found
        return parent

    # -- uploads ----------------------------------------------------------------------------

    async def upload(
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
        """See ``Cabinet.upload``: the same, with parts sent as concurrent tasks."""
        local = await _in_thread(lambda: LocalSource(source, name))
        digest = await _in_thread(local.sha256) if sha256 else None
        threshold = multipart_threshold if multipart_threshold is not None else self.multipart_threshold
        size_per_part = max(part_size or self.part_size, MIN_PART_SIZE, -(-local.size // 10_000))
        plan = UploadPlan(
            source=local,
            sha256=digest,
            folder_id=await self.resolve_folder(folder, create=True),
            multipart=upload_id is not None or (local.size > 0 and local.size >= threshold),
            part_size=size_per_part,
            concurrency=max(1, concurrency),
        )
        progress: ProgressCallback = on_progress or (lambda _sent, _total: None)
        if not plan.multipart:
            return await self._upload_single(plan, progress, mime_type)
        return await self._upload_multipart(plan, progress, resume, upload_id, mime_type)

    async def _still_waiting(self, upload_id: str) -> bool:
        """Whether the upload still waits for its bytes (False when that cannot be known)."""
        try:
            return (await self.uploads.get(upload_id))["status"] == "WAITING"
        except CabinetError:
            return False

    async def _new_upload(self, plan: UploadPlan, mime_type: Optional[str], multipart: bool) -> UploadTicket:
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
        return cast(UploadTicket, await self._request("POST", "/v1/uploads", json=body))

    async def _upload_single(self, plan: UploadPlan, progress: ProgressCallback, mime_type: Optional[str]) -> File:
        ticket = await self._new_upload(plan, mime_type, multipart=False)
        size = plan.source.size
        progress(0, size)
        assert ticket["upload_url"] is not None
        body = await _in_thread(lambda: plan.source.read(0, size))

        async def chunks() -> AsyncIterator[bytes]:
            for offset in range(0, size, PROGRESS_CHUNK):
                chunk = body[offset : offset + PROGRESS_CHUNK]
                yield chunk
                progress(offset + len(chunk), size)

        try:
            for delay in (*self.part_retries, None):
                try:
                    await self._send(ticket["method"] or "PUT", ticket["upload_url"], chunks(), ticket["headers"], size)
                    break
                except CabinetError as err:
                    # The server said to try again, and the upload still waits: the same URL. After
                    # a network failure (the answer lost, or the request never reached it) the
                    # upload is asked: one still waiting takes the bytes again.
                    if delay is None:
                        raise
                    lost = lost_on_the_network(err) and await self._still_waiting(ticket["id"])
                    if not (retries_the_same_url(err) or lost):
                        raise
                    await asyncio.sleep(retry_delay(err, delay))
        except BaseException as err:
            # A small upload is not resumed: release its reservation now, not at its expiry. The
            # server may not yet have seen the body it was sending end (`upload_in_progress`).
            # After a network failure the bytes may have landed with the answer lost (on S3 the
            # server finishes such an upload itself): it is left to finish or expire.
            if lost_on_the_network(err):
                raise
            for _ in range(CANCEL_RETRIES):
                try:
                    await self.uploads.cancel(ticket["id"])
                except Conflict as err:
                    if err.code == "upload_in_progress":
                        await asyncio.sleep(CANCEL_RETRY_PAUSE)
                        continue
                except CabinetError:
                    pass
                break
            raise
        upload = await self.uploads.complete(ticket["id"])
        return verified_file(upload, plan.sha256)

    async def _open_session(
        self, plan: UploadPlan, resume: bool, upload_id: Optional[str], key: Optional[str]
    ) -> Optional[Upload]:
        remembered = self.state.load(key) if key else None
        if remembered is not None and not resume and upload_id is None:
            try:  # starting over: release what the old upload holds
                await self.uploads.cancel(remembered)
            except CabinetError:
                pass
        candidate = upload_id or (remembered if resume else None)
        if candidate is None:
            return None
        try:
            upload = await self.uploads.get(candidate)
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

    async def _upload_multipart(
        self,
        plan: UploadPlan,
        progress: ProgressCallback,
        resume: bool,
        upload_id: Optional[str],
        mime_type: Optional[str],
    ) -> File:
        key = StateStore.key(self.base_url, plan)
        session = await self._open_session(plan, resume, upload_id, key)
        if session is not None and session["status"] == "SUCCESS":
            if key:
                self.state.forget(key)
            return verified_file(session, plan.sha256)
        if session is None:
            uid = (await self._new_upload(plan, mime_type, multipart=True))["id"]
            if key:
                self.state.save(key, uid)
        else:
            uid = session["id"]
        try:
            for _ in range(3):
                listing = await self.uploads.parts(uid)
                await self._send_parts(uid, plan, listing, progress)
                try:
                    upload = await self.uploads.complete(uid)
                    break
                except PartsMissing:
                    continue
            else:
                upload = await self.uploads.complete(uid)
        except BaseException as err:
            try:
                setattr(err, "upload_id", uid)
            except AttributeError:
                pass
            raise
        if key:
            self.state.forget(key)
        return verified_file(upload, plan.sha256)

    async def _send_parts(self, uid: str, plan: UploadPlan, listing: PartList, progress: ProgressCallback) -> None:
        size = plan.source.size
        part_size, part_count = listing["part_size"], listing["part_count"]
        have: Set[int] = {
            p["part_number"] for p in listing["parts"] if p["size"] == part_range(p["part_number"], part_size, size)[1]
        }
        missing = [n for n in range(1, part_count + 1) if n not in have]
        sent = sum(part_range(n, part_size, size)[1] for n in have)
        progress(sent, size)
        slots = asyncio.Semaphore(plan.concurrency)

        async def send(part: PartUrl) -> int:
            async with slots:
                offset, length = part_range(part["part_number"], part_size, size)
                body = await _in_thread(lambda: plan.source.read(offset, length))
                for delay in (*self.part_retries, None):
                    try:
                        await self._send(part["method"], part["url"], body, part["headers"], length)
                        return length
                    except (ServerError, RateLimited) as err:
                        if delay is None:
                            raise
                        await asyncio.sleep(retry_delay(err, delay))
                raise AssertionError("unreachable")

        for batch in batches(missing):
            urls = await self.uploads.part_urls(uid, batch)
            pending: Set["asyncio.Task[int]"] = {asyncio.ensure_future(send(part)) for part in urls}
            try:
                while pending:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        sent += task.result()
                        progress(sent, size)
            except BaseException:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                raise

    # -- search and quota ---------------------------------------------------------------------

    async def search(
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
    ) -> AsyncIterator[Item]:
        """Files and folders whose names contain ``q``, every page (each item has ``type``)."""
        params: Dict[str, QueryValue] = {
            "q": q,
            "folder_id": await self.files._folder_param(folder),
            "recursive": recursive,
            "tags": ",".join(tags) if tags else None,
            "favorite": favorite,
            "mime": mime,
            "sort": sort,
            "order": order,
            "limit": page_size,
        }
        async for item in self._pages("/v1/search", params):
            yield cast(Item, item)

    async def quota(self) -> Quota:
        return cast(Quota, await self._request("GET", "/v1/quota"))


class AsyncFiles:
    """``/v1/files``."""

    def __init__(self, client: AsyncCabinet) -> None:
        self._c = client

    async def _folder_param(self, folder: Optional[str]) -> Optional[str]:
        if folder is None:
            return None
        if folder in ("root", "/"):
            return "root"
        return await self._c.resolve_folder(folder)

    async def list(
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
    ) -> AsyncIterator[File]:
        """Every file matching, following ``next_cursor`` page after page."""
        params: Dict[str, QueryValue] = {
            "folder_id": await self._folder_param(folder),
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
        async for item in self._c._pages("/v1/files", params):
            yield cast(File, item)

    async def get(self, file_id: str) -> File:
        return cast(File, await self._c._request("GET", f"/v1/files/{file_id}"))

    async def update(
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
        """See ``Files.update``."""
        body: Dict[str, object] = {}
        if name is not None:
            body["name"] = name
        if folder is not _UNSET:
            body["folder_id"] = await self._c.resolve_folder(cast(Optional[str], folder))
        if tags is not None:
            body["tags"] = tags
        if metadata is not None:
            body["metadata"] = metadata
        if is_favorite is not None:
            body["is_favorite"] = is_favorite
        for field, value in (("alt_text", alt_text), ("caption", caption), ("copyright", copyright)):
            if value is not _UNSET:
                body[field] = value
        return cast(File, await self._c._request("PATCH", f"/v1/files/{file_id}", json=body))

    async def delete(self, file_id: str, *, permanent: bool = False, force: bool = False) -> File:
        params: Dict[str, QueryValue] = {"permanent": permanent or None, "force": force or None}
        return cast(File, await self._c._request("DELETE", f"/v1/files/{file_id}", params=params))

    async def restore(self, file_id: str) -> RestoredFile:
        return cast(RestoredFile, await self._c._request("POST", f"/v1/files/{file_id}/restore"))

    async def favorite(self, file_id: str, on: Optional[bool] = None) -> bool:
        if on is not None:
            return (await self.update(file_id, is_favorite=on))["is_favorite"]
        return cast(Favorite, await self._c._request("POST", f"/v1/files/{file_id}/favorite"))["is_favorite"]

    async def download_url(
        self, file_id: str, *, expires_in: Optional[int] = None, download: bool = False, lasting: bool = False
    ) -> DownloadUrl:
        params: Dict[str, QueryValue] = {
            "expires_in": expires_in,
            "download": download or None,
            "lasting": lasting or None,
        }
        return cast(DownloadUrl, await self._c._request("GET", f"/v1/files/{file_id}/download-url", params=params))

    async def download(
        self, file_id: str, target: Union[str, "os.PathLike[str]", IO[bytes]], *, verify: bool = True
    ) -> File:
        """See ``Files.download``."""
        file = await self.get(file_id)
        url = (await self.download_url(file_id))["url"]
        out, owned = fileobj_writer(target)
        digest = hashlib.sha256()
        try:
            try:
                async with self._c._storage.stream("GET", url) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_from_response(response.status_code, response.headers, response.content)
                    async for chunk in response.aiter_bytes():
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


class AsyncFolders:
    """``/v1/folders``."""

    def __init__(self, client: AsyncCabinet) -> None:
        self._c = client

    async def create(self, name: str, *, parent: Optional[str] = None, on_conflict: Optional[str] = None) -> Folder:
        body: Dict[str, object] = {"name": name}
        parent_id = await self._c.resolve_folder(parent)
        if parent_id:
            body["parent_id"] = parent_id
        return cast(
            Folder, await self._c._request("POST", "/v1/folders", params={"on_conflict": on_conflict}, json=body)
        )

    async def get(self, folder: str) -> Folder:
        folder_id = await self._c.resolve_folder(folder)
        if folder_id is None:
            raise InvalidRequest(0, "invalid_folder", "the root has no details: give a folder id or path", None)
        return cast(Folder, await self._c._request("GET", f"/v1/folders/{folder_id}"))

    async def list(
        self,
        *,
        parent: Optional[str] = None,
        q: Optional[str] = None,
        favorite: Optional[bool] = None,
        trashed: Optional[bool] = None,
        sort: Optional[str] = None,
        order: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[Folder]:
        parent_param: Optional[str] = parent
        if parent is not None and parent not in ("root", "/") and not is_folder_id(parent):
            parent_param = await self._c.resolve_folder(parent) or "root"
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
        async for item in self._c._pages("/v1/folders", params):
            yield cast(Folder, item)

    async def update(
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
            body["parent_id"] = await self._c.resolve_folder(cast(Optional[str], parent))
        if is_favorite is not None:
            body["is_favorite"] = is_favorite
        return cast(Folder, await self._c._request("PATCH", f"/v1/folders/{folder_id}", json=body))

    async def delete(
        self, folder_id: str, *, recursive: bool = False, permanent: bool = False, force: bool = False
    ) -> Folder:
        params: Dict[str, QueryValue] = {
            "recursive": recursive or None,
            "permanent": permanent or None,
            "force": force or None,
        }
        return cast(Folder, await self._c._request("DELETE", f"/v1/folders/{folder_id}", params=params))

    async def restore(self, folder_id: str) -> RestoredFolder:
        return cast(RestoredFolder, await self._c._request("POST", f"/v1/folders/{folder_id}/restore"))

    async def favorite(self, folder_id: str) -> bool:
        return cast(Favorite, await self._c._request("POST", f"/v1/folders/{folder_id}/favorite"))["is_favorite"]


class AsyncTrash:
    """``/v1/trash``."""

    def __init__(self, client: AsyncCabinet) -> None:
        self._c = client

    async def list(self, *, limit: Optional[int] = None) -> AsyncIterator[Item]:
        page = cast(Dict[str, object], await self._c._request("GET", "/v1/trash", params={"limit": limit}))
        for item in cast(List[Item], page["data"]):
            yield item

    async def empty(self) -> int:
        return cast(Dict[str, int], await self._c._request("DELETE", "/v1/trash"))["purged"]


class AsyncUploads:
    """``/v1/uploads``."""

    def __init__(self, client: AsyncCabinet) -> None:
        self._c = client

    async def get(self, upload_id: str) -> Upload:
        return cast(Upload, await self._c._request("GET", f"/v1/uploads/{upload_id}"))

    async def parts(self, upload_id: str) -> PartList:
        return cast(PartList, await self._c._request("GET", f"/v1/uploads/{upload_id}/parts"))

    async def part_urls(self, upload_id: str, part_numbers: List[int]) -> List[PartUrl]:
        answer = await self._c._request(
            "POST", f"/v1/uploads/{upload_id}/parts", json={"part_numbers": part_numbers}
        )
        return cast(Dict[str, List[PartUrl]], answer)["parts"]

    async def complete(self, upload_id: str) -> Upload:
        return cast(Upload, await self._c._request("POST", f"/v1/uploads/{upload_id}/complete"))

    async def cancel(self, upload_id: str) -> Upload:
        return cast(Upload, await self._c._request("DELETE", f"/v1/uploads/{upload_id}"))
