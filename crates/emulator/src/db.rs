//! The emulator's SQLite state: schema, rows, and the hashing of passwords and sessions.
//!
//! Tables are prefixed `emu_` so the state can even share a file with the product's own database.

use admin_provisioner_core::identity::{IdpError, IdpUser, IdpUserStatus};
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::SqlitePool;

/// Schema statements, run at every open (idempotent).
const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS emu_meta (
        key   TEXT PRIMARY KEY NOT NULL,
        value TEXT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS emu_users (
        id                INTEGER PRIMARY KEY AUTOINCREMENT,
        username          TEXT NOT NULL,
        username_key      TEXT NOT NULL UNIQUE,
        sub               TEXT NOT NULL UNIQUE,
        email             TEXT NOT NULL,
        email_verified    INTEGER NOT NULL,
        status            TEXT NOT NULL,
        enabled           INTEGER NOT NULL,
        created_at_us     INTEGER NOT NULL,
        modified_at_us    INTEGER NOT NULL,
        password_salt     TEXT NOT NULL,
        password_hash     TEXT NOT NULL,
        temp_expires_at_us INTEGER
    )",
    "CREATE TABLE IF NOT EXISTS emu_sessions (
        session_hash  TEXT PRIMARY KEY NOT NULL,
        username_key  TEXT NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        expires_at_us INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS emu_sessions_by_user ON emu_sessions(username_key)",
    // Sign-in lockout after repeated failures (see `CognitoEmulator::initiate_auth`).
    "CREATE TABLE IF NOT EXISTS emu_lockouts (
        username_key    TEXT PRIMARY KEY NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        failures        INTEGER NOT NULL,
        locked_until_us INTEGER NOT NULL
    )",
    // Software-token MFA (see `mfa.rs`): the user's TOTP secrets. The state file is private (0600): the
    // emulator is the identity provider, so it must keep the secret to check codes, as Cognito does.
    "CREATE TABLE IF NOT EXISTS emu_mfa (
        username_key   TEXT PRIMARY KEY NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        secret         TEXT,
        pending_secret TEXT,
        enabled        INTEGER NOT NULL DEFAULT 0,
        last_step      INTEGER NOT NULL DEFAULT -1
    )",
    // MFA challenge sessions (`MFA_SETUP`, `MFA_SETUP_VERIFIED`, `SOFTWARE_TOKEN_MFA`), stored as hashes.
    "CREATE TABLE IF NOT EXISTS emu_challenges (
        session_hash  TEXT PRIMARY KEY NOT NULL,
        username_key  TEXT NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        challenge     TEXT NOT NULL,
        expires_at_us INTEGER NOT NULL
    )",
    // Sign-in sessions: one per password sign-in, named by the `origin_jti` its tokens carry; holds the
    // refresh token's hash. Deleting the row (global sign-out) revokes the refresh token and, for the
    // emulator's own access-token calls, the access tokens of that session.
    "CREATE TABLE IF NOT EXISTS emu_signins (
        origin_jti     TEXT PRIMARY KEY NOT NULL,
        refresh_hash   TEXT NOT NULL UNIQUE,
        username_key   TEXT NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        auth_time      INTEGER NOT NULL,
        expires_at_us  INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS emu_signins_by_user ON emu_signins(username_key)",
    // Password-reset confirmation codes (`ForgotPassword`, `AdminResetUserPassword`; see `recovery.rs`):
    // the latest code of each user, as a hash, with its expiry and the wrong attempts made so far.
    "CREATE TABLE IF NOT EXISTS emu_reset_codes (
        username_key  TEXT PRIMARY KEY NOT NULL REFERENCES emu_users(username_key) ON DELETE CASCADE,
        code_hash     TEXT NOT NULL,
        expires_at_us INTEGER NOT NULL,
        attempts      INTEGER NOT NULL DEFAULT 0
    )",
];

/// Creates the tables if they are missing.
pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for statement in SCHEMA.iter().chain(crate::groups::SCHEMA) {
        sqlx::query(statement).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// All columns of `emu_users`, in [`UserRow`] order.
pub(crate) const USER_COLUMNS: &str = "id, username, username_key, sub, email, email_verified, status, enabled, \
     created_at_us, modified_at_us, password_salt, password_hash, temp_expires_at_us";

/// One row of `emu_users`.
#[derive(sqlx::FromRow)]
pub(crate) struct UserRow {
    pub(crate) id: i64,
    pub(crate) username: String,
    #[allow(dead_code)]
    pub(crate) username_key: String,
    pub(crate) sub: String,
    pub(crate) email: String,
    pub(crate) email_verified: bool,
    pub(crate) status: String,
    pub(crate) enabled: bool,
    pub(crate) created_at_us: i64,
    pub(crate) modified_at_us: i64,
    pub(crate) password_salt: String,
    pub(crate) password_hash: String,
    pub(crate) temp_expires_at_us: Option<i64>,
}

impl UserRow {
    /// The user as Cognito describes it.
    pub(crate) fn to_idp(&self) -> IdpUser {
        IdpUser {
            username: self.username.clone(),
            sub: self.sub.clone(),
            email: Some(self.email.clone()),
            status: IdpUserStatus::from_cognito(&self.status),
            enabled: self.enabled,
            created_at: from_micros(self.created_at_us),
            last_modified_at: from_micros(self.modified_at_us),
        }
    }

    /// Whether `password` is this user's current (temporary or permanent) password.
    pub(crate) fn password_matches(&self, password: &str) -> bool {
        let Ok(salt) = STANDARD_NO_PAD.decode(&self.password_salt) else {
            return false;
        };
        constant_time_eq(hash_password(&salt, password).as_bytes(), self.password_hash.as_bytes())
    }
}

/// Fetches a user by username, case-insensitively.
pub(crate) async fn find_user<'e, E>(executor: E, username: &str) -> Result<Option<UserRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    sqlx::query_as::<_, UserRow>(&format!("SELECT {USER_COLUMNS} FROM emu_users WHERE username_key = ?"))
        .bind(username_key(username))
        .fetch_optional(executor)
        .await
}

/// The case-insensitive lookup key of a username.
pub(crate) fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// A salted password hash: (salt, hash), both base64. SHA-256 over salt ‖ password.
pub(crate) fn new_password_hash(password: &str) -> (String, String) {
    let mut salt = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    (STANDARD_NO_PAD.encode(salt), hash_password(&salt, password))
}

fn hash_password(salt: &[u8], password: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(salt);
    hasher.update(password.as_bytes());
    STANDARD_NO_PAD.encode(hasher.finalize())
}

/// A new random opaque secret (challenge sessions, refresh tokens): `bytes` random bytes, base64url.
pub(crate) fn random_secret(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

/// How a session is stored: its SHA-256 (sessions are long random strings, so no salt is needed).
pub(crate) fn session_hash(session: &str) -> String {
    STANDARD_NO_PAD.encode(Sha256::digest(session.as_bytes()))
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Microseconds since the epoch.
pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The inverse of [`micros`].
pub(crate) fn from_micros(us: i64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp_micros(us).unwrap_or_default()
}

/// Maps a storage failure to Cognito's "try again" class of error.
pub(crate) fn unavailable(e: sqlx::Error) -> IdpError {
    IdpError::Unavailable(format!("emulator state: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_are_salted_and_verifiable() {
        let (salt1, hash1) = new_password_hash("Secret1!");
        let (salt2, hash2) = new_password_hash("Secret1!");
        assert_ne!(salt1, salt2);
        assert_ne!(hash1, hash2, "the same password hashes differently with another salt");
        assert!(!hash1.contains("Secret1!"));
        let row = UserRow {
            id: 1,
            username: "a".into(),
            username_key: "a".into(),
            sub: "s".into(),
            email: "a@b.c".into(),
            email_verified: true,
            status: "CONFIRMED".into(),
            enabled: true,
            created_at_us: 0,
            modified_at_us: 0,
            password_salt: salt1,
            password_hash: hash1,
            temp_expires_at_us: None,
        };
        assert!(row.password_matches("Secret1!"));
        assert!(!row.password_matches("Secret1?"));
    }
}
