//! `doctor`'s checks of the database and of webhooks (the Cognito checks live in
//! `admin_provisioner_cognito::doctor`).
//!
//! What is checked: the database answers and is migrated; on PostgreSQL, the product's schema
//! (`DATABASE_SCHEMA`) and every privilege the product's SQL needs there (blocking when one is missing;
//! a warning when the role may not `CREATE` in the schema, which only upgrades need); when `WEBHOOK_URL`
//! is set, that the settings are valid (blocking otherwise), that the URL answers an HTTP request (a
//! warning otherwise: events wait in the queue and are retried), and whether deliveries are backing up.

use crate::config::Config;
use crate::events::webhook::{loggable_url, WebhookSettings};
use admin_provisioner_cognito::doctor::{Finding, Severity};
use admin_provisioner_store::{redact_url, EventLog, PostgresStore};
use std::time::Duration;

/// The outcome: lines saying what is fine, and findings.
#[derive(Debug, Default)]
pub struct Report {
    /// "ok: …" lines.
    pub ok: Vec<String>,
    /// Problems.
    pub findings: Vec<Finding>,
}

impl Report {
    fn blocking(&mut self, code: &'static str, message: String) {
        self.findings.push(Finding {
            severity: Severity::Blocking,
            code,
            message,
        });
    }
    fn warning(&mut self, code: &'static str, message: String) {
        self.findings.push(Finding {
            severity: Severity::Warning,
            code,
            message,
        });
    }
}

/// Runs the database and webhook checks for `config`.
pub async fn check(config: &Config) -> Report {
    let mut report = Report::default();
    let url = redact_url(&config.database_url);
    let is_postgres = config.database_url.starts_with("postgres:") || config.database_url.starts_with("postgresql:");
    let events = if is_postgres {
        match PostgresStore::connect_in_schema(&config.database_url, &config.database_schema).await {
            Ok(store) => {
                report.ok.push(format!(
                    "ok: database {url} reachable; the product's tables and migration history are in schema {}",
                    store.schema()
                ));
                match store.missing_privileges().await {
                    Ok(missing) if missing.is_empty() => report.ok.push(format!(
                        "ok: the role has every privilege the product needs in schema {}",
                        store.schema()
                    )),
                    Ok(missing) => report.blocking(
                        "database_privileges",
                        format!(
                            "the role lacks {} (see the README's least-privilege role)",
                            missing.join("; ")
                        ),
                    ),
                    Err(e) => report.blocking("database_privileges", format!("cannot read the role's privileges: {e}")),
                }
                if let Ok(false) = store.can_create_in_schema().await {
                    report.warning(
                        "database_schema_create",
                        format!(
                            "the role may not CREATE in schema {}: fine today, but an upgrade that brings new \
                             migrations must run as a role that may (e.g. the schema owner)",
                            store.schema()
                        ),
                    );
                }
                Some(store.event_log())
            }
            Err(e) => {
                report.blocking(database_code(&e), e.to_string());
                None
            }
        }
    } else {
        match admin_provisioner_store::connect_with(&config.database_url, &Default::default()).await {
            Ok(connected) => {
                report.ok.push(format!(
                    "ok: database {url} reachable, migrations applied (SQLite: a file of the product's own; \
                     DATABASE_SCHEMA does not apply)"
                ));
                Some(connected.events)
            }
            Err(e) => {
                report.blocking(database_code(&e), e.to_string());
                None
            }
        }
    };
    check_webhooks(config, events.as_ref(), &mut report).await;
    report
}

fn database_code(e: &admin_provisioner_core::store::StoreError) -> &'static str {
    match e {
        admin_provisioner_core::store::StoreError::Unavailable(_) => "database_unreachable",
        _ => "database_setup",
    }
}

async fn check_webhooks(config: &Config, events: Option<&EventLog>, report: &mut Report) {
    let Some(url) = &config.webhook_url else {
        report
            .ok
            .push("ok: webhooks off (WEBHOOK_URL unset); events are still readable at GET /api/events".to_string());
        return;
    };
    let settings = match WebhookSettings::new(url, config.webhook_secret.as_deref(), config.webhook_timeout_secs) {
        Ok(s) => s,
        Err(e) => {
            report.blocking("webhook_config", e.to_string());
            return;
        }
    };
    let shown = loggable_url(&settings.url);
    let client = reqwest::Client::builder()
        .timeout(settings.timeout.min(Duration::from_secs(10)))
        .redirect(reqwest::redirect::Policy::none())
        .build();
    let answer = match client {
        Ok(client) => client.head(settings.url.clone()).send().await.map(|r| r.status()),
        Err(e) => {
            report.warning("webhook_unreachable", format!("cannot build an HTTP client: {e}"));
            return;
        }
    };
    match answer {
        Ok(status) => report
            .ok
            .push(format!("ok: webhook receiver {shown} answers (HEAD: {status})")),
        Err(e) => report.warning(
            "webhook_unreachable",
            format!(
                "webhook receiver {shown} does not answer ({}); events wait in the queue and are retried",
                e.without_url()
            ),
        ),
    }
    if let Some(events) = events {
        if let Ok(stats) = events.delivery_stats().await {
            if stats.pending > 0 {
                report.warning(
                    "webhook_backlog",
                    format!(
                        "{} event(s) not yet delivered ({} delivered, {} attempts logged in webhook_attempts)",
                        stats.pending, stats.delivered, stats.attempts
                    ),
                );
            }
        }
    }
}
