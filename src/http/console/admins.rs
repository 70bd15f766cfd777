//! The admins page (`/console`): the list with statuses and the create, resend, remove, disable and
//! enable buttons.

use super::{
    console_user, console_user_for_post, describe, describe_error, error_page, format_time, relative, render,
    see_other, take_flash, with_jar, Chrome, ConsoleUser, CsrfForm, Flash,
};
use crate::http::api::parse_admin_id;
use crate::http::error::ApiError;
use crate::http::{AppState, RequestId};
use admin_provisioner_core::domain::UserId;
use admin_provisioner_core::domain::{Actor, InviteStatus, Role};
use admin_provisioner_core::{decide, AdminAction, AdminView, Error, Target};
use askama::Template;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use serde::Deserialize;

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
    can_reset_password: bool,
    can_reset_mfa: bool,
    can_sign_out: bool,
    remove: Option<RemoveButton>,
    saga: Option<SagaLink>,
    role: &'static str,
    /// The roles the signed-in admin may give this admin (empty: no change-role form).
    role_choices: Vec<RoleOption>,
}

/// One choice of a role select.
struct RoleOption {
    value: &'static str,
    selected: bool,
}

/// The signed-in admin, as the permission table sees them: the console shows only what it allows (the
/// core refuses the rest anyway).
#[derive(Clone, Copy)]
struct Viewer {
    id: UserId,
    role: Role,
}

impl Viewer {
    fn may(&self, action: AdminAction, target: Option<Target>, gives: Option<Role>) -> bool {
        decide(self.role, Some(self.id), action, target, gives).is_ok()
    }
}

fn admin_row(a: &AdminView, me: &str, now: DateTime<Utc>, viewer: Viewer) -> AdminRow {
    // A pending line has no records yet: the permission table sees it as a create of its role.
    let target = a.user.as_ref().map(|_| Target { id: a.id, role: a.role });
    let may = |action| match target {
        Some(t) => viewer.may(action, Some(t), None),
        None => viewer.may(action, None, Some(a.role)),
    };
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
        _ if !may(AdminAction::Remove) => None,
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
        can_resend: may(AdminAction::Resend) && matches!(a.status, InviteStatus::Invited | InviteStatus::Expired),
        can_disable: !you
            && may(AdminAction::Disable)
            && matches!(
                a.status,
                InviteStatus::Active | InviteStatus::Invited | InviteStatus::Expired
            ),
        can_enable: may(AdminAction::Enable) && a.status == InviteStatus::Disabled,
        can_reset_password: !you && may(AdminAction::ResetPassword) && a.status == InviteStatus::Active,
        can_reset_mfa: !you && may(AdminAction::ResetMfa) && a.status == InviteStatus::Active,
        can_sign_out: !you && may(AdminAction::SignOut) && a.status == InviteStatus::Active,
        remove,
        saga,
        role: a.role.as_str(),
        role_choices: match target {
            Some(t) if a.user.is_some() && may(AdminAction::ChangeRole) => Role::ALL
                .into_iter()
                .rev()
                .filter(|r| *r == a.role || viewer.may(AdminAction::ChangeRole, Some(t), Some(*r)))
                .map(|r| RoleOption {
                    value: r.as_str(),
                    selected: r == a.role,
                })
                .collect(),
            _ => Vec::new(),
        },
    }
}

/// The admin list page's query: the same filters and cursor as `GET /api/admins`.
#[derive(Deserialize, Default)]
pub(super) struct ListParams {
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
    my_role: &'static str,
    /// The roles the signed-in admin may create (empty: no create form).
    create_roles: Vec<RoleOption>,
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

pub(super) async fn console_page(
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
    let api_params = crate::http::api::AdminListParams {
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
    let viewer = match state.provisioner().role_of(&Actor::Admin(user.admin_id)).await {
        Ok(role) => Viewer {
            id: user.admin_id,
            role,
        },
        Err(e) => {
            let e = ApiError::from(e);
            return error_page(&state, e.status, e.code, &describe(&e));
        }
    };
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
        rows: listing
            .admins
            .iter()
            .map(|a| admin_row(a, &user.email, now, viewer))
            .collect(),
        next_href: next_href(&params, listing.next.map(|c| c.encode())),
        my_role: viewer.role.as_str(),
        create_roles: Role::ALL
            .into_iter()
            .rev()
            .filter(|r| viewer.may(AdminAction::Create, None, Some(*r)))
            .map(|r| RoleOption {
                value: r.as_str(),
                selected: r == Role::Admin,
            })
            .collect(),
    };
    with_jar(jar, render(StatusCode::OK, &page))
}

/// The "Create New Admin" form.
#[derive(Deserialize, Default)]
pub(super) struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    /// `owner`, `admin` or `viewer`; absent: `admin`.
    #[serde(default)]
    role: String,
}

/// The "Change role" form of one admin.
#[derive(Deserialize, Default)]
pub(super) struct RoleForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
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

pub(super) async fn create_submit(
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
    let role = if form.role.trim().is_empty() {
        Role::Admin
    } else {
        match Role::parse(&form.role) {
            Some(r) => r,
            None => {
                return back_to_console(
                    &state,
                    &headers,
                    Flash::error("Unknown role: a role is owner, admin or viewer.".to_string()),
                )
            }
        }
    };
    let flash = match state
        .provisioner()
        .provision_admin_with_role(&user.caller, &form.email, role, Some(&request_id))
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

pub(super) async fn resend_submit(
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

pub(super) async fn remove_submit(
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
pub(super) async fn disable_submit(
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

/// Which credentials operation a console button asks for.
#[derive(Clone, Copy)]
enum CredentialsOp {
    ResetPassword,
    ResetMfa,
    SignOut,
}

async fn credentials_submit(
    state: AppState,
    request_id: String,
    headers: HeaderMap,
    id: String,
    form: Result<Form<CsrfForm>, FormRejection>,
    op: CredentialsOp,
) -> Response {
    let (user, id, email) = match admin_action(&state, &headers, &id, form).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    let p = state.provisioner();
    let (result, done) = match op {
        CredentialsOp::ResetPassword => (
            p.reset_admin_password(&user.caller, id, Some(&request_id)).await,
            format!("{email}'s password was reset: a code is on its way to them, and they were signed out everywhere."),
        ),
        CredentialsOp::ResetMfa => (
            p.reset_admin_mfa(&user.caller, id, Some(&request_id)).await,
            format!("{email}'s authenticator was cleared: they set up a new one at their next sign-in, and were signed out everywhere."),
        ),
        CredentialsOp::SignOut => (
            p.sign_out_admin(&user.caller, id, Some(&request_id)).await,
            format!("{email} was signed out everywhere: their sessions and tokens are refused from their next request."),
        ),
    };
    let flash = match result {
        Ok(_) => Flash::ok(done),
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to_console(&state, &headers, flash)
}

/// `POST /console/admins/{id}/reset-password`: the same operation as `POST /api/admins/{id}/reset-password`.
pub(super) async fn reset_password_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    credentials_submit(state, request_id, headers, id, form, CredentialsOp::ResetPassword).await
}

/// `POST /console/admins/{id}/reset-mfa`: the same operation as `POST /api/admins/{id}/reset-mfa`.
pub(super) async fn reset_mfa_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    credentials_submit(state, request_id, headers, id, form, CredentialsOp::ResetMfa).await
}

/// `POST /console/admins/{id}/sign-out`: the same operation as `POST /api/admins/{id}/sign-out`.
pub(super) async fn sign_out_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    credentials_submit(state, request_id, headers, id, form, CredentialsOp::SignOut).await
}

/// `POST /console/admins/{id}/role`: the same operation as `PATCH /api/admins/{id}` (the role-change
/// saga); who may give which role is the core's permission table (`provisioner/policy.rs`).
pub(super) async fn role_submit(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    Path(id): Path<String>,
    form: Result<Form<RoleForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(f)| f).unwrap_or_default();
    let csrf = Ok(Form(CsrfForm {
        csrf: form.csrf.clone(),
    }));
    let (user, id, email) = match admin_action(&state, &headers, &id, csrf).await {
        Ok(parts) => parts,
        Err(res) => return res,
    };
    let Some(role) = Role::parse(&form.role) else {
        return back_to_console(
            &state,
            &headers,
            Flash::error("Unknown role: a role is owner, admin or viewer.".to_string()),
        );
    };
    let flash = match state
        .provisioner()
        .change_role(&user.caller, id, role, Some(&request_id))
        .await
    {
        Ok(_) => Flash::ok(format!("{email} is now {}.", role.as_str())),
        Err(e) => Flash::error(describe_error(&e)),
    };
    back_to_console(&state, &headers, flash)
}

/// `POST /console/admins/{id}/enable`: the same operation as `POST /api/admins/{id}/enable`.
pub(super) async fn enable_submit(
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
