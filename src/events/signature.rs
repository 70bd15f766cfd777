//! The Standard Webhooks signature scheme (<https://www.standardwebhooks.com>), as Svix, the
//! `standardwebhooks` libraries and Stripe-style verifiers expect it.
//!
//! Headers: `webhook-id` (the event's id, stable across retries: the receiver's de-duplication key),
//! `webhook-timestamp` (Unix seconds of this attempt), `webhook-signature` (`v1,` + base64 of
//! HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the secret's bytes). The secret is written
//! `whsec_` + base64 of 24 to 64 random bytes.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

/// The secret's prefix.
pub const SECRET_PREFIX: &str = "whsec_";

/// A webhook signing key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

impl SigningKey {
    /// Parses `whsec_<base64>` (the prefix is optional, as in the reference libraries).
    ///
    /// Errors (never containing the secret): not base64, or fewer than 24 / more than 64 bytes.
    pub fn parse(secret: &str) -> Result<Self, String> {
        let encoded = secret.trim().strip_prefix(SECRET_PREFIX).unwrap_or(secret.trim());
        let key = STANDARD
            .decode(encoded)
            .map_err(|_| "WEBHOOK_SECRET must be whsec_ followed by base64".to_string())?;
        if !(24..=64).contains(&key.len()) {
            return Err(format!(
                "WEBHOOK_SECRET must encode 24 to 64 random bytes, got {}",
                key.len()
            ));
        }
        Ok(Self(key))
    }

    /// A new random key (for `doctor`'s advice and tests).
    pub fn generate() -> (Self, String) {
        use rand::RngCore;
        let mut key = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        let text = format!("{SECRET_PREFIX}{}", STANDARD.encode(&key));
        (Self(key), text)
    }

    /// `v1,<base64 HMAC-SHA256 of "{msg_id}.{timestamp}.{body}">`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(msg_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The test vector of the reference libraries (standard-webhooks/libraries, python tests).
        let key = SigningKey::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = br#"{"test": 2432232314}"#;
        let signature = key.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_malformed_or_short_secret_is_refused_without_echoing_it() {
        for bad in ["whsec_not base64!", "whsec_c2hvcnQ=", ""] {
            let err = SigningKey::parse(bad).unwrap_err();
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        assert!(format!("{:?}", SigningKey::generate().0).contains("***"));
    }
}
