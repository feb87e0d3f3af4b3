"""The upload helper against the real server: small files, multipart with an interruption and a
resume that sends only the missing parts, SHA-256 verification, downloads."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import List, Tuple

import httpx
import pytest

from cabinet_client import Cabinet, CabinetError, IntegrityError, Unavailable
from cabinet_client._common import verified_file
from conftest import MiB, CountingTransport, Server

PART = 5 * MiB  # the smallest part the server takes
SIZE = 12 * MiB + 123  # three parts: 5 MiB, 5 MiB and the rest


def big_file(tmp_path: Path, size: int = SIZE) -> Tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    return path, data


def test_small_upload_from_bytes_path_and_file_object(cabinet: Cabinet, folder: str, tmp_path: Path) -> None:
    data = b"hello, cabinet\n" * 100
    progress: List[Tuple[int, int]] = []
    file = cabinet.upload(data, name="hello.txt", folder=folder, on_progress=lambda s, t: progress.append((s, t)))
    assert file["name"] == "hello.txt"
    assert file["size"] == len(data)
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert file["folder_id"] == folder
    assert progress[-1] == (len(data), len(data))

    path = tmp_path / "notes.md"
    path.write_bytes(b"# notes\n")
    from_path = cabinet.upload(path, folder=folder)
    assert from_path["name"] == "notes.md" and from_path["size"] == 8

    from_object = cabinet.upload(io.BytesIO(b"abc"), name="abc.txt", folder=folder)
    assert from_object["sha256"] == hashlib.sha256(b"abc").hexdigest()
    assert cabinet.files.get(from_object["id"])["sha256"] == from_object["sha256"]


def test_single_put_reports_progress_as_it_sends_and_can_be_stopped(cabinet: Cabinet, folder: str) -> None:
    data = os.urandom(2 * MiB + 1)
    progress: List[Tuple[int, int]] = []
    file = cabinet.upload(data, name="steps.bin", folder=folder, on_progress=lambda s, t: progress.append((s, t)))
    sent = [s for s, _ in progress]
    assert sent == sorted(sent) and sent[0] == 0 and sent[-1] == len(data)
    assert len(progress) == 1 + 9, "0, then every 256 KiB, then the last byte"
    assert file["size"] == len(data)

    class Stop(Exception):
        pass

    def stop(sent: int, total: int) -> None:
        if sent >= MiB:
            raise Stop()

    reserved = cabinet.quota()["reserved_bytes"]
    with pytest.raises(Stop):
        cabinet.upload(data, name="stopped.bin", folder=folder, on_progress=stop)
    assert [f["name"] for f in cabinet.files.list(folder=folder, q="stopped")] == []
    assert cabinet.quota()["reserved_bytes"] <= reserved, "the stopped upload was cancelled"


def test_upload_into_a_folder_path_creates_it(cabinet: Cabinet, folder: str) -> None:
    name = cabinet.folders.get(folder)["name"]
    file = cabinet.upload(b"x", name="deep.txt", folder=f"/{name}/a/b")
    details = cabinet.folders.get(f"/{name.upper()}/A/b")
    assert file["folder_id"] == details["id"]
    assert [step["name"] for step in details["path"]] == [name, "a", "b"]


def test_multipart_upload_interrupted_then_resumed_sends_only_missing_parts(
    server: Server, folder: str, tmp_path: Path
) -> None:
    path, data = big_file(tmp_path)
    state = tmp_path / "state"
    failing = CountingTransport(fail_after=1)
    with Cabinet(server.url, server.key, state_dir=state, transport=failing, part_retries=(0.05,)) as cabinet:
        with pytest.raises(Unavailable) as interrupted:
            cabinet.upload(path, folder=folder, part_size=PART, multipart_threshold=PART, concurrency=1)
        upload_id = interrupted.value.upload_id  # type: ignore[attr-defined]
        received = cabinet.uploads.parts(upload_id)
    assert received["part_count"] == 3
    assert [p["part_number"] for p in received["parts"]] == [1]
    assert list(state.glob("*.json")), "the upload is remembered for a resume"

    counting = CountingTransport()
    progress: List[Tuple[int, int]] = []
    with Cabinet(server.url, server.key, state_dir=state, transport=counting) as cabinet:
        file = cabinet.upload(
            path, folder=folder, part_size=PART, multipart_threshold=PART, on_progress=lambda s, t: progress.append((s, t))
        )
        assert cabinet.uploads.get(upload_id)["status"] == "SUCCESS", "the same upload was resumed"
    assert counting.part_puts == 2, "only the two missing parts were sent"
    # From what the server had, then after each of the two parts (sent at once, in either order).
    assert len(progress) == 3 and progress[0] == (PART, SIZE) and progress[-1] == (SIZE, SIZE)
    assert file["size"] == SIZE
    assert file["sha256"] == hashlib.sha256(data).hexdigest()
    assert not list(state.glob("*.json")), "a finished upload is forgotten"


def test_a_part_that_failed_once_is_sent_again(server: Server, folder: str, tmp_path: Path) -> None:
    path, data = big_file(tmp_path)
    flaky = CountingTransport(transient_failures=2)
    with Cabinet(server.url, server.key, state_dir=tmp_path / "state", transport=flaky) as cabinet:
        file = cabinet.upload(path, folder=folder, part_size=PART, multipart_threshold=PART)
    assert flaky.failed == 2 and flaky.part_puts == 3
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


class UnavailableOnce(httpx.HTTPTransport):
    """Answers the first PUT of a whole file 503 with ``Retry-After``, in the server's error shape,
    as the server does when its disk is full or its database stalls; the PUT never reaches it."""

    def __init__(self, retry_after: str) -> None:
        super().__init__()
        self.retry_after = retry_after
        self.refused = 0
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        # The upload URL: Cabinet's storage route, or S3's own.
        if request.method == "PUT" and not request.url.path.startswith("/v1/"):
            self.sent += 1
            if self.refused == 0:
                self.refused += 1
                request.read()
                return httpx.Response(
                    503,
                    headers={"retry-after": self.retry_after},
                    json={"error": {"code": "unavailable", "message": "service unavailable"}},
                )
        return super().handle_request(request)


def test_a_whole_file_refused_with_503_is_sent_again_to_the_same_url_after_retry_after(
    server: Server, folder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits: List[float] = []
    monkeypatch.setattr("cabinet_client._sync.time.sleep", waits.append)
    refusing = UnavailableOnce(retry_after="2")
    data = os.urandom(300_000)
    with Cabinet(server.url, server.key, transport=refusing) as cabinet:
        file = cabinet.upload(data, name="retried.bin", folder=folder)
    assert (refusing.refused, refusing.sent) == (1, 2), "refused once, then sent again"
    assert waits == [2.0], "it waited as long as Retry-After said"
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


class UnreachableOnce(httpx.HTTPTransport):
    """Fails the first ``failures`` PUTs of a whole file as if the network went down (they never
    reach the server)."""

    def __init__(self, failures: int = 1) -> None:
        super().__init__()
        self.failures = failures
        self.sent = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PUT" and not request.url.path.startswith("/v1/"):
            self.sent += 1
            if self.sent <= self.failures:
                raise httpx.ConnectError("simulated network failure", request=request)
        return super().handle_request(request)


def test_a_whole_file_whose_put_failed_on_the_network_is_sent_again_while_its_upload_waits(
    server: Server, folder: str
) -> None:
    unreachable = UnreachableOnce()
    data = os.urandom(100_000)
    with Cabinet(server.url, server.key, transport=unreachable, part_retries=(0.0,)) as cabinet:
        file = cabinet.upload(data, name="lost-once.bin", folder=folder)
    assert unreachable.sent == 2, "asked, the upload still waited: sent again"
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_whole_file_given_up_on_after_network_failures_is_not_cancelled(server: Server, folder: str) -> None:
    # Its bytes may have landed with the answer lost (on S3 the server then finishes the upload
    # itself), so the upload is left waiting, holding its reservation until it finishes or expires.
    unreachable = UnreachableOnce(failures=2)
    data = os.urandom(100_000)
    with Cabinet(server.url, server.key, transport=unreachable, part_retries=(0.0,)) as cabinet:
        reserved = cabinet.quota()["reserved_bytes"]
        with pytest.raises(Unavailable) as refused:
            cabinet.upload(data, name="lost-twice.bin", folder=folder)
        assert refused.value.code == "connection_failed"
        assert unreachable.sent == 2, "sent again once, as part_retries allows"
        assert cabinet.quota()["reserved_bytes"] == reserved + len(data), "the upload still holds its bytes"


def test_starting_over_cancels_the_remembered_upload(server: Server, folder: str, tmp_path: Path) -> None:
    path, _ = big_file(tmp_path)
    failing = CountingTransport(fail_after=1)
    with Cabinet(server.url, server.key, state_dir=tmp_path / "state", transport=failing, part_retries=()) as cabinet:
        with pytest.raises(Unavailable) as interrupted:
            cabinet.upload(path, folder=folder, part_size=PART, multipart_threshold=PART, concurrency=1)
    old = interrupted.value.upload_id  # type: ignore[attr-defined]
    counting = CountingTransport()
    with Cabinet(server.url, server.key, state_dir=tmp_path / "state", transport=counting) as cabinet:
        cabinet.upload(path, folder=folder, part_size=PART, multipart_threshold=PART, resume=False)
        assert cabinet.uploads.get(old)["status"] == "FAILED", "its reservation is released"
    assert counting.part_puts == 3


def test_progress_callback_can_stop_an_upload_which_resumes(server: Server, folder: str, tmp_path: Path) -> None:
    path, data = big_file(tmp_path)

    class Stop(Exception):
        pass

    def stop_at_first_part(sent: int, total: int) -> None:
        if sent > 0:
            raise Stop()

    with Cabinet(server.url, server.key, state_dir=tmp_path / "state") as cabinet:
        with pytest.raises(Stop) as stopped:
            cabinet.upload(
                path, folder=folder, part_size=PART, multipart_threshold=PART, concurrency=1, on_progress=stop_at_first_part
            )
        had = {p["part_number"] for p in cabinet.uploads.parts(stopped.value.upload_id)["parts"]}  # type: ignore[attr-defined]
    # Stopped after the first part: the one being sent then may finish, the last was never started.
    assert 1 in had and 3 not in had

    counting = CountingTransport()
    with Cabinet(server.url, server.key, state_dir=tmp_path / "state", transport=counting) as cabinet:
        file = cabinet.upload(path, folder=folder, part_size=PART, multipart_threshold=PART, concurrency=3)
    assert counting.part_puts == 3 - len(had)
    assert file["sha256"] == hashlib.sha256(data).hexdigest()


def test_resume_by_upload_id_without_a_state_file(server: Server, folder: str, tmp_path: Path) -> None:
    data = os.urandom(SIZE)
    failing = CountingTransport(fail_after=2)
    with Cabinet(server.url, server.key, state_dir=tmp_path / "a", transport=failing, part_retries=()) as cabinet:
        with pytest.raises(Unavailable) as interrupted:
            cabinet.upload(io.BytesIO(data), name="stream.bin", folder=folder, sha256=False,
                           part_size=PART, multipart_threshold=PART, concurrency=1)
    upload_id = interrupted.value.upload_id  # type: ignore[attr-defined]
    counting = CountingTransport()
    with Cabinet(server.url, server.key, state_dir=tmp_path / "b", transport=counting) as cabinet:
        file = cabinet.upload(io.BytesIO(data), name="stream.bin", folder=folder, upload_id=upload_id, part_size=PART)
    assert counting.part_puts == 1
    assert file["sha256"] == hashlib.sha256(data).hexdigest(), "checked against the local SHA-256"


def test_stored_checksum_is_checked_against_the_local_one(cabinet: Cabinet, folder: str) -> None:
    file = cabinet.upload(b"verified", name="v.txt", folder=folder)
    upload = {"id": "upl_x", "status": "SUCCESS", "file": file}
    with pytest.raises(IntegrityError) as wrong:
        verified_file(upload, "0" * 64)  # type: ignore[arg-type]
    assert wrong.value.code == "checksum_mismatch"
    assert isinstance(wrong.value, CabinetError)


def test_download_round_trip(cabinet: Cabinet, folder: str, tmp_path: Path) -> None:
    data = os.urandom(3 * MiB + 7)
    file = cabinet.upload(data, name="round.bin", folder=folder)
    target = tmp_path / "out.bin"
    got = cabinet.files.download(file["id"], target)
    assert target.read_bytes() == data
    assert got["id"] == file["id"]
    buffer = io.BytesIO()
    cabinet.files.download(file["id"], buffer)
    assert buffer.getvalue() == data
    # The signed URL needs no key.
    url = cabinet.files.download_url(file["id"])["url"]
    assert httpx.get(url).content == data


def test_file_and_folder_operations(cabinet: Cabinet, folder: str) -> None:
    file = cabinet.upload(b"draft", name="draft.txt", folder=folder)
    other = cabinet.folders.create("other", parent=folder)
    changed = cabinet.files.update(file["id"], name="final.txt", folder=other["id"], tags=["Red", "big"], caption="hi")
    assert changed["name"] == "final.txt" and changed["folder_id"] == other["id"]
    assert sorted(changed["tags"]) == ["Red", "big"] and changed["caption"] == "hi"
    assert cabinet.files.update(file["id"], caption=None)["caption"] is None
    assert cabinet.files.favorite(file["id"]) is True
    assert cabinet.files.favorite(file["id"], on=False) is False
    assert cabinet.folders.favorite(other["id"]) is True

    trashed = cabinet.files.delete(file["id"])
    assert trashed["trashed_at"] is not None
    assert file["id"] in {item["id"] for item in cabinet.trash.list()}
    restored = cabinet.files.restore(file["id"])
    assert restored["file"]["trashed_at"] is None

    assert cabinet.folders.update(other["id"], name="renamed")["name"] == "renamed"
    assert cabinet.folders.delete(other["id"], recursive=True)["trashed_at"] is not None
    assert cabinet.folders.restore(other["id"])["folder"]["trashed_at"] is None
    quota = cabinet.quota()
    assert quota["used_bytes"] >= 5 and quota["max_file_size_bytes"] > 0


def test_folder_paths_resolve_like_ids(cabinet: Cabinet, folder: str) -> None:
    name = cabinet.folders.get(folder)["name"]
    sub = cabinet.folders.create("Sub", parent=f"/{name}")
    assert cabinet.resolve_folder(f"/{name}/sub") == sub["id"]
    assert cabinet.resolve_folder(f"/{name}/sub/new", create=True) == cabinet.folders.get(f"/{name}/Sub/New")["id"]
    assert cabinet.resolve_folder("/") is None
    file = cabinet.upload(b"here", name="here.txt", folder=f"/{name}/Sub")
    assert [f["id"] for f in cabinet.files.list(folder=f"/{name}/sub")] == [file["id"]]
