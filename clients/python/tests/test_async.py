"""AsyncCabinet: the same flows with await and async for."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path
from typing import List

import httpx
import pytest

from cabinet_client import AsyncCabinet, NotFound, Unavailable
from conftest import MiB, AsyncCountingTransport, Server

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_async_upload_lists_and_errors(server: Server, tmp_path: Path) -> None:
    async with AsyncCabinet(server.url, server.key, state_dir=tmp_path / "state") as cabinet:
        folder = (await cabinet.folders.create(f"async-{uuid.uuid4().hex[:8]}"))["id"]
        for i in range(5):
            file = await cabinet.upload(f"async {i}".encode(), name=f"a{i}.txt", folder=folder)
            assert file["sha256"] == hashlib.sha256(f"async {i}".encode()).hexdigest()
        names = [f["name"] async for f in cabinet.files.list(folder=folder, page_size=2, sort="name")]
        assert names == [f"a{i}.txt" for i in range(5)]
        found = [item async for item in cabinet.search("a3", folder=folder, page_size=1)]
        assert [item["name"] for item in found] == ["a3.txt"]
        with pytest.raises(NotFound):
            await cabinet.files.get("file_01m8pc6g5e6hw3rxseqstw5y0s")
        subs = {(await cabinet.folders.create(f"sub{i}", parent=folder))["id"] for i in range(3)}
        assert {f["id"] async for f in cabinet.folders.list(parent=folder, page_size=2)} == subs
        await cabinet.folders.delete(sorted(subs)[0])
        assert sorted(subs)[0] in {item["id"] async for item in cabinet.trash.list()}
        assert (await cabinet.quota())["used_bytes"] > 0
        target = tmp_path / "a0.txt"
        await cabinet.files.download(file["id"], target)
        assert target.read_bytes() == b"async 4"


async def test_async_multipart_interrupted_then_resumed(server: Server, tmp_path: Path) -> None:
    data = os.urandom(11 * MiB)
    path = tmp_path / "async-big.bin"
    path.write_bytes(data)
    options = dict(part_size=5 * MiB, multipart_threshold=5 * MiB)
    failing = AsyncCountingTransport(fail_after=2)
    async with AsyncCabinet(server.url, server.key, state_dir=tmp_path / "s", transport=failing, part_retries=()) as cabinet:
        with pytest.raises(Unavailable) as err:
            await cabinet.upload(path, concurrency=1, **options)  # type: ignore[arg-type]
        had = await cabinet.uploads.parts(err.value.upload_id)  # type: ignore[attr-defined]
    assert [p["part_number"] for p in had["parts"]] == [1, 2]
    counting = AsyncCountingTransport()
    async with AsyncCabinet(server.url, server.key, state_dir=tmp_path / "s", transport=counting) as cabinet:
        file = await cabinet.upload(path, **options)  # type: ignore[arg-type]
    assert counting.part_puts == 1
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


class AsyncUnavailableOnce(httpx.AsyncHTTPTransport):
    """`test_upload.UnavailableOnce`, for AsyncCabinet."""

    def __init__(self, retry_after: str) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.sent = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and not request.url.path.startswith("/v1/"):
            self.sent += 1
            if self.sent == 1:
                await request.aread()
                return httpx.Response(
                    503,
                    headers={"retry-after": self.retry_after},
                    json={"error": {"code": "unavailable", "message": "service unavailable"}},
                )
        return await super().handle_async_request(request)


async def test_async_whole_file_refused_with_503_is_sent_again_after_retry_after(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: List[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    monkeypatch.setattr("cabinet_client._async.asyncio.sleep", record)
    refusing = AsyncUnavailableOnce(retry_after="3")
    data = os.urandom(200_000)
    async with AsyncCabinet(server.url, server.key, transport=refusing) as cabinet:
        file = await cabinet.upload(data, name=f"retried-{uuid.uuid4().hex[:8]}.bin")
    assert refusing.sent == 2, "refused once, then sent again"
    assert waits == [3.0], "it waited as long as Retry-After said"
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
