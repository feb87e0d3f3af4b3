"""Not a test module: dev/test-python-sdk type-checks it with `mypy --strict --disallow-any-expr`,
so the public surface hands out no `Any` (every value an app touches has a type)."""

from __future__ import annotations

from typing import List, Optional

from cabinet_client import AsyncCabinet, Cabinet, CabinetError, File, Folder, Item, Quota, RateLimited


def use_sync(cabinet: Cabinet) -> None:
    file: File = cabinet.upload(b"x", name="x.txt", folder="/Docs", on_progress=lambda sent, total: None)
    name: str = file["name"]
    size: int = file["size"]
    folder_id: Optional[str] = file["folder_id"]
    tags: List[str] = cabinet.files.update(file["id"], name="y.txt", tags=["a"])["tags"]
    names: List[str] = [f["name"] for f in cabinet.files.list(folder="/Docs", page_size=10)]
    kinds: List[str] = [item["name"] for item in cabinet.search("x")]
    folders: List[Folder] = list(cabinet.folders.list(parent="root"))
    trash: List[Item] = list(cabinet.trash.list())
    quota: Quota = cabinet.quota()
    used: int = quota["used_bytes"]
    url: str = cabinet.files.download_url(file["id"])["url"]
    on: bool = cabinet.files.favorite(file["id"])
    parts: int = cabinet.uploads.parts("upl_x")["part_count"]
    cabinet.files.download(file["id"], "/tmp/x")
    try:
        cabinet.files.get("file_x")
    except RateLimited as err:
        wait: Optional[float] = err.retry_after
    except CabinetError as err:
        status: int = err.status
        code: str = err.code
    del name, size, folder_id, tags, names, kinds, folders, trash, used, url, on, parts


async def use_async(cabinet: AsyncCabinet) -> None:
    file: File = await cabinet.upload("/tmp/x", concurrency=2)
    names: List[str] = [f["name"] async for f in cabinet.files.list(q="x")]
    items: List[Item] = [item async for item in cabinet.search("x", page_size=5)]
    folder: Folder = await cabinet.folders.create("new", parent="/Docs")
    quota: Quota = await cabinet.quota()
    del file, names, items, folder, quota
