/**
 * Typed client for the admin-provisioner HTTP API.
 *
 * The types in `./generated/schema.ts` are generated from the server's OpenAPI document
 * (`npm run generate`); the calls go through `openapi-fetch`, so every path, parameter, body and answer is
 * checked by the compiler against that document. The product's operations have methods of their own
 * ({@link AdminProvisionerClient.provisionNewAdmin}, {@link AdminProvisionerClient.resendAdminInvite},
 * {@link AdminProvisionerClient.handleNewPasswordChallenge}, …); everything else in the document is
 * reachable, just as typed, through {@link AdminProvisionerClient.api}.
 *
 * Every error answer of the API (`{"error": {"code", "message", "request_id"}}`) is thrown as an
 * {@link AdminProvisionerError} carrying the API's stable `code`.
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, operations, paths } from "./generated/schema.js";

export type { components, operations, paths };

/** The document's named schemas (`Schemas["AdminDto"]`, …). */
export type Schemas = components["schemas"];

type JsonBody<T> = T extends { content: { "application/json": infer B } } ? B : never;
type OkJson<Op> = Op extends { responses: infer R }
  ? { [S in keyof R]: S extends 200 | 201 ? JsonBody<R[S]> : never }[keyof R]
  : never;
type RequestJson<Op> = Op extends { requestBody?: infer B } ? JsonBody<NonNullable<B>> : never;
type Query<Op> = Op extends { parameters: { query?: infer Q } } ? NonNullable<Q> : never;

/** Body of `POST /api/admins` (the e-mail, and whatever else the server's version accepts). */
export type CreateAdminRequest = RequestJson<paths["/api/admins"]["post"]>;
/** `201` answer of `POST /api/admins`: the `User`, its `AdminInfo` and the invitation. */
export type ProvisionedAdmin = OkJson<paths["/api/admins"]["post"]>;
/** One admin as `GET /api/admins/{id}` shows it. */
export type Admin = OkJson<paths["/api/admins/{id}"]["get"]>;
/** One page of `GET /api/admins`. */
export type AdminPage = OkJson<paths["/api/admins"]["get"]>;
/** Filters and paging of `GET /api/admins`. */
export type AdminListQuery = Query<paths["/api/admins"]["get"]>;
/** `200` answer of `POST /api/admins/{id}/resend-invite`. */
export type ResendResult = OkJson<paths["/api/admins/{id}/resend-invite"]["post"]>;
/** Body of `POST /api/auth/login`. */
export type LoginRequest = RequestJson<paths["/api/auth/login"]["post"]>;
/** `POST /api/auth/login` answer: tokens, or a challenge to answer. */
export type LoginResult = OkJson<paths["/api/auth/login"]["post"]>;
/**
 * Body of `POST /api/auth/new-password`: `username`, `new_password`, and the invitation's
 * `temporary_password` or a login challenge's `session` (the document's `anyOf`, spelled out).
 */
export type NewPasswordRequest = RequestJson<paths["/api/auth/new-password"]["post"]> &
  ({ temporary_password: string } | { session: string });
/** ID, access and refresh tokens (the tokens member of {@link LoginResult}). */
export type Tokens = Extract<LoginResult, { id_token: string }>;
/** A challenge to answer with {@link AdminProvisionerClient.respondToChallenge} (the other member of {@link LoginResult}). */
export type Challenge = Exclude<LoginResult, { id_token: string }>;
/** Body of `POST /api/auth/respond`: the challenge, `username`, `session` and the challenge's answer. */
export type RespondRequest = RequestJson<paths["/api/auth/respond"]["post"]>;
/** `200` answer of `POST /api/auth/mfa/setup`: the secret to enrol and its `otpauth://` URI. */
export type MfaSetup = OkJson<paths["/api/auth/mfa/setup"]["post"]>;
/** Body of `PATCH /api/admins/{id}`: the new `role`. */
export type ChangeAdminRequest = RequestJson<paths["/api/admins/{id}"]["patch"]>;
/** Body of `POST /api/auth/confirm-forgot-password`. */
export type ConfirmForgotPasswordRequest = RequestJson<paths["/api/auth/confirm-forgot-password"]["post"]>;
/** One page of `GET /api/audit`. */
export type AuditPage = OkJson<paths["/api/audit"]["get"]>;
/** Paging of `GET /api/audit`. */
export type AuditQuery = Query<paths["/api/audit"]["get"]>;
/** One page of `GET /api/events`. */
export type EventPage = OkJson<paths["/api/events"]["get"]>;
/** `after`, `limit` and `wait` of `GET /api/events`. */
export type EventQuery = Query<paths["/api/events"]["get"]>;

/**
 * Error codes the API answers today (contract.md, "HTTP API"). The server may add codes: `code` is any
 * string, these are listed for completion and `switch` statements.
 */
export type KnownErrorCode =
  | "invalid_email"
  | "invalid_request"
  | "unauthorized"
  | "invalid_token"
  | "forbidden"
  | "session_ended"
  | "not_found"
  | "admin_exists"
  | "user_name_taken"
  | "already_active"
  | "already_bootstrapped"
  | "resend_cooldown"
  | "last_admin"
  | "self_action_forbidden"
  | "rate_limited"
  | "provisioning_in_progress"
  | "operation_in_progress"
  | "idempotency_in_progress"
  | "idempotency_key_reused"
  | "invalid_credentials"
  | "password_policy"
  | "no_challenge"
  | "last_owner"
  | "invalid_token_name"
  | "token_name_taken"
  | "mfa_enrollment_required"
  | "invalid_mfa_code"
  | "invalid_reset_code"
  | "not_active"
  | "password_reset_required"
  | "identity_provider_unavailable"
  | "identity_provider_error"
  | "database_unavailable"
  | "saga_stuck"
  | "internal"
  | "method_not_allowed"
  | "misdirected_request"
  | "payload_too_large"
  | "headers_too_large"
  | "uri_too_long"
  | "unsupported_media_type"
  | "request_timeout"
  | "too_many_connections"
  | "not_ready";

/** A stable error code: one of {@link KnownErrorCode}, or a code added by a newer server. */
export type ErrorCode = KnownErrorCode | (string & {});

/** The code given to an error answer whose body is not the API's envelope (e.g. a proxy's HTML page). */
export const UNEXPECTED_RESPONSE = "unexpected_response";

/** An error answer of the API. `code` is the envelope's stable code; `message` is meant for a person. */
export class AdminProvisionerError extends Error {
  override readonly name = "AdminProvisionerError";
  /** HTTP status. */
  readonly status: number;
  /** The API's stable code (`admin_exists`, `resend_cooldown`, …), or `unexpected_response`. */
  readonly code: ErrorCode;
  /** The request id (the envelope's `request_id`, or the `x-request-id` header): quote it to an operator. */
  readonly requestId: string | undefined;
  /** Seconds to wait before trying again (`Retry-After`), when the server said so. */
  readonly retryAfterSeconds: number | undefined;
  /** The parsed error body, as received. */
  readonly body: unknown;

  constructor(init: {
    status: number;
    code: ErrorCode;
    message: string;
    requestId?: string | undefined;
    retryAfterSeconds?: number | undefined;
    body?: unknown;
  }) {
    super(init.message);
    this.status = init.status;
    this.code = init.code;
    this.requestId = init.requestId;
    this.retryAfterSeconds = init.retryAfterSeconds;
    this.body = init.body;
  }

  /** Builds the error from a non-2xx answer and its (already parsed) body. */
  static fromResponse(response: Response, body: unknown): AdminProvisionerError {
    const retry = Number.parseInt(response.headers.get("retry-after") ?? "", 10);
    const retryAfterSeconds = Number.isFinite(retry) ? retry : undefined;
    const headerId = response.headers.get("x-request-id") ?? undefined;
    const detail = envelope(body);
    if (detail) {
      return new AdminProvisionerError({
        status: response.status,
        code: detail.code,
        message: detail.message,
        requestId: detail.request_id ?? headerId,
        retryAfterSeconds,
        body,
      });
    }
    return new AdminProvisionerError({
      status: response.status,
      code: UNEXPECTED_RESPONSE,
      message: `HTTP ${response.status} ${response.statusText} without the API's error envelope`,
      requestId: headerId,
      retryAfterSeconds,
      body,
    });
  }
}

function envelope(body: unknown): { code: string; message: string; request_id?: string } | undefined {
  if (typeof body !== "object" || body === null || !("error" in body)) return undefined;
  const error = (body as { error: unknown }).error;
  if (typeof error !== "object" || error === null) return undefined;
  const { code, message, request_id } = error as Record<string, unknown>;
  if (typeof code !== "string" || typeof message !== "string") return undefined;
  return { code, message, ...(typeof request_id === "string" ? { request_id } : {}) };
}

/** Narrows a caught value: `if (isAdminProvisionerError(e, "admin_exists")) …`. */
export function isAdminProvisionerError(e: unknown, code?: ErrorCode): e is AdminProvisionerError {
  return e instanceof AdminProvisionerError && (code === undefined || e.code === code);
}

/** Where the API is and how to authenticate. */
export interface ClientOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:8080`. */
  baseUrl: string;
  /**
   * The caller's Cognito ID or access token, or a function giving it (called for every request, so a
   * refreshed token is picked up). Leave unset for the endpoints anyone may call (login, new password).
   */
  token?: string | (() => string | undefined | Promise<string | undefined>);
  /** A `fetch` of your own (tests, proxies, retries). Default: the global `fetch`. */
  fetch?: (input: Request) => Promise<Response>;
  /** Headers sent with every request. */
  headers?: Record<string, string>;
}

/** The raw typed client: `client.api.GET("/api/admins/{id}", { params: { path: { id } } })`. */
export type ApiClient = Client<paths, `${string}/${string}`>;

/** Options of {@link AdminProvisionerClient.provisionNewAdmin}. */
export interface ProvisionOptions {
  /** Makes the call safe to retry: the same key with the same body replays the first answer. */
  idempotencyKey?: string;
}

/** Creates a client. */
export function createAdminProvisionerClient(options: ClientOptions): AdminProvisionerClient {
  return new AdminProvisionerClient(options);
}

/** The admin-provisioner API. Methods throw {@link AdminProvisionerError} for any error answer. */
export class AdminProvisionerClient {
  /** Every path of the OpenAPI document, typed (for what has no method here: SCIM, metrics, …). */
  readonly api: ApiClient;

  constructor(options: ClientOptions) {
    this.api = createClient<paths>({
      baseUrl: options.baseUrl.replace(/\/+$/, ""),
      ...(options.fetch ? { fetch: options.fetch } : {}),
      ...(options.headers ? { headers: options.headers } : {}),
    });
    const token = options.token;
    if (token !== undefined) {
      const auth: Middleware = {
        async onRequest({ request }) {
          const value = typeof token === "function" ? await token() : token;
          if (value && !request.headers.has("authorization")) {
            request.headers.set("authorization", `Bearer ${value}`);
          }
          return request;
        },
      };
      this.api.use(auth);
    }
  }

  /**
   * Operation 3, `provision_new_admin`: creates the admin in Cognito and the database (one saga) and
   * e-mails the temporary password. `POST /api/admins`; `201`. Errors: `invalid_email`, `admin_exists`,
   * `forbidden`, `rate_limited`, `identity_provider_unavailable`, …
   */
  async provisionNewAdmin(
    request: string | CreateAdminRequest,
    options: ProvisionOptions = {},
  ): Promise<ProvisionedAdmin> {
    const body = (typeof request === "string" ? { email: request } : request) as CreateAdminRequest;
    return ok(
      await this.api.POST("/api/admins", {
        body,
        params: { header: options.idempotencyKey ? { "Idempotency-Key": options.idempotencyKey } : {} },
      }),
    );
  }

  /**
   * Operation 5, `resend_admin_invite`: a new temporary password and expiry, e-mailed again.
   * `POST /api/admins/{id}/resend-invite`. Errors: `not_found`, `already_active`, `resend_cooldown`
   * (`retryAfterSeconds` says when), …
   */
  async resendAdminInvite(id: string): Promise<ResendResult> {
    return ok(await this.api.POST("/api/admins/{id}/resend-invite", { params: { path: { id } } }));
  }

  /**
   * Operation 4, `handle_new_password_challenge`: the new admin's first login; replaces the temporary
   * password (or answers a login's `NEW_PASSWORD_REQUIRED` `session`) and returns tokens; the admin becomes
   * `active`. `POST /api/auth/new-password`; no token needed. In a pool with MFA on, the answer is the
   * next challenge (`MFA_SETUP`) instead of tokens: answer it with {@link AdminProvisionerClient.respondToChallenge}.
   * Errors: `password_policy`, `invalid_credentials`, `rate_limited`, …
   */
  async handleNewPasswordChallenge(request: NewPasswordRequest): Promise<LoginResult> {
    return ok(await this.api.POST("/api/auth/new-password", { body: request }));
  }

  /** `POST /api/auth/login`: tokens, or a challenge (`NEW_PASSWORD_REQUIRED` with its `session`). */
  async login(request: LoginRequest): Promise<LoginResult> {
    return ok(await this.api.POST("/api/auth/login", { body: request }));
  }

  /**
   * `POST /api/auth/respond`: answers a sign-in challenge (`NEW_PASSWORD_REQUIRED` with `new_password`;
   * `MFA_SETUP` first without `code` for the secret, then with `code`; `SOFTWARE_TOKEN_MFA` with `code`) and
   * returns tokens or the next challenge. Errors: `invalid_mfa_code`, `invalid_credentials`, `password_policy`, …
   */
  async respondToChallenge(request: RespondRequest): Promise<LoginResult> {
    return ok(await this.api.POST("/api/auth/respond", { body: request }));
  }

  /** `POST /api/auth/mfa/setup` (signed in): starts enrolling an authenticator; returns its secret. */
  async beginMfaSetup(): Promise<MfaSetup> {
    return ok(await this.api.POST("/api/auth/mfa/setup", {}));
  }

  /** `POST /api/auth/mfa/verify` (signed in): a code from the authenticator completes the enrolment. */
  async verifyMfaSetup(code: string): Promise<void> {
    ok(await this.api.POST("/api/auth/mfa/verify", { body: { code } }));
  }

  /**
   * `POST /api/auth/forgot-password`: Cognito e-mails a reset code. Answers `202` for any address, known
   * or not (no enumeration).
   */
  async forgotPassword(email: string): Promise<void> {
    ok(await this.api.POST("/api/auth/forgot-password", { body: { email } }));
  }

  /** `POST /api/auth/confirm-forgot-password`: the e-mailed code and a new password. Errors: `invalid_reset_code`, `password_policy`. */
  async confirmForgotPassword(request: ConfirmForgotPasswordRequest): Promise<void> {
    ok(await this.api.POST("/api/auth/confirm-forgot-password", { body: request }));
  }

  /** Changes an admin's role (`PATCH /api/admins/{id}`). Errors: `forbidden`, `last_owner`, `self_action_forbidden`, … */
  async changeAdminRole(id: string, role: ChangeAdminRequest["role"]): Promise<Admin> {
    return ok(
      await this.api.PATCH("/api/admins/{id}", { params: { path: { id } }, body: { role } as ChangeAdminRequest }),
    );
  }

  /** Resets an admin's password (`POST /api/admins/{id}/reset-password`); their next sign-in answers `password_reset_required`. */
  async resetAdminPassword(id: string): Promise<Admin> {
    return ok(await this.api.POST("/api/admins/{id}/reset-password", { params: { path: { id } } }));
  }

  /** Clears an admin's authenticator (`POST /api/admins/{id}/reset-mfa`); their next sign-in enrols again. */
  async resetAdminMfa(id: string): Promise<Admin> {
    return ok(await this.api.POST("/api/admins/{id}/reset-mfa", { params: { path: { id } } }));
  }

  /** Signs an admin out everywhere (`POST /api/admins/{id}/sign-out`): refresh tokens and console sessions end. */
  async signOutAdmin(id: string): Promise<Admin> {
    return ok(await this.api.POST("/api/admins/{id}/sign-out", { params: { path: { id } } }));
  }

  /** One page of admins (`GET /api/admins`): filters `status`, `email_prefix`; `limit`, `cursor`. */
  async listAdmins(query: AdminListQuery = {}): Promise<AdminPage> {
    return ok(await this.api.GET("/api/admins", { params: { query } }));
  }

  /** Every admin matching `query`, page after page (following `next`). */
  async *allAdmins(query: AdminListQuery = {}): AsyncGenerator<AdminPage["admins"][number]> {
    let cursor: string | undefined = query.cursor ?? undefined;
    do {
      const page: AdminPage = await this.listAdmins({ ...query, ...(cursor ? { cursor } : {}) });
      yield* page.admins;
      cursor = page.next ?? undefined;
    } while (cursor);
  }

  /** One admin (`GET /api/admins/{id}`). Errors: `not_found`. */
  async getAdmin(id: string): Promise<Admin> {
    return ok(await this.api.GET("/api/admins/{id}", { params: { path: { id } } }));
  }

  /** Disables the admin in both systems (`POST /api/admins/{id}/disable`). Errors: `last_admin`, `self_action_forbidden`, … */
  async disableAdmin(id: string): Promise<Admin> {
    return ok(await this.api.POST("/api/admins/{id}/disable", { params: { path: { id } } }));
  }

  /** Enables a disabled admin in both systems (`POST /api/admins/{id}/enable`). */
  async enableAdmin(id: string): Promise<Admin> {
    return ok(await this.api.POST("/api/admins/{id}/enable", { params: { path: { id } } }));
  }

  /**
   * Removes the admin from both systems, or revokes a pending invitation (`DELETE /api/admins/{id}`;
   * `204`). Errors: `last_admin`, `self_action_forbidden`, `provisioning_in_progress`, …
   */
  async removeAdmin(id: string): Promise<void> {
    ok(await this.api.DELETE("/api/admins/{id}", { params: { path: { id } } }));
  }

  /** One page of the audit log, newest first (`GET /api/audit`). */
  async listAuditEvents(query: AuditQuery = {}): Promise<AuditPage> {
    return ok(await this.api.GET("/api/audit", { params: { query } }));
  }

  /** Lifecycle events after `after`, oldest first; `wait` long-polls (`GET /api/events`). */
  async listEvents(query: EventQuery = {}): Promise<EventPage> {
    return ok(await this.api.GET("/api/events", { params: { query } }));
  }
}

/** The data of a 2xx answer, or the answer's {@link AdminProvisionerError}. */
function ok<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (!result.response.ok || result.error !== undefined) {
    throw AdminProvisionerError.fromResponse(result.response, result.error);
  }
  return result.data as T;
}
