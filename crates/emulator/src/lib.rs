//! The built-in AWS Cognito emulator: an [`IdentityProvider`] that needs no AWS account.
//!
//! # Why it exists
//!
//! admin-provisioner adds admins to a Cognito user pool and to a SQL database at once. Without a pool
//! (`COGNITO_USER_POOL_ID` unset) the product still has to work end to end — for a demo, for local
//! development, and for tests that must not touch AWS — so it runs against this emulator instead. It is a
//! production adapter, not a mock: it keeps real state, enforces Cognito's rules and signs real tokens.
//!
//! # What it promises
//!
//! * **Cognito's shapes and rules**: `AdminCreateUser` (statuses `FORCE_CHANGE_PASSWORD` → `CONFIRMED`,
//!   `UsernameExists`, the default password policy with Cognito's messages, `MessageAction` `SUPPRESS` and
//!   `RESEND`), `AdminGetUser`, `AdminDeleteUser`, `ListUsers` (limit ≤ 60, opaque pagination token),
//!   `InitiateAuth` with `USER_PASSWORD_AUTH`, and `RespondToAuthChallenge` with `NEW_PASSWORD_REQUIRED`
//!   (a single-use session valid for 3 minutes). Usernames are case-insensitive, as in new pools. Login
//!   errors do not reveal whether a user exists.
//! * **Sign-in lockout**: after [`LOCKOUT_THRESHOLD`] failed sign-ins in a row a user is locked for one
//!   second, doubling with every further failure up to [`LOCKOUT_MAX_SECONDS`]; while locked, `InitiateAuth`
//!   answers `NotAuthorized("Password attempts exceeded")` without looking at the password, and a
//!   successful sign-in resets the count (Cognito's documented behaviour). The count lives in the state.
//! * **Private state on disk**: the state file (it holds the signing private key) is created mode 0600 in
//!   a folder created 0700, and an existing one readable by others is tightened to 0600.
//! * **Temporary-password expiry**: a temporary password works for
//!   [`EmulatorConfig::invite_validity_days`] (the pool's `TemporaryPasswordValidityDays`) after it was set;
//!   `RESEND` sets a new one and restarts that period.
//! * **Real tokens**: RS256 ID and access tokens with Cognito's claims, verifiable with
//!   [`CognitoEmulator::jwks_json`]; the signing key is generated once per state and keeps its `kid`.
//!   Each password sign-in starts a sign-in session with a refresh token (`REFRESH_TOKEN_AUTH`), ended by
//!   a global sign-out (see the `account` module).
//! * **Cognito's wire protocol** ([`wire`]): the same model behind `POST /` with `X-Amz-Target`, for any
//!   AWS SDK, the AWS CLI and standard JWT verifiers.
//! * **Persistence shared between processes**: users, challenge sessions and the signing key live in
//!   SQLite ([`EmulatorState::File`], WAL mode). Every call reads and writes the database — nothing is
//!   cached — so a server and a CLI run on the same file see the same users, and state survives restarts.
//! * **Invitation e-mails you can read**: each invitation is an RFC 5322 `.eml` file in the
//!   [`mailbox`] folder, carrying Cognito's default line
//!   `Your username is {username} and temporary password is {password}.`
//!   If the file cannot be written the user is still created and the call answers
//!   `CodeDeliveryFailure`, exactly as Cognito does when its e-mail fails.
//! * **No secrets at rest or in logs**: passwords are stored only as salted SHA-256 hashes, sessions only as
//!   hashes; no password, session or token is ever logged. (The invitation file necessarily contains the
//!   temporary password: it stands in for the invitee's inbox.)
//!
//! Time comes from the injected [`Clock`], so tests move it instead of sleeping.

#![warn(missing_docs)]

pub mod mailbox;
mod mfa;
pub mod simulation;
pub mod wire;

pub use mfa::{MfaConfiguration, MFA_ENV};

mod account;
mod db;
mod groups;
mod keys;
mod policy;
mod recovery;
pub use recovery::{RESET_CODE_MAX_ATTEMPTS, RESET_CODE_VALIDITY_SECONDS};

use admin_provisioner_core::clock::{Clock, SystemClock};
use admin_provisioner_core::domain::{loggable_username, Password, Secret, TemporaryPassword, Tokens};
use admin_provisioner_core::identity::{
    AuthOutcome, ChallengeAnswer, CreateUserRequest, IdentityProvider, IdpError, IdpUser, MessageAction, MfaAuth,
    SoftwareTokenAssociation, TokenSettings, UserPage,
};
use anyhow::Context;
use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use db::{find_user, micros, unavailable, username_key, UserRow};
use serde_json::json;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use uuid::Uuid;

/// Default region.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Default user pool id (Cognito's format: `{region}_{9 alphanumerics}`).
pub const DEFAULT_POOL_ID: &str = "us-east-1_LocalEmu1";
/// Default app client id (26 lower-case alphanumerics, like Cognito's).
pub const DEFAULT_CLIENT_ID: &str = "7f3k9emulatorlocal0client1";
/// Default `TemporaryPasswordValidityDays`.
pub const DEFAULT_INVITE_VALIDITY_DAYS: u32 = 7;
/// How long a `NEW_PASSWORD_REQUIRED` session stays valid (Cognito's default: 3 minutes).
pub const SESSION_VALIDITY_SECONDS: i64 = 180;
/// Lifetime of ID and access tokens, in seconds (Cognito's default: one hour).
pub const TOKEN_VALIDITY_SECONDS: i64 = 3600;

/// Failed sign-ins in a row before a user is locked out (Cognito: 5).
pub const LOCKOUT_THRESHOLD: i64 = 5;
/// Longest lockout, in seconds (Cognito: about 15 minutes).
pub const LOCKOUT_MAX_SECONDS: i64 = 900;
/// Cognito's answer while a user is locked out after repeated failures.
const PASSWORD_ATTEMPTS_EXCEEDED: &str = "Password attempts exceeded";

/// Cognito's answer to a wrong username or password (user-existence errors are prevented).
const INCORRECT_CREDENTIALS: &str = "Incorrect username or password.";
/// Cognito's answer to a login by a disabled user.
const USER_DISABLED: &str = "User is disabled.";
/// Cognito's answer to a correct but expired temporary password.
const TEMPORARY_PASSWORD_EXPIRED: &str = "Temporary password has expired and must be reset by an administrator.";
/// Cognito's answer to an unknown, used or expired challenge session.
const INVALID_SESSION: &str = "Invalid session for the user, session is expired.";

/// Status spellings stored in the database (Cognito's).
const FORCE_CHANGE_PASSWORD: &str = "FORCE_CHANGE_PASSWORD";
const CONFIRMED: &str = "CONFIRMED";

/// Metadata keys.
const META_KEY_PEM: &str = "signing_key_pem";
const META_KEY_KID: &str = "signing_key_kid";

/// Where the emulator keeps its users, sessions and signing key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EmulatorState {
    /// Nothing survives the process (`sqlite::memory:`, one connection). For tests and throw-away demos.
    InMemory,
    /// An SQLite file (created if missing, WAL mode): survives restarts and is shared by every process
    /// that opens the same file.
    File(PathBuf),
}

/// Settings of the emulated user pool and app client.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Where the emulator's users and keys live.
    pub state: EmulatorState,
    /// Where invitation e-mails are delivered, one RFC 5322 `.eml` file each (`MAILBOX_DIR`).
    pub mailbox_dir: PathBuf,
    /// AWS region of the emulated pool (`us-east-1` by default).
    pub region: String,
    /// User pool id (`us-east-1_LocalEmu1` by default).
    pub pool_id: String,
    /// App client id: `aud` of ID tokens, `client_id` of access tokens.
    pub client_id: String,
    /// Token issuer; `None` means Cognito's `https://cognito-idp.{region}.amazonaws.com/{pool_id}`.
    pub issuer: Option<String>,
    /// The pool's `TemporaryPasswordValidityDays` (7 by default).
    pub invite_validity_days: u32,
    /// The source of "now" for expiry, sessions, token times and e-mail dates.
    pub clock: Arc<dyn Clock>,
    /// Simulated quotas and latency ([`simulation`]); nothing by default.
    pub simulation: simulation::Simulation,
    /// The pool's `MfaConfiguration` (`COGNITO_EMULATOR_MFA`); `OFF` by default.
    pub mfa: MfaConfiguration,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("state", &self.state)
            .field("mailbox_dir", &self.mailbox_dir)
            .field("region", &self.region)
            .field("pool_id", &self.pool_id)
            .field("client_id", &self.client_id)
            .field("issuer", &self.issuer)
            .field("invite_validity_days", &self.invite_validity_days)
            .field("simulation", &self.simulation)
            .field("mfa", &self.mfa)
            .finish_non_exhaustive()
    }
}

impl EmulatorConfig {
    /// Defaults with in-memory state, delivering mail to `mailbox_dir`, on the system clock.
    pub fn in_memory(mailbox_dir: impl Into<PathBuf>) -> Self {
        Self::with_state(EmulatorState::InMemory, mailbox_dir.into())
    }

    /// Defaults with state in the SQLite file `state_path`, delivering mail to `mailbox_dir`, on the
    /// system clock.
    pub fn file(state_path: impl Into<PathBuf>, mailbox_dir: impl Into<PathBuf>) -> Self {
        Self::with_state(EmulatorState::File(state_path.into()), mailbox_dir.into())
    }

    fn with_state(state: EmulatorState, mailbox_dir: PathBuf) -> Self {
        Self {
            state,
            mailbox_dir,
            region: DEFAULT_REGION.to_string(),
            pool_id: DEFAULT_POOL_ID.to_string(),
            client_id: DEFAULT_CLIENT_ID.to_string(),
            issuer: None,
            invite_validity_days: DEFAULT_INVITE_VALIDITY_DAYS,
            clock: Arc::new(SystemClock),
            simulation: simulation::Simulation::default(),
            mfa: MfaConfiguration::Off,
        }
    }

    /// The issuer tokens carry: [`EmulatorConfig::issuer`], or Cognito's URL for the region and pool.
    pub fn effective_issuer(&self) -> String {
        self.issuer
            .clone()
            .unwrap_or_else(|| format!("https://cognito-idp.{}.amazonaws.com/{}", self.region, self.pool_id))
    }
}

/// The emulated user pool. Cheap to clone (clones share one connection pool); `Send + Sync`.
#[derive(Clone)]
pub struct CognitoEmulator {
    inner: Arc<Inner>,
}

struct Inner {
    pool: SqlitePool,
    mailbox: mailbox::Mailbox,
    pool_id: String,
    client_id: String,
    issuer: String,
    invite_validity: Duration,
    clock: Arc<dyn Clock>,
    key: keys::SigningKey,
    /// Added latency and every rate limit (the configured quotas and those set at run time).
    meter: simulation::Meter,
    /// The pool's `MfaConfiguration`.
    mfa: MfaConfiguration,
}

/// A password to store with a status change: (salt, hash) and the temporary password's expiry.
type NewPassword = ((String, String), Option<DateTime<Utc>>);

/// A user to import with [`CognitoEmulator::import_users`] (bulk fixtures and benchmarks).
#[derive(Clone, Debug)]
pub struct ImportUser {
    /// `Username`.
    pub username: String,
    /// `sub`.
    pub sub: String,
    /// `email`.
    pub email: String,
    /// `UserStatus`, Cognito's spelling.
    pub status: String,
    /// `Enabled`.
    pub enabled: bool,
}

impl std::fmt::Debug for CognitoEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CognitoEmulator")
            .field("pool_id", &self.inner.pool_id)
            .field("client_id", &self.inner.client_id)
            .field("issuer", &self.inner.issuer)
            .field("kid", &self.inner.key.kid)
            .field("mailbox", &self.inner.mailbox.dir())
            .finish_non_exhaustive()
    }
}

impl CognitoEmulator {
    /// Opens (or creates) the emulator's state: connects to SQLite, creates the tables if missing, and
    /// loads the signing key, generating and storing an RSA 2048 key the first time.
    ///
    /// Errors: the state file cannot be created or opened, or holds an unreadable key.
    pub async fn open(config: EmulatorConfig) -> anyhow::Result<Self> {
        let pool = match &config.state {
            EmulatorState::InMemory => {
                // One connection that never closes: an in-memory database lives as long as its connection.
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .min_connections(1)
                    .idle_timeout(None)
                    .max_lifetime(None)
                    .connect_with(SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true))
                    .await
                    .context("opening the in-memory emulator state")?
            }
            EmulatorState::File(path) => {
                create_private_file(path)?;
                let options = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(std::time::Duration::from_secs(10))
                    .foreign_keys(true);
                SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options)
                    .await
                    .with_context(|| format!("opening the emulator state {}", path.display()))?
            }
        };
        db::migrate(&pool).await.context("creating the emulator's tables")?;
        let key = load_or_create_key(&pool).await?;
        let issuer = config.effective_issuer();
        tracing::info!(pool_id = %config.pool_id, kid = %key.kid, mailbox = %config.mailbox_dir.display(), "Cognito emulator ready");
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                mailbox: mailbox::Mailbox::new(config.mailbox_dir),
                pool_id: config.pool_id,
                client_id: config.client_id,
                issuer,
                invite_validity: Duration::days(i64::from(config.invite_validity_days)),
                clock: config.clock,
                key,
                meter: simulation::Meter::new(&config.simulation),
                mfa: config.mfa,
            }),
        })
    }

    /// The JSON Web Key Set that verifies this emulator's tokens:
    /// `{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":…,"n":…,"e":…}]}`.
    pub fn jwks_json(&self) -> serde_json::Value {
        self.inner.key.jwks()
    }

    /// The folder invitations are delivered to.
    pub fn mailbox(&self) -> mailbox::Mailbox {
        self.inner.mailbox.clone()
    }

    /// The emulated user pool id.
    pub fn pool_id(&self) -> &str {
        &self.inner.pool_id
    }

    /// Limits operation `op` (Cognito's name, one of [`simulation::OPERATIONS`]) to `per_second` calls a
    /// second from now on (`None` = unlimited); calls beyond it answer `TooManyRequests` without taking
    /// effect, as Cognito does beyond its quota. The same token bucket as `COGNITO_EMULATOR_RATE_LIMITS`
    /// (this replaces that operation's configured quota). Panics on an unknown operation name.
    pub fn set_rate_limit(&self, op: &str, per_second: Option<f64>) {
        self.inner.meter.set_rate(op, per_second);
    }

    /// How many calls of operation `op` a rate limit refused so far.
    pub fn refused_calls(&self, op: &str) -> u64 {
        self.inner.meter.refused(op)
    }

    /// Limits `ListUsers` to `per_second` calls a second (`None` = unlimited, the default): Cognito's
    /// UserList quota. Shorthand for [`CognitoEmulator::set_rate_limit`].
    pub fn set_list_users_rate_limit(&self, per_second: Option<u32>) {
        self.set_rate_limit("ListUsers", per_second.map(f64::from));
    }

    /// How many `ListUsers` calls a rate limit refused so far.
    pub fn list_users_refused(&self) -> u64 {
        self.refused_calls("ListUsers")
    }

    /// `AdminUpdateUserAttributes` for `email` (sets `email_verified=true`). `UserNotFound` for a missing
    /// user.
    #[tracing::instrument(skip_all, fields(op = "AdminUpdateUserAttributes", username = %username))]
    pub async fn admin_update_user_email(&self, username: &str, email: &str) -> Result<(), IdpError> {
        policy::check_email(email)?;
        let done = sqlx::query(
            "UPDATE emu_users SET email = ?, email_verified = 1, modified_at_us = ? WHERE username_key = ?",
        )
        .bind(email)
        .bind(micros(self.now()))
        .bind(username_key(username))
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(IdpError::UserNotFound);
        }
        Ok(())
    }

    /// `AdminSetUserPassword`: `permanent` makes the user `CONFIRMED` with this password; otherwise it is
    /// a temporary password and the user is `FORCE_CHANGE_PASSWORD` again. `UserNotFound` for a missing
    /// user.
    #[tracing::instrument(skip_all, fields(op = "AdminSetUserPassword", username = %username, permanent))]
    pub async fn admin_set_user_password(
        &self,
        username: &str,
        password: &Password,
        permanent: bool,
    ) -> Result<(), IdpError> {
        policy::check_password(password.expose())?;
        let (status, expires) = if permanent {
            (CONFIRMED, None)
        } else {
            (FORCE_CHANGE_PASSWORD, Some(self.now() + self.inner.invite_validity))
        };
        self.set_status(
            username,
            status,
            Some((db::new_password_hash(password.expose()), expires)),
        )
        .await
    }

    async fn set_status(&self, username: &str, status: &str, password: Option<NewPassword>) -> Result<(), IdpError> {
        let now = micros(self.now());
        let key = username_key(username);
        let done =
            match password {
                None => {
                    sqlx::query("UPDATE emu_users SET status = ?, modified_at_us = ? WHERE username_key = ?")
                        .bind(status)
                        .bind(now)
                        .bind(&key)
                        .execute(&self.inner.pool)
                        .await
                }
                Some(((salt, hash), expires)) => sqlx::query(
                    "UPDATE emu_users SET status = ?, password_salt = ?, password_hash = ?, temp_expires_at_us = ?, \
                 modified_at_us = ? WHERE username_key = ?",
                )
                .bind(status)
                .bind(salt)
                .bind(hash)
                .bind(expires.map(micros))
                .bind(now)
                .bind(&key)
                .execute(&self.inner.pool)
                .await,
            }
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(IdpError::UserNotFound);
        }
        Ok(())
    }

    /// Inserts users directly, in one transaction, without sending invitations (bulk fixtures and the
    /// reconciler benchmark). They have no usable password. `UsernameExists` if any username is taken
    /// (then nothing is inserted).
    pub async fn import_users(&self, users: &[ImportUser]) -> Result<(), IdpError> {
        let now = micros(self.now());
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        for u in users {
            let r = sqlx::query(
                "INSERT INTO emu_users (username, username_key, sub, email, email_verified, status, enabled, \
                 created_at_us, modified_at_us, password_salt, password_hash, temp_expires_at_us) \
                 VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, '', '', NULL)",
            )
            .bind(&u.username)
            .bind(username_key(&u.username))
            .bind(&u.sub)
            .bind(&u.email)
            .bind(&u.status)
            .bind(u.enabled)
            .bind(now)
            .bind(now)
            .execute(&mut *tx)
            .await;
            match r {
                Ok(_) => {}
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(IdpError::UsernameExists),
                Err(e) => return Err(unavailable(e)),
            }
        }
        tx.commit().await.map_err(unavailable)
    }

    /// `AdminDisableUser`: the user can no longer log in (`NotAuthorized("User is disabled.")`).
    /// `UserNotFound` for a missing user.
    #[tracing::instrument(skip_all, fields(op = "AdminDisableUser", username = %username))]
    pub async fn admin_disable_user(&self, username: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("AdminDisableUser").await?;
        self.set_enabled(username, false).await
    }

    /// `AdminEnableUser`: undoes [`CognitoEmulator::admin_disable_user`]. `UserNotFound` for a missing user.
    #[tracing::instrument(skip_all, fields(op = "AdminEnableUser", username = %username))]
    pub async fn admin_enable_user(&self, username: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("AdminEnableUser").await?;
        self.set_enabled(username, true).await
    }

    async fn set_enabled(&self, username: &str, enabled: bool) -> Result<(), IdpError> {
        let now = self.now();
        let done = sqlx::query("UPDATE emu_users SET enabled = ?, modified_at_us = ? WHERE username_key = ?")
            .bind(enabled)
            .bind(micros(now))
            .bind(username_key(username))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(IdpError::UserNotFound);
        }
        Ok(())
    }

    /// Now, by the injected clock, at the microsecond precision the state keeps.
    fn now(&self) -> DateTime<Utc> {
        let now = self.inner.clock.now();
        DateTime::<Utc>::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
    }

    /// Delivers an invitation; a failure becomes Cognito's `CodeDeliveryFailure` (the user exists anyway).
    async fn deliver(
        &self,
        email: &str,
        username: &str,
        password: TemporaryPassword,
        at: DateTime<Utc>,
    ) -> Result<(), IdpError> {
        let mailbox = self.inner.mailbox.clone();
        let (email, username) = (email.to_string(), username.to_string());
        let delivered =
            tokio::task::spawn_blocking(move || mailbox.deliver_invitation(&email, &username, &password, at)).await;
        match delivered {
            Ok(Ok(path)) => {
                tracing::info!(file = %path.display(), "invitation delivered");
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "invitation could not be delivered");
                Err(IdpError::CodeDeliveryFailure(format!(
                    "Unable to deliver the invitation e-mail to the mailbox folder: {e}"
                )))
            }
            Err(e) => Err(IdpError::CodeDeliveryFailure(format!(
                "invitation delivery task failed: {e}"
            ))),
        }
    }

    /// `AdminCreateUser` with `MessageAction=RESEND`.
    async fn resend(&self, req: CreateUserRequest) -> Result<IdpUser, IdpError> {
        let password = match req.temporary_password {
            Some(p) => {
                policy::check_password(p.expose())?;
                p
            }
            None => TemporaryPassword::generate(),
        };
        let now = self.now();
        let (salt, hash) = db::new_password_hash(password.expose());
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let mut row = find_user(&mut *tx, &req.username)
            .await
            .map_err(unavailable)?
            .ok_or(IdpError::UserNotFound)?;
        if row.status != FORCE_CHANGE_PASSWORD {
            return Err(IdpError::UnsupportedUserState(format!(
                "Resend not possible. {} status is {} instead of {FORCE_CHANGE_PASSWORD}",
                row.username, row.status
            )));
        }
        let expires = now + self.inner.invite_validity;
        sqlx::query(
            "UPDATE emu_users SET password_salt = ?, password_hash = ?, temp_expires_at_us = ?, modified_at_us = ? \
             WHERE id = ?",
        )
        .bind(&salt)
        .bind(&hash)
        .bind(micros(expires))
        .bind(micros(now))
        .bind(row.id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        // Challenges started with the old temporary password end with it.
        sqlx::query("DELETE FROM emu_sessions WHERE username_key = ?")
            .bind(username_key(&row.username))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        row.modified_at_us = micros(now);
        tracing::info!(sub = %row.sub, "temporary password reset for RESEND");
        self.deliver(&row.email, &row.username, password, now).await?;
        Ok(row.to_idp())
    }

    /// Starts a sign-in session for `user`: a new `origin_jti`, a refresh token recorded (hashed) in the
    /// state, and a fresh ID + access token pair.
    async fn issue_tokens(&self, user: &UserRow, now: DateTime<Utc>) -> Result<Tokens, IdpError> {
        let origin_jti = Uuid::new_v4().to_string();
        let refresh = db::random_secret(96);
        self.record_sign_in(user, &origin_jti, &refresh, now).await?;
        let (id_token, access_token) = self.sign_tokens(user, now, now.timestamp(), &origin_jti).await?;
        Ok(Tokens {
            id_token: Secret::new(id_token),
            access_token: Secret::new(access_token),
            refresh_token: Secret::new(refresh),
            expires_in: TOKEN_VALIDITY_SECONDS,
        })
    }

    /// Signs an ID + access token pair for `user` in the sign-in session `origin_jti` (first signed in at
    /// `auth_time`, epoch seconds). Both carry `cognito:groups` when the user is in any group, as Cognito's
    /// do.
    async fn sign_tokens(
        &self,
        user: &UserRow,
        now: DateTime<Utc>,
        auth_time: i64,
        origin_jti: &str,
    ) -> Result<(String, String), IdpError> {
        let groups = self.groups_of_key(&db::username_key(&user.username)).await?;
        let iat = now.timestamp();
        let exp = iat + TOKEN_VALIDITY_SECONDS;
        let mut id_claims = json!({
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "iss": self.inner.issuer,
            "aud": self.inner.client_id,
            "token_use": "id",
            "auth_time": auth_time,
            "iat": iat,
            "exp": exp,
            "jti": Uuid::new_v4().to_string(),
            "origin_jti": origin_jti,
            "cognito:username": user.username,
        });
        let mut access_claims = json!({
            "sub": user.sub,
            "iss": self.inner.issuer,
            "client_id": self.inner.client_id,
            "token_use": "access",
            "scope": "aws.cognito.signin.user.admin",
            "auth_time": auth_time,
            "iat": iat,
            "exp": exp,
            "jti": Uuid::new_v4().to_string(),
            "origin_jti": origin_jti,
            "username": user.username,
        });
        if !groups.is_empty() {
            id_claims["cognito:groups"] = json!(groups);
            access_claims["cognito:groups"] = json!(groups);
        }
        let sign = |claims: &serde_json::Value| {
            self.inner.key.sign(claims).map_err(|e| IdpError::Other {
                code: "InternalErrorException".into(),
                message: format!("the emulator could not sign a token: {e}"),
                transient: false,
            })
        };
        Ok((sign(&id_claims)?, sign(&access_claims)?))
    }
}

/// Reads the signing key from the state, or generates and stores one. Two processes racing on a new
/// file both generate, but only the first insert wins and both then read that one.
async fn load_or_create_key(pool: &SqlitePool) -> anyhow::Result<keys::SigningKey> {
    async fn read(pool: &SqlitePool) -> anyhow::Result<Option<(String, String)>> {
        let pem: Option<String> = sqlx::query_scalar("SELECT value FROM emu_meta WHERE key = ?")
            .bind(META_KEY_PEM)
            .fetch_optional(pool)
            .await?;
        let kid: Option<String> = sqlx::query_scalar("SELECT value FROM emu_meta WHERE key = ?")
            .bind(META_KEY_KID)
            .fetch_optional(pool)
            .await?;
        Ok(match (pem, kid) {
            (Some(pem), Some(kid)) => Some((pem, kid)),
            (Some(pem), None) => {
                let kid = keys::kid_for(&pem)?;
                Some((pem, kid))
            }
            _ => None,
        })
    }

    let (pem, kid) = match read(pool).await.context("reading the emulator's signing key")? {
        Some(found) => found,
        None => {
            let pem = tokio::task::spawn_blocking(keys::generate_pem).await??;
            let kid = keys::kid_for(&pem)?;
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            for (k, v) in [(META_KEY_PEM, &pem), (META_KEY_KID, &kid)] {
                sqlx::query("INSERT OR IGNORE INTO emu_meta (key, value) VALUES (?, ?)")
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            tracing::info!(kid = %kid, "generated the emulator's RSA signing key");
            read(pool)
                .await?
                .context("the emulator's signing key vanished right after it was stored")?
        }
    };
    keys::SigningKey::from_pem(&pem, kid)
}

/// Opaque `ListUsers` pagination token: the last id shown.
/// Creates the state file (and its folder) readable by its owner only: 0600 in a folder created 0700. An
/// existing file is tightened to 0600 (it holds the signing private key). SQLite gives its `-wal` and `-shm`
/// files the mode of the database file.
fn create_private_file(path: &std::path::Path) -> anyhow::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.exists() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder
                .create(parent)
                .with_context(|| format!("creating the folder of {}", path.display()))?;
        }
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(path)
        .with_context(|| format!("creating the emulator state {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for file in [path.to_path_buf(), wal_path(path, "-wal"), wal_path(path, "-shm")] {
            if let Ok(meta) = std::fs::metadata(&file) {
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                        .with_context(|| format!("making {} private", file.display()))?;
                }
            }
        }
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name (SQLite's `-wal` / `-shm` companions).
fn wal_path(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn encode_page_token(last_id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("emu-page:{last_id}"))
}

fn decode_page_token(token: &str) -> Result<i64, IdpError> {
    let bad = || IdpError::InvalidParameter("Invalid pagination token.".into());
    let bytes = URL_SAFE_NO_PAD.decode(token.trim()).map_err(|_| bad())?;
    let text = String::from_utf8(bytes).map_err(|_| bad())?;
    text.strip_prefix("emu-page:")
        .and_then(|n| n.parse::<i64>().ok())
        .filter(|n| *n >= 0)
        .ok_or_else(bad)
}

#[async_trait]
impl IdentityProvider for CognitoEmulator {
    fn kind(&self) -> &'static str {
        "emulator"
    }

    fn token_settings(&self) -> TokenSettings {
        TokenSettings {
            issuer: self.inner.issuer.clone(),
            client_id: self.inner.client_id.clone(),
        }
    }

    #[tracing::instrument(skip_all, fields(op = "AdminCreateUser", username = %req.username, action = ?req.message_action))]
    async fn admin_create_user(&self, req: CreateUserRequest) -> Result<IdpUser, IdpError> {
        self.inner.meter.admit("AdminCreateUser").await?;
        policy::check_username(&req.username)?;
        if req.message_action == Some(MessageAction::Resend) {
            return self.resend(req).await;
        }
        policy::check_email(&req.email)?;
        let password = match req.temporary_password {
            Some(p) => {
                policy::check_password(p.expose())?;
                p
            }
            None => TemporaryPassword::generate(),
        };
        let now = self.now();
        let (salt, hash) = db::new_password_hash(password.expose());
        let sub = Uuid::new_v4().to_string();
        let expires = now + self.inner.invite_validity;
        let inserted = sqlx::query(
            "INSERT INTO emu_users (username, username_key, sub, email, email_verified, status, enabled, \
             created_at_us, modified_at_us, password_salt, password_hash, temp_expires_at_us) \
             VALUES (?, ?, ?, ?, 1, ?, 1, ?, ?, ?, ?, ?)",
        )
        .bind(&req.username)
        .bind(username_key(&req.username))
        .bind(&sub)
        .bind(&req.email)
        .bind(FORCE_CHANGE_PASSWORD)
        .bind(micros(now))
        .bind(micros(now))
        .bind(&salt)
        .bind(&hash)
        .bind(micros(expires))
        .execute(&self.inner.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tracing::info!("username already exists");
                return Err(IdpError::UsernameExists);
            }
            Err(e) => return Err(unavailable(e)),
        }
        tracing::info!(sub = %sub, "user created in FORCE_CHANGE_PASSWORD");
        let user = IdpUser {
            username: req.username.clone(),
            sub,
            email: Some(req.email.clone()),
            status: admin_provisioner_core::identity::IdpUserStatus::ForceChangePassword,
            enabled: true,
            created_at: now,
            last_modified_at: now,
        };
        if req.message_action != Some(MessageAction::Suppress) {
            self.deliver(&req.email, &req.username, password, now).await?;
        }
        Ok(user)
    }

    async fn create_group(&self, name: &str, description: &str) -> Result<(), IdpError> {
        self.emu_create_group(name, description).await
    }

    async fn get_group(&self, name: &str) -> Result<admin_provisioner_core::identity::IdpGroup, IdpError> {
        self.emu_get_group(name).await
    }

    #[tracing::instrument(skip_all, fields(op = "AdminAddUserToGroup", username = %username))]
    async fn admin_add_user_to_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        self.emu_set_membership(username, group, true).await
    }

    #[tracing::instrument(skip_all, fields(op = "AdminRemoveUserFromGroup", username = %username))]
    async fn admin_remove_user_from_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        self.emu_set_membership(username, group, false).await
    }

    #[tracing::instrument(skip_all, fields(op = "AdminListGroupsForUser", username = %username))]
    async fn admin_list_groups_for_user(&self, username: &str) -> Result<Vec<String>, IdpError> {
        self.emu_list_groups_for_user(username).await
    }

    #[tracing::instrument(skip_all, fields(op = "AdminGetUser", username = %username))]
    async fn admin_get_user(&self, username: &str) -> Result<IdpUser, IdpError> {
        self.inner.meter.admit("AdminGetUser").await?;
        find_user(&self.inner.pool, username)
            .await
            .map_err(unavailable)?
            .map(|row| row.to_idp())
            .ok_or(IdpError::UserNotFound)
    }

    #[tracing::instrument(skip_all, fields(op = "AdminDeleteUser", username = %username))]
    async fn admin_delete_user(&self, username: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("AdminDeleteUser").await?;
        let key = username_key(username);
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        sqlx::query("DELETE FROM emu_sessions WHERE username_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let done = sqlx::query("DELETE FROM emu_users WHERE username_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if done.rows_affected() == 0 {
            return Err(IdpError::UserNotFound);
        }
        tx.commit().await.map_err(unavailable)?;
        tracing::info!("user deleted");
        Ok(())
    }

    async fn admin_disable_user(&self, username: &str) -> Result<(), IdpError> {
        // The inherent method (Cognito's semantics: a disabled user cannot sign in).
        CognitoEmulator::admin_disable_user(self, username).await
    }

    async fn admin_enable_user(&self, username: &str) -> Result<(), IdpError> {
        CognitoEmulator::admin_enable_user(self, username).await
    }

    #[tracing::instrument(skip_all, fields(op = "ListUsers", limit = limit))]
    async fn list_users(&self, pagination_token: Option<String>, limit: u32) -> Result<UserPage, IdpError> {
        self.inner.meter.admit("ListUsers").await?;
        if !(1..=60).contains(&limit) {
            return Err(IdpError::InvalidParameter(format!(
                "1 validation error detected: Value '{limit}' at 'limit' failed to satisfy constraint: \
                 Member must have value between 1 and 60"
            )));
        }
        let after = match pagination_token.as_deref() {
            Some(token) => decode_page_token(token)?,
            None => 0,
        };
        // One row per page (a JSON array built by SQLite) instead of one per user: the SQLite driver hands
        // every row from its worker thread to the caller separately, which dominated the cost of listing
        // large pools (see the reconciler benchmark in the README).
        let page: Option<String> = sqlx::query_scalar(
            "SELECT json_group_array(json_array(id, username, sub, email, status, enabled, created_at_us, \
             modified_at_us)) FROM (SELECT * FROM emu_users WHERE id > ? ORDER BY id LIMIT ?)",
        )
        .bind(after)
        .bind(i64::from(limit) + 1)
        .fetch_one(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        type Listed = (i64, String, String, String, String, i64, i64, i64);
        let mut rows: Vec<Listed> = serde_json::from_str(page.as_deref().unwrap_or("[]"))
            .map_err(|e| IdpError::Unavailable(format!("emulator state: unreadable ListUsers page: {e}")))?;
        rows.sort_unstable_by_key(|r| r.0);
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next_token = match rows.last() {
            Some(last) if more => Some(encode_page_token(last.0)),
            _ => None,
        };
        Ok(UserPage {
            users: rows
                .into_iter()
                .map(
                    |(_, username, sub, email, status, enabled, created, modified)| IdpUser {
                        username,
                        sub,
                        email: Some(email),
                        status: admin_provisioner_core::identity::IdpUserStatus::from_cognito(&status),
                        enabled: enabled != 0,
                        created_at: db::from_micros(created),
                        last_modified_at: db::from_micros(modified),
                    },
                )
                .collect(),
            next_token,
        })
    }

    #[tracing::instrument(skip_all, fields(op = "InitiateAuth", username = %loggable_username(username)))]
    async fn initiate_auth(&self, username: &str, password: &Password) -> Result<AuthOutcome, IdpError> {
        self.inner.meter.admit("InitiateAuth").await?;
        let now = self.now();
        let Some(user) = find_user(&self.inner.pool, username).await.map_err(unavailable)? else {
            tracing::info!("login refused");
            return Err(IdpError::NotAuthorized(INCORRECT_CREDENTIALS.into()));
        };
        let key = username_key(&user.username);
        let lock: Option<(i64, i64)> =
            sqlx::query_as("SELECT failures, locked_until_us FROM emu_lockouts WHERE username_key = ?")
                .bind(&key)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        if lock.is_some_and(|(_, until)| until > micros(now)) {
            tracing::info!("login refused: locked out after repeated failures");
            return Err(IdpError::NotAuthorized(PASSWORD_ATTEMPTS_EXCEEDED.into()));
        }
        if !user.password_matches(password.expose()) {
            let failures = lock.map_or(0, |(f, _)| f) + 1;
            let locked_until = if failures >= LOCKOUT_THRESHOLD {
                let secs = 1i64
                    .checked_shl(u32::try_from(failures - LOCKOUT_THRESHOLD).unwrap_or(u32::MAX))
                    .unwrap_or(LOCKOUT_MAX_SECONDS)
                    .min(LOCKOUT_MAX_SECONDS);
                micros(now + Duration::seconds(secs))
            } else {
                0
            };
            sqlx::query(
                "INSERT INTO emu_lockouts (username_key, failures, locked_until_us) VALUES (?, ?, ?) \
                 ON CONFLICT (username_key) DO UPDATE SET failures = excluded.failures, \
                 locked_until_us = excluded.locked_until_us",
            )
            .bind(&key)
            .bind(failures)
            .bind(locked_until)
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
            tracing::info!(failures, "login refused");
            return Err(IdpError::NotAuthorized(INCORRECT_CREDENTIALS.into()));
        }
        if lock.is_some() {
            sqlx::query("DELETE FROM emu_lockouts WHERE username_key = ?")
                .bind(&key)
                .execute(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        }
        if !user.enabled {
            tracing::info!("login refused: user disabled");
            return Err(IdpError::NotAuthorized(USER_DISABLED.into()));
        }
        match user.status.as_str() {
            FORCE_CHANGE_PASSWORD => {
                let expired = user.temp_expires_at_us.is_none_or(|exp| micros(now) >= exp);
                if expired {
                    tracing::info!("login refused: temporary password expired");
                    return Err(IdpError::NotAuthorized(TEMPORARY_PASSWORD_EXPIRED.into()));
                }
                let session = db::random_secret(64);
                let mut tx = self
                    .inner
                    .pool
                    .begin_with("BEGIN IMMEDIATE")
                    .await
                    .map_err(unavailable)?;
                sqlx::query("DELETE FROM emu_sessions WHERE expires_at_us <= ?")
                    .bind(micros(now))
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                sqlx::query("INSERT INTO emu_sessions (session_hash, username_key, expires_at_us) VALUES (?, ?, ?)")
                    .bind(db::session_hash(&session))
                    .bind(username_key(&user.username))
                    .bind(micros(now + Duration::seconds(SESSION_VALIDITY_SECONDS)))
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                tx.commit().await.map_err(unavailable)?;
                tracing::info!("NEW_PASSWORD_REQUIRED challenge issued");
                Ok(AuthOutcome::NewPasswordRequired {
                    session: Secret::new(session),
                    username: user.username,
                })
            }
            CONFIRMED => self.after_password(&user, now).await,
            recovery::RESET_REQUIRED => {
                tracing::info!("login refused: password reset required");
                Err(IdpError::PasswordResetRequired(
                    "Password reset required for the user".into(),
                ))
            }
            other => Err(IdpError::UnsupportedUserState(format!("User status is {other}"))),
        }
    }

    #[tracing::instrument(skip_all, fields(op = "RespondToAuthChallenge", username = %loggable_username(username)))]
    async fn respond_to_auth_challenge(
        &self,
        username: &str,
        session: &Secret,
        answer: &ChallengeAnswer,
    ) -> Result<AuthOutcome, IdpError> {
        self.inner.meter.admit("RespondToAuthChallenge").await?;
        match answer {
            ChallengeAnswer::NewPassword(new_password) => {
                self.respond_new_password(username, session, new_password).await
            }
            ChallengeAnswer::MfaSetup => self.respond_mfa_setup(username, session).await,
            ChallengeAnswer::SoftwareTokenMfa(code) => self.respond_software_token(username, session, code).await,
        }
    }

    async fn associate_software_token(&self, auth: &MfaAuth) -> Result<SoftwareTokenAssociation, IdpError> {
        self.associate(auth).await
    }

    async fn verify_software_token(&self, auth: &MfaAuth, code: &Secret) -> Result<Option<Secret>, IdpError> {
        self.verify(auth, code).await
    }

    async fn set_user_mfa_preference(&self, access_token: &Secret, enabled: bool) -> Result<(), IdpError> {
        self.set_preference(access_token, enabled).await
    }

    async fn forgot_password(&self, username: &str) -> Result<(), IdpError> {
        self.forgot(username).await
    }

    async fn confirm_forgot_password(
        &self,
        username: &str,
        code: &Secret,
        new_password: &Password,
    ) -> Result<(), IdpError> {
        self.confirm_forgot(username, code, new_password).await
    }

    async fn admin_reset_user_password(&self, username: &str) -> Result<(), IdpError> {
        self.admin_reset(username).await
    }

    async fn admin_user_global_sign_out(&self, username: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("AdminUserGlobalSignOut").await?;
        CognitoEmulator::admin_user_global_sign_out(self, username).await
    }

    async fn admin_set_user_mfa_preference(&self, username: &str, enabled: bool) -> Result<(), IdpError> {
        self.inner.meter.admit("AdminSetUserMFAPreference").await?;
        self.set_software_token_enabled(username, enabled).await
    }

    async fn jwks(&self) -> Result<serde_json::Value, IdpError> {
        Ok(self.jwks_json())
    }

    async fn ping(&self) -> Result<(), IdpError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        Ok(())
    }
}

impl CognitoEmulator {
    /// `RespondToAuthChallenge` with `NEW_PASSWORD_REQUIRED`: the password is set, then MFA may follow.
    async fn respond_new_password(
        &self,
        username: &str,
        session: &Secret,
        new_password: &Password,
    ) -> Result<AuthOutcome, IdpError> {
        let now = self.now();
        let invalid = || IdpError::NotAuthorized(INVALID_SESSION.into());
        let hash = db::session_hash(session.expose());
        let key = username_key(username);

        let found: Option<(String, i64)> =
            sqlx::query_as("SELECT username_key, expires_at_us FROM emu_sessions WHERE session_hash = ?")
                .bind(&hash)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        match found {
            Some((owner, expires)) if owner == key && micros(now) < expires => {}
            _ => {
                tracing::info!("challenge refused: invalid session");
                return Err(invalid());
            }
        }
        // A policy failure leaves the session usable until it expires, as in Cognito.
        policy::check_password(new_password.expose())?;

        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let consumed =
            sqlx::query("DELETE FROM emu_sessions WHERE session_hash = ? AND username_key = ? AND expires_at_us > ?")
                .bind(&hash)
                .bind(&key)
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
        if consumed.rows_affected() == 0 {
            return Err(invalid());
        }
        let Some(mut user) = find_user(&mut *tx, username).await.map_err(unavailable)? else {
            return Err(invalid());
        };
        if user.status != FORCE_CHANGE_PASSWORD {
            return Err(invalid());
        }
        if !user.enabled {
            return Err(IdpError::NotAuthorized(USER_DISABLED.into()));
        }
        let (salt, password_hash) = db::new_password_hash(new_password.expose());
        sqlx::query(
            "UPDATE emu_users SET status = ?, password_salt = ?, password_hash = ?, temp_expires_at_us = NULL, \
             modified_at_us = ? WHERE id = ?",
        )
        .bind(CONFIRMED)
        .bind(&salt)
        .bind(&password_hash)
        .bind(micros(now))
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("DELETE FROM emu_sessions WHERE username_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        user.status = CONFIRMED.to_string();
        user.modified_at_us = micros(now);
        tracing::info!(sub = %user.sub, "new password set; user CONFIRMED");
        self.after_password(&user, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_have_cognitos_formats() {
        assert_eq!(DEFAULT_CLIENT_ID.len(), 26);
        assert!(DEFAULT_CLIENT_ID
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        let (region, suffix) = DEFAULT_POOL_ID.split_once('_').unwrap();
        assert_eq!(region, DEFAULT_REGION);
        assert_eq!(suffix.len(), 9);
        assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        let config = EmulatorConfig::in_memory("mail");
        assert_eq!(
            config.effective_issuer(),
            "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_LocalEmu1"
        );
        assert_eq!(config.invite_validity_days, 7);
    }

    #[test]
    fn page_tokens_round_trip_and_garbage_is_rejected() {
        assert_eq!(decode_page_token(&encode_page_token(42)), Ok(42));
        assert!(matches!(
            decode_page_token("not a token"),
            Err(IdpError::InvalidParameter(_))
        ));
        assert!(matches!(
            decode_page_token(&URL_SAFE_NO_PAD.encode("something-else:3")),
            Err(IdpError::InvalidParameter(_))
        ));
    }
}
