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
use admin_provisioner_core::{Error, LoginOutcome};
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
