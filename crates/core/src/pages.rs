//! Cursor pagination of the admin list and the audit log: pages whose size is bounded whatever the tables
//! hold.
//!
//! Pages are keyset pages, not offsets: a cursor names the last row shown, and the next page starts after
//! it. So a page costs one indexed range scan, and rows added or removed while a client walks the pages never
//! make it skip or repeat a row that exists throughout the walk.
//!
//! The admin list is walked in two phases, both oldest first:
//! 1. stored admins (`User` + `AdminInfo`), by `(created_at, id)`;
//! 2. then unfinished provisionings that have no records yet (`pending`, or `failed` when stuck), by the
//!    saga's `(started_at, id)`.
//!
//! A provisioning that finishes during a walk leaves phase 2 and enters phase 1 with a `created_at` later
//! than any stored admin the walk has passed, so it is shown at most once: as `pending` if the walk reached
//! phase 2 first, as a stored admin otherwise.
//!
//! Cursors are opaque to clients (URL-safe base64 of a small text form) and are checked when decoded.

use crate::domain::{InviteStatus, UserId};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Default page size of the admin list and the audit log.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 200;
/// Longest e-mail prefix accepted by the search (the longest e-mail address is 254 characters).
pub const MAX_PREFIX_LEN: usize = 254;

/// A cursor that does not decode: the client sent something it was never given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this server issued")]
pub struct BadCursor;

/// Where the next page of the admin list starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCursor {
    /// After this stored admin (phase 1).
    Stored {
        /// `users.created_at` of the last admin shown.
        created_at: DateTime<Utc>,
        /// Its id.
        id: UserId,
    },
    /// Every stored admin was shown; continue with unfinished provisionings (phase 2), after this saga if
    /// given.
    Unfinished {
        /// `(started_at, saga id)` of the last unfinished provisioning shown, or `None` to start phase 2.
        after: Option<(DateTime<Utc>, Uuid)>,
    },
}

impl AdminCursor {
    /// The opaque text form given to clients.
    pub fn encode(&self) -> String {
        let text = match self {
            AdminCursor::Stored { created_at, id } => format!("a1|{}|{id}", created_at.timestamp_micros()),
            AdminCursor::Unfinished { after: None } => "s1|".to_string(),
            AdminCursor::Unfinished {
                after: Some((started_at, id)),
            } => format!("s1|{}|{id}", started_at.timestamp_micros()),
        };
        URL_SAFE_NO_PAD.encode(text)
    }

    /// Parses a cursor from [`AdminCursor::encode`].
    pub fn decode(cursor: &str) -> Result<Self, BadCursor> {
        let text = decode_text(cursor)?;
        let mut parts = text.split('|');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("a1"), Some(t), Some(id), None) => Ok(AdminCursor::Stored {
                created_at: micros(t)?,
                id: UserId(Uuid::parse_str(id).map_err(|_| BadCursor)?),
            }),
            (Some("s1"), Some(""), None, None) => Ok(AdminCursor::Unfinished { after: None }),
            (Some("s1"), Some(t), Some(id), None) => Ok(AdminCursor::Unfinished {
                after: Some((micros(t)?, Uuid::parse_str(id).map_err(|_| BadCursor)?)),
            }),
            _ => Err(BadCursor),
        }
    }
}

/// Where the next (older) page of the audit log starts: below this event id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditCursor {
    /// The id of the last (oldest) event shown.
    pub before_id: i64,
}

impl AuditCursor {
    /// The opaque text form given to clients.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("e1|{}", self.before_id))
    }

    /// Parses a cursor from [`AuditCursor::encode`].
    pub fn decode(cursor: &str) -> Result<Self, BadCursor> {
        let text = decode_text(cursor)?;
        let id = text.strip_prefix("e1|").ok_or(BadCursor)?;
        let before_id: i64 = id.parse().map_err(|_| BadCursor)?;
        if before_id < 1 {
            return Err(BadCursor);
        }
        Ok(AuditCursor { before_id })
    }
}

fn decode_text(cursor: &str) -> Result<String, BadCursor> {
    if cursor.len() > 200 {
        return Err(BadCursor);
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim()).map_err(|_| BadCursor)?;
    String::from_utf8(bytes).map_err(|_| BadCursor)
}

fn micros(text: &str) -> Result<DateTime<Utc>, BadCursor> {
    let us: i64 = text.parse().map_err(|_| BadCursor)?;
    DateTime::<Utc>::from_timestamp_micros(us).ok_or(BadCursor)
}

/// What a page of the admin list holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminListQuery {
    /// Only admins with this status (`None`: all).
    pub status: Option<InviteStatus>,
    /// Only admins whose normalised e-mail starts with this (lower-cased; `None`: all).
    pub email_prefix: Option<String>,
    /// Where to start (`None`: the first page).
    pub cursor: Option<AdminCursor>,
    /// Page size, 1 to [`MAX_LIMIT`].
    pub limit: u32,
}

impl Default for AdminListQuery {
    fn default() -> Self {
        Self {
            status: None,
            email_prefix: None,
            cursor: None,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// The filter the store applies to stored admins.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAdminFilter {
    /// Only this computed status (`Invited`, `Expired` or `Active`; `None`: all). Statuses that only
    /// unfinished sagas have (`Pending`, `Failed`) match no stored admin.
    pub status: Option<InviteStatus>,
    /// Only normalised e-mails starting with this.
    pub email_prefix: Option<String>,
    /// "Now", which separates `invited` from `expired`.
    pub now: DateTime<Utc>,
}

impl StoredAdminFilter {
    /// Whether `record` passes the filter (the reference semantics the SQL reproduces).
    pub fn matches(&self, record: &crate::domain::AdminRecord) -> bool {
        self.email_prefix
            .as_deref()
            .is_none_or(|p| record.user.email_normalized.starts_with(p))
            && self.status.is_none_or(|s| InviteStatus::of(record, self.now) == s)
    }
}

/// The filter the saga log applies to unfinished provisionings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnfinishedFilter {
    /// `Some(true)`: only stuck sagas (`failed`); `Some(false)`: only running ones (`pending`).
    pub stuck: Option<bool>,
    /// Only normalised e-mails starting with this.
    pub email_prefix: Option<String>,
}

/// One page of the admin list.
#[derive(Clone, Debug, PartialEq)]
pub struct AdminPage {
    /// The admins, oldest first (stored admins, then unfinished provisionings).
    pub admins: Vec<crate::AdminView>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<AdminCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let at = DateTime::<Utc>::from_timestamp_micros(1_700_000_000_123_456).unwrap();
        for c in [
            AdminCursor::Stored {
                created_at: at,
                id: UserId(Uuid::new_v4()),
            },
            AdminCursor::Unfinished { after: None },
            AdminCursor::Unfinished {
                after: Some((at, Uuid::new_v4())),
            },
        ] {
            assert_eq!(AdminCursor::decode(&c.encode()), Ok(c));
        }
        let a = AuditCursor { before_id: 42 };
        assert_eq!(AuditCursor::decode(&a.encode()), Ok(a));
    }

    #[test]
    fn garbage_cursors_are_refused() {
        for bad in ["", "!!", "YTF8", &URL_SAFE_NO_PAD.encode("a1|x|y"), &"A".repeat(500)] {
            assert_eq!(AdminCursor::decode(bad), Err(BadCursor), "{bad}");
        }
        assert_eq!(AuditCursor::decode(&URL_SAFE_NO_PAD.encode("e1|0")), Err(BadCursor));
        assert_eq!(
            AuditCursor::decode(&AdminCursor::Unfinished { after: None }.encode()),
            Err(BadCursor)
        );
    }
}
