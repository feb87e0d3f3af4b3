"""AsyncCabinet: the same flows with await and async for."""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

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
