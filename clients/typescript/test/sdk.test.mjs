// The TypeScript SDK (compiled dist/) against a real `cabinet serve` (see server.mjs).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  Cabinet,
  CabinetError,
  ConflictError,
  ForbiddenError,
  InvalidRequestError,
  NotFoundError,
  QuotaExceededError,
  RateLimitedError,
  ServerError,
  TooLargeError,
  UnauthorizedError,
  UploadInterruptedError,
  sha256Hex,
} from "../dist/index.js";
import { startServer, storage } from "./server.mjs";

const MiB = 1024 * 1024;
const hex = (bytes) => createHash("sha256").update(bytes).digest("hex");
const label = storage ? `storage ${storage.split("?")[0]}` : "local storage";

describe(`Cabinet TypeScript SDK (${label})`, () => {
  let server;
  let cabinet;

  before(async () => {
    server = await startServer();
    cabinet = new Cabinet({ baseUrl: server.url, apiKey: server.key });
  });
  after(async () => {
    await server?.stop();
  });

  test("src/schema.d.ts is what openapi-typescript generates from this server's /openapi.json", async () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), "..");
    const document = await (await fetch(`${server.url}/openapi.json`)).text();
    const work = mkdtempSync(join(tmpdir(), "cabinet-ts-schema-"));
    try {
      writeFileSync(join(work, "openapi.json"), document);
      execFileSync(join(root, "node_modules", ".bin", "openapi-typescript"), [join(work, "openapi.json"), "--output", join(work, "schema.d.ts")], {
        stdio: "ignore",
      });
      const fresh = readFileSync(join(work, "schema.d.ts"), "utf8");
      const committed = readFileSync(join(root, "src", "schema.d.ts"), "utf8");
      assert.ok(fresh === committed, "src/schema.d.ts is stale: run `npm run generate -- <server or openapi.json>` in clients/typescript");
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });

  test("a small upload: one PUT, sha256 declared and verified, downloaded back", async () => {
    const bytes = randomBytes(100_000);
    const progress = [];
    const file = await cabinet.upload(bytes, { name: "small.bin", onProgress: (p) => progress.push(p) });
    assert.equal(file.name, "small.bin");
    assert.equal(file.size, bytes.length);
    assert.equal(file.sha256, hex(bytes));
    assert.equal(await sha256Hex(bytes), hex(bytes));
    assert.equal(progress.at(-1).loaded, bytes.length);
    const response = await cabinet.files.download(file.id);
    assert.deepEqual(Buffer.from(await response.arrayBuffer()), bytes);
    assert.equal((await cabinet.files.get(file.id)).sha256, hex(bytes));
  });

  test("a File keeps its own name and goes into a folder", async () => {
    const folder = await cabinet.folders.create(`docs-${Date.now()}`);
    const file = await cabinet.upload(new File(["hello, folder\n"], "note.txt", { type: "text/plain" }), {
      folder: folder.id,
    });
    assert.equal(file.name, "note.txt");
    assert.equal(file.folder_id, folder.id);
    assert.equal((await cabinet.folders.get(folder.id)).id, folder.id);
    const inFolder = await cabinet.files.list({ folder_id: folder.id }).toArray();
    assert.deepEqual(inFolder.map((f) => f.id), [file.id]);
  });

  test("an empty file", async () => {
    const file = await cabinet.upload(new Uint8Array(0), { name: "empty.bin" });
    assert.equal(file.size, 0);
    assert.equal(file.sha256, hex(Buffer.alloc(0)));
  });

  test("a ReadableStream source is read to its end and uploaded", async () => {
    const bytes = randomBytes(4096);
    const stream = new Blob([bytes]).stream();
    const file = await cabinet.upload(stream, { name: "stream.bin" });
    assert.equal(file.sha256, hex(bytes));
  });

  test("multipart: interrupted by the signal after 2 parts, resumed sending only the missing parts", async () => {
    const partSize = 5 * MiB;
    const bytes = randomBytes(5 * partSize + 12345); // 6 parts
    const controller = new AbortController();
    let interrupted;
    try {
      await cabinet.upload(bytes, {
        name: "big.bin",
        partSize,
        multipartThreshold: partSize,
        concurrency: 1,
        signal: controller.signal,
        onProgress: (p) => {
          if (p.partsDone === 2) controller.abort();
        },
      });
      assert.fail("the upload should have been interrupted");
    } catch (error) {
      interrupted = error;
    }
    assert.ok(interrupted instanceof UploadInterruptedError, String(interrupted));
    assert.equal(interrupted.resumable, true);
    assert.match(interrupted.uploadId, /^upl_/);
    assert.match(interrupted.message, new RegExp(interrupted.uploadId));

    const before = await cabinet.uploads.parts(interrupted.uploadId);
    assert.equal(before.part_count, 6);
    assert.deepEqual(before.parts.map((p) => p.part_number).sort(), [1, 2]);
    assert.equal((await cabinet.uploads.get(interrupted.uploadId)).status, "WAITING");

    const progress = [];
    const file = await cabinet.upload(bytes, {
      resumeUploadId: interrupted.uploadId,
      concurrency: 3,
      onProgress: (p) => progress.push(p),
    });
    assert.equal(progress[0].loaded, 2 * partSize, "the resume starts from the parts the server holds");
    assert.equal(progress.at(-1).sent, bytes.length - 2 * partSize, "only the missing parts were sent");
    assert.equal(progress.at(-1).loaded, bytes.length);
    assert.equal(file.size, bytes.length);
    assert.equal(file.sha256, hex(bytes));
    const downloaded = Buffer.from(await (await cabinet.files.download(file.id)).arrayBuffer());
    assert.equal(hex(downloaded), hex(bytes));

    // Resuming a finished upload returns its file without sending anything.
    const again = await cabinet.upload(bytes, { resumeUploadId: interrupted.uploadId });
    assert.equal(again.id, file.id);
  });

  test("multipart above the default threshold (16 MiB), parallel parts", async () => {
    const bytes = randomBytes(17 * MiB);
    const file = await cabinet.upload(new Blob([bytes]), { name: "default-threshold.bin", partSize: 5 * MiB });
    assert.equal(file.size, bytes.length);
    assert.equal(file.sha256, hex(bytes));
  });

  test("an aborted single PUT is cancelled and says so", async () => {
    const controller = new AbortController();
    const quotaBefore = await cabinet.quota();
    const promise = cabinet.upload(randomBytes(4 * MiB), {
      name: "aborted.bin",
      signal: controller.signal,
      onProgress: (p) => {
        if (p.loaded === 0) controller.abort();
      },
    });
    const error = await promise.then(
      () => assert.fail("should have been aborted"),
      (e) => e,
    );
    assert.ok(error instanceof UploadInterruptedError, String(error));
    assert.equal(error.resumable, false);
    const upload = await cabinet.uploads.get(error.uploadId);
    assert.notEqual(upload.status, "SUCCESS");
    assert.equal((await cabinet.quota()).reserved_bytes, quotaBefore.reserved_bytes);
  });

  describe("lists and search follow the cursor", () => {
    const prefix = `page-${Date.now()}`;
    const ids = [];
    before(async () => {
      const folder = await cabinet.folders.create(prefix);
      for (let i = 0; i < 7; i++) {
        const file = await cabinet.upload(new TextEncoder().encode(`file ${i}`), {
          name: `${prefix}-${i}.txt`,
          folder: folder.id,
        });
        ids.push(file.id);
      }
      for (let i = 0; i < 5; i++) await cabinet.folders.create(`${prefix}-sub-${i}`, { parentId: folder.id });
    });

    test("files.list over several pages of 2", async () => {
      const pages = [];
      for await (const page of cabinet.files.list({ q: prefix, limit: 2 }).pages()) pages.push(page);
      assert.equal(pages.length, 4);
      const seen = pages.flatMap((p) => p.data.map((f) => f.id));
      assert.deepEqual([...seen].sort(), [...ids].sort());
      assert.equal(new Set(seen).size, 7);
      const iterated = [];
      for await (const file of cabinet.files.list({ q: prefix, limit: 3, sort: "name", order: "asc" })) iterated.push(file.name);
      assert.deepEqual(iterated, [...Array(7).keys()].map((i) => `${prefix}-${i}.txt`));
    });

    test("search over several pages", async () => {
      const items = await cabinet.search(prefix, { limit: 2 }).toArray();
      assert.equal(items.length, 7 + 5 + 1); // files, sub-folders and the folder itself
      assert.equal(items.filter((i) => i.type === "file").length, 7);
      assert.equal(items.filter((i) => i.type === "folder").length, 6);
      assert.equal((await cabinet.files.search(`${prefix}-3`, { limit: 1 }).toArray()).length, 1);
    });

    test("folders.list over several pages", async () => {
      const folders = await cabinet.folders.list({ q: `${prefix}-sub`, limit: 2 }).toArray();
      assert.equal(folders.length, 5);
    });

    test("update, favorite, delete to the trash, trash.list, restore, delete permanently", async () => {
      const id = ids[0];
      const updated = await cabinet.files.update(id, { tags: ["sdk"], caption: "from the SDK" });
      assert.deepEqual(updated.tags, ["sdk"]);
      assert.equal(updated.caption, "from the SDK");
      const favorite = await cabinet.files.favorite(id);
      assert.equal(favorite.is_favorite, true);
      assert.equal((await cabinet.files.get(id)).is_favorite, true);
      await cabinet.files.delete(id);
      const trashed = await cabinet.trash.list({ limit: 500 }).toArray();
      assert.ok(trashed.some((item) => item.id === id));
      const restored = await cabinet.files.restore(id);
      assert.equal(restored.file.id, id);
      const url = await cabinet.files.downloadUrl(id, { expiresIn: 60 });
      assert.match(url.url, /^https?:\/\//);
      await cabinet.files.delete(id, { permanent: true });
      await assert.rejects(cabinet.files.get(id), NotFoundError);
    });
  });

  describe("every error class, from the real server", () => {
    test("401 UnauthorizedError", async () => {
      const stranger = new Cabinet({ baseUrl: server.url, apiKey: "cab_not_a_real_key" });
      const error = await stranger.quota().catch((e) => e);
      assert.ok(error instanceof UnauthorizedError, String(error));
      assert.ok(error instanceof CabinetError);
      assert.equal(error.status, 401);
      assert.equal(error.code, "unauthenticated");
      assert.equal(error.body.error.code, "unauthenticated");
    });

    test("403 ForbiddenError (a read-only key uploading)", async () => {
      const reader = new Cabinet({ baseUrl: server.url, apiKey: server.keyFor(server.workspace, "read") });
      const error = await reader.upload(new Uint8Array(10), { name: "nope.bin" }).catch((e) => e);
      assert.ok(error instanceof ForbiddenError, String(error));
      assert.equal(error.status, 403);
    });

    test("404 NotFoundError", async () => {
      const error = await cabinet.files.get("file_00000000000000000000000000").catch((e) => e);
      assert.ok(error instanceof NotFoundError, String(error));
      assert.equal(error.code, "not_found");
    });

    test("409 ConflictError (a folder's name taken)", async () => {
      const name = `twice-${Date.now()}`;
      await cabinet.folders.create(name);
      const error = await cabinet.folders.create(name).catch((e) => e);
      assert.ok(error instanceof ConflictError, String(error));
      assert.equal(error.status, 409);
    });

    test("409 parts_missing on completing an unfinished multipart upload", async () => {
      const ticket = await cabinet.request("POST", "/v1/uploads", {
        body: { name: "unfinished.bin", size: 6 * MiB, multipart: true, part_size: 5 * MiB },
      });
      const error = await cabinet.uploads.complete(ticket.id).catch((e) => e);
      assert.ok(error instanceof ConflictError, String(error));
      assert.equal(error.code, "parts_missing");
      assert.deepEqual(error.missingParts, [1, 2]);
      await cabinet.uploads.cancel(ticket.id);
    });

    test("400 InvalidRequestError", async () => {
      const error = await cabinet.files.list({ limit: 0 }).toArray().catch((e) => e);
      assert.ok(error instanceof InvalidRequestError, String(error));
      assert.equal(error.status, 400);
      assert.ok(error.code);
    });

    test("507 QuotaExceededError (a 1000-byte workspace)", async () => {
      const tenant = server.tenant(`small-${Date.now()}`, ["--quota-bytes", "1000"]);
      const small = new Cabinet({ baseUrl: server.url, apiKey: tenant.key });
      const error = await small.upload(randomBytes(2000), { name: "too-much.bin" }).catch((e) => e);
      assert.ok(error instanceof QuotaExceededError, String(error));
      assert.equal(error.status, 507);
      assert.equal(error.code, "quota_exceeded");
    });

    test("413 TooLargeError (a workspace whose files are at most 100 bytes)", async () => {
      const tenant = server.tenant(`tiny-${Date.now()}`, ["--max-file-bytes", "100"]);
      const tiny = new Cabinet({ baseUrl: server.url, apiKey: tenant.key });
      const error = await tiny.upload(randomBytes(200), { name: "too-big.bin" }).catch((e) => e);
      assert.ok(error instanceof TooLargeError, String(error));
      assert.equal(error.status, 413);
    });

    test("ServerError when no server answers (network_error, status 0)", async () => {
      const gone = await startServer();
      const url = gone.url;
      await gone.stop();
      const error = await new Cabinet({ baseUrl: url, apiKey: "cab_x" }).quota().catch((e) => e);
      assert.ok(error instanceof ServerError, String(error));
      assert.equal(error.status, 0);
      assert.equal(error.code, "network_error");
    });

    test("429 RateLimitedError with retryAfter (a server allowing 5 requests a minute)", async () => {
      const limited = await startServer(["--rate-limit-per-minute", "5"]);
      try {
        const client = new Cabinet({ baseUrl: limited.url, apiKey: limited.key });
        let error;
        for (let i = 0; i < 20 && !error; i++) await client.quota().catch((e) => (error = e));
        assert.ok(error instanceof RateLimitedError, String(error));
        assert.equal(error.status, 429);
        assert.equal(error.code, "rate_limited");
        assert.ok(typeof error.retryAfter === "number" && error.retryAfter > 0, `retryAfter ${error.retryAfter}`);
      } finally {
        await limited.stop();
      }
    });

    test("a whole file refused with 503 is sent again to the same URL after Retry-After", async () => {
      // Answers the first PUT of the bytes 503 with Retry-After, in the server's error shape, as
      // the server does when its disk is full or its database stalls; that PUT never reaches it.
      const puts = [];
      const refusingOnce = async (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        if (init?.method === "PUT" && !url.pathname.startsWith("/v1/")) {
          puts.push(url.toString());
          if (puts.length === 1) {
            const body = JSON.stringify({ error: { code: "unavailable", message: "service unavailable" } });
            return new Response(body, { status: 503, headers: { "content-type": "application/json", "retry-after": "1" } });
          }
        }
        return fetch(input, init);
      };
      const client = new Cabinet({ baseUrl: server.url, apiKey: server.key, fetch: refusingOnce });
      const bytes = randomBytes(200_000);
      const started = Date.now();
      const file = await client.upload(new Blob([bytes]), { name: "refused-once.bin" });
      assert.equal(puts.length, 2, "refused once, then sent again");
      assert.equal(puts[1], puts[0], "to the same URL");
      assert.ok(Date.now() - started >= 950, "after the second Retry-After said, not the first backoff's 0.5 s");
      assert.equal(file.sha256, hex(bytes));
    });

    test("a whole file whose PUT failed on the network is sent again while its upload waits", async () => {
      let puts = 0;
      const unreachableOnce = async (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        if (init?.method === "PUT" && !url.pathname.startsWith("/v1/") && ++puts === 1) {
          throw new TypeError("fetch failed (simulated: the request never reached the server)");
        }
        return fetch(input, init);
      };
      const client = new Cabinet({ baseUrl: server.url, apiKey: server.key, fetch: unreachableOnce });
      const bytes = randomBytes(100_000);
      const file = await client.upload(new Blob([bytes]), { name: "lost-once.bin" });
      assert.equal(puts, 2, "asked, the upload still waited: sent again");
      assert.equal(file.sha256, hex(bytes));
    });

    test("a whole file refused with 503 past three tries: the error, and nothing left reserved", async () => {
      const tenant = server.tenant(`refused-${Date.now()}`);
      const refusing = async (input, init) => {
        const url = new URL(input instanceof Request ? input.url : String(input));
        if (init?.method === "PUT" && !url.pathname.startsWith("/v1/")) {
          const body = JSON.stringify({ error: { code: "unavailable", message: "service unavailable" } });
          return new Response(body, { status: 503, headers: { "content-type": "application/json", "retry-after": "0" } });
        }
        return fetch(input, init);
      };
      const client = new Cabinet({ baseUrl: server.url, apiKey: tenant.key, fetch: refusing });
      const error = await client.upload(new Blob([randomBytes(1000)]), { name: "refused.bin" }).catch((e) => e);
      assert.ok(error instanceof ServerError && error.status === 503 && error.retryAfter === 0, String(error));
      assert.equal((await client.quota()).reserved_bytes, 0, "the upload was cancelled, its reservation released");
    });
  });
});
