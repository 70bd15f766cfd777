//! Software-token MFA, as Cognito does it: `AssociateSoftwareToken`, `VerifySoftwareToken`,
//! `SetUserMFAPreference`, and the `MFA_SETUP` / `SOFTWARE_TOKEN_MFA` challenges of `InitiateAuth` and
//! `RespondToAuthChallenge`.
//!
//! * Codes are RFC 6238 (SHA-1, 30-second steps, 6 digits), accepted one step either side of now
//!   ([`admin_provisioner_core::totp`]). A code of a step already used (by a verification or a sign-in)
//!   is refused, and so is any older one: a code works once.
//! * [`MfaConfiguration`] is the pool's `MfaConfiguration` (`COGNITO_EMULATOR_MFA=off|optional|on`): with
//!   `ON` a user without an authenticator gets `MFA_SETUP` after their password; with `ON` or `OPTIONAL`
//!   a user with software-token MFA enabled gets `SOFTWARE_TOKEN_MFA`.
//! * Challenge sessions live 3 minutes and are stored as hashes; the `MFA_SETUP` session is replaced by
//!   each association and verification (Cognito hands out a new session at each step).

use crate::db::{self, find_user, micros, unavailable, username_key, UserRow};
use crate::{CognitoEmulator, INVALID_SESSION, SESSION_VALIDITY_SECONDS};
use admin_provisioner_core::domain::Secret;
use admin_provisioner_core::identity::{AuthOutcome, IdpError, MfaAuth, SoftwareTokenAssociation};
use admin_provisioner_core::totp;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;

/// The pool's `MfaConfiguration`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MfaConfiguration {
    /// `OFF`: no MFA challenge, whatever a user enrolled (the default).
    #[default]
    Off,
    /// `OPTIONAL`: users who enabled software-token MFA are asked for a code.
    Optional,
    /// `ON`: every user must have an authenticator; one without is walked through `MFA_SETUP`.
    On,
}

/// The environment variable that sets the emulator's [`MfaConfiguration`].
pub const MFA_ENV: &str = "COGNITO_EMULATOR_MFA";

impl MfaConfiguration {
    /// Parses `off`, `optional` or `on` (any case).
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            "on" => Ok(Self::On),
            other => Err(format!("{MFA_ENV}: `{other}` is not one of off, optional, on")),
        }
    }

    /// Reads [`MFA_ENV`] (unset = `off`).
    pub fn from_env() -> Result<Self, String> {
        std::env::var(MFA_ENV).map_or(Ok(Self::Off), |v| Self::parse(&v))
    }

    /// Cognito's spelling.
    pub fn as_cognito(self) -> &'static str {
        match self {
            Self::Off => "OFF",
            Self::Optional => "OPTIONAL",
            Self::On => "ON",
        }
    }
}

/// Challenge kinds kept in `emu_challenges`.
const MFA_SETUP: &str = "MFA_SETUP";
/// An `MFA_SETUP` whose code was verified: `RespondToAuthChallenge` may complete the sign-in.
const MFA_SETUP_VERIFIED: &str = "MFA_SETUP_VERIFIED";
const SOFTWARE_TOKEN_MFA: &str = "SOFTWARE_TOKEN_MFA";

/// Cognito's answer to a wrong code.
const CODE_MISMATCH: &str = "Invalid code received for user";
/// Cognito's answer to a code used before.
const CODE_USED: &str = "Your software token has already been used once.";

/// A user's MFA row.
#[derive(sqlx::FromRow)]
struct MfaRow {
    secret: Option<String>,
    pending_secret: Option<String>,
    enabled: bool,
    last_step: i64,
}

impl CognitoEmulator {
    /// The pool's MFA configuration.
    pub fn mfa_configuration(&self) -> MfaConfiguration {
        self.inner.mfa
    }

    /// What a correct password leads to for a `CONFIRMED`, enabled user: tokens, or an MFA challenge.
    pub(crate) async fn after_password(&self, user: &UserRow, now: DateTime<Utc>) -> Result<AuthOutcome, IdpError> {
        let mfa = self.mfa_row(&user.username).await?;
        let enabled = mfa.as_ref().is_some_and(|m| m.enabled && m.secret.is_some());
        let challenge = match self.inner.mfa {
            MfaConfiguration::Off => None,
            MfaConfiguration::Optional => enabled.then_some(SOFTWARE_TOKEN_MFA),
            MfaConfiguration::On => Some(if enabled { SOFTWARE_TOKEN_MFA } else { MFA_SETUP }),
        };
        let Some(challenge) = challenge else {
            tracing::info!(sub = %user.sub, "login succeeded");
            return Ok(AuthOutcome::Tokens(self.issue_tokens(user, now).await?));
        };
        let session = self.new_challenge(&user.username, challenge, now).await?;
        tracing::info!(challenge, "MFA challenge issued");
        let username = user.username.clone();
        Ok(if challenge == MFA_SETUP {
            AuthOutcome::MfaSetup { session, username }
        } else {
            AuthOutcome::SoftwareTokenMfa { session, username }
        })
    }

    /// `AssociateSoftwareToken`.
    #[tracing::instrument(skip_all, fields(op = "AssociateSoftwareToken"))]
    pub(crate) async fn associate(&self, auth: &MfaAuth) -> Result<SoftwareTokenAssociation, IdpError> {
        self.inner.meter.admit("AssociateSoftwareToken").await?;
        let now = self.now();
        let (username, session) = self.mfa_caller(auth, &[MFA_SETUP], now).await?;
        let secret = new_totp_secret();
        sqlx::query(
            "INSERT INTO emu_mfa (username_key, pending_secret) VALUES (?, ?) \
             ON CONFLICT (username_key) DO UPDATE SET pending_secret = excluded.pending_secret",
        )
        .bind(username_key(&username))
        .bind(&secret)
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        let session = match session {
            Some(old) => Some(self.replace_challenge(&old, &username, MFA_SETUP, now).await?),
            None => None,
        };
        tracing::info!("software token associated (not yet verified)");
        Ok(SoftwareTokenAssociation {
            secret_code: Secret::new(secret),
            session,
        })
    }

    /// `VerifySoftwareToken`.
    #[tracing::instrument(skip_all, fields(op = "VerifySoftwareToken"))]
    pub(crate) async fn verify(&self, auth: &MfaAuth, code: &Secret) -> Result<Option<Secret>, IdpError> {
        self.inner.meter.admit("VerifySoftwareToken").await?;
        let now = self.now();
        let (username, session) = self.mfa_caller(auth, &[MFA_SETUP], now).await?;
        let Some(pending) = self.mfa_row(&username).await?.and_then(|m| m.pending_secret) else {
            return Err(IdpError::InvalidParameter(
                "AssociateSoftwareToken must be called before VerifySoftwareToken.".into(),
            ));
        };
        let step = match totp::matching_step(&pending, code.expose(), unix(now)) {
            Ok(Some(step)) => step,
            _ => {
                tracing::info!("software token verification refused: wrong code");
                return Err(IdpError::CodeMismatch(CODE_MISMATCH.into()));
            }
        };
        sqlx::query(
            "UPDATE emu_mfa SET secret = pending_secret, pending_secret = NULL, last_step = ? WHERE username_key = ?",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(username_key(&username))
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        tracing::info!("software token verified");
        match session {
            Some(old) => Ok(Some(
                self.replace_challenge(&old, &username, MFA_SETUP_VERIFIED, now).await?,
            )),
            None => Ok(None),
        }
    }

    /// `SetUserMFAPreference` (software token) with an access token.
    #[tracing::instrument(skip_all, fields(op = "SetUserMFAPreference", enabled))]
    pub(crate) async fn set_preference(&self, access_token: &Secret, enabled: bool) -> Result<(), IdpError> {
        self.inner.meter.admit("SetUserMFAPreference").await?;
        let username = self.access_token_user(access_token, self.now())?;
        self.set_software_token_enabled(&username, enabled).await
    }

    /// `AdminSetUserMFAPreference` for the software token: enables it (it must have been verified) or
    /// disables it. Disabling also forgets the secret, so the next enrolment starts afresh.
    /// `UserNotFound` for a missing user.
    #[tracing::instrument(skip_all, fields(op = "AdminSetUserMFAPreference", enabled))]
    pub async fn set_software_token_enabled(&self, username: &str, enabled: bool) -> Result<(), IdpError> {
        if find_user(&self.inner.pool, username)
            .await
            .map_err(unavailable)?
            .is_none()
        {
            return Err(IdpError::UserNotFound);
        }
        let key = username_key(username);
        if enabled {
            if self.inner.mfa == MfaConfiguration::Off {
                return Err(IdpError::InvalidParameter(
                    "Software token MFA is not enabled for this user pool.".into(),
                ));
            }
            let done = sqlx::query("UPDATE emu_mfa SET enabled = 1 WHERE username_key = ? AND secret IS NOT NULL")
                .bind(&key)
                .execute(&self.inner.pool)
                .await
                .map_err(unavailable)?;
            if done.rows_affected() == 0 {
                return Err(IdpError::InvalidParameter(
                    "User has not verified software token mfa".into(),
                ));
            }
        } else {
            sqlx::query("DELETE FROM emu_mfa WHERE username_key = ?")
                .bind(&key)
                .execute(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        }
        tracing::info!("software token MFA preference set");
        Ok(())
    }

    /// Whether `username` has software-token MFA enabled (`AdminGetUser`'s `UserMFASettingList`).
    pub async fn software_token_enabled(&self, username: &str) -> Result<bool, IdpError> {
        Ok(self
            .mfa_row(username)
            .await?
            .is_some_and(|m| m.enabled && m.secret.is_some()))
    }

    /// `RespondToAuthChallenge` with `MFA_SETUP` (after `VerifySoftwareToken` with the session).
    pub(crate) async fn respond_mfa_setup(&self, username: &str, session: &Secret) -> Result<AuthOutcome, IdpError> {
        let now = self.now();
        let user = self.take_challenge(username, session, MFA_SETUP_VERIFIED, now).await?;
        sqlx::query("UPDATE emu_mfa SET enabled = 1 WHERE username_key = ? AND secret IS NOT NULL")
            .bind(username_key(&user.username))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        tracing::info!(sub = %user.sub, "MFA set up; login succeeded");
        Ok(AuthOutcome::Tokens(self.issue_tokens(&user, now).await?))
    }

    /// `RespondToAuthChallenge` with `SOFTWARE_TOKEN_MFA`. A wrong code leaves the session usable until it
    /// expires; a right one ends it.
    pub(crate) async fn respond_software_token(
        &self,
        username: &str,
        session: &Secret,
        code: &Secret,
    ) -> Result<AuthOutcome, IdpError> {
        let now = self.now();
        let user = self
            .challenge_user(username, session, &[SOFTWARE_TOKEN_MFA], now)
            .await?;
        let key = username_key(&user.username);
        let Some(MfaRow {
            secret: Some(secret),
            last_step,
            ..
        }) = self.mfa_row(&user.username).await?
        else {
            return Err(IdpError::NotAuthorized(INVALID_SESSION.into()));
        };
        let step = match totp::matching_step(&secret, code.expose(), unix(now)) {
            Ok(Some(step)) => i64::try_from(step).unwrap_or(i64::MAX),
            _ => {
                tracing::info!("MFA code refused: wrong code");
                return Err(IdpError::CodeMismatch(CODE_MISMATCH.into()));
            }
        };
        // Compare-and-set on the last step: of two concurrent uses of one code, one wins.
        let used = sqlx::query("UPDATE emu_mfa SET last_step = ? WHERE username_key = ? AND last_step < ?")
            .bind(step)
            .bind(&key)
            .bind(step)
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        if step <= last_step || used.rows_affected() == 0 {
            tracing::info!("MFA code refused: already used");
            return Err(IdpError::CodeMismatch(CODE_USED.into()));
        }
        let user = self.take_challenge(username, session, SOFTWARE_TOKEN_MFA, now).await?;
        tracing::info!(sub = %user.sub, "MFA code accepted; login succeeded");
        Ok(AuthOutcome::Tokens(self.issue_tokens(&user, now).await?))
    }

    async fn mfa_row(&self, username: &str) -> Result<Option<MfaRow>, IdpError> {
        sqlx::query_as::<_, MfaRow>(
            "SELECT secret, pending_secret, enabled, last_step FROM emu_mfa WHERE username_key = ?",
        )
        .bind(username_key(username))
        .fetch_optional(&self.inner.pool)
        .await
        .map_err(unavailable)
    }

    /// The username behind an access token or a challenge session of one of `kinds` (with the session).
    async fn mfa_caller(
        &self,
        auth: &MfaAuth,
        kinds: &[&str],
        now: DateTime<Utc>,
    ) -> Result<(String, Option<Secret>), IdpError> {
        match auth {
            MfaAuth::AccessToken(token) => Ok((self.access_token_user(token, now)?, None)),
            MfaAuth::Session(session) => {
                let owner: Option<(String, String, i64)> = sqlx::query_as(
                    "SELECT username_key, challenge, expires_at_us FROM emu_challenges WHERE session_hash = ?",
                )
                .bind(db::session_hash(session.expose()))
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(unavailable)?;
                match owner {
                    Some((user, kind, expires)) if kinds.contains(&kind.as_str()) && micros(now) < expires => {
                        Ok((user, Some(session.clone())))
                    }
                    _ => Err(IdpError::NotAuthorized(INVALID_SESSION.into())),
                }
            }
        }
    }

    /// The username of a valid access token this emulator issued.
    fn access_token_user(&self, token: &Secret, now: DateTime<Utc>) -> Result<String, IdpError> {
        let bad = || IdpError::NotAuthorized("Invalid Access Token".into());
        let claims = self.inner.key.verify(token.expose()).map_err(|_| bad())?;
        let fresh = claims["exp"].as_i64().is_some_and(|exp| now.timestamp() < exp);
        if claims["token_use"] != "access" || !fresh {
            return Err(bad());
        }
        claims["username"].as_str().map(str::to_string).ok_or_else(bad)
    }

    async fn new_challenge(&self, username: &str, kind: &str, now: DateTime<Utc>) -> Result<Secret, IdpError> {
        let session = db::random_secret(64);
        sqlx::query("DELETE FROM emu_challenges WHERE expires_at_us <= ?")
            .bind(micros(now))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        sqlx::query(
            "INSERT INTO emu_challenges (session_hash, username_key, challenge, expires_at_us) VALUES (?, ?, ?, ?)",
        )
        .bind(db::session_hash(&session))
        .bind(username_key(username))
        .bind(kind)
        .bind(micros(now + Duration::seconds(SESSION_VALIDITY_SECONDS)))
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        Ok(Secret::new(session))
    }

    /// Ends `old` and hands out a new session of `kind` for the same user (same expiry rule).
    async fn replace_challenge(
        &self,
        old: &Secret,
        username: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<Secret, IdpError> {
        let gone = sqlx::query("DELETE FROM emu_challenges WHERE session_hash = ?")
            .bind(db::session_hash(old.expose()))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        if gone.rows_affected() == 0 {
            return Err(IdpError::NotAuthorized(INVALID_SESSION.into()));
        }
        self.new_challenge(username, kind, now).await
    }

    /// The user of a live session of one of `kinds` belonging to `username`.
    async fn challenge_user(
        &self,
        username: &str,
        session: &Secret,
        kinds: &[&str],
        now: DateTime<Utc>,
    ) -> Result<UserRow, IdpError> {
        let invalid = || IdpError::NotAuthorized(INVALID_SESSION.into());
        let (owner, _) = self.mfa_caller(&MfaAuth::Session(session.clone()), kinds, now).await?;
        if owner != username_key(username) {
            return Err(invalid());
        }
        let user = find_user(&self.inner.pool, username)
            .await
            .map_err(unavailable)?
            .ok_or_else(invalid)?;
        if !user.enabled {
            return Err(IdpError::NotAuthorized(crate::USER_DISABLED.into()));
        }
        Ok(user)
    }

    /// Consumes a live session of `kind` belonging to `username` (single use) and returns the user.
    async fn take_challenge(
        &self,
        username: &str,
        session: &Secret,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<UserRow, IdpError> {
        let user = self.challenge_user(username, session, &[kind], now).await?;
        let consumed = sqlx::query("DELETE FROM emu_challenges WHERE session_hash = ? AND expires_at_us > ?")
            .bind(db::session_hash(session.expose()))
            .bind(micros(now))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        if consumed.rows_affected() == 0 {
            return Err(IdpError::NotAuthorized(INVALID_SESSION.into()));
        }
        Ok(user)
    }
}

/// A new TOTP secret: 20 random bytes (160 bits, Cognito's size), base32 without padding (32 characters).
fn new_totp_secret() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    totp_rs::Secret::Raw(bytes.to_vec()).to_encoded().to_string()
}

fn unix(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_32_base32_characters_and_usable() {
        let s = new_totp_secret();
        assert_eq!(s.len(), 32, "{s}");
        assert!(s.chars().all(|c| c.is_ascii_uppercase() || ('2'..='7').contains(&c)));
        assert_ne!(s, new_totp_secret());
        assert_eq!(totp::code_at(&s, 0).unwrap().len(), 6);
    }

    #[test]
    fn configuration_parses() {
        assert_eq!(MfaConfiguration::parse("ON"), Ok(MfaConfiguration::On));
        assert_eq!(MfaConfiguration::parse("optional"), Ok(MfaConfiguration::Optional));
        assert_eq!(MfaConfiguration::parse(""), Ok(MfaConfiguration::Off));
        assert!(MfaConfiguration::parse("sms").is_err());
    }
}
