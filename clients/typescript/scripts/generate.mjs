// Regenerates src/schema.d.ts from Cabinet's native OpenAPI document with the pinned
// openapi-typescript (package.json's devDependencies).
//   npm run generate -- http://127.0.0.1:8080      (a running server: GET /openapi.json)
//   npm run generate -- path/to/openapi.json        (a saved document)
// Without an argument: $CABINET_OPENAPI, else http://127.0.0.1:8080.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
let input = process.argv[2] ?? process.env.CABINET_OPENAPI ?? "http://127.0.0.1:8080";
if (/^https?:\/\//.test(input)) {
  if (!input.endsWith(".json")) input = input.replace(/\/$/, "") + "/openapi.json";
} else {
  input = resolve(input);
  if (!existsSync(input)) {
    console.error(`no such file: ${input}`);
    process.exit(1);
  }
}
const bin = join(root, "node_modules", ".bin", "openapi-typescript");
execFileSync(bin, [input, "--output", join(root, "src", "schema.d.ts")], { stdio: "inherit", cwd: root });
