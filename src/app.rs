//! Wiring: turns a [`Config`] into a ready [`Provisioner`] with the right adapters.
//!
//! This is the only place that knows which adapters exist: SQLite or PostgreSQL by the scheme of
//! `DATABASE_URL`; the built-in emulator or AWS Cognito by whether `COGNITO_USER_POOL_ID` is set. Start-up
//! validation happens here, with one-line errors a person can act on.

use crate::config::Config;
use admin_provisioner_core::clock::{Clock, SystemClock};
use admin_provisioner_core::domain::Secret;
#[cfg(feature = "testing")]
use admin_provisioner_core::faults::{FaultPlan, FaultyIdentityProvider, FaultyStore};
use admin_provisioner_core::identity::IdentityProvider;
use admin_provisioner_core::store::Store;
use admin_provisioner_core::{Observer, Provisioner, ProvisionerSettings};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig, EmulatorState};
use anyhow::{anyhow, Context};
use std::sync::Arc;
use std::time::Duration;

/// A wired application: configuration, orchestrator and, in emulator mode, the emulator itself.
#[derive(Clone)]
pub struct App {
    /// The configuration it was built from.
    pub config: Config,
    /// The orchestrator.
    pub provisioner: Provisioner,
    /// The built-in emulator, when `COGNITO_USER_POOL_ID` is unset (mailbox page, JWKS).
    pub emulator: Option<Arc<CognitoEmulator>>,
    /// The store (both ports).
    pub store: Arc<dyn Store>,
    /// The lifecycle events (outbox) and the webhook queue, over the store's database, with the feed
    /// that wakes long-polling readers.
    pub events: crate::events::Feed,
}

/// Optional test hooks for [`App::build_with`].
#[derive(Clone, Default)]
pub struct Hooks {
    /// Clock to use instead of the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// Fault plan wrapped around the identity provider and the store (test builds only: the product
    /// itself always runs on the real ports).
    #[cfg(feature = "testing")]
    pub faults: Option<Arc<FaultPlan>>,
    /// Saga tunables (timeouts, retries) instead of the defaults.
    pub settings: Option<ProvisionerSettings>,
    /// Metrics observer.
    pub observer: Option<Arc<dyn Observer>>,
}

impl App {
    /// Builds the application from its configuration.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with(config, Hooks::default()).await
    }

    /// Builds the application with test hooks.
    pub async fn build_with(config: Config, hooks: Hooks) -> anyhow::Result<Self> {
        let clock: Arc<dyn Clock> = hooks.clock.clone().unwrap_or_else(|| Arc::new(SystemClock));
        if config.invite_validity_days == 0 || config.invite_validity_days > 365 {
            return Err(anyhow!(
                "INVITE_VALIDITY_DAYS must be between 1 and 365 (Cognito's limit), got {}",
                config.invite_validity_days
            ));
        }
        let options = admin_provisioner_store::ConnectOptions {
            schema: config.database_schema.clone(),
        };
        let admin_provisioner_store::Connected { store, events } =
            admin_provisioner_store::connect_with_clock(&config.database_url, &options, clock.clone())
                .await
                .map_err(|e| anyhow!("database: {e}"))?;

        let (idp, emulator): (Arc<dyn IdentityProvider>, Option<Arc<CognitoEmulator>>) =
            match &config.cognito_user_pool_id {
                None => {
                    let ec = emulator_config(&config, clock.clone())?;
                    let emu = Arc::new(CognitoEmulator::open(ec).await.with_context(|| {
                        format!(
                            "cannot open the Cognito emulator state at {}",
                            config.emulator_state.display()
                        )
                    })?);
                    (emu.clone(), Some(emu))
                }
                Some(_) => {
                    let p = admin_provisioner_cognito::CognitoIdentityProvider::new(cognito_config(&config)?).await?;
                    (Arc::new(p), None)
                }
            };

        #[cfg(feature = "testing")]
        let (idp, store): (Arc<dyn IdentityProvider>, Arc<dyn Store>) = match &hooks.faults {
            Some(plan) => (
                Arc::new(FaultyIdentityProvider::new(idp, plan.clone())),
                Arc::new(FaultyStore::new(store, plan.clone())),
            ),
            None => (idp, store),
        };

        let role_groups = config.role_groups().map_err(|e| anyhow!(e))?;
        let settings = hooks.settings.clone().unwrap_or_else(|| ProvisionerSettings {
            invite_validity_days: config.invite_validity_days,
            call_timeout: Duration::from_secs(config.call_timeout_secs),
            resend_cooldown: Duration::from_secs(config.resend_cooldown_secs),
            lease_ttl: Duration::from_secs(config.saga_lease_secs),
            admin_actions_per_minute: config.admin_rate_limit_per_minute,
            require_mfa: config.require_mfa,
            mfa_issuer: config.mfa_issuer.clone(),
            role_groups,
            ..ProvisionerSettings::default()
        });
        // A step that could outlive its lease would let recovery race a saga that is still working.
        settings.validate().map_err(|e| anyhow!("{e}"))?;
        let mut provisioner = Provisioner::new(idp, store.clone(), clock, settings);
        if let Some(obs) = hooks.observer.clone() {
            provisioner = provisioner.with_observer(obs);
        }
        Ok(Self {
            config,
            provisioner,
            emulator,
            store,
            events: crate::events::Feed::new(events),
        })
    }

    /// Checks that the identity provider answers (start-up validation and `/readyz`).
    pub async fn check_identity_provider(&self) -> anyhow::Result<()> {
        let idp = self.provisioner.identity_provider();
        match tokio::time::timeout(Duration::from_secs(5), idp.ping()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(anyhow!("identity provider ({}) unreachable: {e}", idp.kind())),
            Err(_) => Err(anyhow!("identity provider ({}) did not answer within 5 s", idp.kind())),
        }
    }
}

/// The AWS adapter's configuration from ours, with start-up validation: a malformed pool id or a missing
/// client id is a one-line error naming the variable.
pub fn cognito_config(config: &Config) -> anyhow::Result<admin_provisioner_cognito::CognitoConfig> {
    let pool = config
        .cognito_user_pool_id
        .clone()
        .ok_or_else(|| anyhow!("COGNITO_USER_POOL_ID is not set (without it the built-in emulator is used)"))?;
    admin_provisioner_cognito::validate_user_pool_id(&pool).map_err(|e| anyhow!("COGNITO_USER_POOL_ID: {e}"))?;
    let client_id = config
        .cognito_client_id
        .clone()
        .filter(|c| !c.trim().is_empty())
        .ok_or_else(|| anyhow!("COGNITO_CLIENT_ID is required when COGNITO_USER_POOL_ID is set"))?;
    Ok(admin_provisioner_cognito::CognitoConfig {
        user_pool_id: pool,
        client_id,
        client_secret: config.cognito_client_secret.clone().map(Secret::new),
        region: config.aws_region.clone(),
        endpoint_url: config.cognito_endpoint_url.clone(),
        issuer: config.cognito_issuer.clone(),
        jwks_url: config.cognito_jwks_url.clone(),
        call_timeout: Duration::from_secs(config.call_timeout_secs),
        connect_timeout: Duration::from_secs(3),
    })
}

/// The built-in emulator's configuration from ours: state file, mailbox, region, app client, issuer
/// ([`Config::emulator_issuer`]) and simulated quotas (shared by `serve`, the CLI and `emulator`).
pub fn emulator_config(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<EmulatorConfig> {
    let mut ec = EmulatorConfig::file(&config.emulator_state, &config.mailbox_dir);
    ec.region = config.aws_region.clone();
    ec.invite_validity_days = config.invite_validity_days;
    ec.clock = clock;
    ec.simulation = admin_provisioner_emulator::simulation::Simulation::from_env().map_err(|e| anyhow!(e))?;
    if let Some(client) = &config.cognito_client_id {
        ec.client_id = client.clone();
    }
    ec.issuer = config.emulator_issuer();
    ec.mfa =
        admin_provisioner_emulator::MfaConfiguration::parse(&config.cognito_emulator_mfa).map_err(|e| anyhow!(e))?;
    Ok(ec)
}

/// An emulator configuration that keeps nothing on disk except the mailbox (for `demo` and tests).
pub fn in_memory_emulator(mailbox: &std::path::Path, clock: Arc<dyn Clock>) -> EmulatorConfig {
    let mut ec = EmulatorConfig::in_memory(mailbox);
    ec.state = EmulatorState::InMemory;
    ec.clock = clock;
    ec
}
