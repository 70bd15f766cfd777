// The client against a live `serve`: the whole life of an admin, through the named operations, the raw
// typed client and the typed errors.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  AdminProvisionerError,
  createAdminProvisionerClient,
  isAdminProvisionerError,
  type AdminProvisionerClient,
  type ErrorCode,
  type LoginResult,
  type Tokens,
} from "../src/index.js";
import { Server } from "./server.js";

const ROOT = "root@example.com";
const ANN = "Ann@Example.com";
const BOB = "bob@example.com";
const ROOT_PASSWORD = "Root-Pass-word-1!";
const ANN_PASSWORD = "Ann-Pass-word-2!";

/** The tokens of a sign-in answer (this pool has MFA off: no further challenge). */
function tokensOf(answer: LoginResult): Tokens {
  assert.ok("id_token" in answer, `expected tokens, got the challenge ${JSON.stringify(answer)}`);
  return answer;
}

/** Awaits `call` and checks that it throws the API error `code` with `status`; returns the error. */
async function refused(call: Promise<unknown>, status: number, code: ErrorCode): Promise<AdminProvisionerError> {
  try {
    await call;
  } catch (e) {
    assert.ok(e instanceof AdminProvisionerError, `expected an AdminProvisionerError, got ${String(e)}`);
    assert.equal(e.code, code, `${e.status} ${e.code}: ${e.message}`);
    assert.equal(e.status, status);
    assert.ok(e.message.length > 0);
    assert.match(e.requestId ?? "", /.+/, "the error carries the request id");
    return e;
  }
  assert.fail(`expected ${status} ${code}, the call succeeded`);
}

describe("the client against a live serve", { timeout: 120_000 }, () => {
  let server: Server;
  let anonymous: AdminProvisionerClient;
  let root: AdminProvisionerClient;
  let annId: string;
  let annTokens: Tokens;

  before(async () => {
    server = await Server.start();
    anonymous = createAdminProvisionerClient({ baseUrl: server.baseUrl });
  });

  after(async () => {
    await server?.stop();
  });

  it("signs the bootstrapped admin in: login answers NEW_PASSWORD_REQUIRED, the challenge answers tokens", async () => {
    server.cli("bootstrap-admin", "--email", ROOT);
    const temporary = server.temporaryPassword(ROOT);

    const answer = await anonymous.login({ email: ROOT, password: temporary });
    assert.ok("challenge" in answer, `expected a challenge, got ${JSON.stringify(Object.keys(answer))}`);
    assert.equal(answer.challenge, "NEW_PASSWORD_REQUIRED");
    const tokens = tokensOf(
      await anonymous.handleNewPasswordChallenge({
        username: answer.username,
        session: answer.session,
        new_password: ROOT_PASSWORD,
      }),
    );
    assert.match(tokens.id_token, /^eyJ/);
    assert.ok(tokens.expires_in > 0);

    // A function token: read at every request.
    let current = tokens.id_token;
    root = createAdminProvisionerClient({ baseUrl: server.baseUrl, token: () => current });
    const again = await anonymous.login({ email: ROOT, password: ROOT_PASSWORD });
    assert.ok("id_token" in again);
    current = again.access_token;
    const page = await root.listAdmins();
    assert.deepEqual(
      page.admins.map((a) => [a.email, a.status]),
      [[ROOT, "active"]],
    );
  });

  it("refuses a wrong password with invalid_credentials and no token with unauthorized", async () => {
    await refused(anonymous.login({ email: ROOT, password: "Not-the-password-1!" }), 401, "invalid_credentials");
    await refused(anonymous.listAdmins(), 401, "unauthorized");
    const forged = createAdminProvisionerClient({ baseUrl: server.baseUrl, token: "eyJhbGciOiJub25lIn0.e30." });
    await refused(forged.listAdmins(), 401, "unauthorized");
  });

  it("provisions a new admin (provisionNewAdmin), idempotently with a key", async () => {
    const key = `ts-client-${Date.now()}`;
    const created = await root.provisionNewAdmin(ANN, { idempotencyKey: key });
    assert.equal(created.user.email.toLowerCase(), ANN.toLowerCase());
    assert.equal(created.invite.status, "invited");
    assert.equal(created.invite.delivered, true);
    assert.equal(created.admin_info.invites_sent, 1);
    annId = created.user.id;

    const replayed = await root.provisionNewAdmin({ email: ANN }, { idempotencyKey: key });
    assert.equal(replayed.user.id, annId, "the same key replays the first answer");
    assert.equal(server.invitations(ANN), 1, "nobody e-mailed twice");
  });

  it("answers admin_exists, invalid_email and idempotency_key_reused as typed errors", async () => {
    const exists = await refused(root.provisionNewAdmin("ann@example.com"), 409, "admin_exists");
    assert.ok(isAdminProvisionerError(exists, "admin_exists"));
    assert.ok(!isAdminProvisionerError(exists, "not_found"));
    await refused(root.provisionNewAdmin("not-an-email"), 400, "invalid_email");
    const key = `reused-${Date.now()}`;
    await root.provisionNewAdmin(BOB, { idempotencyKey: key });
    await refused(root.provisionNewAdmin("carol@example.com", { idempotencyKey: key }), 422, "idempotency_key_reused");
  });

  it("lists admins with filters and pages", async () => {
    const invited = await root.listAdmins({ status: "invited" });
    assert.deepEqual(invited.admins.map((a) => a.email.toLowerCase()).sort(), [ANN.toLowerCase(), BOB].sort());
    const byPrefix = await root.listAdmins({ email_prefix: "ANN" });
    assert.deepEqual(
      byPrefix.admins.map((a) => a.id),
      [annId],
    );
    const firstPage = await root.listAdmins({ limit: 1 });
    assert.equal(firstPage.admins.length, 1);
    assert.ok(firstPage.next, "a cursor to the next page");
    const everyone = [];
    for await (const admin of root.allAdmins({ limit: 1 })) everyone.push(admin.email);
    assert.equal(everyone.length, 3);
    assert.equal(new Set(everyone).size, 3);
    await refused(root.listAdmins({ limit: 0 }), 400, "invalid_request");
  });

  it("re-sends the invitation (resendAdminInvite) with a new temporary password", async () => {
    const first = server.temporaryPassword(ANN);
    const resent = await root.resendAdminInvite(annId);
    assert.equal(resent.invite.status, "invited");
    assert.equal(resent.invite.invites_sent, 2);
    assert.equal(server.invitations(ANN), 2);
    const second = server.temporaryPassword(ANN);
    assert.notEqual(second, first);
    await refused(root.resendAdminInvite("00000000-0000-4000-8000-000000000000"), 404, "not_found");
  });

  it("completes the new admin's first login (handleNewPasswordChallenge) from the mailbox", async () => {
    const temporary = server.temporaryPassword(ANN);
    await refused(
      anonymous.handleNewPasswordChallenge({
        username: ANN,
        temporary_password: temporary,
        new_password: "alllowercase-and-1!",
      }),
      400,
      "password_policy",
    );
    annTokens = tokensOf(
      await anonymous.handleNewPasswordChallenge({
        username: ANN,
        temporary_password: temporary,
        new_password: ANN_PASSWORD,
      }),
    );
    const ann = await root.getAdmin(annId);
    assert.equal(ann.status, "active");
    assert.ok(ann.admin_info?.accepted_at);
    await refused(root.resendAdminInvite(annId), 409, "already_active");

    // Ann is an admin now: she can call the API with her own token.
    const asAnn = createAdminProvisionerClient({ baseUrl: server.baseUrl, token: annTokens.id_token });
    assert.equal((await asAnn.getAdmin(annId)).email.toLowerCase(), ANN.toLowerCase());
  });

  it("disables and enables an admin; a disabled admin's token is refused", async () => {
    const rootId = (await root.listAdmins({ email_prefix: "root" })).admins[0]?.id;
    assert.ok(rootId);
    await refused(root.disableAdmin(rootId), 403, "self_action_forbidden");

    const disabled = await root.disableAdmin(annId);
    assert.equal(disabled.status, "disabled");
    const asAnn = createAdminProvisionerClient({ baseUrl: server.baseUrl, token: annTokens.id_token });
    const refusal = await asAnn.listAdmins().then(
      () => assert.fail("a disabled admin's token was accepted"),
      (e: unknown) => e,
    );
    assert.ok(refusal instanceof AdminProvisionerError);
    assert.ok([401, 403].includes(refusal.status), `${refusal.status} ${refusal.code}`);
    await refused(anonymous.login({ email: ANN, password: ANN_PASSWORD }), 401, "invalid_credentials");

    const enabled = await root.enableAdmin(annId);
    assert.equal(enabled.status, "active");
    const tokens = await anonymous.login({ email: ANN, password: ANN_PASSWORD });
    assert.ok("id_token" in tokens, "an enabled admin signs in again");
  });

  it("changes a role, signs an admin out, resets a password and answers forgot-password alike for anyone", async () => {
    const viewer = await root.changeAdminRole(annId, "viewer");
    assert.equal(viewer.role, "viewer");
    const asViewer = createAdminProvisionerClient({
      baseUrl: server.baseUrl,
      token: await (async () => {
        const t = await anonymous.login({ email: ANN, password: ANN_PASSWORD });
        assert.ok("id_token" in t);
        return t.id_token;
      })(),
    });
    await refused(asViewer.provisionNewAdmin("carl@example.com"), 403, "forbidden");
    assert.equal((await root.changeAdminRole(annId, "admin")).role, "admin");

    assert.equal((await root.signOutAdmin(annId)).status, "active");
    // Unknown and known addresses get the same answer.
    await anonymous.forgotPassword("nobody@example.com");
    await anonymous.forgotPassword(ANN);
    await refused(
      anonymous.confirmForgotPassword({ email: ANN, code: "000000", new_password: "Other-Pass-word-3!" }),
      400,
      "invalid_reset_code",
    );

    await root.resetAdminPassword(annId);
    await refused(anonymous.login({ email: ANN, password: ANN_PASSWORD }), 409, "password_reset_required");
  });

  it("removes admins from both systems", async () => {
    await root.removeAdmin(annId);
    await refused(root.getAdmin(annId), 404, "not_found");
    await refused(anonymous.login({ email: ANN, password: ANN_PASSWORD }), 401, "invalid_credentials");
    const bob = (await root.listAdmins({ email_prefix: BOB })).admins[0];
    assert.ok(bob);
    await root.removeAdmin(bob.id);
    const left = await root.listAdmins();
    assert.deepEqual(
      left.admins.map((a) => a.email),
      [ROOT],
    );
  });

  it("shows the audit log and the lifecycle events", async () => {
    const audit = await root.listAuditEvents({ limit: 100 });
    const actions = new Set(audit.events.map((e) => e.action));
    for (const action of ["bootstrap_admin", "create_admin", "resend_invite", "first_login_completed", "delete_admin"]) {
      assert.ok(actions.has(action), `audit lacks ${action}: ${[...actions].join(", ")}`);
    }
    const events = await root.listEvents({ after: 0 });
    const kinds = new Set(events.events.map((e) => e.type));
    for (const kind of ["admin.invited", "admin.invite_resent", "admin.activated", "admin.removed"]) {
      assert.ok(kinds.has(kind), `events lack ${kind}: ${[...kinds].join(", ")}`);
    }
  });

  it("reaches the rest of the API through the typed openapi-fetch client", async () => {
    const health = await root.api.GET("/healthz");
    assert.equal(health.data?.status, "ok");
    const ready = await root.api.GET("/readyz");
    assert.equal(ready.response.status, 200);
    const missing = await root.api.GET("/api/admins/{id}", {
      params: { path: { id: "00000000-0000-4000-8000-000000000000" } },
    });
    assert.equal(missing.response.status, 404);
    assert.equal(missing.error?.error.code, "not_found");
  });
});
