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

    /// Seconds between two invitations to the same admin.
    #[arg(long, env = "RESEND_COOLDOWN_SECS", default_value_t = 60, global = true)]
    pub resend_cooldown_secs: u64,

    /// Timeout of each Cognito or database call, in seconds.
    #[arg(long, env = "CALL_TIMEOUT_SECS", default_value_t = 10, global = true)]
    pub call_timeout_secs: u64,

    /// How long a running saga holds its row without renewing it, in seconds (renewed every third of
    /// it; recovery in any process takes over only expired leases). Must exceed the longest step.
    #[arg(long, env = "SAGA_LEASE_SECS", default_value_t = 60, global = true)]
    pub saga_lease_secs: u64,
}

impl Config {
    /// The embedded defaults with every file inside `dir`: an SQLite database, the emulator's state and
    /// its mailbox (used by `demo` and by tests; nothing is read from the environment).
    pub fn embedded_in(dir: &std::path::Path) -> Self {
        Self {
            database_url: format!("sqlite://{}", dir.join("admin-provisioner.db").display()),
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
            resend_cooldown_secs: 60,
            call_timeout_secs: 10,
            saga_lease_secs: 60,
        }
    }

    /// True when the built-in emulator is used.
    pub fn uses_emulator(&self) -> bool {
        self.cognito_user_pool_id.is_none()
    }
}
