//! Password recovery: `ForgotPassword`, `ConfirmForgotPassword` and `AdminResetUserPassword`.
//!
//! A reset code is six random digits, mailed like an invitation (Cognito's default text `Your password
//! reset code is {####}.`), valid for [`RESET_CODE_VALIDITY_SECONDS`] (Cognito: one hour) and stored only as
//! a hash; a new code replaces the previous one. After [`RESET_CODE_MAX_ATTEMPTS`] wrong codes the code is
//! dropped and a new one must be requested. User existence is not revealed: `ForgotPassword` for an
//! unknown user answers as for a known one, and `ConfirmForgotPassword` for an unknown user is a code
//! mismatch (a pool with `PreventUserExistenceErrors=ENABLED`). `AdminResetUserPassword` moves the user to
//! `RESET_REQUIRED`: their old password then answers `PasswordResetRequired` until the code is confirmed.

use super::{db, find_user, micros, policy, unavailable, username_key, CognitoEmulator, CONFIRMED};
use admin_provisioner_core::domain::{Password, Secret};
use admin_provisioner_core::identity::IdpError;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;

/// How long a reset code is valid (Cognito: one hour).
pub const RESET_CODE_VALIDITY_SECONDS: i64 = 3600;
/// Wrong codes accepted before the code is dropped.
pub const RESET_CODE_MAX_ATTEMPTS: i64 = 5;
/// `RESET_REQUIRED`, Cognito's spelling.
pub(crate) const RESET_REQUIRED: &str = "RESET_REQUIRED";
/// Cognito's answer to a wrong code.
const CODE_MISMATCH: &str = "Invalid verification code provided, please try again.";
/// Cognito's answer to an expired (or dropped) code.
const CODE_EXPIRED: &str = "Invalid code provided, please request a code again.";
/// Cognito's answer to a reset for a user who has not set a password yet.
const CANNOT_RESET: &str = "User password cannot be reset in the current state.";

impl CognitoEmulator {
    /// `ForgotPassword`: a new code for `username`, mailed to their e-mail. An unknown user gets the same
    /// answer and nothing is sent. A disabled user or one still in `FORCE_CHANGE_PASSWORD` is
    /// `NotAuthorized`; delivery failure is `CodeDeliveryFailure` (the code is stored anyway).
    #[tracing::instrument(skip_all, fields(op = "ForgotPassword"))]
    pub(crate) async fn forgot(&self, username: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("ForgotPassword").await?;
        let Some(user) = find_user(&self.inner.pool, username).await.map_err(unavailable)? else {
            tracing::info!("password reset asked for an unknown user: answered as usual, nothing sent");
            return Ok(());
        };
        if !user.enabled {
            return Err(IdpError::NotAuthorized(super::USER_DISABLED.into()));
        }
        if user.status == super::FORCE_CHANGE_PASSWORD {
            return Err(IdpError::NotAuthorized(CANNOT_RESET.into()));
        }
        self.issue_reset_code(&user).await
    }

    /// `AdminResetUserPassword`: the user becomes `RESET_REQUIRED` and gets a code by e-mail.
    #[tracing::instrument(skip_all, fields(op = "AdminResetUserPassword", username = %username))]
    pub(crate) async fn admin_reset(&self, username: &str) -> Result<(), IdpError> {
        self.inner.meter.admit("AdminResetUserPassword").await?;
        let user = find_user(&self.inner.pool, username)
            .await
            .map_err(unavailable)?
            .ok_or(IdpError::UserNotFound)?;
        if !user.enabled {
            return Err(IdpError::NotAuthorized(super::USER_DISABLED.into()));
        }
        if user.status == super::FORCE_CHANGE_PASSWORD {
            return Err(IdpError::NotAuthorized(CANNOT_RESET.into()));
        }
        sqlx::query("UPDATE emu_users SET status = ?, modified_at_us = ? WHERE username_key = ?")
            .bind(RESET_REQUIRED)
            .bind(micros(self.now()))
            .bind(username_key(&user.username))
            .execute(&self.inner.pool)
            .await
            .map_err(unavailable)?;
        self.issue_reset_code(&user).await
    }

    async fn issue_reset_code(&self, user: &db::UserRow) -> Result<(), IdpError> {
        let now = self.now();
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        sqlx::query(
            "INSERT INTO emu_reset_codes (username_key, code_hash, expires_at_us, attempts) VALUES (?, ?, ?, 0) \
             ON CONFLICT (username_key) DO UPDATE SET code_hash = excluded.code_hash, \
             expires_at_us = excluded.expires_at_us, attempts = 0",
        )
        .bind(username_key(&user.username))
        .bind(db::session_hash(&code))
        .bind(micros(now + Duration::seconds(RESET_CODE_VALIDITY_SECONDS)))
        .execute(&self.inner.pool)
        .await
        .map_err(unavailable)?;
        self.deliver_code(&user.email, &user.username, code, now).await
    }

    async fn deliver_code(&self, email: &str, username: &str, code: String, at: DateTime<Utc>) -> Result<(), IdpError> {
        let mailbox = self.inner.mailbox.clone();
        let (email, username) = (email.to_string(), username.to_string());
        match tokio::task::spawn_blocking(move || mailbox.deliver_reset_code(&email, &username, &code, at)).await {
            Ok(Ok(_)) => {
                tracing::info!("password reset code delivered");
                Ok(())
            }
            Ok(Err(e)) => Err(IdpError::CodeDeliveryFailure(format!(
                "Unable to deliver the reset code to the mailbox folder: {e}"
            ))),
            Err(e) => Err(IdpError::CodeDeliveryFailure(format!(
                "Unable to deliver the reset code: {e}"
            ))),
        }
    }

    /// `ConfirmForgotPassword`: checks `code` (the latest, unexpired one), then the password policy, then
    /// sets the password: the user is `CONFIRMED`, the code used up and any lockout cleared.
    #[tracing::instrument(skip_all, fields(op = "ConfirmForgotPassword"))]
    pub(crate) async fn confirm_forgot(
        &self,
        username: &str,
        code: &Secret,
        new_password: &Password,
    ) -> Result<(), IdpError> {
        self.inner.meter.admit("ConfirmForgotPassword").await?;
        let now = micros(self.now());
        let Some(user) = find_user(&self.inner.pool, username).await.map_err(unavailable)? else {
            tracing::info!("reset code refused");
            return Err(IdpError::CodeMismatch(CODE_MISMATCH.into()));
        };
        let key = username_key(&user.username);
        let stored: Option<(String, i64, i64)> =
            sqlx::query_as("SELECT code_hash, expires_at_us, attempts FROM emu_reset_codes WHERE username_key = ?")
                .bind(&key)
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(unavailable)?;
        let Some((hash, expires, attempts)) = stored else {
            tracing::info!("reset code refused: none outstanding");
            return Err(IdpError::CodeMismatch(CODE_EXPIRED.into()));
        };
        if expires <= now || attempts >= RESET_CODE_MAX_ATTEMPTS {
            tracing::info!("reset code refused: expired or too many attempts");
            return Err(IdpError::CodeMismatch(CODE_EXPIRED.into()));
        }
        if !db::constant_time_eq(hash.as_bytes(), db::session_hash(code.expose().trim()).as_bytes()) {
            sqlx::query("UPDATE emu_reset_codes SET attempts = attempts + 1 WHERE username_key = ?")
                .bind(&key)
                .execute(&self.inner.pool)
                .await
                .map_err(unavailable)?;
            tracing::info!("reset code refused: mismatch");
            return Err(IdpError::CodeMismatch(CODE_MISMATCH.into()));
        }
        // A policy failure keeps the code usable, as in Cognito.
        policy::check_password(new_password.expose())?;
        let (salt, password_hash) = db::new_password_hash(new_password.expose());
        let mut tx = self
            .inner
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(unavailable)?;
        let used = sqlx::query("DELETE FROM emu_reset_codes WHERE username_key = ? AND code_hash = ?")
            .bind(&key)
            .bind(&hash)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        if used.rows_affected() == 0 {
            return Err(IdpError::CodeMismatch(CODE_EXPIRED.into()));
        }
        sqlx::query(
            "UPDATE emu_users SET status = ?, password_salt = ?, password_hash = ?, temp_expires_at_us = NULL, \
             modified_at_us = ? WHERE username_key = ?",
        )
        .bind(CONFIRMED)
        .bind(salt)
        .bind(password_hash)
        .bind(now)
        .bind(&key)
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        sqlx::query("DELETE FROM emu_lockouts WHERE username_key = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        tx.commit().await.map_err(unavailable)?;
        tracing::info!(sub = %user.sub, "password reset with a code");
        Ok(())
    }
}
