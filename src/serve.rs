//! `admin-provisioner serve`: the HTTP API and console, plus background recovery of unfinished sagas and
//! the background reconciler (`RECONCILE_INTERVAL_SECS`, one replica at a time; see [`crate::reconcile`]).

use crate::app::{App, Hooks};
use crate::config::Config;
use std::time::Duration;

/// How old an unfinished saga must be before the background loop treats it as abandoned (a crashed
/// process). Longer than any in-flight saga can take with its timeouts and retries.
pub const RECOVERY_MIN_AGE_SECS: i64 = 120;

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
            let mut tick = tokio::time::interval(Duration::from_secs(30));
            loop {
                tick.tick().await;
                match provisioner
                    .recover_unfinished(chrono::Duration::seconds(RECOVERY_MIN_AGE_SECS))
                    .await
                {
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
    let reconciler = crate::reconcile::spawn_background(&app, Duration::from_secs(app.config.reconcile_interval_secs));
    let result = crate::http::serve(app, listener, shutdown_signal()).await;
    recovery.abort();
    if let Some((task, background)) = reconciler {
        task.abort();
        background.release().await;
    }
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
