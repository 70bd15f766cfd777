//! Cognito's input rules: the default password policy and the `Username` / `email` checks.

use admin_provisioner_core::identity::IdpError;

/// The characters Cognito counts as symbols (the space counts too).
const COGNITO_SYMBOLS: &str = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ";

/// Minimum length of Cognito's default password policy.
pub(crate) const MIN_PASSWORD_LENGTH: usize = 8;

/// Longest password the Cognito API accepts (`TemporaryPassword`, `PASSWORD`, `NEW_PASSWORD`).
const MAX_PASSWORD_LENGTH: usize = 256;

/// Checks a password against Cognito's default policy (at least 8 characters, with an upper-case letter,
/// a lower-case letter, a digit and a symbol). The error carries Cognito's own message.
pub(crate) fn check_password(password: &str) -> Result<(), IdpError> {
    let fail = |why: &str| {
        Err(IdpError::InvalidPassword(format!(
            "Password did not conform with policy: {why}"
        )))
    };
    if password.chars().count() > MAX_PASSWORD_LENGTH {
        return Err(IdpError::InvalidParameter(
            "1 validation error detected: Value at 'password' failed to satisfy constraint: Member must have length less than or equal to 256".into(),
        ));
    }
    if password.chars().count() < MIN_PASSWORD_LENGTH {
        return fail("Password not long enough");
    }
    if !password.chars().any(|c| c.is_ascii_uppercase()) {
        return fail("Password must have uppercase characters");
    }
    if !password.chars().any(|c| c.is_ascii_lowercase()) {
        return fail("Password must have lowercase characters");
    }
    if !password.chars().any(|c| c.is_ascii_digit()) {
        return fail("Password must have numeric characters");
    }
    if !password.chars().any(|c| COGNITO_SYMBOLS.contains(c)) {
        return fail("Password must have symbol characters");
    }
    Ok(())
}

/// Checks a `Username` the way Cognito's API model does: 1 to 128 characters, letters, marks, symbols,
/// numbers and punctuation only (no whitespace or control characters).
pub(crate) fn check_username(username: &str) -> Result<(), IdpError> {
    let len = username.chars().count();
    if len == 0 || len > 128 {
        return Err(IdpError::InvalidParameter(
            "1 validation error detected: Value at 'username' failed to satisfy constraint: Member must have length between 1 and 128".into(),
        ));
    }
    if username.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(IdpError::InvalidParameter(
            "1 validation error detected: Value at 'username' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+".into(),
        ));
    }
    Ok(())
}

/// Checks the `email` attribute: present and shaped like an address (Cognito answers
/// `InvalidParameterException: Invalid email address format.` otherwise).
pub(crate) fn check_email(email: &str) -> Result<(), IdpError> {
    if email.is_empty() {
        return Err(IdpError::InvalidParameter(
            "The email attribute is required: the invitation is sent by e-mail.".into(),
        ));
    }
    let bad = || Err(IdpError::InvalidParameter("Invalid email address format.".into()));
    if email.chars().count() > 2048 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad();
    }
    match email.split_once('@') {
        Some((local, domain)) if !local.is_empty() && !domain.is_empty() && !domain.contains('@') => Ok(()),
        _ => bad(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(p: &str) -> String {
        match check_password(p) {
            Err(IdpError::InvalidPassword(m)) => m,
            other => panic!("expected InvalidPassword for {p:?}, got {other:?}"),
        }
    }

    #[test]
    fn a_password_meeting_every_rule_is_accepted() {
        assert_eq!(check_password("Abcdef1!"), Ok(()));
        assert_eq!(check_password("Abc def1"), Ok(()), "a space counts as a symbol");
    }

    #[test]
    fn each_rule_has_cognitos_message() {
        assert!(message("Ab1!").ends_with("Password not long enough"));
        assert!(message("abcdefg1!").ends_with("Password must have uppercase characters"));
        assert!(message("ABCDEFG1!").ends_with("Password must have lowercase characters"));
        assert!(message("Abcdefgh!").ends_with("Password must have numeric characters"));
        assert!(message("Abcdefgh1").ends_with("Password must have symbol characters"));
        assert!(message("Ab1!").starts_with("Password did not conform with policy: "));
    }

    #[test]
    fn usernames_with_whitespace_are_invalid_parameters() {
        assert!(matches!(check_username("a b"), Err(IdpError::InvalidParameter(_))));
        assert!(matches!(check_username(""), Err(IdpError::InvalidParameter(_))));
        assert_eq!(check_username("ann@example.com"), Ok(()));
    }

    #[test]
    fn emails_must_look_like_addresses() {
        assert!(matches!(check_email(""), Err(IdpError::InvalidParameter(_))));
        assert!(matches!(check_email("no-at-sign"), Err(IdpError::InvalidParameter(_))));
        assert!(matches!(
            check_email("a@b\r\nBcc: x@y"),
            Err(IdpError::InvalidParameter(_))
        ));
        assert_eq!(check_email("ann@example.com"), Ok(()));
    }
}
