// Starts a real `cabinet serve` for the tests and mints workspaces and keys with `cabinet admin`.
//   CABINET_BIN             the binary (default: ../../target/debug/cabinet from the clone)
//   CABINET_TEST_STORAGE    a --storage for the blobs (e.g. an s3:// URL; AWS_* from the env)
import { spawn, execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const bin = process.env.CABINET_BIN || join(process.env.CARGO_TARGET_DIR || join(root, "target"), "debug", "cabinet");
export const storage = process.env.CABINET_TEST_STORAGE || "";

export async function startServer(extraArgs = []) {
  if (!existsSync(bin)) throw new Error(`no cabinet binary at ${bin} (set CABINET_BIN)`);
  const dataDir = mkdtempSync(join(tmpdir(), "cabinet-ts-sdk-"));
  const readyFile = join(dataDir, "ready.json");
  const common = ["--data-dir", join(dataDir, "data")];
  if (storage) common.push("--storage", storage);
  const args = ["serve", ...common, "--listen", "127.0.0.1:0", "--ready-file", readyFile, ...extraArgs];
  const child = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk) => {
    stderr = (stderr + chunk).slice(-20000);
  });
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });
  const deadline = Date.now() + 60_000;
  while (!existsSync(readyFile)) {
    if (exited) throw new Error(`cabinet serve exited before it was ready:\n${stderr}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`cabinet serve was not ready within 60 s:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const ready = JSON.parse(readFileSync(readyFile, "utf8"));
  const admin = (...adminArgs) =>
    JSON.parse(execFileSync(bin, ["admin", ...adminArgs, ...common, "--json"], { encoding: "utf8" }));
  return {
    url: ready.url,
    key: ready.key,
    workspace: ready.workspace,
    /** A new workspace (admin create-workspace options) and a key on it (role). */
    tenant(name, workspaceArgs = [], role = "write") {
      const ws = admin("create-workspace", "--name", name, ...workspaceArgs);
      const key = admin("create-key", "--workspace", ws.id, "--role", role);
      return { workspace: ws.id, key: key.key };
    },
    keyFor(workspace, role) {
      return admin("create-key", "--workspace", workspace, "--role", role).key;
    },
    async stop() {
      if (!exited) {
        child.kill("SIGTERM");
        await new Promise((r) => (exited ? r() : child.once("exit", r)));
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
