//! The web console: server-rendered HTML over the same provisioner calls as the API.
//!
//! No front-end build and no framework: pages are `format!`ed strings with every dynamic value escaped by
//! [`esc`]; one small static script only adds `confirm()` dialogs to destructive buttons. Pages:
//!
//! * `/login` — e-mail and password; at first login, the "choose a new password" form (the Cognito
//!   challenge session travels in a short-lived HttpOnly cookie, never in the page);
//! * `/console` — the admins with status, invitation expiry and count, a "Create New Admin" form, and
//!   Resend / Revoke / Remove buttons; results come back as flash messages in plain words;
//! * `/console/audit` — the audit log;
//! * `/console/mailbox` — emulator mode only: the invitations the built-in emulator "delivered", with
//!   the temporary passwords visible, because it stands in for the recipients' inboxes;
//! * `/logout`.
//!
//! Session: the Cognito ID token in an `HttpOnly; SameSite=Strict; Path=/` cookie (`Secure` over HTTPS),
//! verified like a Bearer token on every request; tokens never appear in HTML or in script-readable storage.
//! CSRF: every state-changing form carries an HMAC of the session cookie under a per-process key, checked
//! server-side (403 `csrf`), and a POST whose `Origin` is another site is refused.

use super::api::{audit_events, parse_admin_id};
use super::auth::TokenError;
use super::edge::ClientAddr;
use super::error::ApiError;
use super::{AppState, RequestId};
use admin_provisioner_core::domain::InviteStatus;
use admin_provisioner_core::domain::{Password, Secret, UserId};
use admin_provisioner_core::{AdminView, Caller, Error, LoginOutcome};
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Cookie holding the ID token.
pub const SESSION_COOKIE: &str = "ap_session";
/// Cookie holding the first-login challenge (username + Cognito session) for 3 minutes.
pub const CHALLENGE_COOKIE: &str = "ap_challenge";
/// Cookie holding a one-shot flash message.
pub const FLASH_COOKIE: &str = "ap_flash";
/// Seconds a Cognito `NEW_PASSWORD_REQUIRED` session lives.
const CHALLENGE_SECONDS: i64 = 180;

/// The console routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(root))
        .route("/login", get(login_page).post(login_submit))
        .route("/login/new-password", post(new_password_submit))
        .route("/logout", get(logout_page).post(logout_submit))
        .route("/console", get(console_page))
        .route("/console/admins", post(create_submit))
        .route("/console/admins/{id}/resend", post(resend_submit))
        .route("/console/admins/{id}/remove", post(remove_submit))
        .route("/console/audit", get(audit_page))
        .route("/console/mailbox", get(mailbox_page))
        .route("/console/drift", get(drift_page))
        .route("/static/console.css", get(stylesheet))
        .route("/static/console.js", get(script))
}

// ---------------------------------------------------------------------------------------------------
// HTML helpers
// ---------------------------------------------------------------------------------------------------

/// Escapes text for HTML element content and double- or single-quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A flash message: shown once, on the next page.
#[derive(Serialize, Deserialize, Clone, Debug)]
struct Flash {
    /// `ok` or `error`.
    k: String,
    /// The text (plain words).
    t: String,
}

impl Flash {
    fn ok(t: impl Into<String>) -> Self {
        Self {
            k: "ok".into(),
            t: t.into(),
        }
    }
    fn error(t: impl Into<String>) -> Self {
        Self {
            k: "error".into(),
            t: t.into(),
        }
    }
    fn html(&self) -> String {
        let (class, role) = if self.k == "ok" {
            ("flash ok", "status")
        } else {
            ("flash error", "alert")
        };
        format!(
            r#"<div id="flash" class="{class}" role="{role}">{}</div>"#,
            esc(&self.t)
        )
    }
}

/// What the page header shows for a signed-in admin.
struct Nav<'a> {
    email: &'a str,
    csrf: &'a str,
    emulator: bool,
    current: &'a str,
}

fn page(title: &str, nav: Option<&Nav<'_>>, flash: Option<&Flash>, main: &str, emulator: bool) -> String {
    let links = match nav {
        Some(n) => {
            let link = |href: &str, label: &str| {
                let cur = if n.current == href {
                    r#" aria-current="page""#
                } else {
                    ""
                };
                format!(r#"<a href="{href}"{cur}>{label}</a>"#)
            };
            let mailbox = if n.emulator {
                link("/console/mailbox", "Mailbox")
            } else {
                String::new()
            };
            format!(
                r#"<nav>{}{}{}{}</nav><div class="who"><span>Signed in as <strong>{}</strong></span><form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button class="btn link" type="submit">Sign out</button></form></div>"#,
                link("/console", "Admins"),
                link("/console/audit", "Audit log"),
                link("/console/drift", "Drift"),
                mailbox,
                esc(n.email),
                esc(n.csrf)
            )
        }
        None if emulator => {
            r#"<nav><a href="/login">Sign in</a><a href="/console/mailbox">Mailbox</a></nav>"#.to_string()
        }
        None => r#"<nav><a href="/login">Sign in</a></nav>"#.to_string(),
    };
    let flash = flash.map(Flash::html).unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · admin-provisioner</title>
<link rel="stylesheet" href="/static/console.css">
<script src="/static/console.js" defer></script>
</head>
<body>
<header class="top"><a class="brand" href="/">admin-provisioner</a>{links}</header>
<main>
{flash}
{main}
</main>
</body>
</html>
"#,
        title = esc(title)
    )
}

/// An HTML response with the console's security headers.
fn html(status: StatusCode, body: String) -> Response {
    let mut res = (status, axum::response::Html(body)).into_response();
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    res
}

/// `res` with the `Retry-After` of a 429 `e`.
fn with_retry_after(mut res: Response, e: &ApiError) -> Response {
    if let Some(secs) = e.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// A `303 See Other` to `to`, setting `cookies`.
fn see_other(to: &str, cookies: Vec<String>) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    res
}

fn with_cookies(mut res: Response, cookies: Vec<String>) -> Response {
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    res
}

/// An error page (status, plain words, and the error code).
fn error_page(state: &AppState, status: StatusCode, code: &str, text: &str) -> Response {
    let main = format!(
        r#"<section class="card narrow"><h1>{}</h1><p>{}</p><p class="muted">Error code: <code>{}</code></p><p><a class="btn" href="/console">Back to the console</a></p></section>"#,
        esc(status.canonical_reason().unwrap_or("Error")),
        esc(text),
        esc(code)
    );
    html(status, page("Error", None, None, &main, state.app().emulator.is_some()))
}

/// An error's plain-words explanation for people using the console.
fn describe(e: &ApiError) -> String {
    match e.code {
        "invalid_email" => format!("That e-mail address is not valid: {}.", strip_prefix_msg(&e.message)),
        "admin_exists" => {
            if e.message.contains("not created by admin-provisioner") {
                "A Cognito user with this e-mail already exists and was not created here; it was left untouched. \
                 Ask an operator to remove or link it."
                    .into()
            } else {
                "An admin with this e-mail address already exists (or is being created right now).".into()
            }
        }
        "not_found" => "That admin does not exist (any more). The list below is up to date.".into(),
        "already_active" => "This admin has already set a password, so there is no invitation to resend.".into(),
        "resend_cooldown" => format!(
            "An invitation was sent moments ago. Wait {} seconds before sending another one.",
            e.retry_after.unwrap_or(60)
        ),
        "last_admin" => {
            "You cannot remove the last active admin. Create another admin and let them sign in first.".into()
        }
        "forbidden" => "Only an active admin may do this.".into(),
        "invalid_credentials" => "Wrong e-mail or password — or the temporary password has expired (ask an admin to \
                                  resend the invitation)."
            .into(),
        "password_policy" => format!(
            "Cognito refused this password: {}",
            e.message
                .strip_prefix("the new password does not meet the password policy: ")
                .unwrap_or(&e.message)
        ),
        "no_challenge" => "This account already has its own password. Sign in with it.".into(),
        "rate_limited" if e.message.starts_with("too many attempts") => format!(
            "Too many attempts. Wait {} seconds and try again.",
            e.retry_after.unwrap_or(60)
        ),
        "rate_limited" => "Cognito is limiting requests right now. Wait a moment and try again.".into(),
        "identity_provider_unavailable" => {
            "Cognito could not be reached, so nothing was changed. Try again in a moment.".into()
        }
        "identity_provider_error" => format!("Cognito refused the request: {}", e.message),
        "database_unavailable" => "The database is unavailable. Try again in a moment.".into(),
        "saga_stuck" => format!(
            "Provisioning failed and could not be fully undone yet; it is recorded and will be retried automatically. \
             ({})",
            e.message
        ),
        "csrf" => "This form was stale or came from another site. Reload the page and try again.".into(),
        "unauthorized" => "Your session has expired. Sign in again.".into(),
        "already_bootstrapped" => "An admin already exists.".into(),
        "invalid_request" => format!("The form was incomplete: {}.", e.message),
        _ => format!(
            "Something went wrong ({}). Quote request id {} to an operator.",
            e.code,
            super::error::current_request_id()
        ),
    }
}

fn strip_prefix_msg(m: &str) -> String {
    m.strip_prefix("invalid e-mail address: ").unwrap_or(m).to_string()
}

fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

fn relative(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    let (future, secs) = (secs >= 0, secs.abs());
    // Rounded to the nearest unit: an invitation sent a minute ago expires "in 7 days", not "in 6 days".
    let text = if secs >= 86_400 - 1_800 {
        plural((secs + 43_200) / 86_400, "day")
    } else if secs >= 3_600 - 30 {
        plural((secs + 1_800) / 3_600, "hour")
    } else {
        plural(((secs + 30) / 60).max(1), "minute")
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

fn plural(n: i64, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

// ---------------------------------------------------------------------------------------------------
// Cookies, CSRF, origin
// ---------------------------------------------------------------------------------------------------

/// The value of cookie `name` in the request (parsed by `axum-extra`'s cookie jar; a malformed pair is
/// skipped, never an error).
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    axum_extra::extract::cookie::CookieJar::from_headers(headers)
        .get(name)
        .map(|c| c.value().to_string())
}

impl AppState {
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies.unwrap_or_else(|| {
            headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        })
    }

    fn set_cookie(&self, headers: &HeaderMap, name: &str, value: &str, path: &str, max_age: i64) -> String {
        format!(
            "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
            if self.secure(headers) { "; Secure" } else { "" }
        )
    }

    fn clear_cookie(&self, headers: &HeaderMap, name: &str, path: &str) -> String {
        self.set_cookie(headers, name, "", path, 0)
    }

    fn flash_cookie(&self, headers: &HeaderMap, flash: Flash) -> String {
        let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&flash).unwrap_or_default());
        self.set_cookie(headers, FLASH_COOKIE, &value, "/", 60)
    }

    /// The CSRF token of a session: HMAC-SHA256 of the session cookie (hex). The session cookie is an
    /// HttpOnly, SameSite=Strict secret a cross-site attacker cannot read, so the token is unguessable to
    /// them; the HMAC key is a fixed label so that every replica behind a load balancer, and a restarted
    /// server, computes the same token.
    pub fn csrf_token(&self, session: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(CSRF_KEY).expect("HMAC takes any key size");
        mac.update(b"admin-provisioner csrf\0");
        mac.update(session.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    fn csrf_ok(&self, session: &str, presented: &str) -> bool {
        let Some(bytes) = hex_decode(presented) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(CSRF_KEY).expect("HMAC takes any key size");
        mac.update(b"admin-provisioner csrf\0");
        mac.update(session.as_bytes());
        mac.verify_slice(&bytes).is_ok()
    }
}

/// Domain-separation key of the CSRF HMAC (not a secret: the secret is the session cookie).
const CSRF_KEY: &[u8] = b"admin-provisioner console csrf v1";

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// False when the browser says the POST comes from another site (`Origin` or `Sec-Fetch-Site`).
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        if site.eq_ignore_ascii_case("cross-site") || site.eq_ignore_ascii_case("same-site") {
            return false;
        }
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Some(host) = headers.get(header::HOST).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let origin_host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .unwrap_or("");
    !origin_host.is_empty() && origin_host.eq_ignore_ascii_case(host)
}

fn csrf_failure(state: &AppState) -> Response {
    error_page(
        state,
        StatusCode::FORBIDDEN,
        "csrf",
        "This form was stale or came from another site, so it was refused. Reload the page and try again.",
    )
}

/// The challenge kept between the login and the new-password form.
#[derive(Serialize, Deserialize)]
struct Challenge {
    /// Username to answer with.
    u: String,
    /// Cognito session.
    s: String,
    /// E-mail as typed, for the page.
    e: String,
}

fn read_challenge(headers: &HeaderMap) -> Option<Challenge> {
    let raw = cookie(headers, CHALLENGE_COOKIE)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).ok()?).ok()
}

fn read_flash(headers: &HeaderMap) -> Option<Flash> {
    let raw = cookie(headers, FLASH_COOKIE)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(raw).ok()?).ok()
}

// ---------------------------------------------------------------------------------------------------
// The signed-in admin
// ---------------------------------------------------------------------------------------------------

/// A signed-in, active admin of the console.
struct ConsoleUser {
    caller: Caller,
    admin_id: UserId,
    email: String,
    csrf: String,
}

/// The signed-in admin, or the response to send instead (to the login page, or an error page).
async fn console_user(state: &AppState, headers: &HeaderMap) -> Result<ConsoleUser, Response> {
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(see_other("/login", vec![]));
    };
    let verified = match state.verify(&token).await {
        Ok(v) => v,
        Err(TokenError::Invalid(_)) => {
            return Err(see_other(
                "/login",
                vec![
                    state.clear_cookie(headers, SESSION_COOKIE, "/"),
                    state.flash_cookie(headers, Flash::error("Your session has expired. Sign in again.")),
                ],
            ))
        }
        Err(e @ TokenError::Unavailable(_)) => {
            let e = ApiError::from(e);
            return Err(error_page(state, e.status, e.code, &describe(&e)));
        }
    };
    let caller = Caller::Token {
        sub: verified.sub,
        username: verified.username.clone(),
    };
    let admin_id = match state.provisioner().authorize(&caller).await {
        Ok(admin_provisioner_core::domain::Actor::Admin(id)) => id,
        Ok(_) | Err(Error::Forbidden) => {
            let main = format!(
                r#"<section class="card narrow"><h1>Not an admin</h1><p>You are signed in as <strong>{}</strong>, but this account is not an active admin here, so the console is closed to it.</p><form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button class="btn" type="submit">Sign out</button></form><p class="muted">Error code: <code>forbidden</code></p></section>"#,
                esc(&verified.username),
                esc(&state.csrf_token(&token))
            );
            return Err(html(
                StatusCode::FORBIDDEN,
                page("Not an admin", None, None, &main, state.app().emulator.is_some()),
            ));
        }
        Err(e) => {
            let e = ApiError::from(e);
            return Err(error_page(state, e.status, e.code, &describe(&e)));
        }
    };
    let email = match state.provisioner().admin_store().get_admin(admin_id).await {
        Ok(Some(r)) => r.user.email,
        _ => verified.username,
    };
    Ok(ConsoleUser {
        // Authorized once per request (above); the operations take the result.
        caller: Caller::Authorized(admin_id),
        admin_id,
        email,
        csrf: state.csrf_token(&token),
    })
}

/// The signed-in admin for a state-changing POST: also checks the origin and the CSRF token.
async fn console_user_for_post(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<ConsoleUser, Response> {
    if !same_origin(headers) {
        return Err(csrf_failure(state));
    }
    let user = console_user(state, headers).await?;
    let session = cookie(headers, SESSION_COOKIE).unwrap_or_default();
    if !state.csrf_ok(&session, csrf) {
        return Err(csrf_failure(state));
    }
    Ok(user)
}

// ---------------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------------

async fn root(headers: HeaderMap) -> Response {
    if cookie(&headers, SESSION_COOKIE).is_some() {
        see_other("/console", vec![])
    } else {
        see_other("/login", vec![])
    }
}

fn login_html(state: &AppState, email: &str, flash: Option<&Flash>) -> String {
    let emulator = state.app().emulator.is_some();
    let hint = if emulator {
        r#"<p class="hint">This server uses the built-in Cognito emulator: invitation e-mails arrive in the local <a href="/console/mailbox">mailbox</a>.</p>"#
    } else {
        ""
    };
    let main = format!(
        r#"<section class="card narrow">
<h1>Sign in</h1>
<p class="muted">New admins: use the temporary password from your invitation e-mail; you will then choose your own.</p>
<form method="post" action="/login" class="stack">
<label for="email">E-mail</label>
<input id="email" name="email" type="email" autocomplete="username" required value="{}">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button class="btn primary" type="submit" id="sign-in">Sign in</button>
</form>
{hint}
</section>"#,
        esc(email)
    );
    page("Sign in", None, flash, &main, emulator)
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let flash = read_flash(&headers);
    let res = html(StatusCode::OK, login_html(&state, "", flash.as_ref()));
    with_cookies(res, flash_clear(&state, &headers, flash.is_some()))
}

fn flash_clear(state: &AppState, headers: &HeaderMap, had: bool) -> Vec<String> {
    if had {
        vec![state.clear_cookie(headers, FLASH_COOKIE, "/")]
    } else {
        vec![]
    }
}

/// The sign-in form.
#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

fn new_password_html(state: &AppState, email: &str, flash: Option<&Flash>) -> String {
    let main = format!(
        r#"<section class="card narrow">
<h1>Choose a new password</h1>
<p>You signed in as <strong>{}</strong> with a temporary password. Choose your own password to finish; you have 3 minutes.</p>
<div class="policy"><p>The password must have:</p>
<ul><li>at least 8 characters</li><li>an upper-case letter (A–Z)</li><li>a lower-case letter (a–z)</li><li>a digit (0–9)</li><li>a symbol, such as <code>! @ # $ % ^ &amp; *</code></li></ul></div>
<form method="post" action="/login/new-password" class="stack">
<label for="new_password">New password</label>
<input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="8">
<label for="confirm_password">Repeat the new password</label>
<input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" required minlength="8">
<button class="btn primary" type="submit" id="set-password">Set password and sign in</button>
</form>
</section>"#,
        esc(email)
    );
    page(
        "Choose a new password",
        None,
        flash,
        &main,
        state.app().emulator.is_some(),
    )
}

async fn login_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return csrf_failure(&state);
    }
    let Ok(Form(form)) = form else {
        let f = Flash::error("Enter your e-mail and password.");
        return html(StatusCode::BAD_REQUEST, login_html(&state, "", Some(&f)));
    };
    if let Err(e) = state.edge().limits.auth_attempt(&form.email, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(html(e.status, login_html(&state, form.email.trim(), Some(&f))), &e);
    }
    match state
        .provisioner()
        .login(&form.email, &Password::new(form.password), Some(&request_id))
        .await
    {
        Ok(LoginOutcome::Tokens(tokens)) => see_other(
            "/console",
            vec![
                state.set_cookie(
                    &headers,
                    SESSION_COOKIE,
                    tokens.id_token.expose(),
                    "/",
                    tokens.expires_in.max(60),
                ),
                state.clear_cookie(&headers, CHALLENGE_COOKIE, "/login"),
            ],
        ),
        Ok(LoginOutcome::NewPasswordRequired { session, username }) => {
            let challenge = Challenge {
                u: username,
                s: session.expose().to_string(),
                e: form.email.trim().to_string(),
            };
            let value = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&challenge).unwrap_or_default());
            let res = html(StatusCode::OK, new_password_html(&state, &challenge.e, None));
            with_cookies(
                res,
                vec![state.set_cookie(&headers, CHALLENGE_COOKIE, &value, "/login", CHALLENGE_SECONDS)],
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            html(e.status, login_html(&state, form.email.trim(), Some(&f)))
        }
    }
}

/// The new-password form.
#[derive(Deserialize)]
struct NewPasswordForm {
    new_password: String,
    confirm_password: String,
}

async fn new_password_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<NewPasswordForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return csrf_failure(&state);
    }
    let Some(challenge) = read_challenge(&headers) else {
        let f = Flash::error(
            "The password step expired (you have 3 minutes to choose a password). Sign in again with the temporary password.",
        );
        return html(StatusCode::UNAUTHORIZED, login_html(&state, "", Some(&f)));
    };
    let Ok(Form(form)) = form else {
        let f = Flash::error("Enter the new password twice.");
        return html(
            StatusCode::BAD_REQUEST,
            new_password_html(&state, &challenge.e, Some(&f)),
        );
    };
    if form.new_password != form.confirm_password {
        let f = Flash::error("The two passwords do not match. Type the same password twice.");
        return html(
            StatusCode::BAD_REQUEST,
            new_password_html(&state, &challenge.e, Some(&f)),
        );
    }
    if let Err(e) = state.edge().limits.auth_attempt(&challenge.e, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(html(e.status, new_password_html(&state, &challenge.e, Some(&f))), &e);
    }
    match state
        .provisioner()
        .complete_new_password(
            &challenge.u,
            &Secret::new(challenge.s.clone()),
            &Password::new(form.new_password),
            Some(&request_id),
        )
        .await
    {
        Ok(tokens) => see_other(
            "/console",
            vec![
                state.set_cookie(
                    &headers,
                    SESSION_COOKIE,
                    tokens.id_token.expose(),
                    "/",
                    tokens.expires_in.max(60),
                ),
                state.clear_cookie(&headers, CHALLENGE_COOKIE, "/login"),
                state.flash_cookie(&headers, Flash::ok("Your new password is set. Welcome!")),
            ],
        ),
        Err(Error::InvalidCredentials) => {
            let f = Flash::error(
                "The password step expired (you have 3 minutes to choose a password). Sign in again with the temporary password.",
            );
            with_cookies(
                html(StatusCode::UNAUTHORIZED, login_html(&state, &challenge.e, Some(&f))),
                vec![state.clear_cookie(&headers, CHALLENGE_COOKIE, "/login")],
            )
        }
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            html(e.status, new_password_html(&state, &challenge.e, Some(&f)))
        }
    }
}

/// The sign-out form (the CSRF token is checked when a session exists).
#[derive(Deserialize, Default)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn signed_out(state: &AppState, headers: &HeaderMap) -> Response {
    see_other(
        "/login",
        vec![
            state.clear_cookie(headers, SESSION_COOKIE, "/"),
            state.clear_cookie(headers, CHALLENGE_COOKIE, "/login"),
            state.flash_cookie(headers, Flash::ok("You are signed out.")),
        ],
    )
}

/// `GET /logout`: changes nothing; offers the sign-out button (a cross-site link carries no session, since
/// the cookie is `SameSite=Strict`, and just lands on the login page).
async fn logout_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(session) = cookie(&headers, SESSION_COOKIE) else {
        return see_other("/login", vec![]);
    };
    let main = format!(
        r#"<section class="card narrow"><h1>Sign out?</h1><form method="post" action="/logout" class="stack"><input type="hidden" name="csrf" value="{}"><button class="btn primary" type="submit">Sign out</button></form></section>"#,
        esc(&state.csrf_token(&session))
    );
    html(
        StatusCode::OK,
        page("Sign out", None, None, &main, state.app().emulator.is_some()),
    )
}

/// `POST /logout`: clears the session; with a session it needs the CSRF token and a same-origin request.
async fn logout_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if let Some(session) = cookie(&headers, SESSION_COOKIE) {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if !same_origin(&headers) || !state.csrf_ok(&session, &csrf) {
            return csrf_failure(&state);
        }
    }
    signed_out(&state, &headers)
}

// ---------------------------------------------------------------------------------------------------
// Admins
// ---------------------------------------------------------------------------------------------------

fn badge(status: InviteStatus) -> String {
    let (class, label, title) = match status {
        InviteStatus::Pending => ("pending", "pending", "Being created in Cognito and the database"),
        InviteStatus::Invited => ("invited", "invited", "Invitation sent; waiting for the first sign-in"),
        InviteStatus::Expired => (
            "expired",
            "expired",
            "The temporary password expired: resend the invitation",
        ),
        InviteStatus::Active => ("active", "active", "Signed in and chose a password"),
        InviteStatus::Disabled => (
            "expired",
            "disabled",
            "Disabled in Cognito and the database: cannot sign in",
        ),
        InviteStatus::Failed => ("failed", "failed", "Provisioning failed and needs an operator"),
    };
    format!(r#"<span class="badge {class}" title="{title}">{label}</span>"#)
}

fn admin_row(a: &AdminView, me: &str, csrf: &str, now: DateTime<Utc>) -> String {
    let email = esc(&a.email);
    let you = if a.email.eq_ignore_ascii_case(me) {
        r#" <span class="you">(you)</span>"#
    } else {
        ""
    };
    let expiry = match (&a.invite, a.status) {
        (_, InviteStatus::Active) => r#"<span class="muted">—</span>"#.to_string(),
        (Some(i), _) => match i.expires_at {
            Some(t) => format!(
                r#"<time datetime="{}" title="{}">{}</time>"#,
                t.to_rfc3339(),
                format_time(t),
                esc(&relative(t, now))
            ),
            None => "—".into(),
        },
        (None, _) => r#"<span class="muted">—</span>"#.to_string(),
    };
    let sent = match &a.invite {
        Some(i) if !i.delivered => format!(
            r#"{} <span class="warn" title="Cognito could not deliver the last invitation; resend it">undelivered</span>"#,
            i.invites_sent
        ),
        Some(i) => i.invites_sent.to_string(),
        None => "—".into(),
    };
    let id = a.id;
    let mut actions = String::new();
    if matches!(a.status, InviteStatus::Invited | InviteStatus::Expired) {
        actions.push_str(&format!(
            r#"<form method="post" action="/console/admins/{id}/resend" data-confirm="Send a new invitation to {email}? Their current temporary password stops working."><input type="hidden" name="csrf" value="{csrf}"><button class="btn small" type="submit">Resend</button></form>"#,
            csrf = esc(csrf)
        ));
    }
    match a.status {
        InviteStatus::Invited | InviteStatus::Expired => actions.push_str(&format!(
            r#"<form method="post" action="/console/admins/{id}/remove" data-confirm="Revoke the invitation of {email}? Their Cognito user and database records are deleted."><input type="hidden" name="csrf" value="{csrf}"><button class="btn small danger" type="submit">Revoke</button></form>"#,
            csrf = esc(csrf)
        )),
        InviteStatus::Active | InviteStatus::Disabled => actions.push_str(&format!(
            r#"<form method="post" action="/console/admins/{id}/remove" data-confirm="Remove the admin {email}? They lose access; their Cognito user and database records are deleted."><input type="hidden" name="csrf" value="{csrf}"><button class="btn small danger" type="submit">Remove</button></form>"#,
            csrf = esc(csrf)
        )),
        InviteStatus::Pending => actions.push_str(r#"<span class="muted">being created…</span>"#),
        InviteStatus::Failed => actions.push_str(&format!(
            r#"<span class="muted" title="{}">needs an operator</span>"#,
            esc(a.last_error.as_deref().unwrap_or(""))
        )),
    }
    format!(
        r#"<tr data-email="{lower}"><td class="email">{email}{you}</td><td>{}</td><td>{expiry}</td><td class="num">{sent}</td><td class="actions"><div>{actions}</div></td></tr>"#,
        badge(a.status),
        lower = esc(&a.email.to_lowercase())
    )
}

/// The admin list page's query: the same filters and cursor as `GET /api/admins`.
#[derive(Deserialize, Default)]
struct ListParams {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    q: Option<String>,
    #[serde(default)]
    cursor: Option<String>,
}

/// Page size of the console's admin list.
const CONSOLE_PAGE_SIZE: u32 = 50;

/// The filter form and the "next page" link of the admin list.
fn list_controls(params: &ListParams, next: Option<String>) -> (String, String) {
    let status = params.status.as_deref().unwrap_or("");
    let options: String = ["", "pending", "invited", "expired", "active", "failed"]
        .iter()
        .map(|s| {
            format!(
                r#"<option value="{s}"{sel}>{label}</option>"#,
                sel = if *s == status { " selected" } else { "" },
                label = if s.is_empty() { "any status" } else { s },
            )
        })
        .collect();
    let form = format!(
        r#"<form method="get" action="/console" class="inline" id="admin-filter"><label for="filter-q" class="sr-only">E-mail starts with</label><input id="filter-q" name="q" type="search" placeholder="e-mail starts with…" value="{q}"><label for="filter-status" class="sr-only">Status</label><select id="filter-status" name="status">{options}</select><button class="btn" type="submit">Filter</button></form>"#,
        q = esc(params.q.as_deref().unwrap_or("")),
    );
    let link = match next {
        Some(cursor) => {
            let mut query = format!("cursor={}", url_encode(&cursor));
            if !status.is_empty() {
                query.push_str(&format!("&status={}", url_encode(status)));
            }
            if let Some(q) = params.q.as_deref().filter(|q| !q.is_empty()) {
                query.push_str(&format!("&q={}", url_encode(q)));
            }
            format!(
                r#"<p class="pager"><a class="btn" id="next-page" href="/console?{}">Next page →</a></p>"#,
                esc(&query)
            )
        }
        None => String::new(),
    };
    (form, link)
}

/// Percent-encodes a query value.
fn url_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn console_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<axum::extract::Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let params = params.map(|p| p.0).unwrap_or_default();
    let flash = read_flash(&headers);
    let api_params = super::api::AdminListParams {
        limit: Some(CONSOLE_PAGE_SIZE),
        cursor: params.cursor.clone(),
        status: params.status.clone(),
        email_prefix: params.q.clone(),
    };
    let query = match api_params.to_query() {
        Ok(q) => q,
        Err(e) => return error_page(&state, e.status, e.code, &describe(&e)),
    };
    let now = state.provisioner().now();
    let listed = async {
        let page = state.provisioner().list_admin_page(&query).await?;
        let counts = state
            .provisioner()
            .admin_store()
            .count_admins_by_status(now)
            .await
            .map_err(Error::from)?;
        Ok::<_, Error>((page, counts))
    };
    let (listing, (active, invited, expired)) = match listed.await {
        Ok(found) => found,
        Err(e) => {
            let e = ApiError::from(e);
            return error_page(&state, e.status, e.code, &describe(&e));
        }
    };
    let admins = listing.admins;
    let (filter_form, next_link) = list_controls(&params, listing.next.map(|c| c.encode()));
    let rows: String = admins
        .iter()
        .map(|a| admin_row(a, &user.email, &user.csrf, now))
        .collect();
    let days = state.provisioner().settings().invite_validity_days;
    let main = format!(
        r#"<div class="title-row"><h1>Admins</h1><p class="summary">{} active · {} invited · {} expired</p></div>
<section class="card">
<h2>Create New Admin</h2>
<form method="post" action="/console/admins" class="inline" id="create-admin">
<input type="hidden" name="csrf" value="{csrf}">
<label for="new-email" class="sr-only">E-mail of the new admin</label>
<input id="new-email" name="email" type="email" placeholder="new.admin@example.com" required autocomplete="off">
<button class="btn primary" type="submit">Create New Admin</button>
</form>
<p class="hint">Cognito e-mails them a temporary password, valid for {days} days. At their first sign-in they choose their own password.</p>
</section>
<section class="card">
{filter_form}
<table class="admins">
<thead><tr><th>E-mail</th><th>Status</th><th>Invite expires</th><th class="num">Invites sent</th><th class="actions">Actions</th></tr></thead>
<tbody>{rows}</tbody>
</table>
{next_link}
</section>"#,
        active,
        invited,
        expired,
        csrf = esc(&user.csrf),
    );
    let nav = Nav {
        email: &user.email,
        csrf: &user.csrf,
        emulator: state.app().emulator.is_some(),
        current: "/console",
    };
    let res = html(
        StatusCode::OK,
        page("Admins", Some(&nav), flash.as_ref(), &main, nav.emulator),
    );
    with_cookies(res, flash_clear(&state, &headers, flash.is_some()))
}

/// The "Create New Admin" form.
#[derive(Deserialize)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

fn back_to_console(state: &AppState, headers: &HeaderMap, flash: Flash) -> Response {
    see_other("/console", vec![state.flash_cookie(headers, flash)])
}

async fn create_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or(CreateForm {
        csrf: String::new(),
        email: String::new(),
    });
    let user = match console_user_for_post(&state, &headers, &form.csrf).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    if let Err(e) = state.edge().limits.admin_action(&user.admin_id.to_string()) {
        return back_to_console(&state, &headers, Flash::error(describe(&e)));
    }
    let flash = match state
        .provisioner()
        .provision_new_admin(&user.caller, &form.email, Some(&request_id))
        .await
    {
        Ok(p) => {
            let days = state.provisioner().settings().invite_validity_days;
            if p.invite.delivered {
                Flash::ok(format!(
                    "{} was created in Cognito and the database, and their invitation was sent. It is valid for {days} days.",
                    p.user.email
                ))
            } else {
                Flash::error(format!(
                    "{} was created, but Cognito could not deliver the invitation e-mail. Use Resend.",
                    p.user.email
                ))
            }
        }
        Err(e) => Flash::error(describe(&ApiError::from(e))),
    };
    back_to_console(&state, &headers, flash)
}

/// What every per-admin button (Resend, Revoke/Remove) starts with: the CSRF-checked console user, the
/// admin id from the path and that admin's e-mail for the flash message.
async fn admin_action(
    state: &AppState,
    headers: &HeaderMap,
    id: &str,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Result<(ConsoleUser, UserId, String), Response> {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let user = console_user_for_post(state, headers, &csrf).await?;
    let id = parse_admin_id(id).map_err(|e| back_to_console(state, headers, Flash::error(describe(&e))))?;
    let email = match state.provisioner().get_admin_view(id).await {
        Ok(a) => a.email,
        Err(_) => "the admin".into(),
    };
    Ok((user, id, email))
}

async fn resend_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (user, id, email) = match admin_action(&state, &headers, &id, form).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    if let Err(e) = state.edge().limits.admin_action(&user.admin_id.to_string()) {
        return back_to_console(&state, &headers, Flash::error(describe(&e)));
    }
    let flash = match state
        .provisioner()
        .resend_admin_invite_by_id(&user.caller, id, Some(&request_id))
        .await
    {
        Ok(invite) if invite.delivered => Flash::ok(format!(
            "A new invitation was sent to {email}. The previous temporary password no longer works."
        )),
        Ok(_) => Flash::error(format!(
            "Cognito could not deliver the new invitation to {email}. Try Resend again later."
        )),
        Err(e) => Flash::error(describe(&ApiError::from(e))),
    };
    back_to_console(&state, &headers, flash)
}

async fn remove_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let (user, id, email) = match admin_action(&state, &headers, &id, form).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    let flash = match state
        .provisioner()
        .remove_admin(&user.caller, id, Some(&request_id))
        .await
    {
        Ok(()) => Flash::ok(format!("{email} was removed from Cognito and the database.")),
        Err(e) => Flash::error(describe(&ApiError::from(e))),
    };
    back_to_console(&state, &headers, flash)
}

// ---------------------------------------------------------------------------------------------------
// Audit log and mailbox
// ---------------------------------------------------------------------------------------------------

async fn audit_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let events = match audit_events(&state, 200).await {
        Ok(e) => e,
        Err(e) => return error_page(&state, e.status, e.code, &describe(&e)),
    };
    let rows: String = events
        .iter()
        .map(|e| {
            let actor = e.actor_email.clone().unwrap_or_else(|| e.actor.clone());
            let outcome_class = if e.outcome.starts_with("success") { "ok" } else { "bad" };
            format!(
                r#"<tr><td><time datetime="{}">{}</time></td><td>{}</td><td><code>{}</code></td><td>{}</td><td class="{outcome_class}">{}</td><td class="rid"><code>{}</code></td></tr>"#,
                e.at.to_rfc3339(),
                format_time(e.at),
                esc(&actor),
                esc(&e.action),
                esc(&e.target),
                esc(&e.outcome),
                esc(e.request_id.as_deref().unwrap_or("—"))
            )
        })
        .collect();
    let main = format!(
        r#"<div class="title-row"><h1>Audit log</h1><p class="summary">newest first</p></div>
<section class="card"><table class="audit"><thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Target</th><th>Outcome</th><th>Request id</th></tr></thead><tbody>{rows}</tbody></table></section>"#
    );
    let nav = Nav {
        email: &user.email,
        csrf: &user.csrf,
        emulator: state.app().emulator.is_some(),
        current: "/console/audit",
    };
    html(StatusCode::OK, page("Audit log", Some(&nav), None, &main, nav.emulator))
}

/// How many of the newest invitations the Mailbox page shows (the folder may hold thousands).
const MAILBOX_PAGE_SIZE: usize = 100;
/// The last reconciliation report of this server (`serve`'s background reconciler).
async fn drift_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let status = crate::reconcile::status();
    let failure = status
        .last_error
        .as_deref()
        .map(|e| format!(r#"<p class="bad">The last run failed: {}</p>"#, esc(e)))
        .unwrap_or_default();
    let body = match &status.last {
        None => format!(
            r#"<p>No reconciliation has run in this server yet (interval <code>RECONCILE_INTERVAL_SECS</code> = {}; 0 is off). Run <code>admin-provisioner reconcile</code> on the server for a report now.</p>"#,
            state.app().config.reconcile_interval_secs
        ),
        Some(report) => {
            let s = &report.summary;
            let counts: String = s
                .counts
                .iter()
                .map(|(k, n)| format!("<li><code>{}</code> {n}</li>", esc(k)))
                .collect();
            let rows: String = report
                .findings
                .iter()
                .map(|f| {
                    format!(
                        r#"<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                        esc(f.kind.code()),
                        esc(&f.code),
                        esc(f.email.as_deref().unwrap_or("—")),
                        esc(&f.message),
                        esc(&f.fix)
                    )
                })
                .collect();
            let headline = if report.is_clean() {
                r#"<p class="ok">Cognito and the database agree.</p>"#.to_string()
            } else {
                format!(
                    r#"<p class="bad">{} finding(s) need attention. Safe repairs: <code>admin-provisioner reconcile --repair</code>.</p>"#,
                    s.needs_attention
                )
            };
            format!(
                r#"{headline}<p class="summary">Last run {} ({:.1} s): {} Cognito users, {} admins.</p><ul class="counts">{counts}</ul>
<section class="card"><table class="audit"><thead><tr><th>Kind</th><th>Code</th><th>E-mail</th><th>What is wrong</th><th>Fix</th></tr></thead><tbody>{rows}</tbody></table></section>"#,
                s.finished_at.map(format_time).unwrap_or_default(),
                s.seconds,
                s.cognito_users,
                s.database_admins
            )
        }
    };
    let main = format!(r#"<div class="title-row"><h1>Drift</h1></div>{failure}{body}"#);
    let nav = Nav {
        email: &user.email,
        csrf: &user.csrf,
        emulator: state.app().emulator.is_some(),
        current: "/console/drift",
    };
    html(StatusCode::OK, page("Drift", Some(&nav), None, &main, nav.emulator))
}

async fn mailbox_page(State(state): State<AppState>) -> Response {
    let Some(emu) = state.app().emulator.clone() else {
        return error_page(
            &state,
            StatusCode::NOT_FOUND,
            "not_found",
            "The mailbox exists only with the built-in Cognito emulator; real Cognito e-mails invitations to their recipients.",
        );
    };
    let mailbox = emu.mailbox();
    let (messages, total) = match tokio::task::spawn_blocking(move || mailbox.recent(MAILBOX_PAGE_SIZE)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            return error_page(
                &state,
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &format!("The mailbox folder cannot be read: {e}"),
            )
        }
        Err(e) => return ApiError::internal(e).into_response(),
    };
    let items: String = messages
        .iter()
        .map(|m| {
            let password = m
                .temporary_password()
                .map(|p| {
                    format!(
                        r#"<p class="temp">Temporary password: <code class="temp-password">{}</code></p>"#,
                        esc(p.expose())
                    )
                })
                .unwrap_or_default();
            format!(
                r#"<article class="card message" data-to="{to_lower}">
<dl><dt>To</dt><dd class="to">{to}</dd><dt>Date</dt><dd>{date}</dd><dt>Subject</dt><dd>{subject}</dd></dl>
{password}
<pre class="body">{body}</pre>
</article>"#,
                to_lower = esc(&m.to.to_lowercase()),
                to = esc(&m.to),
                date = esc(&m.date),
                subject = esc(&m.subject),
                body = esc(&m.body),
            )
        })
        .collect();
    let empty = if messages.is_empty() {
        r#"<p class="muted">No invitations yet.</p>"#
    } else {
        ""
    };
    let main = format!(
        r#"<div class="title-row"><h1>Mailbox</h1><p class="summary">{n} message{s}, newest first{shown}</p></div>
<div class="notice"><strong>Local stand-in for the recipients' inboxes.</strong> This server uses the built-in Cognito emulator, which cannot send e-mail: every invitation it "sends" is written to <code>{dir}</code> and shown here, temporary password included, so you can sign in as the new admin. With a real Cognito user pool this page does not exist and the invitations go to the recipients.</div>
{empty}{items}"#,
        n = total,
        s = if total == 1 { "" } else { "s" },
        shown = if total > messages.len() {
            format!(" (the newest {} shown)", messages.len())
        } else {
            String::new()
        },
        dir = esc(&emu.mailbox().dir().display().to_string()),
    );
    html(StatusCode::OK, page("Mailbox", None, None, &main, true))
}

// ---------------------------------------------------------------------------------------------------
// Static assets
// ---------------------------------------------------------------------------------------------------

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        CSS,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        JS,
    )
        .into_response()
}

/// Asks for confirmation before submitting a form that carries `data-confirm`.
const JS: &str = r#"document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) { event.preventDefault(); }
});
"#;

const CSS: &str = r#":root { --fg:#1d2433; --muted:#667085; --line:#e4e7ec; --bg:#f6f7f9; --card:#fff; --accent:#2457d6; --accent-dark:#1b44a8; --danger:#c4320a; --ok-bg:#ecfdf3; --ok-fg:#05603a; --err-bg:#fef3f2; --err-fg:#b42318; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif; color:var(--fg); background:var(--bg); }
header.top { display:flex; align-items:center; gap:24px; padding:12px 32px; background:#101828; color:#fff; }
header.top a { color:#d0d5dd; text-decoration:none; }
header.top a:hover, header.top a[aria-current] { color:#fff; }
.brand { font-weight:700; letter-spacing:.2px; color:#fff !important; }
header nav { display:flex; gap:18px; flex:1; }
.who { display:flex; align-items:center; gap:12px; color:#d0d5dd; font-size:14px; }
.who strong { color:#fff; font-weight:600; }
.who form { margin:0; }
main { max-width:1040px; margin:28px auto; padding:0 24px; }
h1 { font-size:24px; margin:0 0 4px; }
h2 { font-size:16px; margin:0 0 12px; }
.title-row { display:flex; align-items:baseline; justify-content:space-between; margin-bottom:16px; }
.summary, .muted, .hint { color:var(--muted); }
.hint { font-size:13px; margin:10px 0 0; }
.card { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:20px 24px; margin-bottom:20px; box-shadow:0 1px 2px rgba(16,24,40,.04); }
.card.narrow { max-width:440px; margin:40px auto; }
form.stack { display:flex; flex-direction:column; gap:6px; }
form.stack label { font-weight:600; font-size:14px; margin-top:8px; }
form.stack button { margin-top:16px; }
form.inline { display:flex; gap:10px; }
form.inline input[type=email] { flex:1; }
input[type=email], input[type=password], input[type=text] { font:inherit; padding:9px 12px; border:1px solid #d0d5dd; border-radius:8px; background:#fff; }
input:focus { outline:2px solid #b2ccff; border-color:var(--accent); }
.btn { font:inherit; font-weight:600; font-size:14px; padding:9px 16px; border-radius:8px; border:1px solid #d0d5dd; background:#fff; color:var(--fg); cursor:pointer; text-decoration:none; display:inline-block; }
.btn:hover { background:#f2f4f7; }
.btn.primary { background:var(--accent); border-color:var(--accent); color:#fff; }
.btn.primary:hover { background:var(--accent-dark); }
.btn.danger { color:var(--danger); border-color:#fda29b; }
.btn.danger:hover { background:var(--err-bg); }
.btn.small { padding:5px 12px; font-size:13px; }
.btn.link { background:none; border:none; color:#d0d5dd; padding:0; font-weight:500; }
.btn.link:hover { color:#fff; background:none; }
table { width:100%; border-collapse:collapse; }
th { text-align:left; font-size:12px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); font-weight:600; padding:0 12px 10px; border-bottom:1px solid var(--line); }
td { padding:12px; border-bottom:1px solid var(--line); vertical-align:middle; }
tbody tr:last-child td { border-bottom:none; }
td.num, th.num { text-align:right; }
td.email { font-weight:500; }
td.actions div { display:flex; gap:8px; justify-content:flex-end; }
td.actions form { margin:0; }
th.actions { text-align:right; }
.you { color:var(--muted); font-weight:400; font-size:13px; }
td.ok { color:var(--ok-fg); } td.bad { color:var(--err-fg); }
td.rid code { font-size:12px; color:var(--muted); }
.badge { display:inline-block; padding:2px 10px; border-radius:999px; font-size:12px; font-weight:600; }
.badge.active { background:var(--ok-bg); color:var(--ok-fg); }
.badge.invited { background:#eff4ff; color:#1849a9; }
.badge.expired { background:#fffaeb; color:#b54708; }
.badge.pending { background:#f2f4f7; color:#344054; }
.badge.failed { background:var(--err-bg); color:var(--err-fg); }
.warn { color:#b54708; font-size:12px; }
.flash { padding:12px 16px; border-radius:8px; margin-bottom:20px; font-weight:500; }
.flash.ok { background:var(--ok-bg); color:var(--ok-fg); border:1px solid #abefc6; }
.flash.error { background:var(--err-bg); color:var(--err-fg); border:1px solid #fecdca; }
.card.narrow .flash { margin:0 0 12px; }
.notice { background:#fffaeb; border:1px solid #fedf89; color:#7a2e0e; border-radius:8px; padding:12px 16px; margin-bottom:20px; }
.policy { background:var(--bg); border-radius:8px; padding:8px 16px; font-size:14px; }
.policy ul { margin:4px 0 8px; padding-left:20px; }
.message dl { display:grid; grid-template-columns:80px 1fr; gap:2px 12px; margin:0 0 12px; }
.message dt { color:var(--muted); font-size:13px; }
.message dd { margin:0; }
.message .temp code { font-size:16px; background:#eff4ff; padding:2px 8px; border-radius:6px; }
pre.body { white-space:pre-wrap; background:var(--bg); padding:12px; border-radius:8px; font-size:13px; margin:0; }
code { font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; }
.sr-only { position:absolute; width:1px; height:1px; overflow:hidden; clip:rect(0 0 0 0); }
"#;

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(1000))]

        /// Any `Cookie` header: reading the session, challenge and flash cookies never panics.
        #[test]
        fn any_cookie_header_is_read_without_panicking(raw in "[ -~]{0,300}", value in "[A-Za-z0-9_=;. -]{0,200}") {
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&raw) {
                headers.append(header::COOKIE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("{CHALLENGE_COOKIE}={value}; {FLASH_COOKIE}={value}")) {
                headers.append(header::COOKIE, v);
            }
            let _ = cookie(&headers, SESSION_COOKIE);
            let _ = read_challenge(&headers);
            let _ = read_flash(&headers);
        }
    }

    #[test]
    fn esc_escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn a_cross_site_origin_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
        h.insert(header::ORIGIN, "https://evil.example".parse().unwrap());
        assert!(!same_origin(&h));
        h.insert(header::ORIGIN, "http://127.0.0.1:8080".parse().unwrap());
        assert!(same_origin(&h));
    }

    #[test]
    fn relative_times_round_to_the_nearest_unit() {
        let now = Utc::now();
        assert_eq!(
            relative(now + chrono::Duration::days(7) - chrono::Duration::seconds(5), now),
            "in 7 days"
        );
        assert_eq!(relative(now - chrono::Duration::hours(3), now), "3 hours ago");
        assert_eq!(relative(now + chrono::Duration::seconds(10), now), "in 1 minute");
    }

    #[test]
    fn cookie_finds_the_named_value() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=1; ap_session=tok.en.x; b=2".parse().unwrap());
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("tok.en.x"));
    }
}
