//! `admin-provisioner serve`: the HTTP API and console, plus background recovery of unfinished sagas and
//! the background reconciler (`RECONCILE_INTERVAL_SECS`, one replica at a time; see [`crate::reconcile`]).

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

/// Refuses, in emulator mode, a `BIND_ADDR` that is reachable from other machines (anything but a loopback
/// address) unless `EMULATOR_ALLOW_REMOTE` is set, and then warns: the emulator's mailbox page shows every
/// invitee's temporary password to whoever reaches the port.
pub async fn check_bind_addr(config: &Config) -> anyhow::Result<()> {
    if !config.uses_emulator() {
        return Ok(());
    }
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(&config.bind_addr)
        .await
        .map_err(|e| anyhow::anyhow!("BIND_ADDR {} is not an address: {e}", config.bind_addr))?
        .collect();
    let remote: Vec<_> = addrs.iter().filter(|a| !a.ip().is_loopback()).collect();
    if remote.is_empty() {
        return Ok(());
    }
    if !config.emulator_allow_remote {
        anyhow::bail!(
            "refusing to serve the built-in Cognito emulator on {} (reachable from other machines): its mailbox \
             page shows every temporary password. Bind a loopback address (127.0.0.1:8080), use real Cognito \
             (COGNITO_USER_POOL_ID), or set EMULATOR_ALLOW_REMOTE=true if you really mean it",
            config.bind_addr
        );
    }
    tracing::warn!(bind_addr = %config.bind_addr, "EMULATOR_ALLOW_REMOTE: the emulator's mailbox (every temporary password) is reachable from other machines");
    eprintln!(
        "WARNING: EMULATOR_ALLOW_REMOTE is set: anyone who reaches {} can read every temporary password at /console/mailbox",
        config.bind_addr
    );
    Ok(())
}

/// Refuses a malformed `CONSOLE_COOKIE_KEY` (the message names the problem, never the value); warns when it
/// is unset, since each process then draws its own key.
pub fn check_cookie_key(config: &Config) -> anyhow::Result<()> {
    use crate::http::cookies::{key_from, KeySource};
    let (_, source) = key_from(config.console_cookie_key.as_deref()).map_err(|e| anyhow::anyhow!("{e}"))?;
    if source == KeySource::Random {
        tracing::warn!(
            "CONSOLE_COOKIE_KEY is unset: console cookies use a random key of this process; sessions end at a \
             restart, and replicas behind a load balancer need one shared CONSOLE_COOKIE_KEY"
        );
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit (every connection is a file descriptor, and so
/// is every socket `serve` answers `503` before closing it), and warns when it is still below what
/// `MAX_CONNECTIONS` needs. Returns the soft limit in force.
pub fn raise_open_files_limit(config: &Config) -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            // The connections, the lingering refusals, the database pool, the log and a margin.
            let needed = (config.max_connections + crate::http::admission::MAX_LINGERING_REFUSALS + 256) as u64;
            if limit < needed {
                tracing::warn!(
                    open_files_limit = limit,
                    needed,
                    "the open-files limit (ulimit -n) is below what MAX_CONNECTIONS needs; raise the hard limit or lower MAX_CONNECTIONS"
                );
            } else {
                tracing::debug!(open_files_limit = limit, "open-files limit");
            }
            Some(limit)
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not read or raise the open-files limit");
            None
        }
    }
}

/// Binds the built-in emulator's wire endpoint (`COGNITO_EMULATOR_ADDR`), before the app is built: its
/// address is part of the tokens' issuer, so a configured port 0 is replaced in `config` by the port bound.
/// `None` when the endpoint is off or real Cognito is used. A non-loopback address is refused unless
/// `EMULATOR_ALLOW_REMOTE`. With `lenient` (`serve` with `COGNITO_EMULATOR_ADDR` unset), a default port
/// already taken only costs a warning; otherwise it is an error.
pub async fn bind_emulator_wire(config: &mut Config, lenient: bool) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    let Some(addr) = config.emulator_wire_addr() else {
        return Ok(None);
    };
    let addrs: Vec<std::net::SocketAddr> = tokio::net::lookup_host(&addr)
        .await
        .map_err(|e| anyhow::anyhow!("COGNITO_EMULATOR_ADDR {addr} is not an address: {e}"))?
        .collect();
    for a in &addrs {
        admin_provisioner_emulator::wire::check_addr(a, config.emulator_allow_remote).map_err(anyhow::Error::msg)?;
    }
    let lenient = lenient && config.cognito_emulator_addr.is_none();
    let listener = match listen(&addr).await {
        Ok(listener) => listener,
        Err(e) if lenient && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(addr = %addr, "the Cognito emulator's wire endpoint is off: its port is taken (set COGNITO_EMULATOR_ADDR to another host:port, or off)");
            eprintln!("WARNING: {addr} is taken: the Cognito emulator's wire endpoint is off (set COGNITO_EMULATOR_ADDR)");
            return Ok(None);
        }
        Err(e) => anyhow::bail!(
            "cannot listen on COGNITO_EMULATOR_ADDR {addr}: {e} (set COGNITO_EMULATOR_ADDR to another host:port, or off)"
        ),
    };
    let bound = listener.local_addr()?;
    if addr.rsplit_once(':').is_some_and(|(_, port)| port == "0") {
        config.cognito_emulator_addr = Some(bound.to_string());
    }
    if !bound.ip().is_loopback() {
        tracing::warn!(addr = %bound, "EMULATOR_ALLOW_REMOTE: the Cognito emulator (tokens for every user) is reachable from other machines");
    }
    Ok(Some(listener))
}

/// Prints (and logs) where the emulator's wire endpoint answers, with its pool and app client.
fn announce_wire(listener: &tokio::net::TcpListener, emu: &admin_provisioner_emulator::CognitoEmulator) {
    let endpoint = listener.local_addr().map(|a| format!("http://{a}")).unwrap_or_default();
    println!("  cognito:  {endpoint} (Cognito's JSON protocol: AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER={endpoint})");
    println!(
        "            user pool {}, app client {}",
        emu.pool_id(),
        emu.client_id()
    );
    println!(
        "            issuer {} (JWKS at {}/.well-known/jwks.json)",
        emu.issuer(),
        emu.issuer()
    );
    tracing::info!(endpoint = %endpoint, pool_id = %emu.pool_id(), client_id = %emu.client_id(), issuer = %emu.issuer(), "Cognito emulator wire endpoint listening");
}

/// `admin-provisioner emulator`: the built-in emulator alone on its wire endpoint (same state file and
/// mailbox as `serve`), until SIGTERM or Ctrl-C.
pub async fn run_emulator(mut config: Config) -> anyhow::Result<()> {
    if !config.uses_emulator() {
        anyhow::bail!(
            "COGNITO_USER_POOL_ID is set: `emulator` serves the built-in emulator, which that setting replaces"
        );
    }
    let listener = bind_emulator_wire(&mut config, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("COGNITO_EMULATOR_ADDR is off: the emulator has nowhere to listen"))?;
    let ec = crate::app::emulator_config(&config, std::sync::Arc::new(admin_provisioner_core::clock::SystemClock))?;
    let emu = admin_provisioner_emulator::CognitoEmulator::open(ec)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot open the Cognito emulator state at {}: {e:#}",
                config.emulator_state.display()
            )
        })?;
    println!("Cognito emulator (state {})", config.emulator_state.display());
    announce_wire(&listener, &emu);
    println!("  mailbox:  {}", config.mailbox_dir.display());
    admin_provisioner_emulator::wire::serve(emu, listener, shutdown_signal())
        .await
        .map_err(|e| anyhow::anyhow!("the emulator's wire endpoint failed: {e}"))
}

/// Builds the app, binds `BIND_ADDR`, serves until SIGTERM or Ctrl-C, then drains in-flight requests
/// (bounded by `SHUTDOWN_GRACE_SECS`).
pub async fn run(mut config: Config) -> anyhow::Result<()> {
    check_bind_addr(&config).await?;
    let wire = bind_emulator_wire(&mut config, true).await?;
    check_cookie_key(&config)?;
    raise_open_files_limit(&config);
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
    if app.provisioner.mirrors_role_groups() {
        // Missing role groups are created now (and again at first use, should one be deleted meanwhile);
        // a refusal is not fatal here: the reconciler and `doctor` name it.
        match app.provisioner.ensure_role_groups().await {
            Ok(created) => {
                for g in created {
                    tracing::info!(group = %g, "created the Cognito role group");
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not check or create the Cognito role groups"),
        }
    }
    let webhooks = match &app.config.webhook_url {
        Some(url) => Some(crate::events::webhook::WebhookSettings::new(
            url,
            app.config.webhook_secret.as_deref(),
            app.config.webhook_timeout_secs,
        )?),
        None => None,
    };
    let listener = listen(&app.config.bind_addr)
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
        if let (Some(listener), Some(emu)) = (&wire, &app.emulator) {
            announce_wire(listener, emu);
        }
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
    let delivery = match webhooks {
        Some(settings) => {
            println!("  webhooks: {}", crate::events::webhook::loggable_url(&settings.url));
            let worker = crate::events::webhook::WebhookWorker::new(app.events.clone(), settings, replica_name())?;
            Some(tokio::spawn(worker.run()))
        }
        None => None,
    };
    let wire = match (wire, &app.emulator) {
        (Some(listener), Some(emu)) => {
            let emu = (**emu).clone();
            Some(tokio::spawn(async move {
                if let Err(e) = admin_provisioner_emulator::wire::serve(emu, listener, std::future::pending()).await {
                    tracing::error!(error = %e, "the Cognito emulator's wire endpoint stopped");
                }
            }))
        }
        _ => None,
    };
    let reconciler = crate::reconcile::spawn_background(&app, Duration::from_secs(app.config.reconcile_interval_secs));
    let result = crate::http::serve(app, listener, shutdown_signal()).await;
    recovery.abort();
    if let Some(wire) = wire {
        wire.abort();
    }
    if let Some(delivery) = delivery {
        // An attempt cut short here is retried when its lease expires (by this or another replica).
        delivery.abort();
    }
    if let Some((task, background)) = reconciler {
        task.abort();
        background.release().await;
    }
    result
}

/// Pending connections the kernel queues for `accept` (capped by `net.core.somaxconn`). Above tokio's
/// 1,024 so that a burst of connections from one client (which are then answered `503` at once) does not
/// overflow the queue and leave other clients' handshakes unanswered.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Listens on `bind_addr` (an address or `host:port`; the first address that binds) with
/// [`LISTEN_BACKLOG`].
pub async fn listen(bind_addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to bind");
    for addr in tokio::net::lookup_host(bind_addr).await? {
        let socket = if addr.is_ipv4() {
            tokio::net::TcpSocket::new_v4()?
        } else {
            tokio::net::TcpSocket::new_v6()?
        };
        // As std's and tokio's `bind` do on Unix: a restart may bind while old connections linger.
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(LISTEN_BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A name unique to this process, for webhook leases and the delivery log: `host:pid:random`.
fn replica_name() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_string());
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &random[..8])
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
}
