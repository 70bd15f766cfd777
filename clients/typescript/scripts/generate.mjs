// Regenerates the client from the server's OpenAPI document, or (--check) fails when the committed
// snapshot or the types generated from it are stale.
//
//   npm run generate          writes openapi.json and src/generated/schema.ts
//   npm run check-generated   exits 1 when either differs from what the server's code produces now
//
// The document comes from `admin-provisioner openapi` (the same document `serve` answers at
// /openapi.json, printed without connecting anywhere): the binary named by ADMIN_PROVISIONER_BIN, or
// else `cargo run --quiet --bin admin-provisioner -- openapi` in the repository (builds it if needed).
import { spawnSync } from "node:child_process";
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const pkg = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const repo = resolve(pkg, "..", "..");
const snapshotPath = join(pkg, "openapi.json");
const typesPath = join(pkg, "src", "generated", "schema.ts");
const check = process.argv.includes("--check");
const REGENERATE = "run `npm run generate` in clients/typescript and commit openapi.json and src/generated/schema.ts";

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, { encoding: "utf8", maxBuffer: 64 * 1024 * 1024, ...options });
  if (result.error) fail(`${command}: ${result.error.message}`);
  return result;
}

function serverDocument() {
  const bin = process.env.ADMIN_PROVISIONER_BIN;
  const result = bin
    ? run(bin, ["openapi"])
    : run("cargo", ["run", "--quiet", "--bin", "admin-provisioner", "--", "openapi"], { cwd: repo });
  if (result.status !== 0) {
    fail(`\`${bin ?? "cargo run -- "} openapi\` exited ${result.status}: ${result.stderr.trim()}`);
  }
  let doc;
  try {
    doc = JSON.parse(result.stdout);
  } catch (e) {
    fail(`\`admin-provisioner openapi\` did not print JSON: ${e.message}`);
  }
  return JSON.stringify(doc, null, 2) + "\n";
}

/** What changed between two documents, in words a reviewer can act on: paths, methods, schemas. */
function describeChange(before, after) {
  const lines = [];
  const keys = (o) => new Set(Object.keys(o ?? {}));
  const compare = (what, a, b) => {
    for (const k of keys(b)) if (!keys(a).has(k)) lines.push(`  + ${what} ${k}`);
    for (const k of keys(a)) if (!keys(b).has(k)) lines.push(`  - ${what} ${k}`);
    for (const k of keys(a)) {
      if (keys(b).has(k) && JSON.stringify(a[k]) !== JSON.stringify(b[k])) lines.push(`  ~ ${what} ${k}`);
    }
  };
  compare("path", before.paths, after.paths);
  compare("schema", before.components?.schemas, after.components?.schemas);
  compare("security scheme", before.components?.securitySchemes, after.components?.securitySchemes);
  return lines.length ? lines.join("\n") : "  (info, tags or formatting)";
}

// The generator's options, the same for `generate` and `--check`. `--empty-objects-unknown`: an object
// schema without properties (the document's "one of these fields is required" `anyOf`, a free-form
// `data`) means "any object", not openapi-typescript's default `Record<string, never>`.
const GENERATOR_OPTIONS = ["--empty-objects-unknown"];

function openapiTypescript(extra) {
  const cli = join(pkg, "node_modules", "openapi-typescript", "bin", "cli.js");
  if (!existsSync(cli)) fail("openapi-typescript is not installed: run `npm ci` in clients/typescript first");
  return run(process.execPath, [cli, snapshotPath, "--output", typesPath, ...GENERATOR_OPTIONS, ...extra], { cwd: pkg });
}

const current = serverDocument();
if (check) {
  const committed = existsSync(snapshotPath) ? readFileSync(snapshotPath, "utf8") : null;
  if (committed === null) fail(`clients/typescript/openapi.json is missing: ${REGENERATE}`);
  if (committed !== current) {
    let change;
    try {
      change = describeChange(JSON.parse(committed), JSON.parse(current));
    } catch {
      change = "  (the committed snapshot is not valid JSON)";
    }
    fail(`the server's OpenAPI document changed and the TypeScript client was not regenerated:\n${change}\n${REGENERATE}`);
  }
  const types = openapiTypescript(["--check"]);
  if (types.status !== 0) {
    fail(`src/generated/schema.ts is not what openapi-typescript makes of openapi.json:\n${types.stdout}${types.stderr}${REGENERATE}`);
  }
  console.log("clients/typescript: openapi.json and src/generated/schema.ts match the server's OpenAPI document");
} else {
  writeFileSync(snapshotPath, current);
  const types = openapiTypescript([]);
  if (types.status !== 0) fail(`openapi-typescript failed:\n${types.stdout}${types.stderr}`);
  console.log("clients/typescript: wrote openapi.json and src/generated/schema.ts; now `npm run build` and commit both");
}
