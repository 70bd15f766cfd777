//! SCIM tokens as the console and the JSON API reach them: the caller authorised, the per-actor budget
//! spent ([`AdminAction::CreateScimToken`], [`AdminAction::RevokeScimToken`]), then
//! [`crate::scim_tokens`]. The CLI, as the operator with only a database, calls that module directly.

use super::*;
use crate::scim_tokens;

impl Provisioner {
    /// Issues SCIM token `name` for the caller and returns it (shown once; only its hash is stored).
    ///
    /// Errors: [`Error::Forbidden`], [`Error::TooManyActions`], [`Error::InvalidTokenName`],
    /// [`Error::TokenNameTaken`], database errors.
    pub async fn create_scim_token(
        &self,
        caller: &Caller,
        name: &str,
        request_id: Option<&str>,
    ) -> Result<(ScimToken, Secret), Error> {
        scim_tokens::validate_name(name)?;
        let actor = self.authorize(caller).await?;
        self.permit(&actor, AdminAction::CreateScimToken, None)?;
        scim_tokens::create(self.tokens.as_ref(), &actor, name, request_id).await
    }

    /// Revokes SCIM token `name`; requests with it are refused from now on.
    ///
    /// Errors: [`Error::Forbidden`], [`Error::TooManyActions`], [`Error::NotFound`], database errors.
    pub async fn revoke_scim_token(
        &self,
        caller: &Caller,
        name: &str,
        request_id: Option<&str>,
    ) -> Result<ScimToken, Error> {
        let actor = self.authorize(caller).await?;
        self.permit(&actor, AdminAction::RevokeScimToken, None)?;
        scim_tokens::revoke(self.tokens.as_ref(), &actor, name, request_id).await
    }

    /// Every SCIM token, revoked ones included, for an authorised caller.
    pub async fn scim_tokens(&self, caller: &Caller) -> Result<Vec<ScimToken>, Error> {
        self.authorize(caller).await?;
        scim_tokens::list(self.tokens.as_ref()).await
    }

    /// The name of the unrevoked SCIM token `token` is, if any (the SCIM door's authentication).
    pub async fn authenticate_scim_token(&self, token: &str) -> Result<Option<String>, Error> {
        scim_tokens::authenticate(self.tokens.as_ref(), token).await
    }
}
