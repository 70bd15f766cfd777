//! The command line: `serve`, `emulator`, `bootstrap-admin`, `provision`, `resend-invite`, `import`, `doctor`,
//! `demo`, `sagas`, `reconcile` (which exits 2 when drift remains), `openapi`.
//!
//! Every command exits 0 on success and non-zero with a one-line reason on stderr otherwise. The operator
//! commands act as `operator` in the audit log. Logs go to stderr (`RUST_LOG` filters them); results go
//! to stdout.

use crate::app::App;
use crate::config::Config;
use admin_provisioner_core::domain::{AdminEmail, Role};
use admin_provisioner_core::{Caller, ProvisionedAdmin};
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Adds admins to AWS Cognito and the application database at once, and keeps them in step.
#[derive(Parser, Debug)]
#[command(name = "admin-provisioner", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs the HTTP API and web console (and recovers unfinished sagas in the background).
    Serve,
    /// Runs the built-in Cognito emulator alone on Cognito's wire protocol at `COGNITO_EMULATOR_ADDR`
    /// (same state file and mailbox as `serve`), for an application's own AWS SDK.
    Emulator,
    /// Creates the very first admin (operator only; refused once an admin exists).
    BootstrapAdmin {
        /// The new admin's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Provisions an admin as the operator (Cognito user + database records, one saga).
    Provision {
        /// The new admin's e-mail address.
        #[arg(long)]
        email: String,
        /// The new admin's role: owner, admin or viewer.
        #[arg(long, default_value = "admin", value_parser = parse_role)]
        role: Role,
    },
    /// Re-sends an admin's invitation with a new temporary password.
    ResendInvite {
        /// The admin's e-mail address.
        #[arg(long)]
        email: String,
    },
    /// Provisions every admin of a CSV file (header row with an `email` column) under a rate limit; safe to
    /// re-run (existing admins are skipped) and to stop with Ctrl-C.
    Import {
        /// The CSV file.
        file: std::path::PathBuf,
        /// Rows started per second at most (Cognito's AdminCreateUser quota is 50/s per account).
        #[arg(long, default_value_t = crate::import::DEFAULT_RATE)]
        rate: f64,
        /// Rows in flight at most.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Write each row's outcome to this JSON file.
        #[arg(long)]
        report: Option<std::path::PathBuf>,
    },
    /// Checks the Cognito user pool and app client for settings that break the flow (exit 1 if any blocks it).
    Doctor,
    /// Walks the whole flow on a fresh temporary database and emulator, printing each numbered step.
    Demo,
    /// Prints the HTTP API's OpenAPI document (what `serve` answers at `/openapi.json`), pretty-printed,
    /// without connecting anywhere.
    Openapi,
    /// Reports drift between Cognito and the database (exit 0 nothing to do, 2 drift remains, 1 error).
    Reconcile {
        /// Apply the safe repairs (delete the product's own never-used ghosts; mark active admins whose
        /// Cognito user is CONFIRMED), each audited as `reconciler`.
        #[arg(long)]
        repair: bool,
        /// JSON Lines: one object per finding, then a summary object.
        #[arg(long)]
        json: bool,
    },
    /// Manages the bearer tokens SCIM clients (Okta, Entra ID) authenticate with at `/scim/v2`.
    ScimToken {
        #[command(subcommand)]
        action: ScimTokenAction,
    },
    /// Lists sagas from the saga log (id, e-mail, step, owner, lease, attempts, last error); `sagas retry
    /// ID` settles one now. Reads only the database: works while Cognito is unreachable.
    Sagas {
        #[command(subcommand)]
        action: Option<SagasAction>,
        /// Only sagas that need attention: `stuck`, or unfinished with an expired lease.
        #[arg(long, conflicts_with = "unfinished")]
        stuck: bool,
        /// Only unfinished sagas (running, stuck or abandoned).
        #[arg(long)]
        unfinished: bool,
        /// JSON (one array) instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ScimTokenAction {
    /// Issues a SCIM token for an identity provider and prints it once (only its SHA-256 is stored).
    Create {
        /// A name for the client (lower-case letters, digits, `-`, `_`): the audit actor is `scim:<name>`.
        #[arg(long)]
        name: String,
    },
    /// Lists the SCIM tokens (names, who issued them, when, last use, revoked or not); never the tokens.
    List,
    /// Revokes a SCIM token: requests with it are refused from now on.
    Revoke {
        /// The token's name.
        name: String,
    },
}

#[derive(Subcommand, Debug)]
enum SagasAction {
    /// Settles saga ID now (finish or undo), unless a live process holds its lease.
    Retry {
        /// The saga id (from `admin-provisioner sagas`).
        id: uuid::Uuid,
    },
}

/// Runs the command line; returns the process exit code.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands other than `serve` print their result and at most a one-line error: only errors are logged.
    let default_level = if matches!(cli.command, Command::Serve | Command::Emulator) {
        "info"
    } else {
        "error"
    };
    init_tracing(default_level);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<crate::reconcile::DriftRemains>().is_some() => ExitCode::from(2),
        Err(e) => {
            // One line: the chain of causes joined.
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(default_level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let run_id = format!("cli-{}", uuid::Uuid::new_v4());
    match cli.command {
        Command::Demo => crate::demo::run(&mut std::io::stdout()).await,
        Command::Openapi => {
            use std::io::Write;
            let doc = serde_json::to_string_pretty(&crate::http::api::openapi_document())?;
            // Written, not `println!`: a closed pipe (`| head`) is a one-line error, not a panic.
            writeln!(std::io::stdout().lock(), "{doc}")?;
            Ok(())
        }
        Command::Serve => crate::serve::run(cli.config).await,
        Command::Emulator => crate::serve::run_emulator(cli.config).await,
        Command::Doctor => doctor(cli.config).await,
        Command::Reconcile { repair, json } => {
            let app = build(cli.config).await?;
            crate::reconcile::command(&app, repair, json, &mut std::io::stdout()).await
        }
        Command::Sagas {
            action: Some(SagasAction::Retry { id }),
            ..
        } => sagas_retry(cli.config, id).await,
        Command::Sagas {
            action: None,
            stuck,
            unfinished,
            json,
        } => sagas_list(cli.config, stuck, unfinished, json).await,
        Command::ScimToken { action } => scim_token(cli.config, action, &run_id).await,
        Command::BootstrapAdmin { email } => {
            AdminEmail::parse(&email)?;
            let app = build(cli.config).await?;
            let admin = app.provisioner.bootstrap_admin(&email, Some(&run_id)).await?;
            print_admin("bootstrapped", &admin, &app);
            Ok(())
        }
        Command::Provision { email, role } => {
            AdminEmail::parse(&email)?;
            let app = build(cli.config).await?;
            let admin = app
                .provisioner
                .provision_admin_with_role(&Caller::Operator, &email, role, Some(&run_id))
                .await?;
            print_admin("provisioned", &admin, &app);
            Ok(())
        }
        Command::Import {
            file,
            rate,
            concurrency,
            report,
        } => {
            let options = crate::import::ImportOptions {
                file,
                rate,
                concurrency,
                report,
            };
            // Validate the file before connecting anywhere: a bad header fails fast.
            crate::import::read_rows(&options.file)?;
            let app = build(cli.config).await?;
            let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            let flag = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    eprintln!("import: interrupted; finishing the rows in flight (Ctrl-C again to leave now)");
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                    if tokio::signal::ctrl_c().await.is_ok() {
                        eprintln!(
                            "import: left at once; the saga log lets the next run or `serve` settle what was in flight"
                        );
                        std::process::exit(130);
                    }
                }
            });
            let result = crate::import::run_import(&app, &options, stop).await?;
            crate::import::finish(&result, &options)
        }
        Command::ResendInvite { email } => {
            AdminEmail::parse(&email)?;
            let app = build(cli.config).await?;
            let invite = app
                .provisioner
                .resend_admin_invite(&Caller::Operator, &email, Some(&run_id))
                .await?;
            println!(
                "invitation re-sent to {email}: status {}, expires {}, invitations sent {}{}",
                invite.status.as_str(),
                invite.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                invite.invites_sent,
                if invite.delivered {
                    ""
                } else {
                    " (Cognito could not deliver it: try again later)"
                }
            );
            Ok(())
        }
    }
}

/// Builds the app and checks that the identity provider answers before doing anything.
async fn build(config: Config) -> anyhow::Result<App> {
    let app = App::build(config).await?;
    app.check_identity_provider().await?;
    Ok(app)
}

fn print_admin(verb: &str, admin: &ProvisionedAdmin, app: &App) {
    println!(
        "{verb} {} (id {}, Cognito user {}, status {}, invitation expires {})",
        admin.user.email,
        admin.user.id,
        admin.user.cognito_username,
        admin.invite.status.as_str(),
        admin.admin_info.invite_expires_at.to_rfc3339()
    );
    if !admin.invite.delivered {
        println!("warning: Cognito could not deliver the invitation e-mail; run resend-invite later");
    }
    if app.emulator.is_some() {
        println!("the invitation e-mail is in {}", app.config.mailbox_dir.display());
    }
}

/// How many sagas `sagas` lists without `--unfinished` / `--stuck`.
const SAGAS_LIST_LIMIT: i64 = 200;

async fn sagas_list(config: Config, stuck: bool, unfinished: bool, json: bool) -> anyhow::Result<()> {
    let options = admin_provisioner_store::ConnectOptions {
        schema: config.database_schema.clone(),
    };
    let store = admin_provisioner_store::connect_with(&config.database_url, &options)
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?
        .store;
    let now = chrono::Utc::now();
    let mut sagas = if stuck || unfinished {
        store.list_unfinished().await?
    } else {
        store.list_recent(SAGAS_LIST_LIMIT).await?
    };
    if stuck {
        sagas.retain(|s| s.is_stuck(now));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&sagas)?);
        return Ok(());
    }
    if sagas.is_empty() {
        println!(
            "no sagas{}",
            if stuck {
                " need attention"
            } else if unfinished {
                " are unfinished"
            } else {
                ""
            }
        );
        return Ok(());
    }
    println!(
        "{:<36}  {:<9}  {:<30}  {:<23}  {:<8}  {:<28}  {:<25}  LAST ERROR",
        "ID", "KIND", "E-MAIL", "STEP", "ATTEMPTS", "OWNER", "LEASE UNTIL"
    );
    for s in &sagas {
        let lease = match s.lease_expires_at {
            Some(t) if !s.state.is_terminal() && t <= now => format!("{} (expired)", t.format("%Y-%m-%dT%H:%M:%SZ")),
            Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            None => "-".into(),
        };
        println!(
            "{:<36}  {:<9}  {:<30}  {:<23}  {:<8}  {:<28}  {:<25}  {}",
            s.id,
            s.kind.as_str(),
            s.email,
            s.state.as_str(),
            s.attempts,
            s.owner.as_deref().unwrap_or("-"),
            lease,
            s.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// `scim-token create|list|revoke`: reads and writes only the database.
async fn scim_token(config: Config, action: ScimTokenAction, run_id: &str) -> anyhow::Result<()> {
    use admin_provisioner_core::domain::Actor;
    if let ScimTokenAction::Create { name } | ScimTokenAction::Revoke { name } = &action {
        admin_provisioner_core::scim_tokens::validate_name(name)?;
    }
    let options = admin_provisioner_store::ConnectOptions {
        schema: config.database_schema.clone(),
    };
    let store = admin_provisioner_store::connect_with(&config.database_url, &options)
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?
        .store;
    match action {
        ScimTokenAction::Create { name } => {
            let (_, token) =
                admin_provisioner_core::scim_tokens::create(store.as_ref(), &Actor::Operator, &name, Some(run_id))
                    .await?;
            eprintln!("SCIM token {name} created; it is shown this once (only its SHA-256 is stored):");
            println!("{}", token.expose());
        }
        ScimTokenAction::List => {
            let tokens = admin_provisioner_core::scim_tokens::list(store.as_ref()).await?;
            if tokens.is_empty() {
                println!("no SCIM tokens");
            }
            for t in tokens {
                println!(
                    "{}  created {} by {}  last used {}  {}",
                    t.name,
                    t.created_at.to_rfc3339(),
                    t.created_by,
                    t.last_used_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "never".into()),
                    match t.revoked_at {
                        Some(at) => format!("revoked {}", at.to_rfc3339()),
                        None => "active".into(),
                    }
                );
            }
        }
        ScimTokenAction::Revoke { name } => {
            admin_provisioner_core::scim_tokens::revoke(store.as_ref(), &Actor::Operator, &name, Some(run_id)).await?;
            println!("SCIM token {name} revoked");
        }
    }
    Ok(())
}

async fn sagas_retry(config: Config, id: uuid::Uuid) -> anyhow::Result<()> {
    use admin_provisioner_core::RetryOutcome;
    // No start-up ping of Cognito: settling reports what it could not reach.
    let app = App::build(config).await?;
    match app.provisioner.retry_saga(id).await? {
        RetryOutcome::Settled(r) if r.state.is_terminal() => {
            println!("saga {} ({}) is now {}", r.saga_id, r.email, r.state.as_str());
            Ok(())
        }
        RetryOutcome::Settled(r) => anyhow::bail!(
            "saga {} ({}) could not be settled yet and is {}; see `admin-provisioner sagas --stuck` for its last error",
            r.saga_id,
            r.email,
            r.state.as_str()
        ),
        RetryOutcome::AlreadyFinished(state) => {
            println!("saga {id} had already finished: {}", state.as_str());
            Ok(())
        }
        RetryOutcome::Held { owner, until } => anyhow::bail!(
            "saga {id} is being worked on by {owner} (lease until {}); retry after it expires",
            until.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
        ),
    }
}

async fn doctor(config: Config) -> anyhow::Result<()> {
    use admin_provisioner_cognito::doctor;
    // The database and webhooks first: they matter with the emulator too.
    let report = crate::doctor::check(&config).await;
    for line in &report.ok {
        println!("{line}");
    }
    for f in &report.findings {
        println!("{f}");
    }
    let local_blocking = report
        .findings
        .iter()
        .filter(|f| f.severity == doctor::Severity::Blocking)
        .count();
    if config.uses_emulator() {
        println!("COGNITO_USER_POOL_ID is not set: the built-in Cognito emulator is used, and it is always configured as the flow needs.");
        println!("Set COGNITO_USER_POOL_ID and COGNITO_CLIENT_ID to check a real user pool.");
        if local_blocking > 0 {
            anyhow::bail!("{local_blocking} blocking problem(s) in the database or webhook settings (see above)");
        }
        return Ok(());
    }
    let provider =
        admin_provisioner_cognito::CognitoIdentityProvider::new(crate::app::cognito_config(&config)?).await?;
    let mut findings = doctor::check(&provider, config.invite_validity_days).await?;
    if let Some(prefix) = config.role_groups().map_err(|e| anyhow::anyhow!(e))? {
        let groups: Vec<String> = Role::ALL.iter().map(|r| format!("{prefix}{}", r.as_str())).collect();
        let group_findings = doctor::check_role_groups(&provider, &groups).await?;
        if group_findings.is_empty() {
            println!("ok: role groups {} exist", groups.join(", "));
        }
        findings.extend(group_findings);
    }
    if findings.is_empty() {
        println!(
            "ok: user pool {} and app client look right for admin-provisioner",
            config.cognito_user_pool_id.unwrap_or_default()
        );
    }
    for f in &findings {
        println!("{f}");
    }
    if doctor::has_blocking(&findings) || local_blocking > 0 {
        let n = findings
            .iter()
            .filter(|f| f.severity == doctor::Severity::Blocking)
            .count()
            + local_blocking;
        anyhow::bail!("{n} blocking problem(s) in the Cognito configuration (see above)");
    }
    Ok(())
}

/// `--role`: owner, admin or viewer.
fn parse_role(raw: &str) -> Result<Role, String> {
    Role::parse(raw).ok_or_else(|| format!("unknown role {raw:?}: a role is owner, admin or viewer"))
}
