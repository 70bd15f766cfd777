//! What an application's own sign-in needs beyond the product's port: refresh tokens, the calls made with
//! an access token (`GetUser`, `ChangePassword`, `GlobalSignOut`), admin sign-out, `ListUsers` with a
//! `Filter`, and the description of the pool and its app client.
//!
//! Every password sign-in starts a *sign-in session*: a row in `emu_signins` named by the `origin_jti` its
//! tokens carry, holding the refresh token's hash. `REFRESH_TOKEN_AUTH` signs new ID and access tokens in
//! the same session; a global sign-out deletes the user's sessions, which revokes their refresh tokens and
//! (as Cognito does with token revocation) makes their access tokens unusable for the emulator's own
//! access-token calls. Tokens still verify elsewhere until `exp`, as in Cognito.

use crate::db::{self, find_user, micros, unavailable, username_key, UserRow};
use crate::{policy, CognitoEmulator, CONFIRMED, INCORRECT_CREDENTIALS, USER_DISABLED};
use admin_provisioner_core::domain::{Password, Secret, Tokens};
use admin_provisioner_core::identity::{IdpError, IdpUser, UserPage};
use chrono::{DateTime, Duration, Utc};

/// Days a refresh token stays valid (Cognito's default `RefreshTokenValidity`: 30 days).
pub const REFRESH_TOKEN_VALIDITY_DAYS: i64 = 30;

/// Cognito's answer to an unknown, expired or revoked refresh token.
const INVALID_REFRESH_TOKEN: &str = "Invalid Refresh Token";
/// Cognito's answer to an access token that is not one of this pool's.
const INVALID_ACCESS_TOKEN: &str = "Invalid Access Token";
/// Cognito's answer to an access token past its `exp`.
const EXPIRED_ACCESS_TOKEN: &str = "Access Token has expired";
/// Cognito's answer to an access token of a session ended by a global sign-out.
const REVOKED_ACCESS_TOKEN: &str = "Access Token has been revoked";

/// A `ListUsers` filter: `attribute = "value"` (exact) or `attribute ^= "value"` (prefix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserFilter {
    /// `username`, `email`, `sub`, `cognito:user_status` or `status` (`Enabled` / `Disabled`).
    pub attribute: String,
    /// True for `^=`.
    pub prefix: bool,
    /// The quoted value, unquoted.
    pub value: String,
}

impl UserFilter {
    /// Parses Cognito's filter syntax. An empty filter is `None`; anything unparsable or an attribute
    /// Cognito cannot search is `InvalidParameter`, as Cognito answers.
    pub fn parse(filter: &str) -> Result<Option<Self>, IdpError> {
        let filter = filter.trim();
        if filter.is_empty() {
            return Ok(None);
        }
        let bad = || IdpError::InvalidParameter("Error while parsing filter.".into());
        let (attribute, prefix, rest) = match (filter.find("^="), filter.find('=')) {
            (Some(i), _) => (&filter[..i], true, &filter[i + 2..]),
            (None, Some(i)) => (&filter[..i], false, &filter[i + 1..]),
            _ => return Err(bad()),
        };
        let attribute = attribute.trim();
        let rest = rest.trim();
        let value = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .filter(|v| !v.contains('"'))
            .ok_or_else(bad)?;
        const SEARCHABLE: &[&str] = &[
            "username",
            "email",
            "sub",
            "cognito:user_status",
            "status",
            "phone_number",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
        ];
        if !SEARCHABLE.contains(&attribute) {
            return Err(IdpError::InvalidParameter(format!(
                "Invalid search attribute: {attribute}"
            )));
        }
        Ok(Some(Self {
            attribute: attribute.to_string(),
            prefix,
            value: value.to_string(),
        }))
    }
}

/// The pool as `DescribeUserPool` reports it.
#[derive(Clone, Debug)]
pub struct PoolDescription {
    /// `Id`.
    pub pool_id: String,
    /// The region (the pool id's prefix).
    pub region: String,
    /// The only app client.
    pub client_id: String,
    /// `iss` of the pool's tokens.
    pub issuer: String,
    /// `TemporaryPasswordValidityDays`.
    pub invite_validity_days: i64,
    /// `EstimatedNumberOfUsers`.
    pub users: i64,
    /// `CreationDate`: when this state was first opened.
    pub created_at: DateTime<Utc>,
}

impl CognitoEmulator {
    /// Records a new sign-in session (see the module docs); expired sessions are dropped on the way.
    pub(crate) async fn record_sign_in(
        &self,
        user: &UserRow,
        origin_jti: &str,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<(), IdpError> {
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        sqlx::query("DELETE FROM emu_signins WHERE expires_at_us <= ?")
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO emu_signins (origin_jti, refresh_hash, username_key, auth_time, expires_at_us) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(origin_jti)
        .bind(db::session_hash(refresh_token))
        .bind(username_key(&user.username))
        .bind(now.timestamp())
        .bind(micros(now + Duration::days(REFRESH_TOKEN_VALIDITY_DAYS)))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)
    }

    /// `InitiateAuth` / `AdminInitiateAuth` with `REFRESH_TOKEN_AUTH`: new ID and access tokens in the
    /// refresh token's sign-in session (the answer carries no new refresh token, as in Cognito; the
    /// returned [`Tokens::refresh_token`] is empty). `NotAuthorized` for an unknown, expired or revoked
    /// refresh token, and for a disabled user.
    #[tracing::instrument(skip_all, fields(op = "InitiateAuth", flow = "REFRESH_TOKEN_AUTH"))]
    pub async fn refresh_tokens(&self, refresh_token: &Secret) -> Result<Tokens, IdpError> {
        self.inner.meter.admit("InitiateAuth").await?;
        let now = self.now();
        let invalid = || IdpError::NotAuthorized(INVALID_REFRESH_TOKEN.into());
        let found: Option<(String, String, i64)> = sqlx::query_as(
            "SELECT origin_jti, username_key, auth_time FROM emu_signins WHERE refresh_hash = ? AND expires_at_us > ?",
        )
        .bind(db::session_hash(refresh_token.expose()))
        .bind(micros(now))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        let Some((origin_jti, key, auth_time)) = found else {
            tracing::info!("refresh refused: unknown, expired or revoked refresh token");
            return Err(invalid());
        };
        let user = find_user(&self.inner.pool, &key)
            .await
            .map_err(unavailable)?
            .ok_or_else(invalid)?;
        if !user.enabled {
            tracing::info!("refresh refused: user disabled");
            return Err(IdpError::NotAuthorized(USER_DISABLED.into()));
        }
        let (id_token, access_token) = self.sign_tokens(&user, now, auth_time, &origin_jti).await?;
        tracing::info!(sub = %user.sub, "tokens refreshed");
        Ok(Tokens {
            id_token: Secret::new(id_token),
            access_token: Secret::new(access_token),
            refresh_token: Secret::new(String::new()),
            expires_in: crate::TOKEN_VALIDITY_SECONDS,
        })
    }

    /// The user an access token of this pool belongs to: signature, `iss`, `token_use=access`,
    /// `client_id`, `exp` (by the emulator's clock), a sign-in session not ended by a global sign-out,
    /// and a user that still exists with the token's `sub`. `NotAuthorized` with Cognito's messages
    /// otherwise (`UserNotFound` when the user was deleted).
    async fn user_of_access_token(&self, access_token: &Secret) -> Result<(UserRow, String), IdpError> {
        let invalid = || IdpError::NotAuthorized(INVALID_ACCESS_TOKEN.into());
        let claims = self.inner.key.verify(access_token.expose()).map_err(|_| invalid())?;
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str).map(str::to_string);
        if text("iss").as_deref() != Some(self.inner.issuer.as_str())
            || text("token_use").as_deref() != Some("access")
            || text("client_id").as_deref() != Some(self.inner.client_id.as_str())
        {
            return Err(invalid());
        }
        let exp = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .ok_or_else(invalid)?;
        if self.now().timestamp() >= exp {
            return Err(IdpError::NotAuthorized(EXPIRED_ACCESS_TOKEN.into()));
        }
        let (Some(origin_jti), Some(username), Some(sub)) = (text("origin_jti"), text("username"), text("sub")) else {
            return Err(invalid());
        };
        let live: Option<i64> = sqlx::query_scalar("SELECT 1 FROM emu_signins WHERE origin_jti = ?")
            .bind(&origin_jti)
            .fetch_optional(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        let user = find_user(&self.inner.pool, &username)
            .await
            .map_err(unavailable)?
            .filter(|u| u.sub == sub)
            .ok_or(IdpError::UserNotFound)?;
        if live.is_none() {
            return Err(IdpError::NotAuthorized(REVOKED_ACCESS_TOKEN.into()));
        }
        if !user.enabled {
            return Err(IdpError::NotAuthorized(USER_DISABLED.into()));
        }
        Ok((user, origin_jti))
    }

    /// `GetUser`: the user an access token belongs to (see [`CognitoEmulator::user_of_access_token`]).
    #[tracing::instrument(skip_all, fields(op = "GetUser"))]
    pub async fn get_user(&self, access_token: &Secret) -> Result<IdpUser, IdpError> {
        self.inner.meter.admit("AdminGetUser").await?;
        Ok(self.user_of_access_token(access_token).await?.0.to_idp())
    }

    /// `ChangePassword`: the previous password must be the user's current one (`NotAuthorized`
    /// otherwise); the proposed one must meet the policy (`InvalidPassword`).
    #[tracing::instrument(skip_all, fields(op = "ChangePassword"))]
    pub async fn change_password(
        &self,
        access_token: &Secret,
        previous: &Password,
        proposed: &Password,
    ) -> Result<(), IdpError> {
        let (user, _) = self.user_of_access_token(access_token).await?;
        if !user.password_matches(previous.expose()) {
            tracing::info!("password change refused: wrong previous password");
            return Err(IdpError::NotAuthorized(INCORRECT_CREDENTIALS.into()));
        }
        policy::check_password(proposed.expose())?;
        let (salt, hash) = db::new_password_hash(proposed.expose());
        sqlx::query(
            "UPDATE emu_users SET status = ?, password_salt = ?, password_hash = ?, temp_expires_at_us = NULL, \
             modified_at_us = ? WHERE id = ?",
        )
        .bind(CONFIRMED)
        .bind(&salt)
        .bind(&hash)
        .bind(micros(self.now()))
        .bind(user.id)
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        tracing::info!(sub = %user.sub, "password changed");
        Ok(())
    }

    /// `GlobalSignOut`: ends every sign-in session of the access token's user.
    #[tracing::instrument(skip_all, fields(op = "GlobalSignOut"))]
    pub async fn global_sign_out(&self, access_token: &Secret) -> Result<(), IdpError> {
        let (user, _) = self.user_of_access_token(access_token).await?;
        self.end_sign_ins(&user.username).await
    }

    /// `AdminUserGlobalSignOut`: ends every sign-in session of `username`. `UserNotFound` for a missing
    /// user.
    #[tracing::instrument(skip_all, fields(op = "AdminUserGlobalSignOut", username = %username))]
    pub async fn admin_user_global_sign_out(&self, username: &str) -> Result<(), IdpError> {
        find_user(&self.inner.pool, username)
            .await
            .map_err(unavailable)?
            .ok_or(IdpError::UserNotFound)?;
        self.end_sign_ins(username).await
    }

    async fn end_sign_ins(&self, username: &str) -> Result<(), IdpError> {
        let done = sqlx::query("DELETE FROM emu_signins WHERE username_key = ?")
            .bind(username_key(username))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        tracing::info!(sessions = done.rows_affected(), "signed out everywhere");
        Ok(())
    }

    /// `ListUsers` with an optional [`UserFilter`]; without one it is the port's `list_users`.
    pub async fn list_users_filtered(
        &self,
        pagination_token: Option<String>,
        limit: u32,
        filter: Option<&UserFilter>,
    ) -> Result<UserPage, IdpError> {
        use admin_provisioner_core::identity::IdentityProvider;
        let Some(filter) = filter else {
            return self.list_users(pagination_token, limit).await;
        };
        self.inner.meter.admit("ListUsers").await?;
        if !(1..=60).contains(&limit) {
            return Err(IdpError::InvalidParameter(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: \
                 Member must have value between 1 and 60"
            )));
        }
        let after = match pagination_token.as_deref() {
            Some(token) => crate::decode_page_token(token)?,
            None => 0,
        };
        let (column, value) = match filter.attribute.as_str() {
            "username" => ("username_key", username_key(&filter.value)),
            "email" => ("email", filter.value.clone()),
            "sub" => ("sub", filter.value.clone()),
            "cognito:user_status" => ("status", filter.value.clone()),
            "status" => (
                "CASE enabled WHEN 1 THEN 'Enabled' ELSE 'Disabled' END",
                filter.value.clone(),
            ),
            // Searchable in Cognito, never set by this emulator: nothing matches.
            _ => ("NULL", filter.value.clone()),
        };
        let condition = if filter.prefix {
            format!("substr({column}, 1, length(?1)) = ?1")
        } else {
            format!("{column} = ?1")
        };
        let sql = format!(
            "SELECT {cols} FROM emu_users WHERE {condition} AND id > ?2 ORDER BY id LIMIT ?3",
            cols = db::USER_COLUMNS,
        );
        let mut rows: Vec<UserRow> = sqlx::query_as(&sql)
            .bind(&value)
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_token = match rows.last() {
            Some(last) if more => Some(crate::encode_page_token(last.id)),
            _ => None,
        };
        Ok(UserPage {
            users: rows.iter().map(UserRow::to_idp).collect(),
            next_token,
        })
    }

    /// The pool as `DescribeUserPool` reports it.
    pub async fn describe_pool(&self) -> Result<PoolDescription, IdpError> {
        let users: i64 = sqlx::query_scalar("SELECT count(*) FROM emu_users")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        sqlx::query("INSERT OR IGNORE INTO emu_meta (key, value) VALUES ('pool_created_at_us', ?)")
            .bind(micros(self.now()).to_string())
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        let created: String = sqlx::query_scalar("SELECT value FROM emu_meta WHERE key = 'pool_created_at_us'")
            .fetch_one(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        let pool_id = self.inner.pool_id.clone();
        Ok(PoolDescription {
            region: pool_id.split_once('_').map_or("us-east-1", |(r, _)| r).to_string(),
            pool_id,
            client_id: self.inner.client_id.clone(),
            issuer: self.inner.issuer.clone(),
            invite_validity_days: self.inner.invite_validity.num_days(),
            users,
            created_at: db::from_micros(created.parse().unwrap_or_default()),
        })
    }

    /// The app client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The issuer tokens carry.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse_like_cognitos() {
        assert_eq!(UserFilter::parse("  ").unwrap(), None);
        assert_eq!(
            UserFilter::parse("email = \"a@b.c\"").unwrap(),
            Some(UserFilter {
                attribute: "email".into(),
                prefix: false,
                value: "a@b.c".into()
            })
        );
        assert!(
            UserFilter::parse("cognito:user_status ^= \"FORCE\"")
                .unwrap()
                .unwrap()
                .prefix
        );
        assert!(matches!(
            UserFilter::parse("email = a@b.c"),
            Err(IdpError::InvalidParameter(_))
        ));
        assert!(matches!(
            UserFilter::parse("custom:x = \"1\""),
            Err(IdpError::InvalidParameter(_))
        ));
        assert!(matches!(UserFilter::parse("email"), Err(IdpError::InvalidParameter(_))));
    }
}
