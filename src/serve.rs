//! `admin-provisioner serve`: the HTTP API and console, plus background recovery of unfinished sagas.

use crate::app::{App, Hooks};
use crate::config::Config;
use std::time::Duration;

/// How often the background loop looks for sagas whose lease expired (a crashed or stalled owner).
pub const RECOVERY_INTERVAL: Duration = Duration::from_secs(30);

/// The recovery interval: `RECOVERY_INTERVAL_MS` when set (tests use a short one), else
/// [`RECOVERY_INTERVAL`].
fn recovery_interval() -> Duration {
    std::env::var("RECOVERY_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .unwrap_or(RECOVERY_INTERVAL)
}

/// Builds the app, binds `BIND_ADDR`, serves until SIGTERM or Ctrl-C, then drains in-flight requests.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let observer = crate::http::metrics_observer();
    let app = App::build_with(
        config,
        Hooks {
            observer: Some(observer),
            ..Hooks::default()
        },
    )
    .await?;
    app.check_identity_provider().await?;
    let listener = tokio::net::TcpListener::bind(&app.config.bind_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", app.config.bind_addr))?;
    let addr = listener.local_addr()?;
    println!("admin-provisioner listening on http://{addr}");
    println!("  console:  http://{addr}/console");
    println!("  API docs: http://{addr}/openapi.json");
    if app.emulator.is_some() {
        println!(
            "  identity: built-in Cognito emulator (state {})",
            app.config.emulator_state.display()
        );
        println!(
            "  mailbox:  {} (also http://{addr}/console/mailbox)",
            app.config.mailbox_dir.display()
        );
        println!("first admin: admin-provisioner bootstrap-admin --email you@example.com, then open the mailbox for the temporary password");
    } else {
        println!(
            "  identity: Cognito user pool {}",
            app.config.cognito_user_pool_id.clone().unwrap_or_default()
        );
    }

    let recovery = {
        let provisioner = app.provisioner.clone();
        tokio::spawn(async move {
            // The first tick fires at once: sagas a crashed predecessor left behind are taken over as soon
            // as their leases expire, not a full interval later.
            let mut tick = tokio::time::interval(recovery_interval());
            loop {
                tick.tick().await;
                // Only sagas whose lease has expired are taken (compare-and-set), so replicas sharing one
                // database never settle the same saga twice and never race a saga that is still working.
                match provisioner.recover_unfinished().await {
                    Ok(reports) => {
                        for r in reports {
                            tracing::warn!(saga_id = %r.saga_id, state = r.state.as_str(), "recovered an unfinished saga");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "saga recovery pass failed"),
                }
            }
        })
    };
    let result = crate::http::serve(app, listener, shutdown_signal()).await;
    recovery.abort();
    result
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down: finishing in-flight requests");
}
