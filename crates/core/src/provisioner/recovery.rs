//! Password recovery, self-service: `ForgotPassword` mails a code, `ConfirmForgotPassword` sets a new
//! password with it.
//!
//! * **No enumeration** — [`Provisioner::forgot_password`] answers the same for every well-formed address,
//!   known or not, without waiting for Cognito: the `ForgotPassword` call runs in the background (bounded
//!   by [`MAX_RESET_SENDS_IN_FLIGHT`]), so neither the answer nor its timing depends on the account. Its
//!   outcome is only logged (never the address or the code). A wrong code, an unknown address and a
//!   disabled account all answer [`Error::InvalidResetCode`] at confirmation.
//! * **The database follows Cognito** — a confirmed reset proves a password set in Cognito; an admin whose
//!   row still says `invited` (a lost write) is marked active with the retries of every write, and if that
//!   still fails their next request with a token repairs it ([`Provisioner::authorize`]), as after a
//!   first login. Nothing else in the database changes, so no admin is locked out by a failed write.

use super::*;
use tokio::sync::Semaphore;

/// `ForgotPassword` calls running in the background at once; beyond it a request answers
/// [`Error::RateLimited`] (for every address alike).
pub const MAX_RESET_SENDS_IN_FLIGHT: usize = 32;

static RESET_SENDS: Semaphore = Semaphore::const_new(MAX_RESET_SENDS_IN_FLIGHT);

impl Provisioner {
    /// Asks Cognito to e-mail a password-reset code to `email` (`ForgotPassword`), in the background.
    /// Answers `Ok` for every well-formed address, known or not, before Cognito is called (see the module
    /// docs). Errors: [`Error::InvalidEmail`], [`Error::RateLimited`] (too many resets in flight).
    pub async fn forgot_password(&self, email: &str, request_id: Option<&str>) -> Result<(), Error> {
        let email = AdminEmail::parse(email)?;
        let permit = RESET_SENDS.try_acquire().map_err(|_| Error::RateLimited)?;
        let p = self.clone();
        let username = email.normalized().to_string();
        let request_id = request_id.map(str::to_string);
        tokio::spawn(async move {
            let _permit = permit;
            let result = p
                .retry(|| p.idp_call(idp_op::FORGOT_PASSWORD, p.idp.forgot_password(&username)))
                .await;
            match result {
                Ok(()) => tracing::info!(request_id, "password reset requested"),
                // A user who cannot reset (unknown where existence errors are not prevented, disabled,
                // never signed in, no verified e-mail): the answer was the same anyway.
                Err(e) if !e.is_transient() => {
                    tracing::info!(request_id, code = e.code(), "password reset request not sent")
                }
                Err(e) => tracing::warn!(request_id, code = e.code(), "password reset request failed"),
            }
        });
        Ok(())
    }

    /// Sets a new password with the e-mailed `code` (`ConfirmForgotPassword`; the code from
    /// [`Provisioner::forgot_password`] or from an admin's reset), then marks an admin still recorded as
    /// `invited` active (see the module docs). Errors: [`Error::InvalidEmail`], [`Error::InvalidResetCode`]
    /// (wrong, expired or used-up code; also an unknown or disabled account), [`Error::PasswordPolicy`],
    /// [`Error::RateLimited`], [`Error::IdentityProviderUnavailable`].
    pub async fn confirm_forgot_password(
        &self,
        email: &str,
        code: &Secret,
        new_password: &Password,
        request_id: Option<&str>,
    ) -> Result<(), Error> {
        let email = AdminEmail::parse(email)?;
        let username = email.normalized();
        self.idp_call(
            idp_op::CONFIRM_FORGOT_PASSWORD,
            self.idp.confirm_forgot_password(username, code, new_password),
        )
        .await
        .map_err(reset_error)?;
        tracing::info!(request_id, "password reset with a code");
        self.mark_accepted_if_needed(username, request_id).await;
        Ok(())
    }
}

/// `ConfirmForgotPassword`'s errors: what would tell whether the account exists is a wrong code.
fn reset_error(e: IdpError) -> Error {
    match e {
        IdpError::CodeMismatch(_) | IdpError::UserNotFound | IdpError::NotAuthorized(_) => Error::InvalidResetCode,
        // `LimitExceededException` (too many attempts) arrives as TooManyRequests: 429.
        e => e.into(),
    }
}
