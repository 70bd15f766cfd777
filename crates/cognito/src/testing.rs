//! Test harness: a local [moto](https://github.com/getmoto/moto) server and ready-made user pools.
//!
//! Enabled by the cargo feature `moto` (this crate's own tests enable it through a dev-dependency on
//! itself; another crate adds `admin-provisioner-cognito = { workspace = true, features = ["moto"] }` to
//! its `[dev-dependencies]`). Nothing here talks to AWS: every client points at `127.0.0.1` with dummy
//! static credentials.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use admin_provisioner_cognito::testing::{MotoServer, PoolOptions};
//! let moto = MotoServer::shared()?; // starts moto_server on a free port (or reuses the running one)
//! let pool = moto.create_pool(PoolOptions::default()).await?;
//! // pool.provider: a CognitoIdentityProvider for the new pool and its app client;
//! // pool.env_vars(): the environment that points the admin-provisioner binary at the same pool.
//! # Ok(()) }
//! ```
//!
//! `moto_server` is looked up in this order: the environment variable `MOTO_SERVER_BIN`; a
//! `.venv/bin/moto_server` in `CARGO_MANIFEST_DIR` or any folder above it; the `PATH`. When none is found,
//! [`MotoServer::start`] fails with the install command:
//! `python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5'` (in the workspace root).
//!
//! The server is killed when the last handle is dropped. When `moto_server` is a Python script (the usual
//! case), it is started through its interpreter with a watchdog that also ends it if the test process
//! dies without running destructors.

use crate::{CognitoConfig, CognitoIdentityProvider};
use anyhow::{bail, Context as _};
use aws_sdk_cognitoidentityprovider::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, EmailConfigurationType, EmailSendingAccountType, ExplicitAuthFlowsType,
    MessageTemplateType, PasswordPolicyType, UserPoolPolicyType, UsernameAttributeType, UsernameConfigurationType,
};
use aws_sdk_cognitoidentityprovider::Client;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// How to install moto, for error messages.
pub const INSTALL_HINT: &str = "install it in the workspace root with: python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5' (or set MOTO_SERVER_BIN to a moto_server executable)";

/// How long moto may take to answer after start (it imports a lot of Python).
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default invitation e-mail: Cognito's default text, with both placeholders.
pub const DEFAULT_INVITE_EMAIL: &str = "Your username is {username} and temporary password is {####}.";

/// A running `moto_server` on `127.0.0.1`, killed on drop.
pub struct MotoServer {
    child: Mutex<Child>,
    endpoint: String,
    log_path: PathBuf,
}

impl std::fmt::Debug for MotoServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MotoServer").field("endpoint", &self.endpoint).finish()
    }
}

static SHARED: Mutex<Weak<MotoServer>> = Mutex::new(Weak::new());
static POOL_COUNTER: AtomicU32 = AtomicU32::new(0);

impl MotoServer {
    /// Finds `moto_server` (see the module docs) or explains how to install it.
    pub fn find_binary() -> anyhow::Result<PathBuf> {
        if let Some(bin) = std::env::var_os("MOTO_SERVER_BIN").filter(|v| !v.is_empty()) {
            let bin = PathBuf::from(bin);
            if bin.is_file() {
                return Ok(bin);
            }
            bail!("MOTO_SERVER_BIN={} is not a file; {INSTALL_HINT}", bin.display());
        }
        let mut starts: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
            starts.push(PathBuf::from(dir));
        }
        starts.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")));
        for start in &starts {
            for dir in start.ancestors() {
                let candidate = dir.join(".venv").join("bin").join("moto_server");
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let candidate = dir.join("moto_server");
                if candidate.is_file() {
                    return Ok(candidate);
                }
            }
        }
        bail!(
            "moto_server not found (looked at $MOTO_SERVER_BIN, .venv/bin/moto_server in {} and the folders above, and PATH); {INSTALL_HINT}",
            starts.first().map(|p| p.display().to_string()).unwrap_or_default()
        )
    }

    /// Starts a new `moto_server` on a free port of `127.0.0.1` and waits until it answers.
    pub fn start() -> anyhow::Result<Self> {
        let bin = Self::find_binary()?;
        let mut last_error = None;
        // A port found free can be taken before moto binds it: try a few.
        for _ in 0..3 {
            let port = free_port()?;
            match Self::start_on(&bin, port) {
                Ok(server) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    /// A server shared by everyone holding the returned handle: started if none is running, killed when
    /// the last handle is dropped. Tests in one binary can share it and create one pool each.
    pub fn shared() -> anyhow::Result<Arc<Self>> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(server) = slot.upgrade() {
            if server.is_running() {
                return Ok(server);
            }
        }
        let server = Arc::new(Self::start()?);
        *slot = Arc::downgrade(&server);
        Ok(server)
    }

    fn start_on(bin: &Path, port: u16) -> anyhow::Result<Self> {
        let log_path = std::env::temp_dir().join(format!("moto-server-{}-{port}.log", std::process::id()));
        let log = std::fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let port_arg = port.to_string();
        let mut command = match python_of(bin) {
            Some(python) => {
                // Watchdog: stdin is a pipe only this process holds; when it closes (we exit or die), so
                // does moto.
                let script = format!(
                    "import os, sys, threading\n\
                     def _watch():\n    try:\n        sys.stdin.buffer.read()\n    finally:\n        os._exit(0)\n\
                     threading.Thread(target=_watch, daemon=True).start()\n\
                     from moto.server import main\n\
                     sys.exit(main(['-H', '127.0.0.1', '-p', '{port_arg}']))\n"
                );
                let mut c = Command::new(python);
                c.arg("-c").arg(script);
                c
            }
            None => {
                let mut c = Command::new(bin);
                c.args(["-H", "127.0.0.1", "-p", &port_arg]);
                c
            }
        };
        // moto checks TOTP codes (`VerifySoftwareToken`, `SOFTWARE_TOKEN_MFA`) only with this set; its
        // secret is one fixed value for every user and a code may be replayed (no used-code check).
        command.env("MOTO_COGNITO_IDP_USER_POOL_ENABLE_TOTP", "true");
        let child = command
            .stdin(Stdio::piped())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}; {INSTALL_HINT}", bin.display()))?;
        let server = Self {
            child: Mutex::new(child),
            endpoint: format!("http://127.0.0.1:{port}"),
            log_path,
        };
        server.wait_ready(port)?;
        Ok(server)
    }

    fn wait_ready(&self, port: u16) -> anyhow::Result<()> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        loop {
            if let Some(status) = self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait()? {
                bail!("moto_server exited ({status}) before answering: {}", self.log_tail());
            }
            // Our own child must have bound the port (werkzeug logs "Running on …"): another test process
            // may have picked the same free port a moment earlier, and its server would answer too.
            let bound = std::fs::read_to_string(&self.log_path)
                .map(|log| log.contains(&format!("Running on http://127.0.0.1:{port}")))
                .unwrap_or(false);
            if bound && answers_http(addr) {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "moto_server did not answer on {addr} within {STARTUP_TIMEOUT:?}: {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(5)..].join(" | ")
    }

    fn is_running(&self) -> bool {
        matches!(
            self.child.lock().unwrap_or_else(|e| e.into_inner()).try_wait(),
            Ok(None)
        )
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// An SDK client for this server in `region`: dummy static credentials (`test`/`test`), the endpoint
    /// set to moto, short timeouts and no retries (so a test sees exactly one call per request).
    pub fn sdk_client(&self, region: &str) -> Client {
        let config = aws_sdk_cognitoidentityprovider::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(Credentials::new("test", "test", None, None, "moto"))
            .timeout_config(
                aws_sdk_cognitoidentityprovider::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .operation_timeout(Duration::from_secs(15))
                    .build(),
            )
            .retry_config(aws_sdk_cognitoidentityprovider::config::retry::RetryConfig::disabled())
            .build();
        Client::from_conf(config)
    }

    /// Creates a user pool and an app client as `options` say, and returns a provider for them whose
    /// `jwks_url` is moto's `{endpoint}/{poolId}/.well-known/jwks.json` (the issuer stays AWS-style, as in
    /// the tokens moto signs).
    pub async fn create_pool(&self, options: PoolOptions) -> anyhow::Result<MotoPool> {
        let client = self.sdk_client(&options.region);
        let name = options.name.clone().unwrap_or_else(|| {
            format!(
                "pool-{}-{}",
                std::process::id(),
                POOL_COUNTER.fetch_add(1, Ordering::Relaxed)
            )
        });
        let mut create = client
            .create_user_pool()
            .pool_name(name)
            .policies(
                UserPoolPolicyType::builder()
                    .password_policy(
                        PasswordPolicyType::builder()
                            .minimum_length(8)
                            .require_uppercase(true)
                            .require_lowercase(true)
                            .require_numbers(true)
                            .require_symbols(true)
                            .temporary_password_validity_days(options.temporary_password_validity_days)
                            .build(),
                    )
                    .build(),
            )
            .username_configuration(
                UsernameConfigurationType::builder()
                    .case_sensitive(options.case_sensitive)
                    .build()?,
            );
        let mut admin_config =
            AdminCreateUserConfigType::builder().allow_admin_create_user_only(options.allow_admin_create_user_only);
        if let Some(message) = &options.invite_email_message {
            admin_config = admin_config.invite_message_template(
                MessageTemplateType::builder()
                    .email_message(message)
                    .email_subject("Your admin invitation")
                    .sms_message(message)
                    .build(),
            );
        }
        create = create.admin_create_user_config(admin_config.build());
        create = create.email_configuration(if options.ses_sender {
            EmailConfigurationType::builder()
                .email_sending_account(EmailSendingAccountType::Developer)
                .source_arn(format!(
                    "arn:aws:ses:{}:123456789012:identity/noreply@example.com",
                    options.region
                ))
                .from("noreply@example.com")
                .build()
        } else {
            EmailConfigurationType::builder()
                .email_sending_account(EmailSendingAccountType::CognitoDefault)
                .build()
        });
        if options.email_as_username {
            create = create.username_attributes(UsernameAttributeType::Email);
        }
        let pool = create.send().await.context("moto CreateUserPool")?;
        let user_pool_id = pool
            .user_pool()
            .and_then(|p| p.id())
            .context("CreateUserPool returned no id")?
            .to_string();

        let mut flows = vec![
            ExplicitAuthFlowsType::AllowRefreshTokenAuth,
            ExplicitAuthFlowsType::AllowUserSrpAuth,
        ];
        if options.allow_user_password_auth {
            flows.push(ExplicitAuthFlowsType::AllowUserPasswordAuth);
        }
        let app = client
            .create_user_pool_client()
            .user_pool_id(&user_pool_id)
            .client_name("admin-provisioner")
            .generate_secret(options.generate_secret)
            .set_explicit_auth_flows(Some(flows))
            .send()
            .await
            .context("moto CreateUserPoolClient")?;
        let app = app
            .user_pool_client()
            .context("CreateUserPoolClient returned no client")?;
        let client_id = app
            .client_id()
            .context("CreateUserPoolClient returned no id")?
            .to_string();
        let client_secret = app.client_secret().map(str::to_string);

        let config = CognitoConfig {
            user_pool_id: user_pool_id.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret
                .as_deref()
                .map(admin_provisioner_core::domain::Secret::new),
            region: options.region.clone(),
            endpoint_url: Some(self.endpoint.clone()),
            issuer: None,
            jwks_url: Some(format!("{}/{user_pool_id}/.well-known/jwks.json", self.endpoint)),
            call_timeout: Duration::from_secs(15),
            connect_timeout: Duration::from_secs(3),
        };
        let provider = CognitoIdentityProvider::from_client(client, config);
        Ok(MotoPool {
            user_pool_id,
            client_id,
            client_secret,
            provider,
        })
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

/// How [`MotoServer::create_pool`] sets up a pool. The [`Default`] is a pool the whole flow works with
/// (and on which `doctor::check` with 7 invite days reports no blocking finding).
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Pool name; default unique per process.
    pub name: Option<String>,
    /// Region (the pool id's prefix); default `us-east-1`.
    pub region: String,
    /// `UsernameAttributes=[email]`: the username Cognito returns is a UUID (= `sub`). Default false.
    pub email_as_username: bool,
    /// `Policies.PasswordPolicy.TemporaryPasswordValidityDays`; default 7.
    pub temporary_password_validity_days: i32,
    /// `AdminCreateUserConfig.InviteMessageTemplate.EmailMessage`; default [`DEFAULT_INVITE_EMAIL`];
    /// `None` leaves the pool's default.
    pub invite_email_message: Option<String>,
    /// Whether the app client allows `ALLOW_USER_PASSWORD_AUTH`; default true.
    pub allow_user_password_auth: bool,
    /// Whether the app client has a secret (then `SECRET_HASH` is sent); default false.
    pub generate_secret: bool,
    /// `EmailSendingAccount=DEVELOPER` with an SES identity (true, default) or `COGNITO_DEFAULT` (false).
    pub ses_sender: bool,
    /// `UsernameConfiguration.CaseSensitive`; default false.
    pub case_sensitive: bool,
    /// `AdminCreateUserConfig.AllowAdminCreateUserOnly`; default true.
    pub allow_admin_create_user_only: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            name: None,
            region: crate::DEFAULT_REGION.to_string(),
            email_as_username: false,
            temporary_password_validity_days: 7,
            invite_email_message: Some(DEFAULT_INVITE_EMAIL.to_string()),
            allow_user_password_auth: true,
            generate_secret: false,
            ses_sender: true,
            case_sensitive: false,
            allow_admin_create_user_only: true,
        }
    }
}

impl PoolOptions {
    /// A pool with e-mail addresses as usernames (`UsernameAttributes=[email]`), otherwise the default.
    pub fn email_as_username() -> Self {
        Self {
            email_as_username: true,
            ..Self::default()
        }
    }

    /// A pool with everything `doctor::check` complains about: no `ALLOW_USER_PASSWORD_AUTH`,
    /// `TemporaryPasswordValidityDays=3`, an invitation without `{####}`, Cognito's default e-mail
    /// sender, case-sensitive usernames and self sign-up allowed.
    pub fn misconfigured() -> Self {
        Self {
            temporary_password_validity_days: 3,
            invite_email_message: Some("Welcome {username}! Ask your colleague for the password.".to_string()),
            allow_user_password_auth: false,
            ses_sender: false,
            case_sensitive: true,
            allow_admin_create_user_only: false,
            ..Self::default()
        }
    }
}

/// A pool and app client created in moto, with a provider bound to them.
#[derive(Clone, Debug)]
pub struct MotoPool {
    /// The pool id, `{region}_{id}`.
    pub user_pool_id: String,
    /// The app client id.
    pub client_id: String,
    /// The app client's secret, when [`PoolOptions::generate_secret`] was set.
    pub client_secret: Option<String>,
    /// The adapter for this pool (`from_client` with a moto-bound SDK client; see
    /// [`MotoServer::sdk_client`]).
    pub provider: CognitoIdentityProvider,
}

impl MotoPool {
    /// The environment that points the `admin-provisioner` binary (or `CognitoIdentityProvider::new`)
    /// at this pool: dummy AWS credentials, region, endpoint, pool, client (and secret), JWKS URL.
    pub fn env_vars(&self) -> Vec<(String, String)> {
        let config = self.provider.config();
        let mut vars = vec![
            ("AWS_ACCESS_KEY_ID".to_string(), "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "test".to_string()),
            ("AWS_REGION".to_string(), config.region.clone()),
            (
                "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER".to_string(),
                config.endpoint_url.clone().unwrap_or_default(),
            ),
            ("COGNITO_USER_POOL_ID".to_string(), self.user_pool_id.clone()),
            ("COGNITO_CLIENT_ID".to_string(), self.client_id.clone()),
            ("COGNITO_JWKS_URL".to_string(), config.effective_jwks_url()),
        ];
        if let Some(secret) = &self.client_secret {
            vars.push(("COGNITO_CLIENT_SECRET".to_string(), secret.clone()));
        }
        vars
    }

    /// `InitiateAuth` with `REFRESH_TOKEN_AUTH` on this pool's app client (the product's port has no
    /// refresh call): `Ok`, or the error code moto answered (`NotAuthorizedException` for a revoked token).
    pub async fn refresh(&self, refresh_token: &str) -> Result<(), String> {
        use aws_sdk_cognitoidentityprovider::error::ProvideErrorMetadata;
        self.provider
            .client()
            .initiate_auth()
            .client_id(&self.client_id)
            .auth_flow(aws_sdk_cognitoidentityprovider::types::AuthFlowType::RefreshTokenAuth)
            .auth_parameters("REFRESH_TOKEN", refresh_token)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.code().unwrap_or("unknown").to_string())
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// True when something on `addr` answers an HTTP request.
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(b"GET /moto-api/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 5];
    stream.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// The interpreter of a Python script (from its `#!` line), if `bin` is one and the interpreter exists.
fn python_of(bin: &Path) -> Option<PathBuf> {
    let mut first = [0u8; 256];
    let n = std::fs::File::open(bin).ok()?.read(&mut first).ok()?;
    let line = std::str::from_utf8(&first[..n]).ok()?.lines().next()?;
    let interp = line.strip_prefix("#!")?.trim();
    // `#!/usr/bin/env python3` is resolved through PATH; a direct path must exist.
    let mut parts = interp.split_whitespace();
    let program = parts.next()?;
    let python = if program.ends_with("/env") {
        PathBuf::from(parts.next()?)
    } else {
        PathBuf::from(program)
    };
    let name = python.file_name()?.to_string_lossy().to_string();
    if !name.starts_with("python") {
        return None;
    }
    if python.is_absolute() && !python.is_file() {
        return None;
    }
    Some(python)
}
