//! The ownership rule, asked from outside the saga: is this Cognito user one the product created?
//!
//! The reconciler ([`crate::reconcile`]) finds Cognito users that no database admin links to and must tell
//! the product's own leftovers ("ghosts") from users someone else created ("foreign"). It asks here, and
//! this file answers with the saga engine's own rule (`classify_identity`), so the two can never disagree
//! about whose user a Cognito user is.

use super::*;

/// What the saga log says about a Cognito user.
#[derive(Clone, Debug, PartialEq)]
pub enum Ownership {
    /// No provisioning saga of the product created this user: someone else's.
    Foreign,
    /// A provisioning saga of the product created it (the log recorded its `sub`, or it was created in the
    /// saga's window with its e-mail).
    Own {
        /// The saga that proves it.
        saga_id: Uuid,
        /// That saga's state now.
        saga_state: SagaState,
        /// True when the log recorded this very `sub` (the strongest proof).
        recorded: bool,
    },
}

impl Provisioner {
    /// Whether `user` (from `ListUsers`) was created by one of the product's provisioning sagas, by the
    /// same ownership rule the saga undo uses. Reads the saga log for the user's e-mail and calls
    /// `AdminGetUser` once per candidate saga (strongly consistent). Errors: the saga log or Cognito cannot
    /// be read.
    pub async fn identity_ownership(&self, user: &IdpUser) -> Result<Ownership, Error> {
        let Some(email) = user.email.as_deref() else {
            return Ok(Ownership::Foreign);
        };
        let sagas = self
            .store_call(self.sagas.list_for_email(&email.to_lowercase()))
            .await?;
        // Newest first: the latest saga of this address is the one that matters.
        for saga in sagas.iter().rev() {
            if saga.kind != SagaKind::Provision || !saga.cognito_username.eq_ignore_ascii_case(&user.username) {
                continue;
            }
            let found = self.classify_identity(saga).await.map_err(admin_call_error)?;
            let (own, recorded) = match &found {
                Found::Recorded(u) => (u.sub == user.sub, true),
                Found::InWindow(u) => (u.sub == user.sub, false),
                Found::Missing | Found::Foreign => (false, false),
            };
            if own {
                return Ok(Ownership::Own {
                    saga_id: saga.id,
                    saga_state: saga.state,
                    recorded,
                });
            }
        }
        Ok(Ownership::Foreign)
    }
}
