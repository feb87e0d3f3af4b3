// The web console's copy of the SDK: crates/api/console/cabinet-client.js, one ES module with no
// imports (the console has no bundler, and its policy loads scripts from its own origin only),
// made from tsc's dist/ (`npm run build` first; `npm run build:console` does both): errors.js and
// index.js joined, index.js's imports of errors.js dropped (schema.js holds only types, which tsc
// erases). The result must export exactly what dist/index.js exports; it is checked here.
//   node scripts/bundle-console.mjs           write it
//   node scripts/bundle-console.mjs --check   fail if the committed file differs (dev/test-typescript-sdk)
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const dist = join(root, "dist");
const target = join(root, "..", "..", "crates", "api", "console", "cabinet-client.js");
const shown = relative(process.cwd(), target) || target;
const check = process.argv.includes("--check");

function fail(message) {
  console.error(`bundle-console: ${message}`);
  process.exit(1);
}

function read(name) {
  const path = join(dist, name);
  if (!existsSync(path)) fail(`no ${path}: run \`npm run build\` first (or \`npm run build:console\`)`);
  return readFileSync(path, "utf8").replace(/^\/\/# sourceMappingURL=.*$/m, "").trim();
}

/** Removes `pattern` from `text`, which must hold it exactly once. */
function cut(text, pattern, what) {
  const found = text.match(new RegExp(pattern.source, pattern.flags.includes("g") ? pattern.flags : `${pattern.flags}g`));
  if (!found || found.length !== 1) fail(`expected one ${what} in dist/index.js, found ${found ? found.length : 0}`);
  return text.replace(pattern, "");
}

// An import, or a re-export from another module, at the start of a line.
const importing = /^\s*import\b.*|^\s*export\s*(\*|\{[^}]*\})\s*from\b.*/m;
const errors = read("errors.js");
let index = read("index.js");
if (importing.test(errors)) fail(`dist/errors.js imports: ${errors.match(importing)[0]} (teach this script about it)`);
index = cut(index, /^import\s*\{[^}]*\}\s*from\s*"\.\/errors\.js";\n/m, 'import { … } from "./errors.js"');
index = cut(index, /^export \* from "\.\/errors\.js";\n/m, 'export * from "./errors.js"');
// errors.js's classes are exported where they are declared: not a second time.
index = cut(index, /^export \{ CabinetError \};\n?/m, "export { CabinetError }");
const left = index.match(importing);
if (left) fail(`dist/index.js still imports: ${left[0]} (teach this script about it)`);

const bundle = `// Cabinet's TypeScript SDK (clients/typescript) as one ES module, for the web console (which has
// no bundler and may load scripts from its own origin only). GENERATED from clients/typescript/src
// by \`npm run build:console\` there (tsc, then scripts/bundle-console.mjs): do not edit it; run
// that and commit the result. dev/test-typescript-sdk fails when this file is stale.

// ---- errors.ts
${errors}

// ---- index.ts
${index.trim()}
`;

// The bundle must be a module that loads, exporting what the package exports.
const asModule = (text) => `data:text/javascript;base64,${Buffer.from(text).toString("base64")}`;
const bundled = Object.keys(await import(asModule(bundle))).sort();
const packaged = Object.keys(await import(pathToFileURL(join(dist, "index.js")).href)).sort();
if (JSON.stringify(bundled) !== JSON.stringify(packaged)) {
  fail(`the bundle exports ${bundled.join(", ")}; dist/index.js exports ${packaged.join(", ")}`);
}

if (check) {
  const committed = existsSync(target) ? readFileSync(target, "utf8") : "";
  if (committed !== bundle) {
    fail(`${shown} is stale (it is not what clients/typescript/src builds to): run \`npm run build:console\` in clients/typescript and commit it`);
  }
  console.log(`${shown} is up to date`);
} else {
  writeFileSync(target, bundle);
  console.log(`wrote ${shown} (${bundle.length} bytes)`);
}
