//! Password recovery pages: `/login/forgot` (ask for a code by e-mail) and `/login/reset` (the code and a
//! new password). The sign-in page leads to the second one when an admin reset the password
//! (`password_reset_required`). Signed-out forms, protected like the sign-in form (same origin); both
//! call the core ([`admin_provisioner_core::Provisioner::forgot_password`] and
//! [`admin_provisioner_core::Provisioner::confirm_forgot_password`]).

use super::{
    csrf_failure, describe, render, same_origin, see_other, take_flash, with_jar, with_retry_after, Chrome, Flash,
};
use crate::http::api::FORGOT_PASSWORD_MESSAGE;
use crate::http::edge::ClientAddr;
use crate::http::error::ApiError;
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::{Password, Secret};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/forgot_password.html")]
struct ForgotPage {
    chrome: Chrome,
    email: String,
}

#[derive(Template)]
#[template(path = "console/reset_password.html")]
struct ResetPage {
    chrome: Chrome,
    email: String,
}

fn forgot_html(state: &AppState, status: StatusCode, email: &str, flash: Option<Flash>) -> Response {
    render(
        status,
        &ForgotPage {
            chrome: Chrome::signed_out(state, "Forgot your password?", flash),
            email: email.to_string(),
        },
    )
}

/// The page asking for the e-mailed code and a new password.
pub(super) fn reset_html(state: &AppState, status: StatusCode, email: &str, flash: Option<Flash>) -> Response {
    render(
        status,
        &ResetPage {
            chrome: Chrome::signed_out(state, "Choose a new password", flash),
            email: email.to_string(),
        },
    )
}

/// `?email=` of `GET /login/reset`.
#[derive(Deserialize)]
pub(super) struct ResetQuery {
    #[serde(default)]
    email: String,
}

pub(super) async fn forgot_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
    with_jar(jar, forgot_html(&state, StatusCode::OK, "", flash))
}

pub(super) async fn reset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ResetQuery>,
) -> Response {
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
    let email: String = q.email.trim().chars().take(128).collect();
    with_jar(jar, reset_html(&state, StatusCode::OK, &email, flash))
}

/// The "forgot password" form.
#[derive(Deserialize)]
pub(super) struct ForgotForm {
    email: String,
}

pub(super) async fn forgot_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<ForgotForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return csrf_failure(&state);
    }
    let Ok(Form(form)) = form else {
        return forgot_html(
            &state,
            StatusCode::BAD_REQUEST,
            "",
            Some(Flash::error("Enter your e-mail address.")),
        );
    };
    let email = form.email.trim();
    if let Err(e) = state.edge().limits.auth_attempt(email, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(forgot_html(&state, e.status, email, Some(f)), &e);
    }
    match state.provisioner().forgot_password(email, Some(&request_id)).await {
        // The same page for every address, known or not.
        Ok(()) => reset_html(
            &state,
            StatusCode::ACCEPTED,
            email,
            Some(Flash::ok(FORGOT_PASSWORD_MESSAGE)),
        ),
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            with_retry_after(forgot_html(&state, e.status, email, Some(f)), &e)
        }
    }
}

/// The code and new-password form.
#[derive(Deserialize)]
pub(super) struct ResetForm {
    email: String,
    code: String,
    new_password: String,
    confirm_password: String,
}

pub(super) async fn reset_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    form: Result<Form<ResetForm>, FormRejection>,
) -> Response {
    if !same_origin(&headers) {
        return csrf_failure(&state);
    }
    let Ok(Form(form)) = form else {
        let f = Flash::error("Enter your e-mail, the code and the new password twice.");
        return reset_html(&state, StatusCode::BAD_REQUEST, "", Some(f));
    };
    let email = form.email.trim();
    let code = form.code.trim();
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        let f = Flash::error("The code is the six digits from the e-mail.");
        return reset_html(&state, StatusCode::BAD_REQUEST, email, Some(f));
    }
    if form.new_password != form.confirm_password {
        let f = Flash::error("The two passwords differ. Type the same new password twice.");
        return reset_html(&state, StatusCode::BAD_REQUEST, email, Some(f));
    }
    if let Err(e) = state.edge().limits.auth_attempt(email, client) {
        let f = Flash::error(describe(&e));
        return with_retry_after(reset_html(&state, e.status, email, Some(f)), &e);
    }
    match state
        .provisioner()
        .confirm_forgot_password(
            email,
            &Secret::new(code),
            &Password::new(form.new_password),
            Some(&request_id),
        )
        .await
    {
        Ok(()) => {
            let jar = state.add_flash(
                &headers,
                state.cookie_jar(&headers),
                Flash::ok("Your new password is set. Sign in with it."),
            );
            with_jar(jar, see_other("/login"))
        }
        Err(e) => {
            let e = ApiError::from(e);
            let f = Flash::error(describe(&e));
            with_retry_after(reset_html(&state, e.status, email, Some(f)), &e)
        }
    }
}
