//! Software-token MFA parameters (RFC 6238 as Cognito uses it: SHA-1, 6 digits, 30-second steps) and the
//! `otpauth://` URI an authenticator app reads from the MFA setup page's QR code.
//!
//! One place for these numbers: the built-in emulator checks codes with [`totp`], the product builds the
//! enrolment URI with [`otpauth_uri`], and tests compute codes with [`code_at`].

use totp_rs::{Algorithm, Secret as TotpSecret, TOTP};

/// Seconds per step.
pub const STEP_SECONDS: u64 = 30;
/// Digits per code.
pub const DIGITS: usize = 6;
/// Steps accepted either side of now (clock drift between the phone and the server).
pub const SKEW_STEPS: u8 = 1;

/// Why a TOTP secret is unusable.
#[derive(Debug, thiserror::Error)]
#[error("unusable TOTP secret: {0}")]
pub struct BadSecret(String);

/// A TOTP generator for a base32 secret (Cognito's `SecretCode`), labelled `issuer:account`. `:` in
/// either label is replaced (RFC 6238 URIs use it as the separator).
pub fn totp(secret_base32: &str, issuer: &str, account: &str) -> Result<TOTP, BadSecret> {
    let bytes = TotpSecret::Encoded(secret_base32.trim().trim_end_matches('=').to_ascii_uppercase())
        .to_bytes()
        .map_err(|e| BadSecret(format!("{e:?}")))?;
    if bytes.is_empty() {
        return Err(BadSecret("empty".into()));
    }
    // Unchecked: Cognito's secrets are 160 bits, but moto hands out a fixed 60-bit one, which totp-rs's
    // checked constructor (at least 128 bits) refuses. The length is the identity provider's business.
    Ok(TOTP::new_unchecked(
        Algorithm::SHA1,
        DIGITS,
        SKEW_STEPS,
        STEP_SECONDS,
        bytes,
        Some(issuer.replace(':', " ")),
        account.replace(':', " "),
    ))
}

/// The `otpauth://totp/{issuer}:{account}?secret=…&issuer=…` URI for an authenticator app.
pub fn otpauth_uri(secret_base32: &str, issuer: &str, account: &str) -> Result<String, BadSecret> {
    Ok(totp(secret_base32, issuer, account)?.get_url())
}

/// The code for `secret_base32` at `unix_seconds` (tests, the demo).
pub fn code_at(secret_base32: &str, unix_seconds: u64) -> Result<String, BadSecret> {
    Ok(totp(secret_base32, "x", "x")?.generate(unix_seconds))
}

/// The step of `unix_seconds` among the steps within [`SKEW_STEPS`] whose code equals `code`, newest
/// first; `None` when none matches. Compares in constant time per step.
pub fn matching_step(secret_base32: &str, code: &str, unix_seconds: u64) -> Result<Option<u64>, BadSecret> {
    let t = totp(secret_base32, "x", "x")?;
    let now_step = unix_seconds / STEP_SECONDS;
    let code = code.trim();
    let mut found = None;
    for offset in -i64::from(SKEW_STEPS)..=i64::from(SKEW_STEPS) {
        let Some(step) = now_step.checked_add_signed(offset) else {
            continue;
        };
        let expected = t.generate(step * STEP_SECONDS);
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            found = Some(found.map_or(step, |f: u64| f.max(step)));
        }
    }
    Ok(found)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 key, base32.
    const RFC_KEY: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    #[test]
    fn rfc6238_vectors_truncated_to_six_digits() {
        // Appendix B: 59 → 94287082, 1111111109 → 07081804, 2000000000 → 69279037 (last six digits).
        assert_eq!(code_at(RFC_KEY, 59).unwrap(), "287082");
        assert_eq!(code_at(RFC_KEY, 1_111_111_109).unwrap(), "081804");
        assert_eq!(code_at(RFC_KEY, 2_000_000_000).unwrap(), "279037");
    }

    #[test]
    fn one_step_of_drift_either_way_and_no_more() {
        let now = 1_700_000_000;
        let step = now / STEP_SECONDS;
        for offset in [-1i64, 0, 1] {
            let t = (step as i64 + offset) as u64 * STEP_SECONDS;
            let code = code_at(RFC_KEY, t).unwrap();
            assert_eq!(matching_step(RFC_KEY, &code, now).unwrap(), Some(t / STEP_SECONDS));
        }
        for offset in [-2i64, 2] {
            let t = (step as i64 + offset) as u64 * STEP_SECONDS;
            let code = code_at(RFC_KEY, t).unwrap();
            assert_eq!(matching_step(RFC_KEY, &code, now).unwrap(), None, "offset {offset}");
        }
        assert_eq!(matching_step(RFC_KEY, "12345", now).unwrap(), None);
    }

    #[test]
    fn uri_carries_issuer_account_and_secret() {
        let uri = otpauth_uri(RFC_KEY, "admin-provisioner", "ann@example.com").unwrap();
        assert!(
            uri.starts_with("otpauth://totp/admin-provisioner:ann%40example.com?"),
            "{uri}"
        );
        assert!(uri.contains(&format!("secret={RFC_KEY}")), "{uri}");
        assert!(uri.contains("issuer=admin-provisioner"), "{uri}");
        assert!(otpauth_uri("not base32 !!", "i", "a").is_err());
        // moto's fixed (short, lower-case) secret still works.
        assert_eq!(
            code_at("asdfasdfasdf", 59).unwrap(),
            code_at("ASDFASDFASDF", 59).unwrap()
        );
    }
}
