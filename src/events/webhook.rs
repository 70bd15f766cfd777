//! The webhook delivery worker started by `serve` when `WEBHOOK_URL` is set.
//!
//! Promises:
//! - **at least once**: an event is marked delivered only after the receiver answered 2xx; a failed
//!   attempt (error, timeout, non-2xx, redirect) is retried with exponential backoff (1 s doubling to
//!   5 min, with jitter; [`backon`]) for as long as it takes; a process killed mid-attempt leaves a lease
//!   that expires after the request timeout plus 5 s, and the event is sent again;
//! - **in order per admin**: an admin's next event is not sent before the previous one was delivered;
//! - **once per attempt across replicas**: each attempt is made under a row lease
//!   ([`EventLog::claim_deliveries`]);
//! - every attempt is logged in `webhook_attempts` (URL without query or credentials, status or error);
//!   the secret, signature and body never reach a log line.
//!
//! Each request is `POST` with the event as JSON (the same object as `GET /api/events` returns) and the
//! Standard Webhooks headers ([`super::signature`]); `webhook-id` is `evt_<id>`, the same on every retry.

use super::signature::SigningKey;
use super::Feed;
use admin_provisioner_store::events::{AttemptOutcome, Delivery};
use admin_provisioner_store::EventLog;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::Utc;
use std::time::{Duration, Instant};

/// How many events one claim leases at most.
const BATCH: i64 = 16;
/// How long the worker sleeps when nothing is due and no new event woke it.
const IDLE_POLL: Duration = Duration::from_secs(1);

/// Webhook settings.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    /// The receiver.
    pub url: reqwest::Url,
    /// The signing key.
    pub key: SigningKey,
    /// Timeout of one request; the lease lasts this plus 5 s.
    pub timeout: Duration,
    /// First retry delay.
    pub min_backoff: Duration,
    /// Longest retry delay.
    pub max_backoff: Duration,
}

impl WebhookSettings {
    /// Validated settings from `WEBHOOK_URL` / `WEBHOOK_SECRET` / `WEBHOOK_TIMEOUT_SECS`.
    ///
    /// Errors (one line, never containing the secret): a URL that is not `http(s)://…`, a missing or
    /// malformed secret, a zero timeout.
    pub fn new(url: &str, secret: Option<&str>, timeout_secs: u64) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| anyhow::anyhow!("WEBHOOK_URL must be an http:// or https:// URL"))?;
        let secret = secret.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            anyhow::anyhow!(
                "WEBHOOK_SECRET is required when WEBHOOK_URL is set (whsec_ + base64 of 24 to 64 random bytes, \
                 e.g. whsec_$(head -c 32 /dev/urandom | base64))"
            )
        })?;
        let key = SigningKey::parse(secret).map_err(|e| anyhow::anyhow!(e))?;
        if timeout_secs == 0 {
            anyhow::bail!("WEBHOOK_TIMEOUT_SECS must be at least 1");
        }
        Ok(Self {
            url,
            key,
            timeout: Duration::from_secs(timeout_secs),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        })
    }

    /// How long a claimed event stays leased.
    pub fn lease(&self) -> Duration {
        self.timeout + Duration::from_secs(5)
    }

    /// The delay before attempt `attempt + 1` after `attempt` failed attempts.
    pub fn backoff(&self, attempt: i32) -> Duration {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.min_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times()
            .build();
        let n = usize::try_from(attempt.max(1) - 1).unwrap_or(0).min(64);
        delays.nth(n).unwrap_or(self.max_backoff)
    }
}

/// The receiver's URL for the delivery log and messages: no userinfo, query or fragment.
pub fn loggable_url(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// The worker: claims due events and delivers them until the task is dropped.
pub struct WebhookWorker {
    log: EventLog,
    feed: Feed,
    settings: WebhookSettings,
    client: reqwest::Client,
    replica: String,
}

impl WebhookWorker {
    /// A worker identified as `replica` (a unique name per process: the lease owner and the log's
    /// `replica` column).
    pub fn new(feed: Feed, settings: WebhookSettings, replica: String) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("admin-provisioner/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
            .build()?;
        Ok(Self {
            log: feed.log().clone(),
            feed,
            settings,
            client,
            replica,
        })
    }

    /// Delivers forever (spawn it; abort the task to stop: an attempt cut short is retried later).
    pub async fn run(self) {
        let mut wake = self.feed.subscribe();
        tracing::info!(url = %loggable_url(&self.settings.url), replica = %self.replica, "webhook delivery started");
        loop {
            match self.deliver_due().await {
                Ok(0) => {
                    let _ = tokio::time::timeout(IDLE_POLL, wake.changed()).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "webhook delivery pass failed");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    }

    /// One pass: claims up to a batch of due events and attempts each once. Returns how many.
    pub async fn deliver_due(&self) -> anyhow::Result<usize> {
        let batch = self
            .log
            .claim_deliveries(&self.replica, Utc::now(), self.settings.lease(), BATCH)
            .await?;
        let n = batch.len();
        // One event per admin at most in a batch, so they may go out concurrently.
        let attempts = batch.into_iter().map(|d| self.attempt(d));
        for result in futures_util::future::join_all(attempts).await {
            result?;
        }
        Ok(n)
    }

    async fn attempt(&self, delivery: Delivery) -> anyhow::Result<()> {
        let event = &delivery.event;
        let body = serde_json::to_vec(event)?;
        let msg_id = format!("evt_{}", event.id);
        let started_at = Utc::now();
        let timestamp = started_at.timestamp();
        let signature = self.settings.key.sign(&msg_id, timestamp, &body);
        let started = Instant::now();
        let sent = self
            .client
            .post(self.settings.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header("webhook-id", &msg_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        let (status, error) = match sent {
            Ok(res) => {
                let status = res.status();
                // Read (and drop) a bounded part of the body so the connection can be reused.
                let _ = tokio::time::timeout(Duration::from_secs(1), res.bytes()).await;
                if status.is_success() {
                    (Some(status.as_u16()), None)
                } else {
                    (Some(status.as_u16()), Some(format!("receiver answered {status}")))
                }
            }
            Err(e) => (None, Some(e.without_url().to_string())),
        };
        let delivered = error.is_none();
        let outcome = AttemptOutcome {
            delivered,
            status,
            error: error.clone(),
            url: loggable_url(&self.settings.url),
            started_at,
            duration: started.elapsed(),
            retry_at: Utc::now()
                + chrono::Duration::from_std(self.settings.backoff(delivery.attempt)).unwrap_or_default(),
        };
        let kept = self
            .log
            .finish_delivery(event.id, delivery.attempt, &self.replica, &outcome)
            .await?;
        match (&error, kept) {
            (None, _) => {
                tracing::info!(event_id = event.id, event_type = %event.kind, attempt = delivery.attempt, "webhook delivered")
            }
            (Some(e), true) => {
                tracing::warn!(event_id = event.id, attempt = delivery.attempt, error = %e, retry_at = %outcome.retry_at, "webhook attempt failed")
            }
            (Some(e), false) => {
                tracing::warn!(event_id = event.id, attempt = delivery.attempt, error = %e, "webhook attempt failed after its lease expired")
            }
        }
        Ok(())
    }
}
