//! The web console: server-rendered HTML over the same provisioner calls as the API.
//!
//! No front-end build and no framework: every page is an [askama](https://askama.rs) template in
//! `templates/console/` (compile-time checked, HTML-escaped by default: no `|safe` anywhere), extending
//! `base.html`. The stylesheet and the one small script (it only adds `confirm()` dialogs to
//! destructive buttons) are `static/console.{css,js}`, embedded in the binary and served under
//! `/static/` with a content hash as `ETag` and in the page's `?v=` links, so browsers cache them
//! and the CSP (`script-src 'self'`, no inline script or style) holds. Pages:
//!
//! * `/login` — e-mail and password; at first login, the "choose a new password" form (the Cognito
//!   challenge session travels in a short-lived private cookie, never in the page);
//! * `/console` — the admins with status, invitation expiry and count, a "Create New Admin" form, and
//!   Resend / Revoke / Remove buttons; results come back as flash messages in plain words; a `pending`
//!   or `failed` line links to its saga;
//! * `/console/sagas/{id}` — one saga log entry (id, e-mail, step, state, owner, lease, attempts, last
//!   error), read from the saga log only, so it works while Cognito is unreachable;
//! * `/console/audit` — the audit log; `/console/drift` — the last reconciliation report;
//! * `/console/mailbox` — emulator mode only: the invitations the built-in emulator "delivered", with
//!   the temporary passwords visible, because it stands in for the recipients' inboxes;
//! * `/logout`.
//!
//! Cookies ([`super::cookies`]): the session (the Cognito ID token), the challenge and the flash message
//! are in `axum-extra`'s private jar — encrypted and authenticated under `CONSOLE_COOKIE_KEY` —
//! `HttpOnly; SameSite=Strict` (`Secure` over HTTPS); tokens never appear in HTML or in script-readable
//! storage, and a cookie altered or made under another key is ignored. Every token is verified like a
//! Bearer token on every request. CSRF: every state-changing form carries an HMAC of the session cookie
//! under the cookie key (`console/csrf_field.html`), checked server-side (403 `csrf`), and a POST whose
//! `Origin` is another site is refused.

use super::api::{audit_events, parse_admin_id};
use super::auth::TokenError;
use super::edge::ClientAddr;
use super::error::ApiError;
use super::{AppState, RequestId};
use admin_provisioner_core::domain::InviteStatus;
use admin_provisioner_core::domain::{Password, Secret, UserId};
use admin_provisioner_core::store::{SagaKind, SagaRecord, SagaState};
use admin_provisioner_core::{AdminView, Caller, Error, LoginOutcome};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, PrivateCookieJar, SameSite};
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
        .route("/console/admins/{id}/disable", post(disable_submit))
        .route("/console/admins/{id}/enable", post(enable_submit))
        .route(
            "/console/scim-tokens",
            get(scim_tokens_page).post(scim_token_create_submit),
        )
        .route("/console/scim-tokens/{name}/revoke", post(scim_token_revoke_submit))
        .route("/console/sagas/{id}", get(saga_page))
        .route("/console/audit", get(audit_page))
        .route("/console/mailbox", get(mailbox_page))
        .route("/console/drift", get(drift_page))
        .route("/static/{file}", get(static_file))
}

// ---------------------------------------------------------------------------------------------------
// Page chrome (the layout's data) and rendering
// ---------------------------------------------------------------------------------------------------

/// A flash message: shown once, on the next page.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Flash {
    /// `ok` or `error` (also the CSS class).
    k: String,
    /// The text (plain words).
    t: String,
}

impl Flash {
    /// A success message.
    pub fn ok(t: impl Into<String>) -> Self {
        Self {
            k: "ok".into(),
            t: t.into(),
        }
    }
    /// A failure message.
    pub fn error(t: impl Into<String>) -> Self {
        Self {
            k: "error".into(),
            t: t.into(),
        }
    }
    /// The ARIA role: `status` for success, `alert` for failure.
    pub fn role(&self) -> &'static str {
        if self.k == "ok" {
            "status"
        } else {
            "alert"
        }
    }
}

/// One link of the signed-in navigation.
pub struct NavLink {
    /// Target.
    pub href: &'static str,
    /// Text.
    pub label: &'static str,
    /// True on its own page (`aria-current`).
    pub current: bool,
}

/// The signed-in header: the links, who is signed in, and the sign-out form's CSRF token.
pub struct Nav {
    /// Links, in order.
    pub links: Vec<NavLink>,
    /// The admin's e-mail.
    pub email: String,
    /// CSRF token for the sign-out form.
    pub csrf: String,
}

/// Versions (content hashes) of the static files, for cache-busting `?v=` links.
pub struct Assets {
    /// Of `console.css`.
    pub css: &'static str,
    /// Of `console.js`.
    pub js: &'static str,
}

/// What `base.html` needs: every page template has a `chrome: Chrome` field.
pub struct Chrome {
    /// The `<title>` (before " · admin-provisioner").
    pub title: String,
    /// Signed-in navigation, or `None` for the signed-out header.
    pub nav: Option<Nav>,
    /// The flash message to show at the top, if any.
    pub flash: Option<Flash>,
    /// Emulator mode (the signed-out header links to the mailbox).
    pub emulator: bool,
    /// Static file versions.
    pub assets: Assets,
}

impl Chrome {
    /// The chrome of a signed-out page.
    pub fn signed_out(state: &AppState, title: &str, flash: Option<Flash>) -> Self {
        Self {
            title: title.to_string(),
            nav: None,
            flash,
            emulator: state.app().emulator.is_some(),
            assets: assets(),
        }
    }

    /// The chrome of a signed-in page; `current` is its path in the navigation (`/console`, …).
    pub fn signed_in(state: &AppState, user: &ConsoleUser, title: &str, current: &str, flash: Option<Flash>) -> Self {
        let emulator = state.app().emulator.is_some();
        let links: Vec<NavLink> = [
            ("/console", "Admins"),
            ("/console/audit", "Audit log"),
            ("/console/drift", "Drift"),
            ("/console/scim-tokens", "SCIM tokens"),
        ]
        .into_iter()
        .chain(emulator.then_some(("/console/mailbox", "Mailbox")))
        .map(|(href, label)| NavLink {
            href,
            label,
            current: href == current,
        })
        .collect();
        Self {
            title: title.to_string(),
            nav: Some(Nav {
                links,
                email: user.email.clone(),
                csrf: user.csrf.clone(),
            }),
            flash,
            emulator,
            assets: assets(),
        }
    }
}

/// The console's Content-Security-Policy: only this origin's stylesheet and script, no inline code.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Renders `page` as an HTML response with the console's security headers (a template that fails to
/// render — it cannot, short of a formatting error — is a 500 in the JSON envelope).
pub fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(body) => {
            let mut res = (status, axum::response::Html(body)).into_response();
            let h = res.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
            h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
            res
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// `res` with the `Retry-After` of a 429 `e`.
fn with_retry_after(mut res: Response, e: &ApiError) -> Response {
    if let Some(secs) = e.retry_after {
        res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    res
}

/// A `303 See Other` to `to`.
fn see_other(to: &str) -> Response {
    let mut res = StatusCode::SEE_OTHER.into_response();
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// `res` with the cookie changes of `jar` (`Set-Cookie` headers).
fn with_jar(jar: PrivateCookieJar, res: Response) -> Response {
    (jar, res).into_response()
}

#[derive(Template)]
#[template(path = "console/error.html")]
struct ErrorPage {
    chrome: Chrome,
    heading: String,
    text: String,
    code: String,
}

/// An error page (status, plain words, and the error code).
fn error_page(state: &AppState, status: StatusCode, code: &str, text: &str) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::signed_out(state, "Error", None),
            heading: status.canonical_reason().unwrap_or("Error").to_string(),
            text: text.to_string(),
            code: code.to_string(),
        },
    )
}

/// A core error's plain-words explanation for people using the console: decided by the error's variant
/// (the core's one mapping), never by its message text.
fn describe_error(e: &Error) -> String {
    match e {
        Error::ForeignIdentityExists => {
            "A Cognito user with this e-mail already exists and was not created here; it was \
                                         left untouched. Ask an operator to remove or link it."
                .into()
        }
        Error::SelfAction => "You cannot disable or remove your own account. Ask another admin to do it.".into(),
        Error::TooManyActions { retry_after_secs } => {
            format!("You made many changes to admins in a short time. Wait {retry_after_secs} seconds and try again.")
        }
        Error::RateLimited => "Cognito is limiting requests right now. Wait a moment and try again.".into(),
        other => describe(&ApiError::from(other.clone())),
    }
}

/// An edge error's (or a core error's, by its code) plain-words explanation for people using the console.
fn describe(e: &ApiError) -> String {
    match e.code {
        "invalid_email" => format!("That e-mail address is not valid: {}.", strip_prefix_msg(&e.message)),
        "admin_exists" => "An admin with this e-mail address already exists (or is being created right now).".into(),
        "not_found" => "That admin does not exist (any more). The list below is up to date.".into(),
        "already_active" => "This admin has already set a password, so there is no invitation to resend.".into(),
        "resend_cooldown" => format!(
            "An invitation was sent moments ago. Wait {} seconds before sending another one.",
            e.retry_after.unwrap_or(60)
        ),
        "last_admin" => {
            "You cannot remove or disable the last active admin. Create another admin and let them sign in first."
                .into()
        }
        "operation_in_progress" => "Another change to this admin is in progress. Wait a moment and try again.".into(),
        "token_name_taken" => {
            "A SCIM token with this name already exists (revoked tokens keep their name). Choose another name.".into()
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
        "rate_limited" => format!(
            "Too many attempts. Wait {} seconds and try again.",
            e.retry_after.unwrap_or(60)
        ),
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

impl AppState {
    fn secure(&self, headers: &HeaderMap) -> bool {
        self.secure_cookies.unwrap_or_else(|| {
            headers
                .get("x-forwarded-proto")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.eq_ignore_ascii_case("https"))
        })
    }

    /// The request's console cookies: `axum-extra`'s private jar under the cookie key. `get` answers only
    /// cookies this key encrypted and that nobody altered.
    pub fn cookie_jar(&self, headers: &HeaderMap) -> PrivateCookieJar {
        PrivateCookieJar::from_headers(headers, self.cookie_key().clone())
    }

    /// A console cookie: `HttpOnly; SameSite=Strict`, `Secure` over HTTPS, for `max_age` seconds.
    fn cookie(
        &self,
        headers: &HeaderMap,
        name: &'static str,
        value: String,
        path: &'static str,
        max_age: i64,
    ) -> Cookie<'static> {
        Cookie::build((name, value))
            .path(path)
            .max_age(time::Duration::seconds(max_age))
            .http_only(true)
            .same_site(SameSite::Strict)
            .secure(self.secure(headers))
            .build()
    }

    /// `jar` with cookie `name` (at `path`) removed: an empty value with `Max-Age=0`.
    fn remove_cookie(
        &self,
        headers: &HeaderMap,
        jar: PrivateCookieJar,
        name: &'static str,
        path: &'static str,
    ) -> PrivateCookieJar {
        jar.remove(self.cookie(headers, name, String::new(), path, 0))
    }

    fn add_flash(&self, headers: &HeaderMap, jar: PrivateCookieJar, flash: Flash) -> PrivateCookieJar {
        let value = serde_json::to_string(&flash).unwrap_or_default();
        jar.add(self.cookie(headers, FLASH_COOKIE, value, "/", 60))
    }

    fn csrf_mac(&self, session: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.cookie_key().signing()).expect("HMAC takes any key size");
        mac.update(b"admin-provisioner console csrf v2\0");
        mac.update(session.as_bytes());
        mac
    }

    /// The CSRF token of a session: HMAC-SHA256 of the session's ID token (hex) under the signing half of
    /// the cookie key. A cross-site attacker can neither read the session cookie (HttpOnly,
    /// SameSite=Strict) nor compute the HMAC (secret key); every replica sharing `CONSOLE_COOKIE_KEY`
    /// computes the same token.
    pub fn csrf_token(&self, session: &str) -> String {
        hex::encode(self.csrf_mac(session).finalize().into_bytes())
    }

    fn csrf_ok(&self, session: &str, presented: &str) -> bool {
        let Ok(bytes) = hex::decode(presented) else {
            return false;
        };
        self.csrf_mac(session).verify_slice(&bytes).is_ok()
    }
}

/// The (decrypted) value of console cookie `name`; `None` when absent, altered or from another key.
fn cookie_value(jar: &PrivateCookieJar, name: &str) -> Option<String> {
    jar.get(name).map(|c| c.value().to_string())
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
pub struct Challenge {
    /// Username to answer with.
    pub u: String,
    /// Cognito session.
    pub s: String,
    /// E-mail as typed, for the page.
    pub e: String,
}

fn read_challenge(jar: &PrivateCookieJar) -> Option<Challenge> {
    serde_json::from_str(&cookie_value(jar, CHALLENGE_COOKIE)?).ok()
}

fn read_flash(jar: &PrivateCookieJar) -> Option<Flash> {
    serde_json::from_str(&cookie_value(jar, FLASH_COOKIE)?).ok()
}

/// The flash message of the request, and the jar with it removed (shown once).
fn take_flash(state: &AppState, headers: &HeaderMap, jar: PrivateCookieJar) -> (Option<Flash>, PrivateCookieJar) {
    match read_flash(&jar) {
        Some(f) => (Some(f), state.remove_cookie(headers, jar, FLASH_COOKIE, "/")),
        None => (None, jar),
    }
}

// ---------------------------------------------------------------------------------------------------
// The signed-in admin
// ---------------------------------------------------------------------------------------------------

/// A signed-in, active admin of the console.
pub struct ConsoleUser {
    /// The authorized caller for provisioner operations.
    pub caller: Caller,
    /// Their admin id.
    pub admin_id: UserId,
    /// Their e-mail.
    pub email: String,
    /// The CSRF token of their session (put it in every form: `console/csrf_field.html`).
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/not_admin.html")]
struct NotAdminPage {
    chrome: Chrome,
    username: String,
    csrf: String,
}

/// The signed-in admin, or the response to send instead (to the login page, or an error page).
pub async fn console_user(state: &AppState, headers: &HeaderMap) -> Result<ConsoleUser, Response> {
    let jar = state.cookie_jar(headers);
    let Some(token) = cookie_value(&jar, SESSION_COOKIE) else {
        return Err(see_other("/login"));
    };
    let verified = match state.verify(&token).await {
        Ok(v) => v,
        Err(TokenError::Invalid(_)) => {
            let jar = state.remove_cookie(headers, jar, SESSION_COOKIE, "/");
            let jar = state.add_flash(headers, jar, Flash::error("Your session has expired. Sign in again."));
            return Err(with_jar(jar, see_other("/login")));
        }
        Err(e @ TokenError::Unavailable(_)) => {
            let e = ApiError::from(e);
            return Err(error_page(state, e.status, e.code, &describe(&e)));
        }
    };
    let caller = verified.caller();
    let admin_id = match state.provisioner().authorize(&caller).await {
        Ok(admin_provisioner_core::domain::Actor::Admin(id)) => id,
        // Signed out (here or on another device) or disabled since this cookie's token was issued.
        Err(Error::SessionEnded) => {
            let jar = state.remove_cookie(headers, jar, SESSION_COOKIE, "/");
            let jar = state.add_flash(headers, jar, Flash::error("Your session has ended. Sign in again."));
            return Err(with_jar(jar, see_other("/login")));
        }
        Ok(_) | Err(Error::Forbidden) => {
            let page = NotAdminPage {
                chrome: Chrome::signed_out(state, "Not an admin", None),
                username: verified.username.clone(),
                csrf: state.csrf_token(&token),
            };
            return Err(render(StatusCode::FORBIDDEN, &page));
        }
        Err(e) => {
            let e = ApiError::from(e);
            return Err(error_page(state, e.status, e.code, &describe(&e)));
        }
    };
    let email = match state
        .provisioner()
        .get_admin_record(&Caller::Authorized(admin_id), admin_id)
        .await
    {
        Ok(r) => r.user.email,
        Err(_) => verified.username,
    };
    Ok(ConsoleUser {
        // Authorized once per request (above); the operations take the result.
        caller: Caller::Authorized(admin_id),
        admin_id,
        email,
        csrf: state.csrf_token(&token),
    })
}

/// The signed-in admin for a state-changing POST: also checks the origin and the CSRF token (the form's
/// `csrf` field). Every console button that changes something starts with this.
pub async fn console_user_for_post(state: &AppState, headers: &HeaderMap, csrf: &str) -> Result<ConsoleUser, Response> {
    if !same_origin(headers) {
        return Err(csrf_failure(state));
    }
    let user = console_user(state, headers).await?;
    let session = cookie_value(&state.cookie_jar(headers), SESSION_COOKIE).unwrap_or_default();
    if !state.csrf_ok(&session, csrf) {
        return Err(csrf_failure(state));
    }
    Ok(user)
}

// ---------------------------------------------------------------------------------------------------
// Sign-in
// ---------------------------------------------------------------------------------------------------

async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if cookie_value(&state.cookie_jar(&headers), SESSION_COOKIE).is_some() {
        see_other("/console")
    } else {
        see_other("/login")
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Chrome,
    email: String,
}

fn login_html(state: &AppState, status: StatusCode, email: &str, flash: Option<Flash>) -> Response {
    render(
        status,
        &LoginPage {
            chrome: Chrome::signed_out(state, "Sign in", flash),
            email: email.to_string(),
        },
    )
}

async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
    with_jar(jar, login_html(&state, StatusCode::OK, "", flash))
}

/// The sign-in form.
#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
}

#[derive(Template)]
#[template(path = "console/new_password.html")]
struct NewPasswordPage {
    chrome: Chrome,
    email: String,
}

fn new_password_html(state: &AppState, status: StatusCode, email: &str, flash: Option<Flash>) -> Response {
    render(
        status,
        &NewPasswordPage {
            chrome: Chrome::signed_out(state, "Choose a new password", flash),
            email: email.to_string(),
        },
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
        return login_html(&state, StatusCode::BAD_REQUEST, "", Some(f));
    };
    if let Err(e) = state.edge().limits.auth_attempt(&form.email, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(login_html(&state, e.status, form.email.trim(), Some(f)), &e);
    }
    let jar = state.cookie_jar(&headers);
    match state
        .provisioner()
        .login(&form.email, &Password::new(form.password), Some(&request_id))
        .await
    {
        Ok(LoginOutcome::Tokens(tokens)) => {
            let session = state.cookie(
                &headers,
                SESSION_COOKIE,
                tokens.id_token.expose().to_string(),
                "/",
                tokens.expires_in.max(60),
            );
            let jar = state.remove_cookie(&headers, jar.add(session), CHALLENGE_COOKIE, "/login");
            with_jar(jar, see_other("/console"))
        }
        Ok(LoginOutcome::NewPasswordRequired { session, username }) => {
            let challenge = Challenge {
                u: username,
                s: session.expose().to_string(),
                e: form.email.trim().to_string(),
            };
            let value = serde_json::to_string(&challenge).unwrap_or_default();
            let jar = jar.add(state.cookie(&headers, CHALLENGE_COOKIE, value, "/login", CHALLENGE_SECONDS));
            with_jar(jar, new_password_html(&state, StatusCode::OK, &challenge.e, None))
        }
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            login_html(&state, e.status, form.email.trim(), Some(f))
        }
    }
}

/// The new-password form.
#[derive(Deserialize)]
struct NewPasswordForm {
    new_password: String,
    confirm_password: String,
}

const CHALLENGE_EXPIRED: &str =
    "The password step expired (you have 3 minutes to choose a password). Sign in again with the temporary password.";

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
    let jar = state.cookie_jar(&headers);
    let Some(challenge) = read_challenge(&jar) else {
        return login_html(
            &state,
            StatusCode::UNAUTHORIZED,
            "",
            Some(Flash::error(CHALLENGE_EXPIRED)),
        );
    };
    let Ok(Form(form)) = form else {
        let f = Flash::error("Enter the new password twice.");
        return new_password_html(&state, StatusCode::BAD_REQUEST, &challenge.e, Some(f));
    };
    if form.new_password != form.confirm_password {
        let f = Flash::error("The two passwords do not match. Type the same password twice.");
        return new_password_html(&state, StatusCode::BAD_REQUEST, &challenge.e, Some(f));
    }
    if let Err(e) = state.edge().limits.auth_attempt(&challenge.e, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(new_password_html(&state, e.status, &challenge.e, Some(f)), &e);
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
        Ok(tokens) => {
            let session = state.cookie(
                &headers,
                SESSION_COOKIE,
                tokens.id_token.expose().to_string(),
                "/",
                tokens.expires_in.max(60),
            );
            let jar = state.remove_cookie(&headers, jar.add(session), CHALLENGE_COOKIE, "/login");
            let jar = state.add_flash(&headers, jar, Flash::ok("Your new password is set. Welcome!"));
            with_jar(jar, see_other("/console"))
        }
        Err(Error::InvalidCredentials) => {
            let jar = state.remove_cookie(&headers, jar, CHALLENGE_COOKIE, "/login");
            let page = login_html(
                &state,
                StatusCode::UNAUTHORIZED,
                &challenge.e,
                Some(Flash::error(CHALLENGE_EXPIRED)),
            );
            with_jar(jar, page)
        }
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            new_password_html(&state, e.status, &challenge.e, Some(f))
        }
    }
}

/// A form whose only field is the CSRF token (sign-out and the per-admin buttons).
#[derive(Deserialize, Default)]
pub struct CsrfForm {
    /// The token from `console/csrf_field.html`.
    #[serde(default)]
    pub csrf: String,
}

fn signed_out(state: &AppState, headers: &HeaderMap) -> Response {
    let jar = state.cookie_jar(headers);
    let jar = state.remove_cookie(headers, jar, SESSION_COOKIE, "/");
    let jar = state.remove_cookie(headers, jar, CHALLENGE_COOKIE, "/login");
    let jar = state.add_flash(headers, jar, Flash::ok("You are signed out."));
    with_jar(jar, see_other("/login"))
}

#[derive(Template)]
#[template(path = "console/logout.html")]
struct LogoutPage {
    chrome: Chrome,
    csrf: String,
}

/// `GET /logout`: changes nothing; offers the sign-out button (a cross-site link carries no session, since
/// the cookie is `SameSite=Strict`, and just lands on the login page).
async fn logout_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(session) = cookie_value(&state.cookie_jar(&headers), SESSION_COOKIE) else {
        return see_other("/login");
    };
    render(
        StatusCode::OK,
        &LogoutPage {
            chrome: Chrome::signed_out(&state, "Sign out", None),
            csrf: state.csrf_token(&session),
        },
    )
}

/// `POST /logout`: ends every session of the admin on the server ([`Provisioner::end_sessions`]: a copy of
/// this cookie, or a token of the admin's, no longer works), then clears the cookie; with a session it
/// needs the CSRF token and a same-origin request. A session that no longer verifies, or is already
/// over, has nothing left to end and is just cleared.
///
/// [`Provisioner::end_sessions`]: admin_provisioner_core::Provisioner::end_sessions
async fn logout_submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    if let Some(session) = cookie_value(&state.cookie_jar(&headers), SESSION_COOKIE) {
        let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
        if !same_origin(&headers) || !state.csrf_ok(&session, &csrf) {
            return csrf_failure(&state);
        }
        if let Ok(verified) = state.verify(&session).await {
            match state.provisioner().end_sessions(&verified.caller()).await {
                Ok(()) | Err(Error::Forbidden | Error::SessionEnded) => {}
                // Not ended on the server: say so, and keep the cookie so the button can be pressed again.
                Err(e) => {
                    let e = ApiError::from(e);
                    return error_page(&state, e.status, e.code, &describe(&e));
                }
            }
        }
    }
    signed_out(&state, &headers)
}

// ---------------------------------------------------------------------------------------------------
// Admins
// ---------------------------------------------------------------------------------------------------

/// A status badge.
struct Badge {
    class: &'static str,
    label: &'static str,
    title: &'static str,
}

fn badge(status: InviteStatus) -> Badge {
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
    Badge { class, label, title }
}

/// A time shown relative to now, with the exact time as a tooltip.
struct TimeView {
    iso: String,
    exact: String,
    relative: String,
}

/// The Revoke or Remove button.
struct RemoveButton {
    label: &'static str,
    confirm: String,
}

/// The link from a `pending` or `failed` line to its saga.
struct SagaLink {
    href: String,
    label: &'static str,
    title: String,
}

/// One line of the admin list.
struct AdminRow {
    id: String,
    email: String,
    lower: String,
    you: bool,
    badge: Badge,
    expiry: Option<TimeView>,
    sent: String,
    undelivered: bool,
    can_resend: bool,
    can_disable: bool,
    can_enable: bool,
    remove: Option<RemoveButton>,
    saga: Option<SagaLink>,
}

fn admin_row(a: &AdminView, me: &str, now: DateTime<Utc>) -> AdminRow {
    let expiry = match (&a.invite, a.status) {
        (_, InviteStatus::Active) => None,
        (Some(i), _) => i.expires_at.map(|t| TimeView {
            iso: t.to_rfc3339(),
            exact: format_time(t),
            relative: relative(t, now),
        }),
        (None, _) => None,
    };
    let remove = match a.status {
        InviteStatus::Invited | InviteStatus::Expired => Some(RemoveButton {
            label: "Revoke",
            confirm: format!(
                "Revoke the invitation of {}? Their Cognito user and database records are deleted.",
                a.email
            ),
        }),
        InviteStatus::Active | InviteStatus::Disabled => Some(RemoveButton {
            label: "Remove",
            confirm: format!(
                "Remove the admin {}? They lose access; their Cognito user and database records are deleted.",
                a.email
            ),
        }),
        InviteStatus::Pending | InviteStatus::Failed => None,
    };
    let saga = match (a.status, a.saga_id) {
        (InviteStatus::Failed, Some(id)) => Some(SagaLink {
            href: format!("/console/sagas/{id}"),
            label: "needs an operator: details",
            title: a.last_error.clone().unwrap_or_default(),
        }),
        (InviteStatus::Pending, Some(id)) => Some(SagaLink {
            href: format!("/console/sagas/{id}"),
            label: "being created…",
            title: "What the saga log says about this provisioning".into(),
        }),
        _ => None,
    };
    let you = a.email.eq_ignore_ascii_case(me);
    AdminRow {
        id: a.id.to_string(),
        email: a.email.clone(),
        lower: a.email.to_lowercase(),
        you,
        badge: badge(a.status),
        expiry,
        sent: a
            .invite
            .as_ref()
            .map_or_else(|| "—".to_string(), |i| i.invites_sent.to_string()),
        undelivered: a.invite.as_ref().is_some_and(|i| !i.delivered),
        can_resend: matches!(a.status, InviteStatus::Invited | InviteStatus::Expired),
        can_disable: !you
            && matches!(
                a.status,
                InviteStatus::Active | InviteStatus::Invited | InviteStatus::Expired
            ),
        can_enable: a.status == InviteStatus::Disabled,
        remove,
        saga,
    }
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

/// One choice of the status filter.
struct StatusOption {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Template)]
#[template(path = "console/admins.html")]
struct AdminsPage {
    chrome: Chrome,
    csrf: String,
    active: i64,
    invited: i64,
    expired: i64,
    days: u32,
    q: String,
    status_options: Vec<StatusOption>,
    rows: Vec<AdminRow>,
    next_href: Option<String>,
}

/// The "next page" link of the admin list, keeping the filters.
fn next_href(params: &ListParams, next: Option<String>) -> Option<String> {
    let cursor = next?;
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("cursor", &cursor);
    if let Some(s) = params.status.as_deref().filter(|s| !s.is_empty()) {
        query.append_pair("status", s);
    }
    if let Some(q) = params.q.as_deref().filter(|q| !q.is_empty()) {
        query.append_pair("q", q);
    }
    Some(format!("/console?{}", query.finish()))
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
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
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
        let counts = state.provisioner().admin_status_counts().await?;
        Ok::<_, Error>((page, counts))
    };
    let (listing, (active, invited, expired)) = match listed.await {
        Ok(found) => found,
        Err(e) => {
            let e = ApiError::from(e);
            return error_page(&state, e.status, e.code, &describe(&e));
        }
    };
    let status = params.status.as_deref().unwrap_or("");
    let status_options = ["", "pending", "invited", "expired", "active", "disabled", "failed"]
        .into_iter()
        .map(|s| StatusOption {
            value: s,
            label: if s.is_empty() { "any status" } else { s },
            selected: s == status,
        })
        .collect();
    let page = AdminsPage {
        chrome: Chrome::signed_in(&state, &user, "Admins", "/console", flash),
        csrf: user.csrf.clone(),
        active,
        invited,
        expired,
        days: state.provisioner().settings().invite_validity_days,
        q: params.q.clone().unwrap_or_default(),
        status_options,
        rows: listing.admins.iter().map(|a| admin_row(a, &user.email, now)).collect(),
        next_href: next_href(&params, listing.next.map(|c| c.encode())),
    };
    with_jar(jar, render(StatusCode::OK, &page))
}

/// The "Create New Admin" form.
#[derive(Deserialize, Default)]
struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
}

/// A `303` back to the admin list with `flash` to show there.
pub fn back_to_console(state: &AppState, headers: &HeaderMap, flash: Flash) -> Response {
    back_to(state, headers, "/console", flash)
}

/// A `303` to the console page `path` with `flash` to show there.
pub fn back_to(state: &AppState, headers: &HeaderMap, path: &str, flash: Flash) -> Response {
    let jar = state.add_flash(headers, state.cookie_jar(headers), flash);
    with_jar(jar, see_other(path))
}

async fn create_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    form: Result<Form<CreateForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let user = match console_user_for_post(&state, &headers, &form.csrf).await {
        Ok(u) => u,
        Err(res) => return res,
    };
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
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to_console(&state, &headers, flash)
}

/// What every per-admin button (Resend, Revoke/Remove) starts with: the CSRF-checked console user, the
/// admin id from the path and that admin's e-mail for the flash message.
pub async fn admin_action(
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
        Err(e) => Flash::error(describe_error(&e)),
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
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to_console(&state, &headers, flash)
}

/// `POST /console/admins/{id}/disable`: the same operation as `POST /api/admins/{id}/disable` (the disable
/// saga: Cognito `AdminDisableUser` and `disabled` in the database). Self-protection, the rate limit and
/// the last-admin guard are the core's (`provisioner/policy.rs`).
async fn disable_submit(
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
        .disable_admin(&user.caller, id, Some(&request_id))
        .await
    {
        Ok(_) => Flash::ok(format!(
            "{email} was disabled in Cognito and the database: they can no longer sign in, and their tokens are refused."
        )),
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to_console(&state, &headers, flash)
}

/// `POST /console/admins/{id}/enable`: the same operation as `POST /api/admins/{id}/enable`.
async fn enable_submit(
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
        .enable_admin(&user.caller, id, Some(&request_id))
        .await
    {
        Ok(_) => Flash::ok(format!("{email} was enabled again in Cognito and the database.")),
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to_console(&state, &headers, flash)
}

// ---------------------------------------------------------------------------------------------------
// A saga's facts (the `failed` and `pending` lines link here)
// ---------------------------------------------------------------------------------------------------

/// The saga log entry as the page shows it.
struct SagaView {
    id: String,
    email: String,
    kind: &'static str,
    step: &'static str,
    state: &'static str,
    state_class: &'static str,
    explanation: &'static str,
    owner: Option<String>,
    lease: String,
    attempts: i32,
    last_error: Option<String>,
    cognito_username: String,
    identity_created_by_saga: bool,
    started: String,
    started_iso: String,
    updated: String,
    updated_iso: String,
    request_id: String,
}

/// The step a saga in `state` is at (or last reached), in words: read from the saga's own table in the
/// core (`saga_step_words`), so the page names the step the saga of that kind is really at.
fn saga_step(kind: SagaKind, state: SagaState) -> &'static str {
    admin_provisioner_core::provisioner::saga_step_words(kind, state)
}

fn saga_view(s: &SagaRecord, now: DateTime<Utc>) -> SagaView {
    let (state_class, explanation) = if s.state == SagaState::Stuck {
        (
            "failed",
            "This provisioning failed and could not be fully undone yet. Recovery retries it automatically; the last error below says what blocked it.",
        )
    } else if s.state.is_terminal() {
        ("active", "This saga has finished.")
    } else if s.is_stuck(now) {
        (
            "expired",
            "This saga is unfinished and its owner's lease has expired: the next recovery pass of any replica takes it over.",
        )
    } else {
        ("pending", "This saga is running: its owner holds a lease on it.")
    };
    let lease = match s.lease_expires_at {
        Some(t) if t > now => format!("held until {} ({})", format_time(t), relative(t, now)),
        Some(t) => format!("expired or released at {}", format_time(t)),
        None => "none".into(),
    };
    SagaView {
        id: s.id.to_string(),
        email: s.email.clone(),
        kind: match s.kind {
            SagaKind::Provision => "provision",
            SagaKind::Remove => "remove",
            SagaKind::Disable => "disable",
            SagaKind::Enable => "enable",
        },
        step: saga_step(s.kind, s.state),
        state: s.state.as_str(),
        state_class,
        explanation,
        owner: s.owner.clone(),
        lease,
        attempts: s.attempts,
        last_error: s.last_error.clone(),
        cognito_username: s.cognito_username.clone(),
        identity_created_by_saga: s.identity_created_by_saga,
        started: format_time(s.started_at),
        started_iso: s.started_at.to_rfc3339(),
        updated: format_time(s.updated_at),
        updated_iso: s.updated_at.to_rfc3339(),
        request_id: s.request_id.clone().unwrap_or_else(|| "—".into()),
    }
}

#[derive(Template)]
#[template(path = "console/saga.html")]
struct SagaPage {
    chrome: Chrome,
    saga: SagaView,
}

/// `GET /console/sagas/{id}`: one saga log entry. Reads the saga log only (no Cognito call).
async fn saga_page(State(state): State<AppState>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let not_found = || {
        error_page(
            &state,
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no saga with this id in the saga log.",
        )
    };
    let Ok(id) = uuid::Uuid::parse_str(&id) else {
        return not_found();
    };
    let saga = match state.provisioner().saga(id).await {
        Ok(Some(s)) => s,
        Ok(None) => return not_found(),
        Err(e) => {
            let e = ApiError::from(e);
            return error_page(&state, e.status, e.code, &describe(&e));
        }
    };
    let now = state.provisioner().now();
    let page = SagaPage {
        chrome: Chrome::signed_in(&state, &user, "Saga", "", None),
        saga: saga_view(&saga, now),
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------------
// Audit log, drift and mailbox
// ---------------------------------------------------------------------------------------------------

struct AuditRow {
    iso: String,
    exact: String,
    actor: String,
    action: String,
    target: String,
    outcome: String,
    ok: bool,
    request_id: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct AuditPage {
    chrome: Chrome,
    rows: Vec<AuditRow>,
}

async fn audit_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let events = match audit_events(&state, 200).await {
        Ok(e) => e,
        Err(e) => return error_page(&state, e.status, e.code, &describe(&e)),
    };
    let rows = events
        .iter()
        .map(|e| AuditRow {
            iso: e.at.to_rfc3339(),
            exact: format_time(e.at),
            actor: e.actor_email.clone().unwrap_or_else(|| e.actor.clone()),
            action: e.action.clone(),
            target: e.target.clone(),
            outcome: e.outcome.clone(),
            ok: e.outcome.starts_with("success"),
            request_id: e.request_id.clone().unwrap_or_else(|| "—".into()),
        })
        .collect();
    let page = AuditPage {
        chrome: Chrome::signed_in(&state, &user, "Audit log", "/console/audit", None),
        rows,
    };
    render(StatusCode::OK, &page)
}

struct FindingRow {
    kind: String,
    code: String,
    email: String,
    message: String,
    fix: String,
}

struct DriftReport {
    clean: bool,
    needs_attention: u64,
    finished_at: String,
    seconds: String,
    cognito_users: u64,
    database_admins: u64,
    counts: Vec<(String, u64)>,
    findings: Vec<FindingRow>,
}

#[derive(Template)]
#[template(path = "console/drift.html")]
struct DriftPage {
    chrome: Chrome,
    last_error: Option<String>,
    interval_secs: u64,
    report: Option<DriftReport>,
}

/// The last reconciliation report of this server (`serve`'s background reconciler).
async fn drift_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let status = crate::reconcile::status();
    let report = status.last.as_ref().map(|report| {
        let s = &report.summary;
        DriftReport {
            clean: report.is_clean(),
            needs_attention: s.needs_attention,
            finished_at: s.finished_at.map(format_time).unwrap_or_default(),
            seconds: format!("{:.1}", s.seconds),
            cognito_users: s.cognito_users,
            database_admins: s.database_admins,
            counts: s.counts.iter().map(|(k, n)| (k.clone(), *n)).collect(),
            findings: report
                .findings
                .iter()
                .map(|f| FindingRow {
                    kind: f.kind.code().to_string(),
                    code: f.code.clone(),
                    email: f.email.clone().unwrap_or_else(|| "—".into()),
                    message: f.message.clone(),
                    fix: f.fix.clone(),
                })
                .collect(),
        }
    });
    let page = DriftPage {
        chrome: Chrome::signed_in(&state, &user, "Drift", "/console/drift", None),
        last_error: status.last_error.clone(),
        interval_secs: state.app().config.reconcile_interval_secs,
        report,
    };
    render(StatusCode::OK, &page)
}

/// How many of the newest invitations the Mailbox page shows (the folder may hold thousands).
const MAILBOX_PAGE_SIZE: usize = 100;

struct MessageView {
    to: String,
    to_lower: String,
    date: String,
    subject: String,
    body: String,
    temporary_password: Option<String>,
}

#[derive(Template)]
#[template(path = "console/mailbox.html")]
struct MailboxPage {
    chrome: Chrome,
    total: usize,
    dir: String,
    messages: Vec<MessageView>,
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
    let page = MailboxPage {
        chrome: Chrome::signed_out(&state, "Mailbox", None),
        total,
        dir: emu.mailbox().dir().display().to_string(),
        messages: messages
            .iter()
            .map(|m| MessageView {
                to: m.to.clone(),
                to_lower: m.to.to_lowercase(),
                date: m.date.clone(),
                subject: m.subject.clone(),
                body: m.body.clone(),
                temporary_password: m.temporary_password().map(|p| p.expose().to_string()),
            })
            .collect(),
    };
    render(StatusCode::OK, &page)
}

// ---------------------------------------------------------------------------------------------------
// SCIM tokens (the same functions as `admin-provisioner scim-token create|list|revoke`)
// ---------------------------------------------------------------------------------------------------

/// One line of the SCIM token list (never the token: only its hash is stored).
struct ScimTokenRow {
    name: String,
    created: String,
    created_iso: String,
    created_by: String,
    last_used: Option<String>,
    revoked: Option<String>,
}

#[derive(Template)]
#[template(path = "console/scim_tokens.html")]
struct ScimTokensPage {
    chrome: Chrome,
    csrf: String,
    base_url: String,
    active: usize,
    revoked: usize,
    rows: Vec<ScimTokenRow>,
}

#[derive(Template)]
#[template(path = "console/scim_token_created.html")]
struct ScimTokenCreatedPage {
    chrome: Chrome,
    name: String,
    token: String,
    base_url: String,
}

/// `GET /console/scim-tokens`: the SCIM tokens (name, created, last used, revoked) and the create form.
async fn scim_tokens_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
    let tokens = match state.app().store.list_scim_tokens().await {
        Ok(t) => t,
        Err(e) => {
            let e = ApiError::from(Error::from(e));
            return error_page(&state, e.status, e.code, &describe(&e));
        }
    };
    let revoked = tokens.iter().filter(|t| t.revoked_at.is_some()).count();
    let page = ScimTokensPage {
        chrome: Chrome::signed_in(&state, &user, "SCIM tokens", "/console/scim-tokens", flash),
        csrf: user.csrf.clone(),
        base_url: crate::scim::base_url(&headers),
        active: tokens.len() - revoked,
        revoked,
        rows: tokens
            .iter()
            .map(|t| ScimTokenRow {
                name: t.name.clone(),
                created: format_time(t.created_at),
                created_iso: t.created_at.to_rfc3339(),
                created_by: t.created_by.clone(),
                last_used: t.last_used_at.map(format_time),
                revoked: t.revoked_at.map(format_time),
            })
            .collect(),
    };
    with_jar(jar, render(StatusCode::OK, &page))
}

/// The "Create a SCIM token" form.
#[derive(Deserialize, Default)]
struct ScimTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

const SCIM_TOKENS: &str = "/console/scim-tokens";

/// `POST /console/scim-tokens`: issues a token (audited as the signed-in admin) and shows it on the
/// answer page, once (`Cache-Control: no-store`, like every console page); it is never shown again.
async fn scim_token_create_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    form: Result<Form<ScimTokenForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let user = match console_user_for_post(&state, &headers, &form.csrf).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let name = form.name.trim();
    if let Err(e) = crate::scim::tokens::validate_name(name) {
        return back_to(&state, &headers, SCIM_TOKENS, Flash::error(format!("{e}.")));
    }
    if let Err(e) = state.edge().limits.admin_action(&user.admin_id.to_string()) {
        return back_to(&state, &headers, SCIM_TOKENS, Flash::error(describe(&e)));
    }
    let actor = admin_provisioner_core::domain::Actor::Admin(user.admin_id);
    match crate::scim::tokens::create(state.app().store.as_ref(), &actor, name, Some(&request_id)).await {
        Ok((stored, token)) => {
            let page = ScimTokenCreatedPage {
                chrome: Chrome::signed_in(
                    &state,
                    &user,
                    "SCIM token created",
                    SCIM_TOKENS,
                    Some(Flash::ok(format!("SCIM token {} was created.", stored.name))),
                ),
                name: stored.name,
                token: token.expose().to_string(),
                base_url: crate::scim::base_url(&headers),
            };
            render(StatusCode::OK, &page)
        }
        Err(e) => back_to(&state, &headers, SCIM_TOKENS, Flash::error(describe_error(&e))),
    }
}

/// `POST /console/scim-tokens/{name}/revoke`: revokes the token (audited); it authenticates nothing after.
async fn scim_token_revoke_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(name): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let csrf = form.map(|Form(f)| f.csrf).unwrap_or_default();
    let user = match console_user_for_post(&state, &headers, &csrf).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    if crate::scim::tokens::validate_name(&name).is_err() {
        return back_to(
            &state,
            &headers,
            SCIM_TOKENS,
            Flash::error("There is no SCIM token with this name."),
        );
    }
    let actor = admin_provisioner_core::domain::Actor::Admin(user.admin_id);
    let flash = match crate::scim::tokens::revoke(state.app().store.as_ref(), &actor, &name, Some(&request_id)).await {
        Ok(_) => Flash::ok(format!(
            "SCIM token {name} was revoked: requests with it are refused from now on."
        )),
        Err(Error::NotFound) => Flash::error("There is no SCIM token with this name."),
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to(&state, &headers, SCIM_TOKENS, flash)
}

// ---------------------------------------------------------------------------------------------------
// Static files
// ---------------------------------------------------------------------------------------------------

/// A file of `static/`, embedded at compile time.
struct StaticFile {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const STATIC_FILES: [StaticFile; 2] = [
    StaticFile {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../../static/console.css"),
    },
    StaticFile {
        name: "console.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../../static/console.js"),
    },
];

/// The first 16 hex digits of the SHA-256 of each static file, computed once.
fn versions() -> &'static [String; 2] {
    static VERSIONS: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    VERSIONS.get_or_init(|| {
        STATIC_FILES.each_ref().map(|f| {
            use sha2::Digest;
            hex::encode(&Sha256::digest(f.body.as_bytes())[..8])
        })
    })
}

fn assets() -> Assets {
    let v = versions();
    Assets { css: &v[0], js: &v[1] }
}

/// `GET /static/{file}`: an embedded file with a strong `ETag` (its content hash). A request with the
/// current `?v=` is cacheable for a year (`immutable`: a new build links a new `v`); any other for five
/// minutes; `If-None-Match` with the current tag is `304`.
async fn static_file(Path(file): Path<String>, uri: axum::http::Uri, headers: HeaderMap) -> Response {
    let Some(i) = STATIC_FILES.iter().position(|f| f.name == file) else {
        return ApiError::not_found("no such static file").into_response();
    };
    let (f, version) = (&STATIC_FILES[i], &versions()[i]);
    let etag = format!("\"{version}\"");
    let versioned = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == format!("v={version}")));
    let cache = if versioned {
        "public, max-age=31536000, immutable"
    } else {
        "public, max-age=300"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, f.content_type)], f.body).into_response()
    };
    let h = res.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(500))]

        /// Any `Cookie` header: opening the private jar and reading the session, challenge and flash
        /// cookies never panics (and finds nothing this key did not encrypt).
        #[test]
        fn any_cookie_header_is_read_without_panicking(raw in "[ -~]{0,300}", value in "[A-Za-z0-9_=;.+/ -]{0,200}") {
            let key = axum_extra::extract::cookie::Key::generate();
            let mut headers = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&raw) {
                headers.append(header::COOKIE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("{CHALLENGE_COOKIE}={value}; {FLASH_COOKIE}={value}; {SESSION_COOKIE}={value}")) {
                headers.append(header::COOKIE, v);
            }
            let jar = PrivateCookieJar::from_headers(&headers, key);
            proptest::prop_assert!(cookie_value(&jar, SESSION_COOKIE).is_none());
            proptest::prop_assert!(read_challenge(&jar).is_none());
            proptest::prop_assert!(read_flash(&jar).is_none());
        }
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
    fn templates_escape_markup_in_every_value() {
        let page = ErrorPage {
            chrome: Chrome {
                title: "<t>".into(),
                nav: None,
                flash: Some(Flash::error(r#"<script>alert("x")</script>"#)),
                emulator: false,
                assets: assets(),
            },
            heading: "<h>".into(),
            text: r#"<a href="x">'&'</a>"#.into(),
            code: "c\"".into(),
        };
        let html = page.render().unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(!html.contains(r#"<a href="x">"#), "{html}");
        assert!(
            html.contains("&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;"),
            "{html}"
        );
        assert!(
            html.contains("<title>&#60;t&#62; · admin-provisioner</title>"),
            "{html}"
        );
    }
}
