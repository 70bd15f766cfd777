//! SCIM bearer tokens: issued by an admin (console) or the operator (`admin-provisioner scim-token create
//! --name okta`), shown once, stored only as a SHA-256, revocable.
//!
//! A token is `scim_` followed by 43 characters of URL-safe base64: 256 bits from the operating system's
//! random source, so a plain SHA-256 (no salt, no slow hash) is enough to store it: nobody can guess a
//! preimage, and the lookup by hash is one indexed query per request. The token authenticates the SCIM
//! endpoints (`/scim/v2/*`) and nothing else; every change it makes is audited as `scim:<name>`.
//!
//! Every surface reaches tokens through here: the console and the JSON API through the
//! [`Provisioner`](crate::Provisioner)'s methods (`create_scim_token`, `revoke_scim_token`, `scim_tokens`,
//! `authenticate_scim_token`), which add the caller's authorisation and the per-actor budget; the CLI
//! (the operator, on the server, with only a database) through these functions directly.

use crate::domain::{Actor, Secret};
use crate::store::{AuditAction, AuditEntry, ScimToken, ScimTokenStore};
use crate::Error;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// The prefix of every SCIM token (lets secret scanners and people recognise one).
pub const TOKEN_PREFIX: &str = "scim_";

/// The longest token name.
pub const MAX_NAME_LEN: usize = 64;

/// Checks a token name: 1–64 characters of lower-case ASCII letters, digits, `-` and `_` (it becomes the
/// audit actor `scim:<name>`, so it must be plain). [`Error::InvalidTokenName`] otherwise.
pub fn validate_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidTokenName(format!(
            "the name must be 1 to {MAX_NAME_LEN} characters"
        )));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        return Err(Error::InvalidTokenName(
            "use only lower-case letters, digits, '-' and '_' (for example okta or entra-id)".into(),
        ));
    }
    Ok(())
}

/// The stored form of a token: lower-case hex SHA-256.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new random token.
fn generate() -> Secret {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Issues token `name` for `actor`: stores its hash (audited `create_scim_token`) and returns the token,
/// which is never stored or shown again. Errors: [`Error::InvalidTokenName`], [`Error::TokenNameTaken`],
/// database errors.
pub async fn create(
    store: &dyn ScimTokenStore,
    actor: &Actor,
    name: &str,
    request_id: Option<&str>,
) -> Result<(ScimToken, Secret), Error> {
    validate_name(name)?;
    let token = generate();
    let audit = audit(actor, AuditAction::CreateScimToken, name, request_id);
    let stored = store.create_scim_token(name, &hash(token.expose()), audit).await?;
    Ok((stored, token))
}

/// Revokes token `name` (audited `revoke_scim_token`); requests with it are refused from now on.
/// [`Error::NotFound`] for an unknown name (a name no token could have is unknown too).
pub async fn revoke(
    store: &dyn ScimTokenStore,
    actor: &Actor,
    name: &str,
    request_id: Option<&str>,
) -> Result<ScimToken, Error> {
    if validate_name(name).is_err() {
        return Err(Error::NotFound);
    }
    let audit = audit(actor, AuditAction::RevokeScimToken, name, request_id);
    Ok(store.revoke_scim_token(name, audit).await?)
}

/// Every token, revoked ones included (names, dates; never a hash).
pub async fn list(store: &dyn ScimTokenStore) -> Result<Vec<ScimToken>, Error> {
    Ok(store.list_scim_tokens().await?)
}

/// The name of the unrevoked token `token` is, if any.
pub async fn authenticate(store: &dyn ScimTokenStore, token: &str) -> Result<Option<String>, Error> {
    if !token.starts_with(TOKEN_PREFIX) {
        return Ok(None);
    }
    Ok(store.authenticate_scim_token(&hash(token), chrono::Utc::now()).await?)
}

fn audit(actor: &Actor, action: AuditAction, name: &str, request_id: Option<&str>) -> AuditEntry {
    AuditEntry {
        actor: actor.clone(),
        action,
        target: format!("scim-token:{name}"),
        outcome: "success".into(),
        request_id: request_id.map(str::to_string),
        at: chrono::Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_prefixed_high_entropy_and_its_hash_is_hex_sha256() {
        let a = generate();
        let b = generate();
        assert!(a.expose().starts_with(TOKEN_PREFIX));
        assert_eq!(a.expose().len(), TOKEN_PREFIX.len() + 43);
        assert_ne!(a.expose(), b.expose());
        let h = hash(a.expose());
        assert_eq!(h.len(), 64);
        assert!(!h.contains(a.expose()));
        assert!(!format!("{a:?}").contains(a.expose()));
    }

    #[test]
    fn token_names_are_plain() {
        assert!(validate_name("okta").is_ok());
        assert!(validate_name("entra-id_2").is_ok());
        for bad in ["", "Okta", "a b", "x:y", "ünï", &"a".repeat(65)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
