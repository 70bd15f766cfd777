//! AWS Cognito adapter of admin-provisioner.
//!
//! [`CognitoIdentityProvider`] implements the identity-provider port
//! ([`admin_provisioner_core::identity::IdentityProvider`]) on `aws-sdk-cognitoidentityprovider`:
//!
//! | port method | Cognito call |
//! |---|---|
//! | `admin_create_user` | `AdminCreateUser` (`email`, `email_verified=true`, `DesiredDeliveryMediums=[EMAIL]`, optional `TemporaryPassword` / `MessageAction`) |
//! | `admin_get_user` | `AdminGetUser` |
//! | `admin_delete_user` | `AdminDeleteUser` |
//! | `list_users` | `ListUsers` (`Limit` ≤ 60, `PaginationToken`) |
//! | `initiate_auth` | `InitiateAuth` with `USER_PASSWORD_AUTH` (+ `SECRET_HASH` when the client has a secret) |
//! | `respond_to_auth_challenge` | `RespondToAuthChallenge` with `NEW_PASSWORD_REQUIRED`, `MFA_SETUP` or `SOFTWARE_TOKEN_MFA` |
//! | `associate_software_token` | `AssociateSoftwareToken` (`AccessToken` or `Session`) |
//! | `verify_software_token` | `VerifySoftwareToken` (`AccessToken` or `Session`, `UserCode`) |
//! | `set_user_mfa_preference` | `SetUserMFAPreference` (`SoftwareTokenMfaSettings`) |
//! | `jwks` | HTTP `GET` of the JWKS URL |
//! | `ping` | `ListUsers` with `Limit=1` (a permission the product needs anyway) |
//!
//! Every SDK error goes through one mapping ([`map_sdk_error`]): the Cognito error code (from the response's
//! error metadata) decides the [`IdpError`] variant, and the kind of
//! [`SdkError`](aws_sdk_cognitoidentityprovider::error::SdkError) (timeout, dispatch
//! failure, unreadable response) decides between [`IdpError::Timeout`] and [`IdpError::Unavailable`].
//! Error messages are single-line, bounded, and scrubbed of the passwords, sessions and secrets of the
//! call, so they are safe to log and to show.
//!
//! [`doctor::check`] reads the pool and app-client settings and reports what would break the
//! provisioning flow. With the cargo feature `moto`, [`testing`] starts a local moto server and creates
//! ready-to-use pools for integration tests.

use admin_provisioner_core::domain::{Password, Secret, Tokens};
use admin_provisioner_core::identity::{
    op, AuthOutcome, ChallengeAnswer, CreateUserRequest, IdentityProvider, IdpError, IdpGroup, IdpUser, IdpUserStatus,
    MessageAction, MfaAuth, SoftwareTokenAssociation, TokenSettings, UserPage,
};
use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_cognitoidentityprovider::types::{
    AttributeType, AuthFlowType, AuthenticationResultType, ChallengeNameType, DeliveryMediumType, MessageActionType,
    SoftwareTokenMfaSettingsType, UserStatusType,
};
use aws_sdk_cognitoidentityprovider::Client;
use chrono::{DateTime, Utc};
use std::time::Duration;

pub mod doctor;
mod errors;
#[cfg(feature = "moto")]
pub mod testing;

#[cfg(test)]
mod mock_tests;

pub use errors::map_sdk_error;

/// Default AWS region of the pool.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default timeout of one Cognito operation, retries included.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default TCP/TLS connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Attempts per Cognito call made by the SDK itself: one. The SDK's retry is disabled so that the
/// orchestrator's retry (backoff with jitter, on the port's `IdpError`) is the only retry layer; stacked
/// retries multiplied the attempts and let a step outlive its saga lease.
pub const MAX_ATTEMPTS: u32 = 1;
/// `ListUsers` accepts at most this many users per page.
pub const MAX_LIST_LIMIT: u32 = 60;

/// Settings of the Cognito adapter.
///
/// Build it with [`CognitoConfig::new`] (or struct-update syntax over [`Default`]) and override what
/// differs. Credentials are never part of it: they come from the standard AWS credential chain.
#[derive(Clone, Debug)]
pub struct CognitoConfig {
    /// The user pool, `{region}_{id}` (e.g. `us-east-1_AbC123xyz`).
    pub user_pool_id: String,
    /// The app client used for `InitiateAuth` / `RespondToAuthChallenge`; `aud` of ID tokens.
    pub client_id: String,
    /// The app client's secret, if it has one; then `SECRET_HASH` is sent with every auth call.
    pub client_secret: Option<Secret>,
    /// AWS region of the pool (default `us-east-1`).
    pub region: String,
    /// Endpoint override (a local emulator such as moto). When `None`, the SDK still honours the standard
    /// environment variable `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER` (and `AWS_ENDPOINT_URL`).
    pub endpoint_url: Option<String>,
    /// Expected `iss` of tokens; default `https://cognito-idp.{region}.amazonaws.com/{pool}`.
    pub issuer: Option<String>,
    /// Where the signing keys are fetched; default `{issuer}/.well-known/jwks.json`.
    pub jwks_url: Option<String>,
    /// Timeout of one operation, SDK retries included (default 10 s). Also bounds the JWKS download.
    pub call_timeout: Duration,
    /// TCP/TLS connect timeout (default 3 s).
    pub connect_timeout: Duration,
}

impl Default for CognitoConfig {
    fn default() -> Self {
        Self {
            user_pool_id: String::new(),
            client_id: String::new(),
            client_secret: None,
            region: DEFAULT_REGION.to_string(),
            endpoint_url: None,
            issuer: None,
            jwks_url: None,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }
}

impl CognitoConfig {
    /// A configuration for `user_pool_id` and `client_id` with every other setting at its default.
    pub fn new(user_pool_id: impl Into<String>, client_id: impl Into<String>) -> Self {
        Self {
            user_pool_id: user_pool_id.into(),
            client_id: client_id.into(),
            ..Self::default()
        }
    }

    /// The issuer tokens must carry: [`CognitoConfig::issuer`] or the AWS default for the pool.
    pub fn effective_issuer(&self) -> String {
        match &self.issuer {
            Some(iss) => iss.trim_end_matches('/').to_string(),
            None => format!(
                "https://cognito-idp.{}.amazonaws.com/{}",
                self.region, self.user_pool_id
            ),
        }
    }

    /// The JWKS URL: [`CognitoConfig::jwks_url`] or `{issuer}/.well-known/jwks.json`.
    pub fn effective_jwks_url(&self) -> String {
        match &self.jwks_url {
            Some(url) => url.clone(),
            None => format!("{}/.well-known/jwks.json", self.effective_issuer()),
        }
    }
}

/// Validates a user pool id's format, `{region}_{alphanumeric}` (e.g. `us-east-1_AbC123xyz`), at most 55
/// characters as Cognito allows. `Err` carries a one-line message for people.
pub fn validate_user_pool_id(id: &str) -> Result<(), String> {
    const EXAMPLE: &str = "expected {region}_{id}, e.g. us-east-1_AbC123xyz";
    if id.is_empty() {
        return Err(format!("the user pool id is empty ({EXAMPLE})"));
    }
    if id.len() > 55 {
        return Err(format!("the user pool id is longer than 55 characters ({EXAMPLE})"));
    }
    let Some((region, suffix)) = id.split_once('_') else {
        return Err(format!("the user pool id {id:?} has no '_' ({EXAMPLE})"));
    };
    if suffix.is_empty() || !suffix.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(format!(
            "the part after '_' in the user pool id {id:?} must be letters and digits only ({EXAMPLE})"
        ));
    }
    if !is_region(region) {
        return Err(format!(
            "the user pool id {id:?} does not start with an AWS region ({EXAMPLE})"
        ));
    }
    Ok(())
}

/// The region prefix of a (valid) pool id, e.g. `us-east-1` for `us-east-1_AbC123xyz`.
pub fn region_of_user_pool_id(id: &str) -> Option<&str> {
    validate_user_pool_id(id).ok()?;
    id.split_once('_').map(|(region, _)| region)
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `ap-southeast-4`, `cn-north-1`: two lower-case letters,
/// one or more lower-case words, a number; separated by '-'.
fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() < 3 {
        return false;
    }
    let (first, rest) = (parts[0], &parts[1..]);
    let (last, middle) = rest.split_last().expect("at least two parts");
    first.len() == 2
        && first.chars().all(|c| c.is_ascii_lowercase())
        && middle
            .iter()
            .all(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase()))
        && !last.is_empty()
        && last.chars().all(|c| c.is_ascii_digit())
}

/// Cognito's `SECRET_HASH`: `Base64(HMAC-SHA256(key = client secret, message = username + client id))`.
pub fn secret_hash(username: &str, client_id: &str, client_secret: &str) -> String {
    use base64::Engine as _;
    use hmac::{Hmac, Mac};
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(client_secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(username.as_bytes());
    mac.update(client_id.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The Cognito adapter: an SDK client bound to one user pool and app client.
///
/// Cheap to share behind an `Arc`; safe to call concurrently.
#[derive(Clone, Debug)]
pub struct CognitoIdentityProvider {
    client: Client,
    config: CognitoConfig,
    http: reqwest::Client,
}

impl CognitoIdentityProvider {
    /// Builds the adapter from the standard AWS configuration chain (`aws_config::defaults` with
    /// `BehaviorVersion::latest()`: credentials from the environment, profile, SSO, web identity, ECS or
    /// IMDS), the pool's region, explicit timeouts (`call_timeout` per operation and per attempt,
    /// `connect_timeout`) and no SDK retry ([`MAX_ATTEMPTS`] = 1: the orchestrator retries).
    /// `endpoint_url`, when set, overrides the endpoint; otherwise the SDK honours
    /// `AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER` itself.
    ///
    /// Fails only on an invalid configuration (pool id format, empty client id); nothing is called.
    pub async fn new(config: CognitoConfig) -> anyhow::Result<Self> {
        validate_user_pool_id(&config.user_pool_id).map_err(anyhow::Error::msg)?;
        if config.client_id.trim().is_empty() {
            anyhow::bail!("the Cognito app client id is empty");
        }
        if config.call_timeout.is_zero() || config.connect_timeout.is_zero() {
            anyhow::bail!("Cognito timeouts must be greater than zero");
        }
        if let Some(pool_region) = region_of_user_pool_id(&config.user_pool_id) {
            if pool_region != config.region {
                tracing::warn!(
                    pool_region,
                    region = %config.region,
                    "the user pool id names another region than the configured one; calls will fail with ResourceNotFound"
                );
            }
        }
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(aws_config::Region::new(config.region.clone()))
            .timeout_config(sdk_timeouts(&config))
            .retry_config(sdk_retries());
        if let Some(url) = &config.endpoint_url {
            loader = loader.endpoint_url(url.clone());
        }
        let sdk_config = loader.load().await;
        Ok(Self::from_client(Client::new(&sdk_config), config))
    }

    /// Wraps an existing SDK client (a mock client, or one pointed at moto). The client's own timeout,
    /// retry, region and endpoint settings are used as they are; `config` supplies the pool, the app
    /// client, the secret, token settings and the JWKS download timeouts.
    pub fn from_client(client: Client, config: CognitoConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.call_timeout)
            .build()
            .unwrap_or_default();
        Self { client, config, http }
    }

    /// The SDK client (for calls the port does not cover, e.g. in tests or the doctor).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration this adapter was built with.
    pub fn config(&self) -> &CognitoConfig {
        &self.config
    }

    fn secret_hash_for(&self, username: &str) -> Option<String> {
        self.config
            .client_secret
            .as_ref()
            .map(|s| secret_hash(username, &self.config.client_id, s.expose()))
    }
}

fn sdk_timeouts(config: &CognitoConfig) -> aws_config::timeout::TimeoutConfig {
    // One attempt per operation (see `sdk_retries`), so the attempt may use the whole call timeout.
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(config.connect_timeout)
        .operation_timeout(config.call_timeout)
        .operation_attempt_timeout(config.call_timeout)
        .build()
}

/// The SDK's retry, disabled: one attempt per call ([`MAX_ATTEMPTS`]).
fn sdk_retries() -> aws_config::retry::RetryConfig {
    aws_config::retry::RetryConfig::disabled()
}

fn to_chrono(dt: Option<&aws_sdk_cognitoidentityprovider::primitives::DateTime>) -> DateTime<Utc> {
    dt.and_then(|d| DateTime::from_timestamp(d.secs(), d.subsec_nanos()))
        .unwrap_or_default()
}

fn attribute<'a>(attrs: &'a [AttributeType], name: &str) -> Option<&'a str> {
    attrs.iter().find(|a| a.name() == name).and_then(|a| a.value())
}

/// Builds an [`IdpUser`] from the pieces Cognito returns in `UserType` and `AdminGetUserOutput`.
fn idp_user(
    op_name: &str,
    username: Option<&str>,
    attrs: &[AttributeType],
    status: Option<&UserStatusType>,
    enabled: bool,
    created: Option<&aws_sdk_cognitoidentityprovider::primitives::DateTime>,
    modified: Option<&aws_sdk_cognitoidentityprovider::primitives::DateTime>,
) -> Result<IdpUser, IdpError> {
    let malformed = |what: &str| IdpError::Other {
        code: "MalformedResponse".into(),
        message: format!("{op_name}: the response has no {what}"),
        transient: false,
    };
    let username = username
        .filter(|u| !u.is_empty())
        .ok_or_else(|| malformed("Username"))?;
    let sub = attribute(attrs, "sub").ok_or_else(|| malformed("sub attribute"))?;
    Ok(IdpUser {
        username: username.to_string(),
        sub: sub.to_string(),
        email: attribute(attrs, "email").map(str::to_string),
        status: IdpUserStatus::from_cognito(status.map(|s| s.as_str()).unwrap_or("UNKNOWN")),
        enabled,
        created_at: to_chrono(created),
        last_modified_at: to_chrono(modified),
    })
}

fn tokens(op_name: &str, result: &AuthenticationResultType) -> Result<Tokens, IdpError> {
    let missing = |what: &str| IdpError::Other {
        code: "MalformedResponse".into(),
        message: format!("{op_name}: AuthenticationResult has no {what}"),
        transient: false,
    };
    Ok(Tokens {
        id_token: Secret::new(result.id_token().ok_or_else(|| missing("IdToken"))?),
        access_token: Secret::new(result.access_token().ok_or_else(|| missing("AccessToken"))?),
        // Cognito returns a refresh token after a password/challenge login; empty if it ever does not.
        refresh_token: Secret::new(result.refresh_token().unwrap_or_default()),
        expires_in: i64::from(result.expires_in()),
    })
}

fn malformed(message: &str) -> IdpError {
    IdpError::Other {
        code: "MalformedResponse".into(),
        message: message.into(),
        transient: false,
    }
}

/// Tokens or the next challenge, from an `InitiateAuth` or `RespondToAuthChallenge` answer.
fn auth_outcome(
    op_name: &str,
    auth: Option<&AuthenticationResultType>,
    challenge: Option<&ChallengeNameType>,
    params: Option<&std::collections::HashMap<String, String>>,
    session: Option<&str>,
    username: &str,
) -> Result<AuthOutcome, IdpError> {
    if let Some(auth) = auth {
        return tokens(op_name, auth).map(AuthOutcome::Tokens);
    }
    let Some(challenge) = challenge else {
        return Err(malformed(&format!(
            "{op_name}: neither AuthenticationResult nor ChallengeName in the response"
        )));
    };
    // AWS sends USER_ID_FOR_SRP; moto sends USERNAME only.
    let challenge_user = params
        .and_then(|p| p.get("USER_ID_FOR_SRP").or_else(|| p.get("USERNAME")))
        .map(String::as_str)
        .unwrap_or(username)
        .to_string();
    let session = || {
        session
            .map(Secret::new)
            .ok_or_else(|| malformed(&format!("{op_name}: {} without a Session", challenge.as_str())))
    };
    match challenge {
        ChallengeNameType::NewPasswordRequired => Ok(AuthOutcome::NewPasswordRequired {
            session: session()?,
            username: challenge_user,
        }),
        ChallengeNameType::MfaSetup => Ok(AuthOutcome::MfaSetup {
            session: session()?,
            username: challenge_user,
        }),
        ChallengeNameType::SoftwareTokenMfa => Ok(AuthOutcome::SoftwareTokenMfa {
            session: session()?,
            username: challenge_user,
        }),
        other => Err(unexpected_challenge(op_name, other)),
    }
}

fn unexpected_challenge(op_name: &str, challenge: &ChallengeNameType) -> IdpError {
    IdpError::Other {
        code: "UnsupportedChallenge".into(),
        message: format!(
            "{op_name}: Cognito asked for the {} challenge, which this product does not support (check the pool's MFA settings)",
            challenge.as_str()
        ),
        transient: false,
    }
}

/// Logs the outcome of a call (code and transience only, never secrets) and passes it on.
fn logged<T>(result: Result<T, IdpError>) -> Result<T, IdpError> {
    if let Err(e) = &result {
        if e.is_transient() {
            tracing::warn!(code = e.code(), transient = true, error = %e, "Cognito call failed");
        } else {
            tracing::info!(code = e.code(), transient = false, error = %e, "Cognito call refused");
        }
    }
    result
}

#[async_trait]
impl IdentityProvider for CognitoIdentityProvider {
    fn kind(&self) -> &'static str {
        "cognito"
    }

    fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.config.effective_issuer(),
            client_id: self.config.client_id.clone(),
        }
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_CREATE_USER, username = %req.username, message_action = ?req.message_action))]
    async fn admin_create_user(&self, req: CreateUserRequest) -> Result<IdpUser, IdpError> {
        let temp = req.temporary_password.as_ref().map(|p| p.expose().to_string());
        let mut call = self
            .client
            .admin_create_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(&req.username)
            .user_attributes(
                AttributeType::builder()
                    .name("email")
                    .value(&req.email)
                    .build()
                    .map_err(build_error)?,
            )
            .user_attributes(
                AttributeType::builder()
                    .name("email_verified")
                    .value("true")
                    .build()
                    .map_err(build_error)?,
            )
            .desired_delivery_mediums(DeliveryMediumType::Email)
            .set_temporary_password(temp.clone());
        if let Some(action) = req.message_action {
            call = call.message_action(match action {
                MessageAction::Resend => MessageActionType::Resend,
                MessageAction::Suppress => MessageActionType::Suppress,
            });
        }
        let secrets: Vec<&str> = temp.iter().map(String::as_str).collect();
        let result = match call.send().await {
            Ok(out) => match out.user() {
                Some(u) => idp_user(
                    op::ADMIN_CREATE_USER,
                    u.username(),
                    u.attributes(),
                    u.user_status(),
                    u.enabled(),
                    u.user_create_date(),
                    u.user_last_modified_date(),
                ),
                None => Err(IdpError::Other {
                    code: "MalformedResponse".into(),
                    message: "AdminCreateUser: the response has no User".into(),
                    transient: false,
                }),
            },
            Err(e) => Err(map_sdk_error(op::ADMIN_CREATE_USER, &e, &secrets)),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_GET_USER, username = %username))]
    async fn admin_get_user(&self, username: &str) -> Result<IdpUser, IdpError> {
        let result = match self
            .client
            .admin_get_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
        {
            Ok(out) => idp_user(
                op::ADMIN_GET_USER,
                Some(out.username()),
                out.user_attributes(),
                out.user_status(),
                out.enabled(),
                out.user_create_date(),
                out.user_last_modified_date(),
            ),
            Err(e) => Err(map_sdk_error(op::ADMIN_GET_USER, &e, &[])),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_DELETE_USER, username = %username))]
    async fn admin_delete_user(&self, username: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_delete_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_DELETE_USER, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_DISABLE_USER, username = %username))]
    async fn admin_disable_user(&self, username: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_disable_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_DISABLE_USER, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_ENABLE_USER, username = %username))]
    async fn admin_enable_user(&self, username: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_enable_user()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_ENABLE_USER, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::CREATE_GROUP, group = %name))]
    async fn create_group(&self, name: &str, description: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .create_group()
            .user_pool_id(&self.config.user_pool_id)
            .group_name(name)
            .description(description)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::CREATE_GROUP, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::GET_GROUP, group = %name))]
    async fn get_group(&self, name: &str) -> Result<IdpGroup, IdpError> {
        let result = match self
            .client
            .get_group()
            .user_pool_id(&self.config.user_pool_id)
            .group_name(name)
            .send()
            .await
        {
            Ok(out) => match out.group() {
                Some(g) => Ok(IdpGroup {
                    name: g.group_name().unwrap_or(name).to_string(),
                    description: g.description().map(str::to_string),
                }),
                None => Err(IdpError::Other {
                    code: "MalformedResponse".into(),
                    message: "GetGroup: the response has no Group".into(),
                    transient: false,
                }),
            },
            Err(e) => Err(map_sdk_error(op::GET_GROUP, &e, &[])),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_ADD_USER_TO_GROUP, username = %username, group = %group))]
    async fn admin_add_user_to_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_add_user_to_group()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_ADD_USER_TO_GROUP, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_REMOVE_USER_FROM_GROUP, username = %username, group = %group))]
    async fn admin_remove_user_from_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_remove_user_from_group()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .group_name(group)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_REMOVE_USER_FROM_GROUP, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_LIST_GROUPS_FOR_USER, username = %username))]
    async fn admin_list_groups_for_user(&self, username: &str) -> Result<Vec<String>, IdpError> {
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        // Bounded: 10,000 groups per pool at 60 a page.
        for _ in 0..200 {
            let page = self
                .client
                .admin_list_groups_for_user()
                .user_pool_id(&self.config.user_pool_id)
                .username(username)
                .limit(MAX_LIST_LIMIT as i32)
                .set_next_token(next.take())
                .send()
                .await;
            match page {
                Ok(out) => {
                    names.extend(out.groups().iter().filter_map(|g| g.group_name()).map(str::to_string));
                    match out.next_token().filter(|t| !t.is_empty()) {
                        Some(t) => next = Some(t.to_string()),
                        None => break,
                    }
                }
                Err(e) => return logged(Err(map_sdk_error(op::ADMIN_LIST_GROUPS_FOR_USER, &e, &[]))),
            }
        }
        names.sort();
        names.dedup();
        logged(Ok(names))
    }

    #[tracing::instrument(skip_all, fields(op = op::LIST_USERS, username = tracing::field::Empty, limit))]
    async fn list_users(&self, pagination_token: Option<String>, limit: u32) -> Result<UserPage, IdpError> {
        let limit = limit.clamp(1, MAX_LIST_LIMIT);
        let result = match self
            .client
            .list_users()
            .user_pool_id(&self.config.user_pool_id)
            .limit(limit as i32)
            .set_pagination_token(pagination_token)
            .send()
            .await
        {
            Ok(out) => out
                .users()
                .iter()
                .map(|u| {
                    idp_user(
                        op::LIST_USERS,
                        u.username(),
                        u.attributes(),
                        u.user_status(),
                        u.enabled(),
                        u.user_create_date(),
                        u.user_last_modified_date(),
                    )
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|users| UserPage {
                    users,
                    next_token: out.pagination_token().filter(|t| !t.is_empty()).map(str::to_string),
                }),
            Err(e) => Err(map_sdk_error(op::LIST_USERS, &e, &[])),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::INITIATE_AUTH, username = %admin_provisioner_core::domain::loggable_username(username)))]
    async fn initiate_auth(&self, username: &str, password: &Password) -> Result<AuthOutcome, IdpError> {
        let hash = self.secret_hash_for(username);
        let mut call = self
            .client
            .initiate_auth()
            .client_id(&self.config.client_id)
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .auth_parameters("USERNAME", username)
            .auth_parameters("PASSWORD", password.expose());
        if let Some(h) = &hash {
            call = call.auth_parameters("SECRET_HASH", h);
        }
        let mut secrets = vec![password.expose()];
        if let Some(s) = &self.config.client_secret {
            secrets.push(s.expose());
        }
        let result = match call.send().await {
            Ok(out) => auth_outcome(
                op::INITIATE_AUTH,
                out.authentication_result(),
                out.challenge_name(),
                out.challenge_parameters(),
                out.session(),
                username,
            ),
            Err(e) => Err(map_sdk_error(op::INITIATE_AUTH, &e, &secrets)),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::RESPOND_TO_AUTH_CHALLENGE, username = %admin_provisioner_core::domain::loggable_username(username)))]
    async fn respond_to_auth_challenge(
        &self,
        username: &str,
        session: &Secret,
        answer: &ChallengeAnswer,
    ) -> Result<AuthOutcome, IdpError> {
        let hash = self.secret_hash_for(username);
        let mut secrets = vec![session.expose()];
        let mut call = self
            .client
            .respond_to_auth_challenge()
            .client_id(&self.config.client_id)
            .session(session.expose())
            .challenge_responses("USERNAME", username);
        call = match answer {
            ChallengeAnswer::NewPassword(new_password) => {
                secrets.push(new_password.expose());
                call.challenge_name(ChallengeNameType::NewPasswordRequired)
                    .challenge_responses("NEW_PASSWORD", new_password.expose())
            }
            ChallengeAnswer::MfaSetup => call.challenge_name(ChallengeNameType::MfaSetup),
            ChallengeAnswer::SoftwareTokenMfa(code) => {
                secrets.push(code.expose());
                call.challenge_name(ChallengeNameType::SoftwareTokenMfa)
                    .challenge_responses("SOFTWARE_TOKEN_MFA_CODE", code.expose())
            }
        };
        if let Some(h) = &hash {
            call = call.challenge_responses("SECRET_HASH", h);
        }
        if let Some(s) = &self.config.client_secret {
            secrets.push(s.expose());
        }
        let result = match call.send().await {
            Ok(out) => auth_outcome(
                op::RESPOND_TO_AUTH_CHALLENGE,
                out.authentication_result(),
                out.challenge_name(),
                out.challenge_parameters(),
                out.session(),
                username,
            ),
            Err(e) => Err(map_sdk_error(op::RESPOND_TO_AUTH_CHALLENGE, &e, &secrets)),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ASSOCIATE_SOFTWARE_TOKEN))]
    async fn associate_software_token(&self, auth: &MfaAuth) -> Result<SoftwareTokenAssociation, IdpError> {
        let call = self.client.associate_software_token();
        let (call, secrets) = match auth {
            MfaAuth::AccessToken(t) => (call.access_token(t.expose()), vec![t.expose()]),
            MfaAuth::Session(s) => (call.session(s.expose()), vec![s.expose()]),
        };
        let result = match call.send().await {
            Ok(out) => match out.secret_code() {
                Some(code) => Ok(SoftwareTokenAssociation {
                    secret_code: Secret::new(code),
                    session: out.session().map(Secret::new),
                }),
                None => Err(malformed("AssociateSoftwareToken: no SecretCode in the response")),
            },
            Err(e) => Err(map_sdk_error(op::ASSOCIATE_SOFTWARE_TOKEN, &e, &secrets)),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::VERIFY_SOFTWARE_TOKEN))]
    async fn verify_software_token(&self, auth: &MfaAuth, code: &Secret) -> Result<Option<Secret>, IdpError> {
        let call = self
            .client
            .verify_software_token()
            .user_code(code.expose())
            .friendly_device_name("admin-provisioner");
        let (call, mut secrets) = match auth {
            MfaAuth::AccessToken(t) => (call.access_token(t.expose()), vec![t.expose()]),
            MfaAuth::Session(s) => (call.session(s.expose()), vec![s.expose()]),
        };
        secrets.push(code.expose());
        let result = match call.send().await {
            Ok(out) => match out.status().map(|s| s.as_str()) {
                Some("SUCCESS") | None => Ok(out.session().map(Secret::new)),
                Some(_) => Err(IdpError::CodeMismatch(
                    "VerifySoftwareToken: the code does not match the software token".into(),
                )),
            },
            Err(e) => Err(map_sdk_error(op::VERIFY_SOFTWARE_TOKEN, &e, &secrets)),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::SET_USER_MFA_PREFERENCE, enabled))]
    async fn set_user_mfa_preference(&self, access_token: &Secret, enabled: bool) -> Result<(), IdpError> {
        let settings = SoftwareTokenMfaSettingsType::builder()
            .enabled(enabled)
            .preferred_mfa(enabled)
            .build();
        let result = match self
            .client
            .set_user_mfa_preference()
            .access_token(access_token.expose())
            .software_token_mfa_settings(settings)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => Err(map_sdk_error(op::SET_USER_MFA_PREFERENCE, &e, &[access_token.expose()])),
        };
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::FORGOT_PASSWORD, username = %admin_provisioner_core::domain::loggable_username(username)))]
    async fn forgot_password(&self, username: &str) -> Result<(), IdpError> {
        let mut call = self
            .client
            .forgot_password()
            .client_id(&self.config.client_id)
            .username(username);
        if let Some(h) = self.secret_hash_for(username) {
            call = call.secret_hash(h);
        }
        let secrets: Vec<&str> = self.config.client_secret.iter().map(|s| s.expose()).collect();
        let result = call
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::FORGOT_PASSWORD, &e, &secrets));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::CONFIRM_FORGOT_PASSWORD, username = %admin_provisioner_core::domain::loggable_username(username)))]
    async fn confirm_forgot_password(
        &self,
        username: &str,
        code: &Secret,
        new_password: &Password,
    ) -> Result<(), IdpError> {
        let mut call = self
            .client
            .confirm_forgot_password()
            .client_id(&self.config.client_id)
            .username(username)
            .confirmation_code(code.expose())
            .password(new_password.expose());
        if let Some(h) = self.secret_hash_for(username) {
            call = call.secret_hash(h);
        }
        let mut secrets = vec![code.expose(), new_password.expose()];
        if let Some(s) = &self.config.client_secret {
            secrets.push(s.expose());
        }
        let result = call
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::CONFIRM_FORGOT_PASSWORD, &e, &secrets));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_RESET_USER_PASSWORD, username = %username))]
    async fn admin_reset_user_password(&self, username: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_reset_user_password()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_RESET_USER_PASSWORD, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_USER_GLOBAL_SIGN_OUT, username = %username))]
    async fn admin_user_global_sign_out(&self, username: &str) -> Result<(), IdpError> {
        let result = self
            .client
            .admin_user_global_sign_out()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_USER_GLOBAL_SIGN_OUT, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = op::ADMIN_SET_USER_MFA_PREFERENCE, username = %username, enabled))]
    async fn admin_set_user_mfa_preference(&self, username: &str, enabled: bool) -> Result<(), IdpError> {
        let settings = SoftwareTokenMfaSettingsType::builder()
            .enabled(enabled)
            .preferred_mfa(enabled)
            .build();
        let result = self
            .client
            .admin_set_user_mfa_preference()
            .user_pool_id(&self.config.user_pool_id)
            .username(username)
            .software_token_mfa_settings(settings)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::ADMIN_SET_USER_MFA_PREFERENCE, &e, &[]));
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = "GetJwks", username = tracing::field::Empty))]
    async fn jwks(&self) -> Result<serde_json::Value, IdpError> {
        let url = self.config.effective_jwks_url();
        let result = async {
            let resp = self.http.get(&url).send().await.map_err(|e| http_error(&url, &e))?;
            let status = resp.status();
            if !status.is_success() {
                return Err(if status.is_server_error() || status.as_u16() == 429 {
                    IdpError::Unavailable(format!("GET {url} answered HTTP {}", status.as_u16()))
                } else {
                    IdpError::Other {
                        code: "JwksUnavailable".into(),
                        message: format!("GET {url} answered HTTP {} (check COGNITO_JWKS_URL)", status.as_u16()),
                        transient: false,
                    }
                });
            }
            let body: serde_json::Value = resp.json().await.map_err(|e| http_error(&url, &e))?;
            if !body.get("keys").is_some_and(serde_json::Value::is_array) {
                return Err(IdpError::Other {
                    code: "JwksInvalid".into(),
                    message: format!("{url} is not a JSON Web Key Set (no \"keys\" array)"),
                    transient: false,
                });
            }
            Ok(body)
        }
        .await;
        logged(result)
    }

    #[tracing::instrument(skip_all, fields(op = "Ping", username = tracing::field::Empty))]
    async fn ping(&self) -> Result<(), IdpError> {
        let result = self
            .client
            .list_users()
            .user_pool_id(&self.config.user_pool_id)
            .limit(1)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| map_sdk_error(op::LIST_USERS, &e, &[]));
        logged(result)
    }
}

fn build_error(e: aws_sdk_cognitoidentityprovider::error::BuildError) -> IdpError {
    IdpError::InvalidParameter(format!("could not build the request: {e}"))
}

fn http_error(url: &str, e: &reqwest::Error) -> IdpError {
    if e.is_timeout() {
        IdpError::Timeout(format!("GET {url}"))
    } else if e.is_decode() {
        IdpError::Other {
            code: "JwksInvalid".into(),
            message: format!("{url} did not return JSON"),
            transient: false,
        }
    } else {
        IdpError::Unavailable(format!("GET {url} failed: {}", errors::one_line(&e.to_string(), &[])))
    }
}
