"""Starts the real `cabinet serve` for the tests, on the local folder or (CABINET_SDK_STORAGE=s3)
on the S3 server named by CABINET_TEST_S3_URL.

  CABINET_BIN          the binary (default: <repo>/target/debug/cabinet)
  CABINET_SDK_STORAGE  local (default) or s3
  CABINET_TEST_S3_URL  s3://bucket?endpoint=...&region=... (with AWS_ACCESS_KEY_ID/SECRET)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import httpx
import pytest

from cabinet_client import Cabinet

ROOT = Path(__file__).resolve().parents[3]
MiB = 1024 * 1024


def binary() -> str:
    return os.environ.get("CABINET_BIN") or str(ROOT / "target" / "debug" / "cabinet")


@dataclass
class Server:
    url: str
    key: str
    workspace: str
    data_dir: Path
    env: Dict[str, str]
    process: "subprocess.Popen[bytes]"
    storage: str
    log: Path
    extra: List[str] = field(default_factory=list)

    def admin(self, *args: str) -> Dict[str, object]:
        out = subprocess.run(
            [binary(), "admin", *args, "--data-dir", str(self.data_dir), "--json"],
            env=self.env,
            check=True,
            capture_output=True,
        )
        return json.loads(out.stdout)

    def workspace_key(self, role: str = "write", **limits: int) -> str:
        """A key of a new workspace (``quota_bytes``, ``max_file_bytes``), or of this one."""
        if limits:
            args = ["create-workspace", "--name", f"sdk-{uuid.uuid4().hex[:8]}"]
            for name, value in limits.items():
                args += [f"--{name.replace('_', '-')}", str(value)]
            workspace = str(self.admin(*args)["id"])
        else:
            workspace = self.workspace
        return str(self.admin("create-key", "--workspace", workspace, "--role", role)["key"])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_server(storage: str, *extra: str) -> Server:
    data_dir = Path(tempfile.mkdtemp(prefix="cabinet-sdk-"))
    ready = data_dir / "ready.json"
    env = dict(os.environ)
    # Only what the tests choose configures the server.
    for name in ("CABINET_DATA_DIR", "CABINET_DATABASE_URL", "CABINET_CONFIG", "CABINET_RATE_LIMIT_PER_MINUTE"):
        env.pop(name, None)
    if storage == "s3":
        env["CABINET_STORAGE"] = os.environ["CABINET_TEST_S3_URL"]
    else:
        env.pop("CABINET_STORAGE", None)
    log = data_dir / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [binary(), "serve", "--data-dir", str(data_dir / "data"), "--listen", "127.0.0.1:0",
             "--ready-file", str(ready), *extra],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 60
    while not ready.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"cabinet serve did not start:\n{log.read_text()}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    return Server(info["url"], info["key"], info["workspace"], data_dir / "data", env, process, storage, log)


def storage_kind() -> str:
    storage = os.environ.get("CABINET_SDK_STORAGE", "local")
    if storage == "s3" and not os.environ.get("CABINET_TEST_S3_URL"):
        if os.environ.get("CABINET_REQUIRE_S3") == "1":
            raise RuntimeError("CABINET_SDK_STORAGE=s3 and CABINET_REQUIRE_S3=1, but CABINET_TEST_S3_URL is not set")
        pytest.skip("no S3 server: CABINET_TEST_S3_URL is not set")
    return storage


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    running = start_server(storage_kind())
    yield running
    running.stop()


@pytest.fixture(scope="session")
def limited_server() -> Iterator[Server]:
    """A server that allows 3 requests a minute per key, for RateLimited."""
    running = start_server("local", "--rate-limit-per-minute", "3")
    yield running
    running.stop()


@pytest.fixture
def cabinet(server: Server, tmp_path: Path) -> Iterator[Cabinet]:
    with Cabinet(server.url, server.key, state_dir=tmp_path / "state") as client:
        yield client


@pytest.fixture
def folder(cabinet: Cabinet) -> str:
    """A fresh folder of its own for a test, so lists see only what it made."""
    return cabinet.folders.create(f"t-{uuid.uuid4().hex[:10]}")["id"]


class CountingTransport(httpx.HTTPTransport):
    """Counts PUTs of parts; after ``fail_after`` of them, every further part PUT fails as if the
    network went down (the request never reaches the server)."""

    def __init__(self, fail_after: Optional[int] = None, transient_failures: int = 0) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.transient_failures = transient_failures
        self.part_puts = 0
        self.failed = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        is_part = request.method == "PUT" and ("/parts/" in request.url.path or "partNumber=" in str(request.url.query))
        if is_part:
            with self._lock:
                if (self.fail_after is not None and self.part_puts >= self.fail_after) or self.transient_failures > 0:
                    self.failed += 1
                    self.transient_failures = max(0, self.transient_failures - 1)
                    raise httpx.ConnectError("simulated network failure", request=request)
                self.part_puts += 1
        return super().handle_request(request)


class AsyncCountingTransport(httpx.AsyncHTTPTransport):
    def __init__(self, fail_after: Optional[int] = None) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.part_puts = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        is_part = request.method == "PUT" and ("/parts/" in request.url.path or "partNumber=" in str(request.url.query))
        if is_part:
            if self.fail_after is not None and self.part_puts >= self.fail_after:
                raise httpx.ConnectError("simulated network failure", request=request)
            self.part_puts += 1
        return await super().handle_async_request(request)
