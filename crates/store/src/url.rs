//! Database URLs in messages: masking passwords, and the one-line errors of connecting.
//!
//! The promise: no message or log line built by this crate contains the password of a database URL.
//! [`redact_url`] masks the userinfo password and password-like query parameters; the connect-time error
//! builders also scrub the raw and percent-decoded password from whatever the driver said.

use crate::error::{map_err, one_line};
use admin_provisioner_core::store::StoreError;

/// Query parameters whose value is a secret.
const SECRET_PARAMS: [&str; 4] = ["password", "pass", "pwd", "sslpassword"];

/// A connection URL with any password replaced by `***`, for logs and error messages.
///
/// `postgres://app:s3cret@db:5432/admin` becomes `postgres://app:***@db:5432/admin`; a `password=` (or
/// `pass=`, `pwd=`, `sslpassword=`) query parameter is masked too. A URL without a password is returned
/// unchanged. When in doubt (an unescaped `@` later in the URL) more is masked, never less.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return redact_query(url);
    };
    let rest_start = scheme_end + 3;
    let rest = &url[rest_start..];
    let mut out = url[..rest_start].to_string();
    // The userinfo ends at the last '@': a password may contain unescaped '/', '?' or '#'.
    let after_userinfo = match rest.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            match userinfo.find(':') {
                Some(colon) => {
                    out.push_str(&userinfo[..colon]);
                    out.push_str(":***");
                }
                None => out.push_str(userinfo),
            }
            &rest[at..]
        }
        None => rest,
    };
    out.push_str(&redact_query(after_userinfo));
    out
}

/// Masks the values of [`SECRET_PARAMS`] in the query part of `s`, if any.
fn redact_query(s: &str) -> String {
    let Some(q) = s.find('?') else {
        return s.to_string();
    };
    let (head, query) = (&s[..q], &s[q + 1..]);
    let (query, fragment) = match query.find('#') {
        Some(h) => (&query[..h], &query[h..]),
        None => (query, ""),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|param| match param.split_once('=') {
            Some((k, _)) if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) => format!("{k}=***"),
            _ => param.to_string(),
        })
        .collect();
    format!("{head}?{}{fragment}", params.join("&"))
}

/// Every secret in `url` (the userinfo password and secret query parameters), raw and percent-decoded.
fn secrets_of(url: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        if let Some(at) = rest.rfind('@') {
            if let Some((_, password)) = rest[..at].split_once(':') {
                secrets.push(password.to_string());
            }
        }
    }
    if let Some((_, query)) = url.split_once('?') {
        for param in query.split(['&', '#']) {
            if let Some((k, v)) = param.split_once('=') {
                if SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str()) {
                    secrets.push(v.to_string());
                }
            }
        }
    }
    let decoded: Vec<String> = secrets.iter().map(|s| percent_decode(s)).collect();
    secrets.extend(decoded);
    secrets.retain(|s| !s.is_empty());
    secrets
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `message` on one line, with every secret of `url` replaced by `***`.
fn scrub(message: &str, url: &str) -> String {
    let mut message = one_line(message);
    for secret in secrets_of(url) {
        message = message.replace(&secret, "***");
    }
    message
}

/// The driver's own words for a connect failure, without its generic prefixes.
fn cause(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Io(e) => e.to_string(),
        sqlx::Error::Database(db) => db.message().to_string(),
        sqlx::Error::PoolTimedOut => "timed out waiting for the server".to_string(),
        other => other.to_string(),
    }
}

/// `cannot connect to <redacted url>: <cause>` as [`StoreError::Unavailable`].
pub(crate) fn connect_error(url: &str, err: sqlx::Error) -> StoreError {
    StoreError::Unavailable(format!(
        "cannot connect to {}: {}",
        redact_url(url),
        scrub(&cause(&err), url)
    ))
}

/// `cannot connect to <redacted url>: no answer within <n>s` as [`StoreError::Unavailable`].
pub(crate) fn connect_timeout(url: &str, after: std::time::Duration) -> StoreError {
    StoreError::Unavailable(format!(
        "cannot connect to {}: no answer within {}s",
        redact_url(url),
        after.as_secs()
    ))
}

/// `invalid database URL <redacted url>: <cause>` as [`StoreError::Other`].
pub(crate) fn url_error(url: &str, err: sqlx::Error) -> StoreError {
    StoreError::Other(format!(
        "invalid database URL {}: {}",
        redact_url(url),
        scrub(&cause(&err), url)
    ))
}

/// A failed migration: transient if the database went away, [`StoreError::Other`] otherwise.
pub(crate) fn migrate_error(url: &str, err: sqlx::migrate::MigrateError) -> StoreError {
    let prefix = format!("cannot migrate {}", redact_url(url));
    match err {
        sqlx::migrate::MigrateError::Execute(e) => match map_err(e) {
            StoreError::Unavailable(m) => StoreError::Unavailable(format!("{prefix}: {}", scrub(&m, url))),
            other => StoreError::Other(format!("{prefix}: {}", scrub(&other.to_string(), url))),
        },
        other => StoreError::Other(format!("{prefix}: {}", scrub(&other.to_string(), url))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_in_userinfo_is_masked() {
        assert_eq!(
            redact_url("postgres://postgres:s3cret@127.0.0.1:5432/x"),
            "postgres://postgres:***@127.0.0.1:5432/x"
        );
    }

    #[test]
    fn url_without_password_is_unchanged() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgresql://db/admin?sslmode=require",
            "sqlite://admin-provisioner.db",
            "sqlite::memory:",
            "sqlite:data.db?mode=rwc",
        ] {
            assert_eq!(redact_url(url), url);
        }
    }

    #[test]
    fn password_with_reserved_characters_is_masked_entirely() {
        let redacted = redact_url("postgres://u:p@ss/w?rd#x@host/db");
        assert_eq!(redacted, "postgres://u:***@host/db");
    }

    #[test]
    fn password_query_parameter_is_masked() {
        assert_eq!(
            redact_url("postgres://u@host/db?sslmode=require&password=hunter2"),
            "postgres://u@host/db?sslmode=require&password=***"
        );
    }

    #[test]
    fn scrub_removes_raw_and_decoded_passwords() {
        let url = "postgres://u:p%40ss@host/db";
        assert_eq!(scrub("bad p%40ss and p@ss\nhere", url), "bad *** and *** here");
    }
}
