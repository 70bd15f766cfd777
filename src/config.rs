//! Configuration: environment variables, each also a command-line flag (flags win).
//!
//! The defaults run everything locally with no AWS account: an SQLite file in the working folder and the
//! built-in Cognito emulator. Setting `COGNITO_USER_POOL_ID` switches to real Cognito (credentials from the
//! standard AWS chain, never from a file in the repository); a `postgres://` `DATABASE_URL` switches to
//! PostgreSQL.

use clap::Args;
use std::path::PathBuf;

/// Every setting of the product. See the README's table for the meaning of each.
#[derive(Args, Clone, Debug)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://admin-provisioner.db",
        global = true
    )]
    pub database_url: String,

    /// PostgreSQL only: the schema holding every table of the product and its migration history.
    #[arg(long, env = "DATABASE_SCHEMA", default_value = "admin_provisioner", global = true)]
    pub database_schema: String,

    /// Where `serve` POSTs each lifecycle event (Standard Webhooks); unset = no webhooks.
    #[arg(long, env = "WEBHOOK_URL", global = true)]
    pub webhook_url: Option<String>,

    /// The webhook signing secret, `whsec_` + base64 (Standard Webhooks). Never logged.
    #[arg(long, env = "WEBHOOK_SECRET", global = true, hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// Timeout of one webhook request, in seconds (a delivery lease lasts this plus 5 s).
    #[arg(long, env = "WEBHOOK_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub webhook_timeout_secs: u64,

    /// Cognito user pool id; unset = the built-in Cognito emulator.
    #[arg(long, env = "COGNITO_USER_POOL_ID", global = true)]
    pub cognito_user_pool_id: Option<String>,

    /// App client used for login and the password challenge (default: the emulator's).
    #[arg(long, env = "COGNITO_CLIENT_ID", global = true)]
    pub cognito_client_id: Option<String>,

    /// App client secret, only if the client has one (then SECRET_HASH is sent). Never logged.
    #[arg(long, env = "COGNITO_CLIENT_SECRET", global = true, hide_env_values = true)]
    pub cognito_client_secret: Option<String>,

    /// Region of the pool.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1", global = true)]
    pub aws_region: String,

    /// Standard AWS SDK endpoint override for Cognito (e.g. a local emulator such as moto).
    #[arg(long, env = "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", global = true)]
    pub cognito_endpoint_url: Option<String>,

    /// Expected `iss` of tokens (default `https://cognito-idp.{region}.amazonaws.com/{pool}`).
    #[arg(long, env = "COGNITO_ISSUER", global = true)]
    pub cognito_issuer: Option<String>,

    /// Where signing keys are fetched (default `{issuer}/.well-known/jwks.json`).
    #[arg(long, env = "COGNITO_JWKS_URL", global = true)]
    pub cognito_jwks_url: Option<String>,

    /// HTTP listen address.
    #[arg(long, env = "BIND_ADDR", default_value = "127.0.0.1:8080", global = true)]
    pub bind_addr: String,

    /// Days a temporary password stays valid; must equal the pool's TemporaryPasswordValidityDays.
    #[arg(long, env = "INVITE_VALIDITY_DAYS", default_value_t = 7, global = true)]
    pub invite_validity_days: u32,

    /// Built-in emulator only: where invitation e-mails are delivered (one `.eml` file each).
    #[arg(long, env = "MAILBOX_DIR", default_value = "./mailbox", global = true)]
    pub mailbox_dir: PathBuf,

    /// Built-in emulator only: the SQLite file that keeps the emulator's users and signing key across
    /// restarts (shared by the server and CLI runs).
    #[arg(
        long,
        env = "COGNITO_EMULATOR_STATE",
        default_value = "./cognito-emulator.db",
        global = true
    )]
    pub emulator_state: PathBuf,

    /// Built-in emulator only: where `serve` (and `admin-provisioner emulator`) answer Cognito's JSON wire
    /// protocol, so an application's AWS SDK, the AWS CLI and JWT verifiers can use the emulator; `host:port`
    /// or `off`. Unset = `127.0.0.1:9229` (cognito-local's port; `serve` goes on without it, with a warning,
    /// when that port is taken). Tokens then carry `iss = http://<this address>/<pool id>` unless
    /// `COGNITO_ISSUER` says otherwise. A non-loopback address needs `EMULATOR_ALLOW_REMOTE=true`.
    #[arg(long, env = "COGNITO_EMULATOR_ADDR", global = true)]
    pub cognito_emulator_addr: Option<String>,

    /// Seconds between two invitations to the same admin.
    #[arg(long, env = "RESEND_COOLDOWN_SECS", default_value_t = 60, global = true)]
    pub resend_cooldown_secs: u64,

    /// Timeout of each Cognito or database call, in seconds.
    #[arg(long, env = "CALL_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub call_timeout_secs: u64,

    /// Comma-separated `Host` names (optionally `name:port`) the server answers; any other `Host` gets
    /// `421 misdirected_request` (DNS-rebinding defence). Unset = the bind address, `localhost` and
    /// `127.0.0.1` (with and without the port). `*` disables the check (only behind a proxy that checks).
    #[arg(long, env = "ALLOWED_HOSTS", global = true, value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Header that carries the client address when a trusted reverse proxy sets it (for example
    /// `x-forwarded-for`: its right-most entry is used). Unset = the TCP peer address; never trust a header
    /// a client can set directly.
    #[arg(long, env = "TRUSTED_PROXY_HEADER", global = true)]
    pub trusted_proxy_header: Option<String>,

    /// Built-in emulator only: allow a non-loopback `BIND_ADDR`. The emulator's mailbox page shows every
    /// temporary password to whoever reaches the port, so `serve` refuses that without this flag.
    #[arg(long, env = "EMULATOR_ALLOW_REMOTE", default_value_t = false, global = true)]
    pub emulator_allow_remote: bool,

    /// Built-in emulator only: the pool's `MfaConfiguration`, `off` (default), `optional` or `on`
    /// (software-token MFA, RFC 6238 TOTP).
    #[arg(long, env = "COGNITO_EMULATOR_MFA", default_value = "off", global = true)]
    pub cognito_emulator_mfa: String,

    /// Every admin must enrol an authenticator: until they do, every request but the enrolment answers
    /// 403 `mfa_enrollment_required`. For pools with `MfaConfiguration=OPTIONAL` (`ON` enforces MFA at
    /// sign-in by itself).
    #[arg(long, env = "REQUIRE_MFA", default_value_t = false, global = true)]
    pub require_mfa: bool,

    /// The issuer label authenticator apps show next to the account.
    #[arg(long, env = "MFA_ISSUER", default_value = "admin-provisioner", global = true)]
    pub mfa_issuer: String,

    /// Mirror each admin's role into a Cognito group named `COGNITO_GROUP_PREFIX` + role (created if
    /// missing), so that tokens carry it in `cognito:groups`.
    #[arg(long, env = "COGNITO_ROLE_GROUPS", default_value_t = false, global = true)]
    pub cognito_role_groups: bool,

    /// The prefix of the role groups (`COGNITO_ROLE_GROUPS=true`): groups `<prefix>owner`,
    /// `<prefix>admin`, `<prefix>viewer`.
    #[arg(
        long,
        env = "COGNITO_GROUP_PREFIX",
        default_value = "admin-provisioner-",
        global = true
    )]
    pub cognito_group_prefix: String,

    /// Login and new-password attempts allowed per e-mail and per client address per minute (burst; one
    /// more becomes available every `60 / n` seconds). 0 disables the limit.
    #[arg(long, env = "AUTH_RATE_LIMIT_PER_MINUTE", default_value_t = 10, global = true)]
    pub auth_rate_limit_per_minute: u32,

    /// Admin creations and invitation resends allowed per calling admin per minute. 0 disables the limit.
    #[arg(long, env = "ADMIN_RATE_LIMIT_PER_MINUTE", default_value_t = 30, global = true)]
    pub admin_rate_limit_per_minute: u32,

    /// Seconds a client has to send a request's headers (also the keep-alive idle time between requests).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub header_read_timeout_secs: u64,

    /// Seconds a request may take from its headers to the end of the answer (a body sent slowly included).
    #[arg(long, env = "REQUEST_TIMEOUT_SECS", default_value_t = 60, global = true)]
    pub request_timeout_secs: u64,

    /// Seconds a request body may take to arrive in full, counted from the end of its headers; a body still
    /// incomplete then is answered `408 request_timeout` and its connection closed (a body of at most 64 KiB
    /// in 10 s is a floor of 6.4 KiB/s).
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub body_read_timeout_secs: u64,

    /// Most simultaneous connections; a connection beyond them is answered `503 too_many_connections` at
    /// once and closed.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 512, global = true)]
    pub max_connections: usize,

    /// Most simultaneous connections from one client address (the TCP peer; IPv6 by /64 prefix); one more
    /// is answered `503 too_many_connections` at once and closed. 0 = no per-address limit (behind a
    /// reverse proxy every connection comes from the proxy).
    #[arg(long, env = "MAX_CONNECTIONS_PER_CLIENT", default_value_t = 64, global = true)]
    pub max_connections_per_client: usize,

    /// Seconds graceful shutdown waits for in-flight requests before closing their connections.
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10, global = true)]
    pub shutdown_grace_secs: u64,
    /// Seconds between two background reconciliation runs in `serve` (0 = off).
    #[arg(long, env = "RECONCILE_INTERVAL_SECS", default_value_t = 3600, global = true)]
    pub reconcile_interval_secs: u64,
    /// How long a running saga holds its row without renewing it, in seconds (renewed every third of
    /// it; recovery in any process takes over only expired leases). Must exceed the longest step.
    #[arg(long, env = "SAGA_LEASE_SECS", default_value_t = 60, global = true)]
    pub saga_lease_secs: u64,

    /// Key of the console's cookies (session, first-login challenge, flash), which are encrypted and
    /// authenticated with it, and of its CSRF tokens: at least 64 random bytes as base64 or hex
    /// (`openssl rand -base64 64`). Give every replica behind a load balancer the same key. Unset: a random
    /// key per process (sessions end at a restart and are not shared between replicas). Never logged.
    #[arg(long, env = "CONSOLE_COOKIE_KEY", global = true, hide_env_values = true)]
    pub console_cookie_key: Option<String>,
}

impl Config {
    /// The embedded defaults with every file inside `dir`: an SQLite database, the emulator's state and
    /// its mailbox (used by `demo` and by tests; nothing is read from the environment).
    pub fn embedded_in(dir: &std::path::Path) -> Self {
        Self {
            database_url: format!("sqlite://{}", dir.join("admin-provisioner.db").display()),
            database_schema: "admin_provisioner".into(),
            webhook_url: None,
            webhook_secret: None,
            webhook_timeout_secs: 10,
            cognito_user_pool_id: None,
            cognito_client_id: None,
            cognito_client_secret: None,
            aws_region: "us-east-1".into(),
            cognito_endpoint_url: None,
            cognito_issuer: None,
            cognito_jwks_url: None,
            bind_addr: "127.0.0.1:0".into(),
            invite_validity_days: 7,
            mailbox_dir: dir.join("mailbox"),
            emulator_state: dir.join("cognito-emulator.db"),
            cognito_emulator_addr: Some("off".into()),
            resend_cooldown_secs: 60,
            call_timeout_secs: 10,
            allowed_hosts: Vec::new(),
            trusted_proxy_header: None,
            emulator_allow_remote: false,
            cognito_emulator_mfa: "off".into(),
            require_mfa: false,
            mfa_issuer: "admin-provisioner".into(),
            cognito_role_groups: false,
            cognito_group_prefix: "admin-provisioner-".into(),
            auth_rate_limit_per_minute: 10,
            admin_rate_limit_per_minute: 30,
            header_read_timeout_secs: 10,
            request_timeout_secs: 60,
            body_read_timeout_secs: 10,
            max_connections: 512,
            max_connections_per_client: 64,
            shutdown_grace_secs: 10,
            reconcile_interval_secs: 0,
            saga_lease_secs: 60,
            console_cookie_key: None,
        }
    }

    /// The role groups' prefix when roles are mirrored into Cognito groups (`COGNITO_ROLE_GROUPS=true`),
    /// checked: a group name is 1–128 characters without whitespace or control characters.
    pub fn role_groups(&self) -> Result<Option<String>, String> {
        if !self.cognito_role_groups {
            return Ok(None);
        }
        let prefix = &self.cognito_group_prefix;
        let longest = prefix.chars().count() + "viewer".len();
        if longest > 128 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "COGNITO_GROUP_PREFIX={prefix:?} cannot name Cognito groups: a group name is at most 128 characters \
                 (prefix + role) without spaces or control characters"
            ));
        }
        Ok(Some(prefix.clone()))
    }

    /// True when the built-in emulator is used.
    pub fn uses_emulator(&self) -> bool {
        self.cognito_user_pool_id.is_none()
    }

    /// The emulator's wire address (`COGNITO_EMULATOR_ADDR`, default `127.0.0.1:9229`), or `None` when it
    /// is `off` or real Cognito is used.
    pub fn emulator_wire_addr(&self) -> Option<String> {
        if !self.uses_emulator() {
            return None;
        }
        match self.cognito_emulator_addr.as_deref().map(str::trim) {
            None | Some("") => Some(admin_provisioner_emulator::wire::DEFAULT_ADDR.to_string()),
            Some(a) if a.eq_ignore_ascii_case("off") => None,
            Some(a) => Some(a.to_string()),
        }
    }

    /// The issuer of the built-in emulator's tokens: `COGNITO_ISSUER`, else `http://<wire address>/<pool
    /// id>` while the wire endpoint is on (its `.well-known` documents are beside it), else `None`
    /// (Cognito's AWS-style URL).
    pub fn emulator_issuer(&self) -> Option<String> {
        if let Some(iss) = &self.cognito_issuer {
            return Some(iss.clone());
        }
        self.emulator_wire_addr()
            .map(|addr| format!("http://{addr}/{}", admin_provisioner_emulator::DEFAULT_POOL_ID))
    }

    /// The `Host` names the server answers (lower-cased; an entry without a port matches any port), or
    /// `None` when `ALLOWED_HOSTS` is `*`.
    pub fn host_allowlist(&self) -> Option<Vec<String>> {
        let configured: Vec<String> = self
            .allowed_hosts
            .iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| !h.is_empty())
            .collect();
        if configured.iter().any(|h| h == "*") {
            return None;
        }
        if !configured.is_empty() {
            return Some(configured);
        }
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".to_string(), "[::1]".to_string()];
        let bind_host = self
            .bind_addr
            .parse::<std::net::SocketAddr>()
            .map(|a| match a.ip() {
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            })
            .unwrap_or_else(|_| {
                let s = self.bind_addr.as_str();
                s.rsplit_once(':').map_or(s, |(h, _)| h).to_ascii_lowercase()
            });
        if !bind_host.is_empty() && bind_host != "0.0.0.0" && bind_host != "[::]" {
            hosts.push(bind_host);
        }
        Some(hosts)
    }
}
