//! Who is calling: Cognito tokens verified against the pool's JWKS, then the database decides.
//!
//! A Bearer token (or the console's session cookie, which holds an ID token) is accepted only if it is an
//! RS256 JWT whose `kid` names a key of the identity provider's JWKS, whose signature verifies, whose
//! `iss` is the pool's issuer, whose `exp` has not passed, which has an `iat`, whose `iat` and `nbf` (when
//! present) are not later than now plus [`CLOCK_SKEW_LEEWAY_SECS`] (all by the service's clock), and whose
//! `token_use` is `id` (then `aud` must be the app client id) or `access` (then `client_id` must be). The
//! caller is then identified by `sub`, the Cognito username and `iat`, and [`Provisioner::authorize`]
//! checks in the database that they are an active admin whose sessions have not been ended since the token
//! was issued (sign-out, disable): Cognito proves who the caller is, the database decides what they may do.
//!
//! The JWKS is cached; an unknown `kid` triggers at most one download per minute (key rotation is rare, and
//! a stream of forged `kid`s must not turn into a stream of JWKS downloads). A failed download counts too
//! (negative cache): during a JWKS outage, tokens with an unknown `kid` are answered from the remembered
//! failure until the interval has passed. Tokens are never logged.
//!
//! [`Provisioner::authorize`]: admin_provisioner_core::Provisioner::authorize

use super::error::ApiError;
use super::AppState;
use admin_provisioner_core::domain::{Actor, UserId};
use admin_provisioner_core::identity::TokenSettings;
use admin_provisioner_core::{Caller, Error};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::collections::HashMap;
use std::future::Future;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The shortest time between two JWKS downloads caused by unknown key ids.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// How far in the future a token's `iat` or `nbf` may lie (clock skew between Cognito and this service).
pub const CLOCK_SKEW_LEEWAY_SECS: i64 = 30;

/// Why a key could not be found.
#[derive(Debug)]
pub enum KeyError {
    /// No key with this `kid`, even after a refresh (or a refresh was not allowed yet).
    UnknownKid,
    /// The JWKS could not be fetched.
    Unavailable(String),
}

/// A cache of the identity provider's signing keys by `kid`.
pub struct JwksCache {
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// When the keys were last downloaded (or a download last failed, with its message); the lock also
    /// serialises refreshes.
    refreshed: tokio::sync::Mutex<Option<(Instant, Option<String>)>>,
    min_interval: Duration,
}

impl Default for JwksCache {
    fn default() -> Self {
        Self::new(JWKS_REFRESH_INTERVAL)
    }
}

impl JwksCache {
    /// An empty cache that refreshes at most once per `min_interval` on an unknown `kid`.
    pub fn new(min_interval: Duration) -> Self {
        Self {
            keys: RwLock::new(HashMap::new()),
            refreshed: tokio::sync::Mutex::new(None),
            min_interval,
        }
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).get(kid).cloned()
    }

    /// The key for `kid`; downloads the JWKS with `fetch` when the key is unknown and the last download is
    /// older than the minimum interval (or there was none).
    pub async fn key<F, Fut>(&self, kid: &str, fetch: F) -> Result<DecodingKey, KeyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<serde_json::Value, String>>,
    {
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        let mut refreshed = self.refreshed.lock().await;
        // Another request may have refreshed while this one waited.
        if let Some(k) = self.cached(kid) {
            return Ok(k);
        }
        if let Some((at, failure)) = refreshed.as_ref() {
            if at.elapsed() < self.min_interval {
                return Err(match failure {
                    Some(e) => KeyError::Unavailable(format!("{e} (not retried for {:?})", self.min_interval)),
                    None => KeyError::UnknownKid,
                });
            }
        }
        let downloaded = fetch()
            .await
            .and_then(|jwks| serde_json::from_value::<JwkSet>(jwks).map_err(|e| format!("the JWKS is malformed: {e}")));
        let set = match downloaded {
            Ok(set) => set,
            Err(e) => {
                tracing::warn!(error = %e, "the JWKS could not be downloaded");
                *refreshed = Some((Instant::now(), Some(e.clone())));
                return Err(KeyError::Unavailable(e));
            }
        };
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        tracing::info!(keys = keys.len(), "signing keys loaded from the JWKS");
        *refreshed = Some((Instant::now(), None));
        let found = keys.get(kid).cloned();
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
        found.ok_or(KeyError::UnknownKid)
    }
}

/// The identity in a verified token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`.
    pub sub: String,
    /// `cognito:username` (ID token) or `username` (access token).
    pub username: String,
    /// `exp`, seconds since the epoch.
    pub expires_at: i64,
    /// `iat`, seconds since the epoch (required: [`Provisioner::authorize`] refuses a token issued at or
    /// before its admin's sessions were ended).
    ///
    /// [`Provisioner::authorize`]: admin_provisioner_core::Provisioner::authorize
    pub issued_at: i64,
}

impl VerifiedToken {
    /// The caller as the provisioner takes it: `sub`, username and issue time.
    pub fn caller(&self) -> Caller {
        Caller::Token {
            sub: self.sub.clone(),
            username: self.username.clone(),
            issued_at: DateTime::from_timestamp(self.issued_at, 0).unwrap_or(DateTime::<Utc>::MIN_UTC),
        }
    }
}

/// Why a token was refused.
#[derive(Debug)]
pub enum TokenError {
    /// Not acceptable (the text says why, without the token).
    Invalid(&'static str),
    /// The signing keys could not be fetched.
    Unavailable(String),
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Invalid(why) => ApiError::unauthorized(why),
            TokenError::Unavailable(detail) => Error::IdentityProviderUnavailable(detail).into(),
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
    iat: i64,
    nbf: Option<i64>,
    token_use: Option<String>,
    aud: Option<serde_json::Value>,
    client_id: Option<String>,
    #[serde(rename = "cognito:username")]
    cognito_username: Option<String>,
    username: Option<String>,
}

/// Verifies a Cognito ID or access token (see the module docs). `now` is the service's clock, in seconds.
pub async fn verify_token(
    token: &str,
    settings: &TokenSettings,
    cache: &JwksCache,
    fetch_jwks: impl Future<Output = Result<serde_json::Value, String>>,
    now: i64,
) -> Result<VerifiedToken, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid("the token is not a JWT"))?;
    if header.alg != Algorithm::RS256 {
        return Err(TokenError::Invalid("only RS256-signed tokens are accepted"));
    }
    let kid = header.kid.ok_or(TokenError::Invalid("the token has no key id (kid)"))?;
    let key = match cache.key(&kid, || fetch_jwks).await {
        Ok(k) => k,
        Err(KeyError::UnknownKid) => return Err(TokenError::Invalid("the token was not signed by this user pool")),
        Err(KeyError::Unavailable(e)) => return Err(TokenError::Unavailable(e)),
    };
    let mut validation = Validation::new(Algorithm::RS256);
    validation.algorithms = vec![Algorithm::RS256];
    validation.validate_exp = false; // checked below against the service's clock
    validation.validate_nbf = false;
    validation.validate_aud = false; // access tokens have no `aud`; checked below per token_use
    validation.set_issuer(&[settings.issuer.as_str()]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "iat"]);
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        TokenError::Invalid(match e.kind() {
            ErrorKind::InvalidIssuer => "the token was issued by another issuer",
            ErrorKind::InvalidSignature => "the token's signature does not verify",
            ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
            _ => "the token is malformed or its signature does not verify",
        })
    })?;
    let claims = data.claims;
    if claims.exp <= now {
        return Err(TokenError::Invalid("the token has expired"));
    }
    if claims.iat > now + CLOCK_SKEW_LEEWAY_SECS {
        return Err(TokenError::Invalid("the token was issued in the future (iat)"));
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + CLOCK_SKEW_LEEWAY_SECS) {
        return Err(TokenError::Invalid("the token is not valid yet (nbf)"));
    }
    let username = match claims.token_use.as_deref() {
        Some("id") => {
            let aud_ok = match &claims.aud {
                Some(serde_json::Value::String(a)) => *a == settings.client_id,
                Some(serde_json::Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(&settings.client_id)),
                _ => false,
            };
            if !aud_ok {
                return Err(TokenError::Invalid("the ID token is for another app client (aud)"));
            }
            claims.cognito_username
        }
        Some("access") => {
            if claims.client_id.as_deref() != Some(settings.client_id.as_str()) {
                return Err(TokenError::Invalid(
                    "the access token is for another app client (client_id)",
                ));
            }
            claims.username
        }
        _ => {
            return Err(TokenError::Invalid(
                "the token is neither an ID nor an access token (token_use)",
            ))
        }
    };
    let username = username
        .filter(|u| !u.is_empty())
        .ok_or(TokenError::Invalid("the token does not name the user"))?;
    Ok(VerifiedToken {
        sub: claims.sub,
        username,
        expires_at: claims.exp,
        issued_at: claims.iat,
    })
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("a Bearer token is required"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is malformed"))?;
    let (scheme, token) = value
        .trim()
        .split_once(' ')
        .ok_or_else(|| ApiError::unauthorized("the Authorization header must be `Bearer <token>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        ));
    }
    Ok(token.trim())
}

/// An authenticated, active admin (API extractor): a verified Bearer token whose user the database knows
/// as an active admin and whose session has not ended. Rejections: 401 `unauthorized` or `session_ended`
/// (with `WWW-Authenticate`), 403 `forbidden`.
#[derive(Clone, Debug)]
pub struct AdminCaller {
    /// The caller as the provisioner takes it.
    pub caller: Caller,
    /// The admin's `User.id` (the idempotency scope and the audit actor).
    pub admin_id: UserId,
    /// The token's own caller (`sub`, username, `iat`), for a request that must check again later
    /// whether the admin may still act (a long-poll, before it answers).
    pub token: Caller,
}

impl AppState {
    /// Verifies a token (module docs) against the identity provider's keys, by the service's clock.
    pub async fn verify(&self, token: &str) -> Result<VerifiedToken, TokenError> {
        let idp = self.provisioner().identity_provider().clone();
        let settings = idp.token_settings();
        let fetch = async move { idp.jwks().await.map_err(|e| e.to_string()) };
        let now = self.provisioner().now().timestamp();
        verify_token(token, &settings, &self.inner.jwks, fetch, now).await
    }

    /// Verifies a token and checks in the database that its user is an active admin.
    pub async fn admin_from_token(&self, token: &str) -> Result<AdminCaller, ApiError> {
        let verified = self.verify(token).await?;
        let token = verified.caller();
        let admin_id = self.authorize_token(&token).await?;
        // Authorized once per request: the operations take the result instead of looking it up again.
        Ok(AdminCaller {
            caller: Caller::Authorized(admin_id),
            admin_id,
            token,
        })
    }

    /// [`Provisioner::authorize`] for a token's caller: the admin's id, or 403 `forbidden`, or 401
    /// `session_ended` (with `WWW-Authenticate`, like every 401 of a Bearer token).
    ///
    /// [`Provisioner::authorize`]: admin_provisioner_core::Provisioner::authorize
    pub async fn authorize_token(&self, token: &Caller) -> Result<UserId, ApiError> {
        match self.provisioner().authorize(token).await {
            Ok(Actor::Admin(admin_id)) => Ok(admin_id),
            Ok(Actor::Operator | Actor::Reconciler | Actor::Scim(_)) => Err(Error::Forbidden.into()),
            Err(e @ Error::SessionEnded) => {
                let mut out = ApiError::from(e);
                out.www_authenticate = ApiError::unauthorized("the session has ended").www_authenticate;
                Err(out)
            }
            Err(e) => Err(e.into()),
        }
    }
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer_token(&parts.headers)?;
        state.admin_from_token(token).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn empty_jwks() -> serde_json::Value {
        serde_json::json!({"keys": []})
    }

    #[tokio::test]
    async fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval() {
        let cache = JwksCache::new(Duration::from_secs(60));
        let downloads = AtomicUsize::new(0);
        for _ in 0..5 {
            let r = cache
                .key("nope", || async {
                    downloads.fetch_add(1, Ordering::SeqCst);
                    Ok(empty_jwks())
                })
                .await;
            assert!(matches!(r, Err(KeyError::UnknownKid)));
        }
        assert_eq!(downloads.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unknown_kid_refreshes_again_after_the_interval() {
        let cache = JwksCache::new(Duration::from_millis(0));
        let downloads = AtomicUsize::new(0);
        for _ in 0..3 {
            let _ = cache
                .key("nope", || async {
                    downloads.fetch_add(1, Ordering::SeqCst);
                    Ok(empty_jwks())
                })
                .await;
        }
        assert_eq!(downloads.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_jwks_download_is_not_retried_within_the_interval() {
        let cache = JwksCache::new(Duration::from_secs(60));
        let downloads = AtomicUsize::new(0);
        for _ in 0..5 {
            let r = cache
                .key("nope", || async {
                    downloads.fetch_add(1, Ordering::SeqCst);
                    Err("connection refused".to_string())
                })
                .await;
            assert!(matches!(r, Err(KeyError::Unavailable(_))));
        }
        assert_eq!(
            downloads.load(Ordering::SeqCst),
            1,
            "a JWKS outage must not cause a download per token"
        );
    }

    #[tokio::test]
    async fn a_failed_jwks_download_is_retried_after_the_interval() {
        let cache = JwksCache::new(Duration::from_millis(0));
        let downloads = AtomicUsize::new(0);
        for _ in 0..3 {
            let _ = cache
                .key("nope", || async {
                    downloads.fetch_add(1, Ordering::SeqCst);
                    Err("connection refused".to_string())
                })
                .await;
        }
        assert_eq!(downloads.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_bearer_header_without_scheme_is_refused() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "abc".parse().unwrap());
        assert_eq!(bearer_token(&h).unwrap_err().code, "unauthorized");
    }
}
