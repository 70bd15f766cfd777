//! The console's cookie key: every console cookie (session, first-login challenge, flash message) lives in
//! `axum-extra`'s **private** cookie jar, encrypted and authenticated (AES-256-GCM) under this key, and
//! the CSRF token of a session is an HMAC under the key's signing half. A cookie that was altered, or
//! made under another key, does not decrypt and is treated as absent.
//!
//! The key comes from `CONSOLE_COOKIE_KEY` (at least 64 bytes, written as base64 — standard or URL-safe,
//! padded or not — or as hex) so that every replica behind a load balancer, and a restarted server,
//! accepts the same cookies. `serve` refuses to start when the variable is set but malformed; the error
//! names the problem, never the value. When it is unset, each process draws a random key and warns:
//! sessions then end at a restart and do not carry over between replicas.

use axum_extra::extract::cookie::Key;
use base64::Engine;
use std::fmt;

/// Name of the configuration variable.
pub const ENV: &str = "CONSOLE_COOKIE_KEY";
/// Fewest key bytes accepted (what `cookie::Key` needs: 32 for signing, 32 for encryption).
pub const MIN_KEY_BYTES: usize = 64;

/// Why `CONSOLE_COOKIE_KEY` was refused. Its `Display` never contains the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CookieKeyError {
    /// Neither base64 nor hex.
    NotEncoded,
    /// Decoded, but shorter than [`MIN_KEY_BYTES`].
    TooShort(usize),
}

impl fmt::Display for CookieKeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CookieKeyError::NotEncoded => write!(
                f,
                "{ENV} is neither base64 nor hex; generate one with `openssl rand -base64 64`"
            ),
            CookieKeyError::TooShort(n) => write!(
                f,
                "{ENV} decodes to {n} bytes; at least {MIN_KEY_BYTES} are needed (`openssl rand -base64 64`)"
            ),
        }
    }
}

impl std::error::Error for CookieKeyError {}

/// Decodes `text` (hex, or base64 in any of its common alphabets) into a cookie key.
pub fn parse_key(text: &str) -> Result<Key, CookieKeyError> {
    let text = text.trim();
    let bytes = decode(text).ok_or(CookieKeyError::NotEncoded)?;
    if bytes.len() < MIN_KEY_BYTES {
        return Err(CookieKeyError::TooShort(bytes.len()));
    }
    // `Key::from` uses 64 bytes; a longer secret is first hashed down so that all of it counts.
    let bytes = if bytes.len() == MIN_KEY_BYTES {
        bytes
    } else {
        use sha2::Digest;
        sha2::Sha512::digest(&bytes).to_vec()
    };
    Key::try_from(bytes.as_slice()).map_err(|_| CookieKeyError::TooShort(bytes.len()))
}

fn decode(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    if text.is_empty() {
        return None;
    }
    if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return hex::decode(text).ok();
    }
    [STANDARD, URL_SAFE, STANDARD_NO_PAD, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
}

/// Where the key in use came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    /// `CONSOLE_COOKIE_KEY`.
    Configured,
    /// Drawn at random by this process (the variable is unset).
    Random,
}

/// The key for `configured` (the value of `CONSOLE_COOKIE_KEY`, if set): parsed, or random when unset.
pub fn key_from(configured: Option<&str>) -> Result<(Key, KeySource), CookieKeyError> {
    match configured.filter(|v| !v.trim().is_empty()) {
        Some(text) => Ok((parse_key(text)?, KeySource::Configured)),
        None => Ok((Key::generate(), KeySource::Random)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_hex_keys_of_64_bytes_or_more_are_accepted() {
        let raw: Vec<u8> = (0..64u8).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&raw);
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&raw);
        let hex = hex::encode(&raw);
        let a = parse_key(&b64).unwrap();
        assert_eq!(a.master(), parse_key(&url).unwrap().master());
        assert_eq!(a.master(), parse_key(&format!(" {hex}\n")).unwrap().master());
        let long = base64::engine::general_purpose::STANDARD.encode([7u8; 96]);
        assert!(parse_key(&long).is_ok());
    }

    #[test]
    fn short_or_unencoded_keys_are_refused_without_echoing_them() {
        let short = base64::engine::general_purpose::STANDARD.encode([1u8; 32]);
        let e = parse_key(&short).unwrap_err();
        assert_eq!(e, CookieKeyError::TooShort(32));
        assert!(!e.to_string().contains(&short));
        let garbage = "not a key at all, just words!";
        let e = parse_key(garbage).unwrap_err();
        assert_eq!(e, CookieKeyError::NotEncoded);
        assert!(!e.to_string().contains(garbage));
    }

    #[test]
    fn an_unset_key_is_random_per_call() {
        let (a, sa) = key_from(None).unwrap();
        let (b, _) = key_from(Some("  ")).unwrap();
        assert_eq!(sa, KeySource::Random);
        assert_ne!(a.master(), b.master());
    }
}
