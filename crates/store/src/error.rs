//! Turning `sqlx` errors into the core's [`StoreError`].
//!
//! The promise: a unique violation becomes the domain error it means ([`StoreError::EmailTaken`],
//! [`StoreError::CognitoUserTaken`], [`StoreError::SagaInFlight`]), decided by constraint name in
//! PostgreSQL and by the `UNIQUE constraint failed: table.column` message in SQLite; trouble that a retry
//! may cure becomes [`StoreError::Unavailable`], and only that: connection loss (I/O, TLS, protocol,
//! PostgreSQL class 08 and the server shutting down, 57P01-57P03), pool timeout, serialization failure /
//! deadlock (40001, 40P01) and SQLite busy/locked ("database is locked"). Everything else (a CHECK,
//! unique or foreign-key violation, a trigger's refusal, a missing table, a decode error) is
//! [`StoreError::Other`]: definitive, compensated at once, never retried.
//! No message built here contains a connection URL, so none can contain a password.
//!
//! [`map_err`] also tells the call it runs in (see [`crate::reconnect`]) when an error means the
//! connection itself is gone ([`connection_loss`]), so that the call can be run again on a fresh one.

use admin_provisioner_core::store::StoreError;
use sqlx::error::{DatabaseError, ErrorKind};
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

/// Which unique constraint a violation hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Unique {
    /// `users.email_normalized` (`users_email_normalized_key`).
    Email,
    /// `users.cognito_username` (`users_cognito_username_key`).
    CognitoUsername,
    /// `users.cognito_sub` (`users_cognito_sub_key`).
    CognitoSub,
    /// `users.id` (`users_pkey`).
    UserId,
    /// The partial index `sagas_unfinished_email_key`.
    SagaEmail,
    /// `users.scim_user_name` (`users_scim_user_name_key`).
    ScimUserName,
    /// Some other unique constraint.
    Other,
}

/// The unique constraint `err` violated, if it is a unique violation.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<Unique> {
    let db = err.as_database_error()?;
    if db.kind() != ErrorKind::UniqueViolation {
        return None;
    }
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        return Some(match pg.constraint() {
            Some("users_email_normalized_key") => Unique::Email,
            Some("users_cognito_username_key") => Unique::CognitoUsername,
            Some("users_cognito_sub_key") => Unique::CognitoSub,
            Some("users_pkey") => Unique::UserId,
            Some("sagas_unfinished_email_key") => Unique::SagaEmail,
            Some("users_scim_user_name_key") | Some("sagas_unfinished_scim_user_name_key") => Unique::ScimUserName,
            _ => Unique::Other,
        });
    }
    // SQLite: "UNIQUE constraint failed: users.email_normalized" (columns of the violated index).
    let columns = db
        .message()
        .strip_prefix("UNIQUE constraint failed: ")
        .unwrap_or_default();
    Some(match columns {
        "users.email_normalized" => Unique::Email,
        "users.cognito_username" => Unique::CognitoUsername,
        "users.cognito_sub" => Unique::CognitoSub,
        "users.id" => Unique::UserId,
        "sagas.email_normalized" => Unique::SagaEmail,
        "users.scim_user_name" | "sagas.scim_user_name" => Unique::ScimUserName,
        _ => Unique::Other,
    })
}

/// True when `err` is a foreign-key violation.
pub(crate) fn is_foreign_key_violation(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .is_some_and(|db| db.kind() == ErrorKind::ForeignKeyViolation)
}

/// How a connection was lost, as far as the client can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum ConnectionLoss {
    /// The server ended the session and said so (a PostgreSQL error of class 08, or 57P01 admin
    /// shutdown, 57P02 crash shutdown, 57P03 cannot connect now): it rolled the session's open
    /// transaction back, so the failed statement committed nothing.
    RolledBack,
    /// The socket broke under the statement (I/O, TLS, a protocol error from a half-read reply, the
    /// SQLite worker gone): a `COMMIT` (or a single-statement write) in flight may or may not have been
    /// applied.
    Unknown,
}

/// `Some` when `err` means the connection it ran on is dead (see [`ConnectionLoss`]); `None` for every
/// other error, including a pool timeout or a closed pool (no connection was lost: retrying on a fresh
/// one would only wait again).
pub(crate) fn connection_loss(err: &sqlx::Error) -> Option<ConnectionLoss> {
    match err {
        sqlx::Error::Database(db) => db
            .try_downcast_ref::<PgDatabaseError>()
            .is_some_and(|pg| pg.code().starts_with("08") || matches!(pg.code(), "57P01" | "57P02" | "57P03"))
            .then_some(ConnectionLoss::RolledBack),
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => {
            Some(ConnectionLoss::Unknown)
        }
        _ => None,
    }
}

/// Maps any `sqlx` error to a [`StoreError`]; see the module docs. A lost connection is also reported to
/// the enclosing [`crate::reconnect`] call, if any.
pub(crate) fn map_err(err: sqlx::Error) -> StoreError {
    if let Some(loss) = connection_loss(&err) {
        crate::reconnect::note_connection_loss(loss);
    }
    if let Some(unique) = unique_violation(&err) {
        match unique {
            Unique::Email => return StoreError::EmailTaken,
            Unique::CognitoUsername | Unique::CognitoSub => return StoreError::CognitoUserTaken,
            Unique::SagaEmail => return StoreError::SagaInFlight,
            Unique::ScimUserName => return StoreError::UserNameTaken,
            Unique::UserId | Unique::Other => {}
        }
    }
    match &err {
        sqlx::Error::Database(db) => {
            let message = one_line(db.message());
            if is_transient_database_error(db.as_ref()) {
                StoreError::Unavailable(message)
            } else {
                StoreError::Other(message)
            }
        }
        sqlx::Error::PoolTimedOut => StoreError::Unavailable("timed out waiting for a database connection".to_string()),
        sqlx::Error::PoolClosed => StoreError::Unavailable("the connection pool is closed".to_string()),
        sqlx::Error::WorkerCrashed => StoreError::Unavailable("the database worker crashed".to_string()),
        sqlx::Error::Io(e) => StoreError::Unavailable(one_line(&e.to_string())),
        sqlx::Error::Tls(e) => StoreError::Unavailable(one_line(&format!("TLS: {e}"))),
        sqlx::Error::Protocol(e) => StoreError::Unavailable(one_line(&format!("protocol: {e}"))),
        other => StoreError::Other(one_line(&other.to_string())),
    }
}

/// SQLite busy/locked (any extended code of `SQLITE_BUSY` = 5 or `SQLITE_LOCKED` = 6); PostgreSQL
/// connection exceptions (class 08), the server going away (57P01 admin shutdown, 57P02 crash shutdown,
/// 57P03 cannot connect now) and serialization failures / deadlocks (40001, 40P01).
fn is_transient_database_error(db: &dyn DatabaseError) -> bool {
    if db.try_downcast_ref::<SqliteError>().is_some() {
        let primary = db.code().and_then(|c| c.parse::<i32>().ok()).map(|c| c & 0xff);
        return matches!(primary, Some(5) | Some(6));
    }
    if let Some(pg) = db.try_downcast_ref::<PgDatabaseError>() {
        let code = pg.code();
        return is_transient_pg_code(code);
    }
    false
}

/// Joins a multi-line message into one line (error messages end up in one-line CLI output).
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The PostgreSQL SQLSTATEs a retry may cure; see [`is_transient_database_error`].
fn is_transient_pg_code(code: &str) -> bool {
    code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03" | "40001" | "40P01")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connection_serialization_and_deadlock_codes_are_transient() {
        for code in ["08000", "08006", "08P01", "57P01", "57P02", "57P03", "40001", "40P01"] {
            assert!(is_transient_pg_code(code), "{code} should be transient");
        }
        // check, unique, foreign key, not null, raise_exception (a trigger), undefined table, disk full,
        // too many connections, query canceled.
        for code in [
            "23514", "23505", "23503", "23502", "P0001", "42P01", "53100", "53300", "57014",
        ] {
            assert!(!is_transient_pg_code(code), "{code} should be definitive");
        }
    }

    #[test]
    fn only_a_dead_connection_is_a_connection_loss() {
        let io = sqlx::Error::Io(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset by peer",
        ));
        assert_eq!(connection_loss(&io), Some(ConnectionLoss::Unknown));
        assert_eq!(
            connection_loss(&sqlx::Error::Protocol("unexpected end of file".into())),
            Some(ConnectionLoss::Unknown)
        );
        assert_eq!(
            connection_loss(&sqlx::Error::WorkerCrashed),
            Some(ConnectionLoss::Unknown)
        );
        // No connection was lost: a retry would wait for the pool again, or the pool is gone for good.
        assert_eq!(connection_loss(&sqlx::Error::PoolTimedOut), None);
        assert_eq!(connection_loss(&sqlx::Error::PoolClosed), None);
        assert_eq!(connection_loss(&sqlx::Error::RowNotFound), None);
    }

    #[test]
    fn a_decode_error_is_definitive_and_a_pool_timeout_transient() {
        assert!(!map_err(sqlx::Error::RowNotFound).is_transient());
        assert!(map_err(sqlx::Error::PoolTimedOut).is_transient());
    }
}
