"""tuspy (the tus project's Python client) against the real `cabinet serve`: uploads of 0 B, 1 B,
100 MiB and (TUS_LARGE=1) 5 GiB, each interrupted several times and resumed, the bytes checked
by downloading the file from /v1/files and hashing it.

Two kinds of interruption: the uploader is stopped at an offset (`upload(stop_at=...)`) and a new
uploader resumes from the URL (it asks the server for the offset with HEAD); and a relay between
client and server cuts connections in the middle of a request body, after which a new uploader
resumes from whatever the server kept.

  CABINET_BIN          the binary
  TUS_STORAGE          local (default) or s3 (CABINET_TEST_S3_URL and the AWS variables)
  TUS_LARGE            1: also the 5 GiB upload (a sparse file with marked regions)
  TUS_LARGE_BYTES      its size (default 5 GiB)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

MiB = 1024 * 1024
GiB = 1024 * MiB


class Relay:
    """Forwards TCP connections to the server; `cut_after(n)` makes the next connection that
    carries a request body close after n bytes from the client."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.target = ("127.0.0.1", 0)
        self.cuts: list[int] = []
        self.cut_count = 0
        self.lock = threading.Lock()
        threading.Thread(target=self.accept, daemon=True).start()

    def cut_after(self, *sizes: int) -> None:
        with self.lock:
            self.cuts.extend(sizes)

    def accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self.serve, args=(client,), daemon=True).start()

    def serve(self, client: socket.socket) -> None:
        server = socket.create_connection(self.target)
        done = threading.Event()

        def back() -> None:
            try:
                while chunk := server.recv(256 * 1024):
                    client.sendall(chunk)
            except OSError:
                pass
            finally:
                done.set()
                close(client)

        threading.Thread(target=back, daemon=True).start()
        forwarded, limit, cut = 0, None, False
        try:
            while chunk := client.recv(256 * 1024):
                if limit is None and b"PATCH " in chunk[:16]:
                    with self.lock:
                        limit = self.cuts.pop(0) if self.cuts else -1
                if limit is not None and limit >= 0 and forwarded + len(chunk) > limit:
                    server.sendall(chunk[: max(0, limit - forwarded)])
                    with self.lock:
                        self.cut_count += 1
                    cut = True
                    break
                server.sendall(chunk)
                forwarded += len(chunk)
        except OSError:
            pass
        if limit is not None and limit >= 0 and not cut:
            # The request ended before its cut point (the server answered it early, e.g. 423 while
            # the request cut before it was still being wound up): the next PATCH takes the cut.
            with self.lock:
                self.cuts.insert(0, limit)
        close(server)
        close(client)


def close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


def start_server(storage: str, relay: Relay) -> tuple[subprocess.Popen[bytes], dict, Path]:
    data = Path(tempfile.mkdtemp(prefix="cabinet-tus-"))
    env = dict(os.environ)
    for name in ("CABINET_DATA_DIR", "CABINET_DATABASE_URL", "CABINET_CONFIG", "CABINET_STORAGE"):
        env.pop(name, None)
    if storage == "s3":
        env["CABINET_STORAGE"] = os.environ["CABINET_TEST_S3_URL"]
    ready = data / "ready.json"
    log = open(data / "server.log", "wb")
    process = subprocess.Popen(
        [os.environ["CABINET_BIN"], "serve", "--data-dir", str(data / "data"), "--listen", "127.0.0.1:0",
         "--public-url", f"http://127.0.0.1:{relay.port}", "--ready-file", str(ready)],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            sys.exit(f"cabinet serve did not start:\n{(data / 'server.log').read_text()}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    host, port = info["url"].removeprefix("http://").rsplit(":", 1)
    relay.target = (host, int(port))
    return process, info, data


def make_file(folder: Path, size: int) -> Path:
    """`size` bytes; above 1 GiB a sparse file whose marked regions (start, middle, end) make any
    misplaced or missing region change its hash."""
    path = folder / f"source-{size}.bin"
    with open(path, "wb") as out:
        if size <= GiB:
            block = hashlib.sha256(str(size).encode()).digest() * 32768  # 1 MiB of pattern
            left = size
            while left:
                take = min(left, len(block))
                out.write(block[:take])
                left -= take
        else:
            out.truncate(size)
            for position in (0, size // 3, size // 2, size - MiB):
                out.seek(position)
                out.write(os.urandom(MiB))
    return path


def sha256_of(stream) -> str:
    digest = hashlib.sha256()
    for chunk in stream:
        digest.update(chunk)
    return digest.hexdigest()


def file_chunks(path: Path):
    with open(path, "rb") as source:
        while chunk := source.read(8 * MiB):
            yield chunk


def cuts_for(size: int) -> list[int]:
    """Where the relay cuts the requests of an upload of `size` bytes (counted from the start of
    the request, headers included): inside the headers for a 1-byte file, inside bodies else."""
    if size == 0:
        return []
    if size == 1:
        return [60, 60]
    return [300_000, 1_000, 2 * MiB]


def upload_interrupted(tus, relay: Relay, path: Path, size: int, name: str) -> str:
    """Uploads `path`, stopping the uploader at several offsets and cutting connections in the
    middle of requests; returns the upload's URL."""
    chunk = 8 * MiB if size <= GiB else 64 * MiB
    uploader = tus.uploader(str(path), chunk_size=chunk, metadata={"filename": name, "filetype": "application/octet-stream"})
    url = None
    if size == 0:
        uploader.upload()
        return uploader.url
    # Stop at three offsets inside the file (each a fresh uploader resuming with HEAD).
    stops = sorted({max(1, size * k // 4) for k in (1, 2, 3)} - {size})
    for stop in stops:
        uploader.upload(stop_at=stop)
        url = uploader.url
        uploader = tus.uploader(str(path), url=url, chunk_size=chunk)
        assert uploader.offset == stop, (uploader.offset, stop)
    # Cut the next requests mid-body, then resume from what the server kept.
    relay.cut_after(*cuts_for(size))
    attempts = 0
    while True:
        try:
            uploader.upload()
            break
        except (TusCommunicationError, requests.exceptions.RequestException) as err:
            attempts += 1
            assert attempts < 20, f"too many failures: {err}"
            time.sleep(0.2)
            for _ in range(100):
                try:
                    uploader = tus.uploader(str(path), url=uploader.url, chunk_size=chunk)
                    break
                except TusCommunicationError:
                    time.sleep(0.1)
            else:
                raise
    return uploader.url


def run(storage: str, sizes: list[int]) -> None:
    relay = Relay()
    process, info, data = start_server(storage, relay)
    work = Path(tempfile.mkdtemp(prefix="tus-files-"))
    try:
        base = f"http://127.0.0.1:{relay.port}"
        headers = {"Authorization": f"Bearer {info['key']}"}
        tus = tus_client.TusClient(f"{base}/tus/v1/", headers=headers)
        for size in sizes:
            path = make_file(work, size)
            name = f"tuspy-{size}.bin"
            started = time.monotonic()
            url = upload_interrupted(tus, relay, path, size, name)
            expected = sha256_of(file_chunks(path))
            path.unlink()
            head = requests.head(url, headers={**headers, "Tus-Resumable": "1.0.0"})
            assert head.status_code == 200 and int(head.headers["Upload-Offset"]) == size, head.headers
            files = requests.get(f"{info['url']}/v1/files?limit=100", headers=headers).json()["data"]
            [file] = [f for f in files if f["name"] == name]
            assert file["size"] == size and file["sha256"] == expected, (file, expected)
            download = requests.get(f"{info['url']}/v1/files/{file['id']}/content", headers=headers, stream=True)
            assert download.status_code == 200, download.text
            assert sha256_of(download.iter_content(8 * MiB)) == expected, "the downloaded bytes differ"
            requests.delete(f"{info['url']}/v1/files/{file['id']}?permanent=true", headers=headers)
            print(f"   tuspy, {storage}: {size} bytes, interrupted and resumed, verified "
                  f"({time.monotonic() - started:.1f} s)", flush=True)
        wanted = sum(len(cuts_for(size)) for size in sizes)
        assert relay.cut_count == wanted, f"{relay.cut_count} connections cut, {wanted} planned"
    finally:
        process.terminate()
        process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    storage = os.environ.get("TUS_STORAGE", "local")
    sizes = [0, 1, 100 * MiB]
    if os.environ.get("TUS_LARGE") == "1":
        sizes.append(int(os.environ.get("TUS_LARGE_BYTES", 5 * GiB)))
    run(storage, sizes)
