//! Sign-in pages: `/` (to the console or the login page), `/login`, the first-login new-password form
//! and `/logout`.

use super::{
    cookie_value, csrf_failure, describe, error_page, read_challenge, render, same_origin, see_other, take_flash,
    with_jar, with_retry_after, Challenge, Chrome, Flash, CHALLENGE_COOKIE, CHALLENGE_SECONDS, SESSION_COOKIE,
};
use crate::http::edge::ClientAddr;
use crate::http::error::ApiError;
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::{Password, Secret};
use admin_provisioner_core::identity::{challenge, ChallengeAnswer};
use admin_provisioner_core::{Error, LoginOutcome, MfaEnrolment};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

pub(super) async fn root(State(state): State<AppState>, headers: HeaderMap) -> Response {
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

pub(super) async fn login_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
    with_jar(jar, login_html(&state, StatusCode::OK, "", flash))
}

/// The sign-in form.
#[derive(Deserialize)]
pub(super) struct LoginForm {
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

pub(super) async fn login_submit(
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
        Ok(outcome) => sign_in_step(&state, &headers, jar, form.email.trim(), outcome, None).await,
        // An admin reset the password: the code from the e-mail and a new password.
        Err(Error::PasswordResetRequired) => {
            let e = ApiError::from(Error::PasswordResetRequired);
            let f = Flash::error(describe(&e));
            super::recovery::reset_html(&state, e.status, form.email.trim(), Some(f))
        }
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            login_html(&state, e.status, form.email.trim(), Some(f))
        }
    }
}

/// The next page of the sign-in: the console with a session cookie, or the page of the next challenge
/// (its username and session kept in the private challenge cookie for 3 minutes). `MFA_SETUP` asks
/// Cognito for the authenticator secret at once and shows it as a QR code and as text.
async fn sign_in_step(
    state: &AppState,
    headers: &HeaderMap,
    jar: axum_extra::extract::cookie::PrivateCookieJar,
    email: &str,
    outcome: LoginOutcome,
    welcome: Option<&str>,
) -> Response {
    let keep = |jar, username: String, session: &Secret, c: &str| {
        let challenge = Challenge {
            u: username,
            s: session.expose().to_string(),
            e: email.to_string(),
            c: c.to_string(),
        };
        let value = serde_json::to_string(&challenge).unwrap_or_default();
        jar_add(state, headers, jar, value)
    };
    match outcome {
        LoginOutcome::Tokens(tokens) => {
            let session = state.cookie(
                headers,
                SESSION_COOKIE,
                tokens.id_token.expose().to_string(),
                "/",
                tokens.expires_in.max(60),
            );
            let jar = state.remove_cookie(headers, jar.add(session), CHALLENGE_COOKIE, "/login");
            let jar = match welcome {
                Some(w) => state.add_flash(headers, jar, Flash::ok(w)),
                None => jar,
            };
            with_jar(jar, see_other("/console"))
        }
        LoginOutcome::NewPasswordRequired { session, username } => {
            let jar = keep(jar, username, &session, challenge::NEW_PASSWORD_REQUIRED);
            with_jar(jar, new_password_html(state, StatusCode::OK, email, None))
        }
        LoginOutcome::SoftwareTokenMfa { session, username } => {
            let jar = keep(jar, username, &session, challenge::SOFTWARE_TOKEN_MFA);
            with_jar(jar, mfa_code_html(state, StatusCode::OK, email, None))
        }
        LoginOutcome::MfaSetup { session, username } => {
            match state.provisioner().begin_mfa_in_challenge(&username, &session).await {
                Ok(MfaEnrolment {
                    secret_code,
                    otpauth_uri,
                    session: Some(next),
                }) => {
                    let jar = keep(jar, username, &next, challenge::MFA_SETUP);
                    let page = MfaSetupPage {
                        chrome: Chrome::signed_out(state, "Set up your authenticator", None),
                        email: email.to_string(),
                        secret: secret_code.expose().to_string(),
                        qr_svg: qr_svg(otpauth_uri.expose()),
                    };
                    with_jar(jar, render(StatusCode::OK, &page))
                }
                Ok(_) => error_page(
                    state,
                    StatusCode::BAD_GATEWAY,
                    "identity_provider_error",
                    "The identity provider started the authenticator setup without a session. Sign in again.",
                ),
                Err(e) => {
                    let e = ApiError::from(e);
                    let f = Flash::error(describe(&e));
                    login_html(state, e.status, email, Some(f))
                }
            }
        }
    }
}

fn jar_add(
    state: &AppState,
    headers: &HeaderMap,
    jar: axum_extra::extract::cookie::PrivateCookieJar,
    value: String,
) -> axum_extra::extract::cookie::PrivateCookieJar {
    jar.add(state.cookie(headers, CHALLENGE_COOKIE, value, "/login", CHALLENGE_SECONDS))
}

/// `otpauth://` URI → an inline SVG QR code, rendered here (no external service, no image file; the
/// SVG uses presentation attributes only, which the console's CSP allows).
fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::M) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(220, 220)
                .quiet_zone(true)
                .build();
            // Inline in HTML: drop the XML declaration.
            match svg.find("<svg") {
                Some(i) => svg[i..].to_string(),
                None => svg,
            }
        }
        Err(_) => String::new(),
    }
}

#[derive(Template)]
#[template(path = "console/mfa_setup.html")]
struct MfaSetupPage {
    chrome: Chrome,
    email: String,
    secret: String,
    qr_svg: String,
}

#[derive(Template)]
#[template(path = "console/mfa_code.html")]
struct MfaCodePage {
    chrome: Chrome,
    email: String,
}

fn mfa_code_html(state: &AppState, status: StatusCode, email: &str, flash: Option<Flash>) -> Response {
    render(
        status,
        &MfaCodePage {
            chrome: Chrome::signed_out(state, "Enter your authenticator code", flash),
            email: email.to_string(),
        },
    )
}

/// The authenticator-code form (both `MFA_SETUP` and `SOFTWARE_TOKEN_MFA`).
#[derive(Deserialize)]
pub(super) struct MfaForm {
    code: String,
}

const MFA_EXPIRED: &str = "The sign-in step expired (you have 3 minutes). Sign in again.";

/// `POST /login/mfa`: the authenticator code of the challenge in the cookie. A wrong or used code keeps
/// the challenge (a code page again; at setup, sign in again for a new secret); an expired session goes
/// back to the sign-in page.
pub(super) async fn mfa_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<MfaForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return csrf_failure(&state);
    }
    let jar = state.cookie_jar(&headers);
    let Some(ch) = read_challenge(&jar) else {
        return login_html(&state, StatusCode::UNAUTHORIZED, "", Some(Flash::error(MFA_EXPIRED)));
    };
    let code = match form {
        Ok(Form(f)) if f.code.trim().len() == 6 && f.code.trim().bytes().all(|b| b.is_ascii_digit()) => {
            Secret::new(f.code.trim())
        }
        _ => {
            let f = Flash::error("Type the six digits your authenticator app shows.");
            return mfa_code_html(&state, StatusCode::BAD_REQUEST, &ch.e, Some(f));
        }
    };
    if let Err(e) = state.edge().limits.auth_attempt(&ch.e, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(mfa_code_html(&state, e.status, &ch.e, Some(f)), &e);
    }
    let session = Secret::new(ch.s.clone());
    let p = state.provisioner();
    let result = match ch.c.as_str() {
        challenge::MFA_SETUP => {
            p.verify_mfa_in_challenge(&ch.u, &session, &code, Some(&request_id))
                .await
        }
        challenge::SOFTWARE_TOKEN_MFA => {
            let answer = ChallengeAnswer::SoftwareTokenMfa(code);
            p.respond_to_challenge(&ch.u, &session, &answer, Some(&request_id))
                .await
        }
        _ => Err(Error::InvalidCredentials),
    };
    match result {
        Ok(outcome) => sign_in_step(&state, &headers, jar, &ch.e, outcome, None).await,
        Err(Error::InvalidMfaCode) if ch.c == challenge::SOFTWARE_TOKEN_MFA => {
            let f = Flash::error(Error::InvalidMfaCode.to_string());
            mfa_code_html(&state, StatusCode::UNAUTHORIZED, &ch.e, Some(f))
        }
        Err(e) => {
            let jar = state.remove_cookie(&headers, jar, CHALLENGE_COOKIE, "/login");
            let msg = match e {
                Error::InvalidCredentials => MFA_EXPIRED.to_string(),
                Error::InvalidMfaCode => {
                    "The code did not match the new authenticator. Sign in again to get a new key.".to_string()
                }
                other => describe(&ApiError::from(other)),
            };
            with_jar(
                jar,
                login_html(&state, StatusCode::UNAUTHORIZED, &ch.e, Some(Flash::error(msg))),
            )
        }
    }
}

/// The new-password form.
#[derive(Deserialize)]
pub(super) struct NewPasswordForm {
    new_password: String,
    confirm_password: String,
}

const CHALLENGE_EXPIRED: &str =
    "The password step expired (you have 3 minutes to choose a password). Sign in again with the temporary password.";

pub(super) async fn new_password_submit(
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
        Ok(outcome) => {
            sign_in_step(
                &state,
                &headers,
                jar,
                &challenge.e,
                outcome,
                Some("Your new password is set. Welcome!"),
            )
            .await
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

pub(super) fn signed_out(state: &AppState, headers: &HeaderMap) -> Response {
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
pub(super) async fn logout_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
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
pub(super) async fn logout_submit(
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
