// The published package: `npm pack` holds the built client, its README and package.json, nothing else,
// and the package's own name resolves to the built client.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it } from "node:test";
import { packageDir } from "./server.js";

describe("the package", () => {
  it("packs only dist, the README and package.json", () => {
    const out = spawnSync("npm", ["pack", "--dry-run", "--json"], { cwd: packageDir, encoding: "utf8" });
    assert.equal(out.status, 0, out.stderr);
    // `prepack` (the build) prints before the JSON.
    const json = out.stdout.slice(out.stdout.indexOf("[\n"));
    const [pack] = JSON.parse(json) as [{ files: { path: string }[] }];
    const files = pack.files.map((f) => f.path).sort();
    const stray = files.filter((f) => !f.startsWith("dist/") && f !== "README.md" && f !== "package.json");
    assert.deepEqual(stray, [], `unexpected files in the package: ${stray.join(", ")}`);
    for (const needed of ["README.md", "package.json", "dist/index.js", "dist/index.d.ts", "dist/generated/schema.d.ts"]) {
      assert.ok(files.includes(needed), `${needed} missing from the package: ${files.join(", ")}`);
    }
  });

  it("resolves its own name to the built client", async () => {
    const pkg = (await import("admin-provisioner-client")) as Record<string, unknown>;
    for (const name of ["createAdminProvisionerClient", "AdminProvisionerClient", "AdminProvisionerError"]) {
      assert.equal(typeof pkg[name], "function", name);
    }
  });
});
