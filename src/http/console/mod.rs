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
//!
//! Layout: this file holds the router, the page chrome and rendering, the cookies and CSRF, and the
//! signed-in admin; each page group has its own file (`auth.rs` sign-in, `admins.rs`, `sagas.rs`,
//! `audit.rs`, `drift.rs`, `mailbox.rs`, `scim_tokens.rs`, `static_files.rs`).

use super::auth::TokenError;
use super::error::ApiError;
use super::AppState;
use admin_provisioner_core::domain::UserId;
use admin_provisioner_core::{Caller, Error};
use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::cookie::{Cookie, PrivateCookieJar, SameSite};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

mod admins;
mod audit;
mod auth;
mod drift;
mod mailbox;
mod recovery;
mod sagas;
mod scim_tokens;
mod static_files;

pub use admins::*;
use audit::*;
pub use auth::*;
use drift::*;
use mailbox::*;
use recovery::*;
use sagas::*;
use scim_tokens::*;
use static_files::*;

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
        .route("/login/mfa", post(mfa_submit))
        .route("/login/forgot", get(forgot_page).post(forgot_submit))
        .route("/login/reset", get(reset_page).post(reset_submit))
        .route("/logout", get(logout_page).post(logout_submit))
        .route("/console", get(console_page))
        .route("/console/admins", post(create_submit))
        .route("/console/admins/{id}/resend", post(resend_submit))
        .route("/console/admins/{id}/remove", post(remove_submit))
        .route("/console/admins/{id}/disable", post(disable_submit))
        .route("/console/admins/{id}/enable", post(enable_submit))
        .route("/console/admins/{id}/role", post(role_submit))
        .route("/console/admins/{id}/reset-password", post(reset_password_submit))
        .route("/console/admins/{id}/reset-mfa", post(reset_mfa_submit))
        .route("/console/admins/{id}/sign-out", post(sign_out_submit))
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
        Error::InvalidTokenName(why) => format!("That is an invalid SCIM token name: {why}."),
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
        "not_active" => "This admin has no password to reset: they have not signed in yet (resend the invitation) \
                         or are disabled."
            .into(),
        "invalid_reset_code" => {
            "That code is wrong or has expired. Check the latest e-mail, or ask for a new code.".into()
        }
        "password_reset_required" => {
            "An admin reset your password. Enter the code from the e-mail you received and choose a new password."
                .into()
        }
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
    /// Cognito's challenge name (`NEW_PASSWORD_REQUIRED` when absent, as in cookies set before MFA).
    #[serde(default)]
    pub c: String,
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
