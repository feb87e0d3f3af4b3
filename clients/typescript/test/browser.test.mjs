// The SDK's dist/ loaded as an ES module in headless chromium (playwright-core), from another
// origin than the API (so through CORS), against a real `cabinet serve`: small and multipart
// uploads from a Blob, an aborted multipart upload resumed, the list iterator, a typed error.
//   CABINET_BROWSER_MODULES   a node_modules holding playwright-core (dev/test-typescript-sdk
//                             installs dev/browser's pinned one); unset: skipped, unless
//   CABINET_REQUIRE_BROWSER=1 which makes it fail instead.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, storage } from "./server.mjs";

const modules = process.env.CABINET_BROWSER_MODULES;
const required = process.env.CABINET_REQUIRE_BROWSER === "1";
const chromiumPath = process.env.CABINET_CHROMIUM || "/usr/bin/chromium";
const available = Boolean(modules) && existsSync(join(modules, "playwright-core")) && existsSync(chromiumPath);
if (required && !available) {
  throw new Error(`CABINET_REQUIRE_BROWSER=1 but playwright-core (CABINET_BROWSER_MODULES=${modules}) or ${chromiumPath} is missing`);
}

const packageRoot = join(dirname(fileURLToPath(import.meta.url)), "..");

describe("the SDK in a browser (headless chromium)", { skip: available ? false : "no playwright-core/chromium" }, () => {
  let server;
  let pageServer;
  let context;
  let page;
  const problems = [];

  before(async () => {
    server = await startServer();
    // dist/ from its own origin: every API call is cross-origin.
    pageServer = createServer((request, response) => {
      const path = new URL(request.url, "http://x").pathname;
      if (path === "/") {
        response.writeHead(200, { "content-type": "text/html" });
        response.end("<!doctype html><title>sdk</title>");
        return;
      }
      const file = normalize(join(packageRoot, path));
      if (!file.startsWith(join(packageRoot, "dist")) || !existsSync(file)) {
        response.writeHead(404).end();
        return;
      }
      response.writeHead(200, { "content-type": file.endsWith(".js") ? "text/javascript" : "application/json" });
      response.end(readFileSync(file));
    });
    await new Promise((resolve) => pageServer.listen(0, "127.0.0.1", resolve));
    const { chromium } = createRequire(join(modules, "x.js"))("playwright-core");
    context = await chromium.launchPersistentContext("", {
      executablePath: chromiumPath,
      headless: true,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        // s3s-fs sends no CORS headers (a real bucket has a CORS rule).
        ...(storage ? ["--disable-web-security"] : []),
      ],
    });
    page = context.pages()[0] || (await context.newPage());
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`http://127.0.0.1:${pageServer.address().port}/`);
  });

  after(async () => {
    await context?.close();
    pageServer?.close();
    await server?.stop();
  });

  test("uploads, resumes, lists and fails typed, from the page", async () => {
    const result = await page.evaluate(
      async ({ url, key }) => {
        const sdk = await import("/dist/index.js");
        const cabinet = new sdk.Cabinet({ baseUrl: url, apiKey: key });
        const out = {};
        const small = new File([new TextEncoder().encode("from the browser\n")], "browser.txt", { type: "text/plain" });
        const file = await cabinet.upload(small);
        out.small = { name: file.name, size: file.size, sha256: file.sha256, expected: await sdk.sha256Hex(small) };
        out.downloaded = await (await cabinet.files.download(file.id)).text();

        const MiB = 1024 * 1024;
        const bytes = new Uint8Array(11 * MiB + 7);
        for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096) & 0xff;
        const big = new Blob([bytes]);
        const controller = new AbortController();
        let interrupted;
        try {
          await cabinet.upload(big, {
            name: "browser-big.bin",
            partSize: 5 * MiB,
            multipartThreshold: 5 * MiB,
            concurrency: 1,
            signal: controller.signal,
            onProgress: (p) => p.partsDone === 1 && controller.abort(),
          });
        } catch (error) {
          interrupted = error;
        }
        out.interrupted = interrupted instanceof sdk.UploadInterruptedError;
        out.partsBefore = (await cabinet.uploads.parts(interrupted.uploadId)).parts.map((p) => p.part_number);
        let sent = 0;
        const resumed = await cabinet.upload(big, { resumeUploadId: interrupted.uploadId, onProgress: (p) => (sent = p.sent) });
        out.big = { size: resumed.size, sha256: resumed.sha256, expected: await sdk.sha256Hex(big), sent, total: big.size };

        out.listed = (await cabinet.files.list({ limit: 1 }).toArray()).length;
        const error = await cabinet.files.get("file_00000000000000000000000000").catch((e) => e);
        out.error = { notFound: error instanceof sdk.NotFoundError, code: error.code, status: error.status };
        return out;
      },
      { url: server.url, key: server.key },
    );
    assert.deepEqual(problems, []);
    assert.equal(result.small.name, "browser.txt");
    assert.equal(result.small.sha256, result.small.expected);
    assert.equal(result.downloaded, "from the browser\n");
    assert.equal(result.interrupted, true);
    assert.deepEqual(result.partsBefore, [1]);
    assert.equal(result.big.sha256, result.big.expected);
    assert.equal(result.big.size, result.big.total);
    assert.equal(result.big.sent, result.big.total - 5 * 1024 * 1024, "only the missing parts were sent");
    assert.equal(result.listed, 2);
    assert.deepEqual(result.error, { notFound: true, code: "not_found", status: 404 });
  });
});
