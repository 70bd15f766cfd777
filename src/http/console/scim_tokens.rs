//! SCIM tokens (`/console/scim-tokens`): the same functions as `admin-provisioner scim-token
//! create|list|revoke`.

use super::{
    back_to, console_user, console_user_for_post, describe, describe_error, error_page, format_time, render,
    take_flash, with_jar, Chrome, CsrfForm, Flash,
};
use crate::http::error::ApiError;
use crate::http::{AppState, RequestId};
use admin_provisioner_core::Error;
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

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
pub(super) async fn scim_tokens_page(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let user = match console_user(&state, &headers).await {
        Ok(u) => u,
        Err(res) => return res,
    };
    let (flash, jar) = take_flash(&state, &headers, state.cookie_jar(&headers));
    let tokens = match state.provisioner().scim_tokens(&user.caller).await {
        Ok(t) => t,
        Err(e) => {
            let e = ApiError::from(e);
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
pub(super) struct ScimTokenForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

const SCIM_TOKENS: &str = "/console/scim-tokens";

/// `POST /console/scim-tokens`: issues a token (audited as the signed-in admin) and shows it on the
/// answer page, once (`Cache-Control: no-store`, like every console page); it is never shown again.
pub(super) async fn scim_token_create_submit(
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
    match state
        .provisioner()
        .create_scim_token(&user.caller, name, Some(&request_id))
        .await
    {
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
pub(super) async fn scim_token_revoke_submit(
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
    let flash = match state
        .provisioner()
        .revoke_scim_token(&user.caller, &name, Some(&request_id))
        .await
    {
        Ok(_) => Flash::ok(format!(
            "SCIM token {name} was revoked: requests with it are refused from now on."
        )),
        Err(Error::NotFound) => Flash::error("There is no SCIM token with this name."),
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to(&state, &headers, SCIM_TOKENS, flash)
}
