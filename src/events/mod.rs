//! Lifecycle events for the application: the outbox read by `GET /api/events`, PostgreSQL `NOTIFY`, and
//! signed webhooks.
//!
//! The store writes each event in the transaction of the change it describes (see
//! [`admin_provisioner_store::events`]); this module only reads and delivers them:
//! - [`Feed`] wakes long-polling readers and the webhook worker when a new event is committed (PostgreSQL:
//!   `LISTEN <schema>_events`, with a slow poll as a safety net; SQLite: a short poll);
//! - [`webhook`] delivers each event at least once to `WEBHOOK_URL`, signed with the Standard Webhooks
//!   scheme ([`signature`]), in order per admin, with retries and backoff, leased so that several
//!   replicas make each attempt once, and logged in `webhook_attempts`.

pub mod signature;
pub mod webhook;

use admin_provisioner_store::EventLog;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::watch;

/// How often the feed re-reads the last event id when no notification arrives (PostgreSQL), a safety
/// net for a lost connection.
const PG_SAFETY_POLL: Duration = Duration::from_secs(5);
/// How often the feed polls on SQLite (no NOTIFY there).
const SQLITE_POLL: Duration = Duration::from_millis(250);

/// The id of the newest committed event, as a `watch` channel, started on first use. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Feed {
    log: EventLog,
    rx: Arc<OnceLock<watch::Receiver<i64>>>,
}

impl Feed {
    /// A feed over `log` (no task runs until [`Feed::subscribe`] is first called).
    pub fn new(log: EventLog) -> Self {
        Self {
            log,
            rx: Arc::new(OnceLock::new()),
        }
    }

    /// The event log it watches.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// A receiver of the newest event id; the first call spawns the watching task (on the current Tokio
    /// runtime), which lives as long as the runtime.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.rx
            .get_or_init(|| {
                let (tx, rx) = watch::channel(0);
                tokio::spawn(watch_events(self.log.clone(), tx));
                rx
            })
            .clone()
    }
}

/// Keeps `tx` at the newest event id until every receiver is gone.
async fn watch_events(log: EventLog, tx: watch::Sender<i64>) {
    let publish = |id: i64| {
        tx.send_if_modified(|current| {
            let newer = id > *current;
            if newer {
                *current = id;
            }
            newer
        });
    };
    let mut listener = match log.listen().await {
        Ok(listener) => listener,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for events; polling instead");
            None
        }
    };
    let poll = if listener.is_some() {
        PG_SAFETY_POLL
    } else {
        SQLITE_POLL
    };
    loop {
        if tx.is_closed() {
            return;
        }
        if let Ok(id) = log.last_id().await {
            publish(id);
        }
        match listener.as_mut() {
            Some(l) => {
                // `try_recv` reconnects after a lost connection (then returns None once): poll after it.
                if let Ok(Ok(Some(n))) = tokio::time::timeout(poll, l.try_recv()).await {
                    if let Some(id) = serde_json::from_str::<serde_json::Value>(n.payload())
                        .ok()
                        .and_then(|v| v["id"].as_i64())
                    {
                        publish(id);
                    }
                }
            }
            None => tokio::time::sleep(poll).await,
        }
    }
}
