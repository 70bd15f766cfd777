//! Cognito's JSON wire protocol in front of the emulator, so any AWS SDK, the AWS CLI or a standard JWT
//! verifier can use it as a local Cognito.
//!
//! * `POST /` with `X-Amz-Target: AWSCognitoIdentityProviderService.<Operation>` and a JSON body
//!   (`application/x-amz-json-1.1`): the operation's request shape in, its response shape out (PascalCase
//!   members, dates as epoch seconds). SigV4 headers are accepted without checking the credentials, as
//!   moto does.
//! * Errors: `{"__type": "<Code>Exception", "message": "…"}` with header `x-amzn-ErrorType`, HTTP 400
//!   (500 for `InternalErrorException`). An operation Cognito has but the emulator does not answers
//!   `UnsupportedOperationException`; a missing or foreign target `UnknownOperationException`; a body that
//!   is not a JSON object `SerializationException`; a body over [`MAX_BODY_BYTES`]
//!   `RequestEntityTooLargeException` (HTTP 413). None of them ever ends the server.
//! * `GET /<pool id>/.well-known/jwks.json` and `GET /<pool id>/.well-known/openid-configuration`: with
//!   the issuer `http://<address>/<pool id>`, a standard verifier finds the keys from the issuer.
//!
//! The operations are the arms of one `match` in [`dispatch`]; each is a small function from the request
//! JSON to the response JSON over the emulator's model (nothing here holds state of its own).

use crate::account::UserFilter;
use crate::{db, CognitoEmulator};
use admin_provisioner_core::domain::{Password, Secret, TemporaryPassword};
use admin_provisioner_core::identity::{
    AuthOutcome, ChallengeAnswer, CreateUserRequest, IdentityProvider, IdpError, IdpUser, MessageAction, MfaAuth,
};
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::future::Future;
use std::net::SocketAddr;

/// The `X-Amz-Target` prefix of Cognito user-pool operations.
pub const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
/// The content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Largest request body accepted (Cognito's requests are a few KiB at most).
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// cognito-local's port, so existing local set-ups find the emulator where they look.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9229";
/// The `x-amzn-ErrorType` header.
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// The operations the emulator answers (Cognito's names), in the order of [`dispatch`].
pub const OPERATIONS: &[&str] = &[
    "AdminCreateUser",
    "AdminGetUser",
    "AdminDeleteUser",
    "AdminDisableUser",
    "AdminEnableUser",
    "AdminSetUserPassword",
    "AdminUserGlobalSignOut",
    "AdminResetUserPassword",
    "AdminSetUserMFAPreference",
    "ForgotPassword",
    "ConfirmForgotPassword",
    "ListUsers",
    "InitiateAuth",
    "AdminInitiateAuth",
    "RespondToAuthChallenge",
    "AdminRespondToAuthChallenge",
    "GetUser",
    "ChangePassword",
    "GlobalSignOut",
    "DescribeUserPool",
    "DescribeUserPoolClient",
    "ListUserPools",
    "ListUserPoolClients",
    "CreateGroup",
    "GetGroup",
    "AdminAddUserToGroup",
    "AdminRemoveUserFromGroup",
    "AdminListGroupsForUser",
];

/// Refuses an address reachable from other machines unless `allow_remote` (`EMULATOR_ALLOW_REMOTE`):
/// the emulator hands out tokens for any user to anyone who can reach it.
pub fn check_addr(addr: &SocketAddr, allow_remote: bool) -> Result<(), String> {
    if addr.ip().is_loopback() || allow_remote {
        return Ok(());
    }
    Err(format!(
        "refusing to serve the Cognito emulator's wire endpoint on {addr} (reachable from other machines): it signs \
         tokens for every user. Use a loopback address (COGNITO_EMULATOR_ADDR=127.0.0.1:9229) or set \
         EMULATOR_ALLOW_REMOTE=true if you really mean it"
    ))
}

/// The router: `POST /` (the operations) and the two `.well-known` documents of the pool.
pub fn router(emu: CognitoEmulator) -> Router {
    Router::new()
        .route("/", post(operation))
        .route("/{pool}/.well-known/jwks.json", get(jwks))
        .route("/{pool}/.well-known/openid-configuration", get(openid_configuration))
        .fallback(|| async {
            WireError::new(StatusCode::NOT_FOUND, "ResourceNotFoundException", "Not found").into_response()
        })
        .with_state(emu)
}

/// Serves [`router`] on `listener` until `shutdown` completes.
pub async fn serve(
    emu: CognitoEmulator,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(emu))
        .with_graceful_shutdown(shutdown)
        .await
}

// ------------------------------------------------------------------------------------------ transport

/// A Cognito error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    status: StatusCode,
    code: String,
    message: String,
}

impl WireError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }

    fn bad(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::bad("InvalidParameterException", message)
    }
}

impl From<IdpError> for WireError {
    fn from(e: IdpError) -> Self {
        let bad = |code: &str, message: &str| Self::bad(code, message);
        match e {
            IdpError::UsernameExists => bad("UsernameExistsException", "User account already exists"),
            IdpError::UserNotFound => bad("UserNotFoundException", "User does not exist."),
            IdpError::InvalidPassword(m) => bad("InvalidPasswordException", &m),
            IdpError::InvalidParameter(m) => bad("InvalidParameterException", &m),
            IdpError::NotAuthorized(m) => bad("NotAuthorizedException", &m),
            IdpError::UnsupportedUserState(m) => bad("UnsupportedUserStateException", &m),
            IdpError::CodeDeliveryFailure(m) => bad("CodeDeliveryFailureException", &m),
            IdpError::CodeMismatch(m) => bad("CodeMismatchException", &m),
            IdpError::PasswordHistoryPolicyViolation => bad(
                "PasswordHistoryPolicyViolationException",
                "The password was used recently and cannot be used again.",
            ),
            IdpError::PasswordResetRequired(m) => bad("PasswordResetRequiredException", &m),
            IdpError::TooManyRequests => bad("TooManyRequestsException", "Rate exceeded"),
            IdpError::ResourceNotFound(m) => bad("ResourceNotFoundException", &m),
            IdpError::GroupExists(m) => bad("GroupExistsException", &m),
            IdpError::Timeout(m) | IdpError::Unavailable(m) => {
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalErrorException", m)
            }
            IdpError::Other { code, message, .. } => {
                let code = if code.ends_with("Exception") {
                    code
                } else {
                    format!("{code}Exception")
                };
                let status = if code == "InternalErrorException" {
                    StatusCode::INTERNAL_SERVER_ERROR
                } else {
                    StatusCode::BAD_REQUEST
                };
                Self::new(status, &code, message)
            }
        }
    }
}

impl IntoResponse for WireError {
    fn into_response(self) -> Response {
        let body = json!({ "__type": self.code, "message": self.message });
        let mut response = (self.status, aws_json(&body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&self.code) {
            response.headers_mut().insert(ERROR_TYPE_HEADER, v);
        }
        response
    }
}

/// A JSON body with the AWS JSON 1.1 content type and a request id.
fn aws_json(body: &Value) -> Response {
    let mut response = Response::new(Body::from(body.to_string()));
    let headers = response.headers_mut();
    headers.insert("content-type", HeaderValue::from_static(CONTENT_TYPE));
    if let Ok(id) = HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        headers.insert("x-amzn-requestid", id);
    }
    response
}

/// `POST /`: reads the target and the body (bounded), dispatches, answers JSON.
async fn operation(State(emu): State<CognitoEmulator>, headers: HeaderMap, body: Body) -> Response {
    let result = async {
        let target = headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let Some(op) = target.strip_prefix(TARGET_PREFIX).filter(|op| !op.is_empty()) else {
            return Err(WireError::bad(
                "UnknownOperationException",
                format!("No operation: the X-Amz-Target header must be {TARGET_PREFIX}<Operation>"),
            ));
        };
        let bytes: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
            WireError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "RequestEntityTooLargeException",
                format!("The request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        })?;
        let request: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
            Value::Object(Map::new())
        } else {
            serde_json::from_slice(&bytes)
                .map_err(|_| WireError::bad("SerializationException", "The request body is not valid JSON"))?
        };
        if !request.is_object() {
            return Err(WireError::bad(
                "SerializationException",
                "The request body must be a JSON object",
            ));
        }
        let op = op.to_string();
        let outcome = dispatch(&emu, &op, &request).await;
        match &outcome {
            Ok(_) => tracing::debug!(op = %op, "wire call answered"),
            Err(e) => tracing::debug!(op = %op, code = %e.code, "wire call refused"),
        }
        outcome
    }
    .await;
    match result {
        Ok(body) => aws_json(&body),
        Err(e) => e.into_response(),
    }
}

/// One arm per operation.
async fn dispatch(emu: &CognitoEmulator, op: &str, req: &Value) -> Result<Value, WireError> {
    match op {
        "AdminCreateUser" => admin_create_user(emu, req).await,
        "AdminGetUser" => admin_get_user(emu, req).await,
        "AdminDeleteUser" => admin_user_call(emu, req, |e, u| async move { e.admin_delete_user(&u).await }).await,
        "AdminDisableUser" => admin_user_call(emu, req, |e, u| async move { e.admin_disable_user(&u).await }).await,
        "AdminEnableUser" => admin_user_call(emu, req, |e, u| async move { e.admin_enable_user(&u).await }).await,
        "AdminSetUserPassword" => admin_set_user_password(emu, req).await,
        "AdminUserGlobalSignOut" => {
            admin_user_call(emu, req, |e, u| async move { e.admin_user_global_sign_out(&u).await }).await
        }
        "AdminResetUserPassword" => {
            admin_user_call(emu, req, |e, u| async move {
                IdentityProvider::admin_reset_user_password(&e, &u).await
            })
            .await
        }
        "AdminSetUserMFAPreference" => admin_set_user_mfa_preference(emu, req).await,
        "ForgotPassword" => forgot_password(emu, req).await,
        "ConfirmForgotPassword" => confirm_forgot_password(emu, req).await,
        "ListUsers" => list_users(emu, req).await,
        "InitiateAuth" => initiate_auth(emu, req, false).await,
        "AdminInitiateAuth" => initiate_auth(emu, req, true).await,
        "RespondToAuthChallenge" => respond_to_auth_challenge(emu, req, false).await,
        "AdminRespondToAuthChallenge" => respond_to_auth_challenge(emu, req, true).await,
        "GetUser" => get_user(emu, req).await,
        "ChangePassword" => change_password(emu, req).await,
        "GlobalSignOut" => global_sign_out(emu, req).await,
        "AssociateSoftwareToken" => associate_software_token(emu, req).await,
        "VerifySoftwareToken" => verify_software_token(emu, req).await,
        "SetUserMFAPreference" => set_user_mfa_preference(emu, req).await,
        "DescribeUserPool" => describe_user_pool(emu, req).await,
        "DescribeUserPoolClient" => describe_user_pool_client(emu, req).await,
        "ListUserPools" => list_user_pools(emu, req).await,
        "ListUserPoolClients" => list_user_pool_clients(emu, req).await,
        "CreateGroup" => create_group(emu, req).await,
        "GetGroup" => get_group(emu, req).await,
        "AdminAddUserToGroup" => group_membership(emu, req, true).await,
        "AdminRemoveUserFromGroup" => group_membership(emu, req, false).await,
        "AdminListGroupsForUser" => admin_list_groups_for_user(emu, req).await,
        other => Err(WireError::bad(
            "UnsupportedOperationException",
            format!(
                "The local Cognito emulator does not implement {other} (it answers: {})",
                OPERATIONS.join(", ")
            ),
        )),
    }
}

// ------------------------------------------------------------------------------------------ request fields

/// `userPoolId` from `UserPoolId`: Cognito's validation messages name members in lower camel case.
fn member_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn missing(name: &str) -> WireError {
    WireError::invalid(format!(
        "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
        member_name(name)
    ))
}

/// An optional string member (`InvalidParameter` when present but not a string).
fn opt_str<'a>(req: &'a Value, name: &str) -> Result<Option<&'a str>, WireError> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(WireError::bad(
            "SerializationException",
            format!("{name} must be a string"),
        )),
    }
}

/// A required string member.
fn req_str<'a>(req: &'a Value, name: &str) -> Result<&'a str, WireError> {
    opt_str(req, name)?.ok_or_else(|| missing(name))
}

/// A string-to-string map member (`AuthParameters`, `ChallengeResponses`).
fn str_map<'a>(req: &'a Value, name: &str) -> Result<Option<&'a Map<String, Value>>, WireError> {
    match req.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(WireError::bad(
            "SerializationException",
            format!("{name} must be a map"),
        )),
    }
}

fn map_str<'a>(map: Option<&'a Map<String, Value>>, key: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(key)).and_then(Value::as_str)
}

/// `UserPoolId`, which must be the emulated pool (`ResourceNotFound` otherwise, as Cognito answers).
fn check_pool(emu: &CognitoEmulator, req: &Value) -> Result<(), WireError> {
    let pool = req_str(req, "UserPoolId")?;
    if pool != emu.pool_id() {
        return Err(WireError::bad(
            "ResourceNotFoundException",
            format!("User pool {pool} does not exist."),
        ));
    }
    Ok(())
}

/// `ClientId`, which must be the emulated app client.
fn check_client(emu: &CognitoEmulator, req: &Value) -> Result<(), WireError> {
    let client = req_str(req, "ClientId")?;
    if client != emu.client_id() {
        return Err(WireError::bad(
            "ResourceNotFoundException",
            format!("User pool client {client} does not exist."),
        ));
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------ response shapes

/// Epoch seconds (with milliseconds), Cognito's date format on the wire.
fn epoch(t: DateTime<Utc>) -> Value {
    json!(t.timestamp_millis() as f64 / 1000.0)
}

fn attributes(user: &IdpUser) -> Value {
    let mut attrs = vec![json!({"Name": "sub", "Value": user.sub})];
    if let Some(email) = &user.email {
        // Every address the emulator stores is verified (`email_verified=true` on create and update).
        attrs.push(json!({"Name": "email_verified", "Value": "true"}));
        attrs.push(json!({"Name": "email", "Value": email}));
    }
    Value::Array(attrs)
}

/// `UserType` (AdminCreateUser's `User`, ListUsers' `Users`).
fn user_type(user: &IdpUser) -> Value {
    json!({
        "Username": user.username,
        "Attributes": attributes(user),
        "UserCreateDate": epoch(user.created_at),
        "UserLastModifiedDate": epoch(user.last_modified_at),
        "Enabled": user.enabled,
        "UserStatus": user.status.as_cognito(),
    })
}

fn authentication_result(tokens: &admin_provisioner_core::domain::Tokens) -> Value {
    let mut result = json!({
        "AccessToken": tokens.access_token.expose(),
        "ExpiresIn": tokens.expires_in,
        "TokenType": "Bearer",
        "IdToken": tokens.id_token.expose(),
    });
    if !tokens.refresh_token.expose().is_empty() {
        result["RefreshToken"] = json!(tokens.refresh_token.expose());
    }
    json!({ "AuthenticationResult": result, "ChallengeParameters": {} })
}

async fn auth_outcome(emu: &CognitoEmulator, outcome: AuthOutcome) -> Result<Value, WireError> {
    match outcome {
        AuthOutcome::Tokens(tokens) => Ok(authentication_result(&tokens)),
        AuthOutcome::NewPasswordRequired { session, username } => {
            let email = db::find_user(&emu.inner.pool, &username)
                .await
                .map_err(db::unavailable)?
                .map(|u| u.email)
                .unwrap_or_default();
            let user_attributes = json!({"email_verified": "true", "email": email}).to_string();
            Ok(json!({
                "ChallengeName": "NEW_PASSWORD_REQUIRED",
                "Session": session.expose(),
                "ChallengeParameters": {
                    "USER_ID_FOR_SRP": username,
                    "requiredAttributes": "[]",
                    "userAttributes": user_attributes,
                },
            }))
        }
        AuthOutcome::MfaSetup { session, username } => Ok(json!({
            "ChallengeName": "MFA_SETUP",
            "Session": session.expose(),
            "ChallengeParameters": { "MFAS_CAN_SETUP": "[\"SOFTWARE_TOKEN_MFA\"]", "USER_ID_FOR_SRP": username },
        })),
        AuthOutcome::SoftwareTokenMfa { session, username } => Ok(json!({
            "ChallengeName": "SOFTWARE_TOKEN_MFA",
            "Session": session.expose(),
            "ChallengeParameters": { "USER_ID_FOR_SRP": username },
        })),
    }
}

// ------------------------------------------------------------------------------------------ operations

async fn admin_create_user(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let username = req_str(req, "Username")?;
    let email = match req.get("UserAttributes") {
        None | Some(Value::Null) => None,
        Some(Value::Array(attrs)) => attrs
            .iter()
            .find(|a| a.get("Name").and_then(Value::as_str) == Some("email"))
            .and_then(|a| a.get("Value"))
            .and_then(Value::as_str),
        Some(_) => {
            return Err(WireError::bad(
                "SerializationException",
                "UserAttributes must be a list",
            ))
        }
    };
    let message_action = match opt_str(req, "MessageAction")? {
        None => None,
        Some("RESEND") => Some(MessageAction::Resend),
        Some("SUPPRESS") => Some(MessageAction::Suppress),
        Some(other) => {
            return Err(WireError::invalid(format!(
                "1 validation error detected: Value '{other}' at 'messageAction' failed to satisfy constraint: \
                 Member must satisfy enum value set: [RESEND, SUPPRESS]"
            )))
        }
    };
    let request = CreateUserRequest {
        username: username.to_string(),
        email: email.unwrap_or_default().to_string(),
        temporary_password: opt_str(req, "TemporaryPassword")?.map(TemporaryPassword::new),
        message_action,
    };
    let user = emu.admin_create_user(request).await?;
    Ok(json!({ "User": user_type(&user) }))
}

async fn admin_get_user(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let user = emu.admin_get_user(req_str(req, "Username")?).await?;
    Ok(json!({
        "Username": user.username,
        "UserAttributes": attributes(&user),
        "UserCreateDate": epoch(user.created_at),
        "UserLastModifiedDate": epoch(user.last_modified_at),
        "Enabled": user.enabled,
        "UserStatus": user.status.as_cognito(),
    }))
}

/// The admin calls that take `UserPoolId` + `Username` and answer `{}`.
async fn admin_user_call<F, Fut>(emu: &CognitoEmulator, req: &Value, call: F) -> Result<Value, WireError>
where
    F: FnOnce(CognitoEmulator, String) -> Fut,
    Fut: Future<Output = Result<(), IdpError>>,
{
    check_pool(emu, req)?;
    let username = req_str(req, "Username")?.to_string();
    call(emu.clone(), username).await?;
    Ok(json!({}))
}

async fn admin_set_user_password(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let username = req_str(req, "Username")?;
    let password = Password::new(req_str(req, "Password")?);
    let permanent = req.get("Permanent").and_then(Value::as_bool).unwrap_or(false);
    emu.admin_set_user_password(username, &password, permanent).await?;
    Ok(json!({}))
}

async fn admin_set_user_mfa_preference(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let username = req_str(req, "Username")?;
    if let Some(settings) = req.get("SoftwareTokenMfaSettings") {
        let enabled = settings.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
        IdentityProvider::admin_set_user_mfa_preference(emu, username, enabled).await?;
    }
    Ok(json!({}))
}

/// Cognito's masked destination (`a***@e***`): derived from the username alone, so a known and an
/// unknown user get the same answer (user-existence errors are prevented).
fn masked_destination(username: &str) -> String {
    let first = |s: &str| s.chars().next().map(String::from).unwrap_or_default();
    match username.split_once('@') {
        Some((local, domain)) => format!("{}***@{}***", first(local), first(domain)),
        None => format!("{}***", first(username)),
    }
}

async fn forgot_password(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_client(emu, req)?;
    let username = req_str(req, "Username")?;
    emu.forgot_password(username).await?;
    Ok(json!({
        "CodeDeliveryDetails": {
            "Destination": masked_destination(username),
            "DeliveryMedium": "EMAIL",
            "AttributeName": "email",
        }
    }))
}

async fn confirm_forgot_password(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_client(emu, req)?;
    let username = req_str(req, "Username")?;
    let code = Secret::new(req_str(req, "ConfirmationCode")?);
    let password = Password::new(req_str(req, "Password")?);
    emu.confirm_forgot_password(username, &code, &password).await?;
    Ok(json!({}))
}

async fn list_users(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let limit = match req.get("Limit") {
        None | Some(Value::Null) => 60,
        Some(v) => v
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| WireError::invalid("Limit must be a whole number"))?,
    };
    let filter = UserFilter::parse(opt_str(req, "Filter")?.unwrap_or_default())?;
    let token = opt_str(req, "PaginationToken")?.map(str::to_string);
    let page = emu.list_users_filtered(token, limit, filter.as_ref()).await?;
    let mut out = json!({ "Users": page.users.iter().map(user_type).collect::<Vec<_>>() });
    if let Some(token) = page.next_token {
        out["PaginationToken"] = json!(token);
    }
    Ok(out)
}

async fn initiate_auth(emu: &CognitoEmulator, req: &Value, admin: bool) -> Result<Value, WireError> {
    if admin {
        check_pool(emu, req)?;
    }
    check_client(emu, req)?;
    let flow = req_str(req, "AuthFlow")?;
    let params = str_map(req, "AuthParameters")?;
    let password_flow = if admin {
        matches!(flow, "ADMIN_USER_PASSWORD_AUTH" | "ADMIN_NO_SRP_AUTH")
    } else {
        flow == "USER_PASSWORD_AUTH"
    };
    if password_flow {
        let username =
            map_str(params, "USERNAME").ok_or_else(|| WireError::invalid("Missing required parameter USERNAME"))?;
        let password =
            map_str(params, "PASSWORD").ok_or_else(|| WireError::invalid("Missing required parameter PASSWORD"))?;
        let outcome = emu.initiate_auth(username, &Password::new(password)).await?;
        return auth_outcome(emu, outcome).await;
    }
    if matches!(flow, "REFRESH_TOKEN_AUTH" | "REFRESH_TOKEN") {
        let token = map_str(params, "REFRESH_TOKEN")
            .ok_or_else(|| WireError::invalid("Missing required parameter REFRESH_TOKEN"))?;
        let tokens = emu.refresh_tokens(&Secret::new(token)).await?;
        return Ok(authentication_result(&tokens));
    }
    Err(WireError::invalid(format!(
        "Initiate Auth method not supported: the local Cognito emulator answers {} and REFRESH_TOKEN_AUTH, not {flow}.",
        if admin {
            "ADMIN_USER_PASSWORD_AUTH"
        } else {
            "USER_PASSWORD_AUTH"
        }
    )))
}

async fn respond_to_auth_challenge(emu: &CognitoEmulator, req: &Value, admin: bool) -> Result<Value, WireError> {
    if admin {
        check_pool(emu, req)?;
    }
    check_client(emu, req)?;
    let challenge = req_str(req, "ChallengeName")?;
    let session = req_str(req, "Session")?;
    let responses = str_map(req, "ChallengeResponses")?;
    let username =
        map_str(responses, "USERNAME").ok_or_else(|| WireError::invalid("Missing required parameter USERNAME"))?;
    let answer = match challenge {
        "NEW_PASSWORD_REQUIRED" => ChallengeAnswer::NewPassword(Password::new(
            map_str(responses, "NEW_PASSWORD")
                .ok_or_else(|| WireError::invalid("Missing required parameter NEW_PASSWORD"))?,
        )),
        "MFA_SETUP" => ChallengeAnswer::MfaSetup,
        "SOFTWARE_TOKEN_MFA" => ChallengeAnswer::SoftwareTokenMfa(Secret::new(
            map_str(responses, "SOFTWARE_TOKEN_MFA_CODE")
                .ok_or_else(|| WireError::invalid("Missing required parameter SOFTWARE_TOKEN_MFA_CODE"))?,
        )),
        other => {
            return Err(WireError::invalid(format!(
            "The local Cognito emulator issues NEW_PASSWORD_REQUIRED, MFA_SETUP and SOFTWARE_TOKEN_MFA, not {other}."
        )))
        }
    };
    let outcome = emu
        .respond_to_auth_challenge(username, &Secret::new(session), &answer)
        .await?;
    auth_outcome(emu, outcome).await
}

/// `AccessToken` or `Session`, as `AssociateSoftwareToken` and `VerifySoftwareToken` take them.
fn mfa_auth(req: &Value) -> Result<MfaAuth, WireError> {
    match (opt_str(req, "AccessToken")?, opt_str(req, "Session")?) {
        (Some(t), _) => Ok(MfaAuth::AccessToken(Secret::new(t))),
        (None, Some(s)) => Ok(MfaAuth::Session(Secret::new(s))),
        (None, None) => Err(WireError::invalid("AccessToken or Session is required")),
    }
}

async fn associate_software_token(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    let a = emu.associate_software_token(&mfa_auth(req)?).await?;
    let mut out = json!({ "SecretCode": a.secret_code.expose() });
    if let Some(s) = a.session {
        out["Session"] = json!(s.expose());
    }
    Ok(out)
}

async fn verify_software_token(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    let code = Secret::new(req_str(req, "UserCode")?);
    let session = emu.verify_software_token(&mfa_auth(req)?, &code).await?;
    let mut out = json!({ "Status": "SUCCESS" });
    if let Some(s) = session {
        out["Session"] = json!(s.expose());
    }
    Ok(out)
}

async fn set_user_mfa_preference(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    let token = Secret::new(req_str(req, "AccessToken")?);
    if let Some(settings) = req.get("SoftwareTokenMfaSettings") {
        let enabled = settings.get("Enabled").and_then(Value::as_bool).unwrap_or(false);
        emu.set_user_mfa_preference(&token, enabled).await?;
    }
    Ok(json!({}))
}

async fn get_user(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    let user = emu.get_user(&Secret::new(req_str(req, "AccessToken")?)).await?;
    Ok(json!({
        "Username": user.username,
        "UserAttributes": attributes(&user),
    }))
}

async fn change_password(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    let token = Secret::new(req_str(req, "AccessToken")?);
    let previous = Password::new(req_str(req, "PreviousPassword")?);
    let proposed = Password::new(req_str(req, "ProposedPassword")?);
    emu.change_password(&token, &previous, &proposed).await?;
    Ok(json!({}))
}

async fn global_sign_out(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    emu.global_sign_out(&Secret::new(req_str(req, "AccessToken")?)).await?;
    Ok(json!({}))
}

/// The pool's fixed settings: Cognito's defaults as the product needs them (the emulator's rules).
async fn describe_user_pool(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let pool = emu.describe_pool().await?;
    Ok(json!({ "UserPool": {
        "Id": pool.pool_id,
        "Name": "local-emulator",
        "Arn": format!("arn:aws:cognito-idp:{}:000000000000:userpool/{}", pool.region, pool.pool_id),
        "Policies": { "PasswordPolicy": {
            "MinimumLength": crate::policy::MIN_PASSWORD_LENGTH,
            "RequireUppercase": true,
            "RequireLowercase": true,
            "RequireNumbers": true,
            "RequireSymbols": true,
            "PasswordHistorySize": 0,
            "TemporaryPasswordValidityDays": pool.invite_validity_days,
        }},
        "DeletionProtection": "INACTIVE",
        "LambdaConfig": {},
        "LastModifiedDate": epoch(pool.created_at),
        "CreationDate": epoch(pool.created_at),
        "SchemaAttributes": [
            {"Name": "sub", "AttributeDataType": "String", "DeveloperOnlyAttribute": false, "Mutable": false, "Required": true},
            {"Name": "email", "AttributeDataType": "String", "DeveloperOnlyAttribute": false, "Mutable": true, "Required": false},
            {"Name": "email_verified", "AttributeDataType": "Boolean", "DeveloperOnlyAttribute": false, "Mutable": true, "Required": false},
        ],
        "AutoVerifiedAttributes": ["email"],
        "MfaConfiguration": "OFF",
        "EstimatedNumberOfUsers": pool.users,
        "EmailConfiguration": { "EmailSendingAccount": "COGNITO_DEFAULT" },
        "AdminCreateUserConfig": {
            "AllowAdminCreateUserOnly": true,
            "UnusedAccountValidityDays": pool.invite_validity_days,
            "InviteMessageTemplate": {
                "EmailMessage": "Your username is {username} and temporary password is {####}.",
                "EmailSubject": "Your temporary password",
            },
        },
        "UsernameConfiguration": { "CaseSensitive": false },
        "AccountRecoverySetting": { "RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}] },
        "UserPoolTier": "ESSENTIALS",
    }}))
}

async fn describe_user_pool_client(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    check_client(emu, req)?;
    let pool = emu.describe_pool().await?;
    Ok(json!({ "UserPoolClient": {
        "UserPoolId": pool.pool_id,
        "ClientName": "local-emulator",
        "ClientId": pool.client_id,
        "LastModifiedDate": epoch(pool.created_at),
        "CreationDate": epoch(pool.created_at),
        "RefreshTokenValidity": crate::account::REFRESH_TOKEN_VALIDITY_DAYS,
        "AccessTokenValidity": crate::TOKEN_VALIDITY_SECONDS / 60,
        "IdTokenValidity": crate::TOKEN_VALIDITY_SECONDS / 60,
        "TokenValidityUnits": {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"},
        "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        "PreventUserExistenceErrors": "ENABLED",
        "EnableTokenRevocation": true,
        "AuthSessionValidity": crate::SESSION_VALIDITY_SECONDS / 60,
    }}))
}

/// `MaxResults`: required, 1 to 60.
fn max_results(req: &Value) -> Result<(), WireError> {
    let n = req.get("MaxResults").ok_or_else(|| missing("MaxResults"))?;
    match n.as_i64() {
        Some(1..=60) => Ok(()),
        _ => Err(WireError::invalid(
            "1 validation error detected: Value at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 60",
        )),
    }
}

async fn list_user_pools(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    max_results(req)?;
    let pool = emu.describe_pool().await?;
    Ok(json!({ "UserPools": [{
        "Id": pool.pool_id,
        "Name": "local-emulator",
        "LambdaConfig": {},
        "LastModifiedDate": epoch(pool.created_at),
        "CreationDate": epoch(pool.created_at),
    }]}))
}

async fn list_user_pool_clients(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    if req.get("MaxResults").is_some() {
        max_results(req)?;
    }
    Ok(json!({ "UserPoolClients": [{
        "ClientId": emu.client_id(),
        "UserPoolId": emu.pool_id(),
        "ClientName": "local-emulator",
    }]}))
}

// ------------------------------------------------------------------------------------------ .well-known

fn check_path_pool(emu: &CognitoEmulator, pool: &str) -> Result<(), WireError> {
    if pool == emu.pool_id() {
        Ok(())
    } else {
        Err(WireError::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            format!("User pool {pool} does not exist."),
        ))
    }
}

async fn jwks(State(emu): State<CognitoEmulator>, Path(pool): Path<String>) -> Response {
    match check_path_pool(&emu, &pool) {
        Ok(()) => axum::Json(emu.jwks_json()).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn openid_configuration(State(emu): State<CognitoEmulator>, Path(pool): Path<String>) -> Response {
    if let Err(e) = check_path_pool(&emu, &pool) {
        return e.into_response();
    }
    let issuer = emu.issuer().trim_end_matches('/').to_string();
    axum::Json(json!({
        "issuer": issuer,
        "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "scopes_supported": ["openid", "email", "aws.cognito.signin.user.admin"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "token_use", "email", "email_verified", "cognito:username"],
        "response_types_supported": ["code", "token"],
    }))
    .into_response()
}

// ------------------------------------------------------------------------------------------ groups

/// `GroupType` of the emulated pool's group `name`.
async fn group_type(emu: &CognitoEmulator, name: &str) -> Result<Value, WireError> {
    let (name, description, created_us) = emu
        .group_row(name)
        .await?
        .ok_or_else(|| WireError::bad("ResourceNotFoundException", "Group not found."))?;
    let created = epoch(db::from_micros(created_us));
    let mut group = json!({
        "GroupName": name,
        "UserPoolId": emu.pool_id(),
        "CreationDate": created,
        "LastModifiedDate": created,
    });
    if let Some(d) = description {
        group["Description"] = json!(d);
    }
    Ok(group)
}

/// `CreateGroup {UserPoolId, GroupName, Description?}` → `{Group}`.
async fn create_group(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let name = req_str(req, "GroupName")?;
    let description = opt_str(req, "Description")?.unwrap_or_default();
    emu.emu_create_group(name, description).await?;
    Ok(json!({ "Group": group_type(emu, name).await? }))
}

/// `GetGroup {UserPoolId, GroupName}` → `{Group}`.
async fn get_group(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let name = req_str(req, "GroupName")?;
    emu.emu_get_group(name).await?;
    Ok(json!({ "Group": group_type(emu, name).await? }))
}

/// `AdminAddUserToGroup` / `AdminRemoveUserFromGroup {UserPoolId, Username, GroupName}` → `{}`.
async fn group_membership(emu: &CognitoEmulator, req: &Value, add: bool) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let username = req_str(req, "Username")?;
    let group = req_str(req, "GroupName")?;
    emu.emu_set_membership(username, group, add).await?;
    Ok(json!({}))
}

/// `AdminListGroupsForUser {UserPoolId, Username}` → `{Groups}` (every group on one page).
async fn admin_list_groups_for_user(emu: &CognitoEmulator, req: &Value) -> Result<Value, WireError> {
    check_pool(emu, req)?;
    let username = req_str(req, "Username")?;
    let mut groups = Vec::new();
    for name in emu.emu_list_groups_for_user(username).await? {
        groups.push(group_type(emu, &name).await?);
    }
    Ok(json!({ "Groups": groups }))
}
