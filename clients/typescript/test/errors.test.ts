// How answers become AdminProvisionerError, with a stand-in fetch (no server).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AdminProvisionerError, createAdminProvisionerClient, UNEXPECTED_RESPONSE } from "../src/index.js";

function answering(status: number, body: string, headers: Record<string, string> = {}) {
  const seen: Request[] = [];
  const client = createAdminProvisionerClient({
    baseUrl: "http://api.invalid/",
    token: async () => "the-token",
    fetch: async (request) => {
      seen.push(request);
      return new Response(body, { status, headers });
    },
  });
  return { client, seen };
}

describe("errors", () => {
  it("carries the envelope's code, message, request id and Retry-After", async () => {
    const { client, seen } = answering(
      429,
      JSON.stringify({ error: { code: "resend_cooldown", message: "wait a minute", request_id: "req-1" } }),
      { "content-type": "application/json", "retry-after": "42" },
    );
    const e = await client.resendAdminInvite("7f000000-0000-4000-8000-000000000001").catch((e: unknown) => e);
    assert.ok(e instanceof AdminProvisionerError);
    assert.equal(e.status, 429);
    assert.equal(e.code, "resend_cooldown");
    assert.equal(e.message, "wait a minute");
    assert.equal(e.requestId, "req-1");
    assert.equal(e.retryAfterSeconds, 42);
    assert.equal(seen[0]?.url, "http://api.invalid/api/admins/7f000000-0000-4000-8000-000000000001/resend-invite");
    assert.equal(seen[0]?.headers.get("authorization"), "Bearer the-token");
  });

  it("names an answer without the envelope unexpected_response, keeping the x-request-id", async () => {
    const { client } = answering(502, "<html>Bad Gateway</html>", { "content-type": "text/html", "x-request-id": "req-2" });
    const e = await client.listAdmins().catch((e: unknown) => e);
    assert.ok(e instanceof AdminProvisionerError);
    assert.equal(e.status, 502);
    assert.equal(e.code, UNEXPECTED_RESPONSE);
    assert.equal(e.requestId, "req-2");
    assert.equal(e.body, "<html>Bad Gateway</html>");
  });

  it("sends the Idempotency-Key header and the body", async () => {
    const { client, seen } = answering(409, JSON.stringify({ error: { code: "admin_exists", message: "exists" } }), {
      "content-type": "application/json",
    });
    await assert.rejects(client.provisionNewAdmin("ann@example.com", { idempotencyKey: "k-1" }), { code: "admin_exists" });
    assert.equal(seen[0]?.method, "POST");
    assert.equal(seen[0]?.headers.get("idempotency-key"), "k-1");
    assert.deepEqual(await seen[0]?.json(), { email: "ann@example.com" });
  });
});
