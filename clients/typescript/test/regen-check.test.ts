// `npm run check-generated` (scripts/generate.mjs --check) fails when the server's OpenAPI document is not
// the committed snapshot: driven here with stand-in binaries that print a given document.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { binary, packageDir } from "./server.js";

const snapshot = readFileSync(join(packageDir, "openapi.json"), "utf8");
const dir = mkdtempSync(join(tmpdir(), "admin-provisioner-regen-"));

/** Runs the check with ADMIN_PROVISIONER_BIN = a script printing `document`. */
function checkAgainst(document: string): { status: number | null; output: string } {
  const doc = join(dir, `doc-${Math.random().toString(16).slice(2)}.json`);
  writeFileSync(doc, document);
  const bin = join(dir, `bin-${Math.random().toString(16).slice(2)}.sh`);
  writeFileSync(bin, `#!/bin/sh\n[ "$1" = openapi ] || exit 64\nexec cat '${doc}'\n`);
  chmodSync(bin, 0o755);
  const out = spawnSync(process.execPath, [join(packageDir, "scripts", "generate.mjs"), "--check"], {
    env: { ...process.env, ADMIN_PROVISIONER_BIN: bin },
    encoding: "utf8",
  });
  return { status: out.status, output: out.stdout + out.stderr };
}

describe("the regeneration check", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("passes on the real binary: the committed snapshot is the server's document", () => {
    const out = spawnSync(process.execPath, [join(packageDir, "scripts", "generate.mjs"), "--check"], {
      env: { ...process.env, ADMIN_PROVISIONER_BIN: binary() },
      encoding: "utf8",
    });
    assert.equal(out.status, 0, out.stdout + out.stderr);
  });

  it("passes on the same document printed compactly (only the content counts)", () => {
    const result = checkAgainst(JSON.stringify(JSON.parse(snapshot)));
    assert.equal(result.status, 0, result.output);
  });

  it("fails, naming the change and the command, when the server gained an endpoint", () => {
    const doc = JSON.parse(snapshot);
    doc.paths["/api/admins/{id}/roles"] = { get: { responses: { "200": { description: "new" } } } };
    const result = checkAgainst(JSON.stringify(doc));
    assert.equal(result.status, 1, result.output);
    assert.match(result.output, /\+ path \/api\/admins\/\{id\}\/roles/);
    assert.match(result.output, /npm run generate/);
  });

  it("fails when a schema changed", () => {
    const doc = JSON.parse(snapshot);
    doc.components.schemas.CreateAdminRequest.properties.role = { type: "string" };
    const result = checkAgainst(JSON.stringify(doc));
    assert.equal(result.status, 1, result.output);
    assert.match(result.output, /~ schema CreateAdminRequest/);
  });

  it("fails when the binary cannot print the document", () => {
    const result = checkAgainst("this is not JSON");
    assert.equal(result.status, 1, result.output);
    assert.match(result.output, /did not print JSON/);
  });
});
