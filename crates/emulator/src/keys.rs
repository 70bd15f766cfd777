//! The emulator's RS256 signing key, its JWKS entry, and token minting.

use anyhow::Context;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey, EncodeRsaPublicKey};
use rsa::traits::PublicKeyParts;
use rsa::RsaPrivateKey;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// A loaded signing key: what is needed to sign tokens and to publish the public half.
pub(crate) struct SigningKey {
    /// Key id (`kid`) in token headers and the JWKS.
    pub(crate) kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Value,
}

/// Generates a fresh RSA 2048 key, as PKCS#1 PEM. CPU-heavy: call off the async threads.
pub(crate) fn generate_pem() -> anyhow::Result<String> {
    let key = RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).context("generating the RSA signing key")?;
    let pem = key
        .to_pkcs1_pem(rsa::pkcs1::LineEnding::LF)
        .context("encoding the RSA signing key")?;
    Ok(pem.to_string())
}

/// A stable key id derived from the public key: base64url of the first 20 bytes of SHA-256 over its
/// PKCS#1 DER form.
pub(crate) fn kid_for(pem: &str) -> anyhow::Result<String> {
    let key = RsaPrivateKey::from_pkcs1_pem(pem).context("reading the stored RSA signing key")?;
    let der = key
        .to_public_key()
        .to_pkcs1_der()
        .context("encoding the RSA public key")?;
    let digest = Sha256::digest(der.as_bytes());
    Ok(URL_SAFE_NO_PAD.encode(&digest[..20]))
}

impl SigningKey {
    /// Loads a PKCS#1 PEM private key with its key id.
    pub(crate) fn from_pem(pem: &str, kid: String) -> anyhow::Result<Self> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem).context("reading the stored RSA signing key")?;
        let public = key.to_public_key();
        let jwk = json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": kid,
            "n": URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
            "e": URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
        });
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes()).context("loading the RSA signing key for JWTs")?;
        let decoding = DecodingKey::from_rsa_raw_components(&public.n().to_bytes_be(), &public.e().to_bytes_be());
        Ok(Self {
            kid,
            encoding,
            decoding,
            jwk,
        })
    }

    /// `{"keys":[…]}` with this key's public half.
    pub(crate) fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk.clone()] })
    }

    /// Verifies the signature of a token this key signed (RS256) and returns its claims; the caller checks
    /// `exp` (by the emulator's clock), `iss` and `token_use`.
    pub(crate) fn verify(&self, token: &str) -> Result<Value, jsonwebtoken::errors::Error> {
        let mut validation = Validation::new(Algorithm::RS256);
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        jsonwebtoken::decode::<Value>(token, &self.decoding, &validation).map(|t| t.claims)
    }

    /// Signs `claims` as an RS256 JWT carrying this key's `kid`.
    pub(crate) fn sign(&self, claims: &Value) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}
