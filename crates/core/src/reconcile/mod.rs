//! The reconciler: finds drift between Cognito and the database, and repairs only what is safe.
//!
//! Sagas keep the two systems in step for what the product itself does. Everything else — a user deleted
//! in the AWS console, a password reset by a Cognito admin, a restored database backup, a script that wrote
//! to one side — creates drift that would otherwise go unseen until an admin cannot log in.
//!
//! # How it reads both sides
//!
//! 1. Every Cognito user is read with `ListUsers` (60 per page, every page), paced under Cognito's UserList
//!    quota ([`ReconcileSettings::list_users_per_second`], default 30) with exponential backoff on
//!    `TooManyRequests`. The users go through an external sort by username (runs of
//!    [`ReconcileSettings::sort_run_len`] spilled to anonymous temporary files), because Cognito's order is
//!    its own.
//! 2. The database's admins are streamed in the same order (byte order of `cognito_username`) by keyset
//!    pages of [`ReconcileSettings::db_page_size`] ([`ReconcileStore::admins_after_cognito_username`]).
//! 3. The two sorted streams are merged: a pair with the same username is compared (`sub`, status,
//!    `enabled`, `email`); a lone database admin is confirmed missing with `AdminGetUser` (strongly
//!    consistent: `ListUsers` is not, and the user may have been created during the scan) before it is
//!    called an orphan; a lone Cognito user is a ghost or foreign by the saga engine's ownership rule
//!    ([`Provisioner::identity_ownership`]).
//!
//! Memory is bounded by one sort run, one database page and the findings kept for the report
//! ([`ReconcileSettings::max_kept_findings`]; counts are always complete): never the whole pool or table.
//!
//! # What it reports ([`DriftKind`], each with a stable code)
//!
//! `ghost`, `orphan`, `relinked`, `status`, `email` and (with `COGNITO_ROLE_GROUPS=true`)
//! `role_group_mismatch` are drift; `foreign` is information only. Each
//! [`Finding`] carries the e-mail, the ids on both sides, a sentence a person understands and the command
//! or console action that fixes it.
//!
//! # What `--repair` does (and only this)
//!
//! * deletes a `ghost` when the saga log proves it is the product's own, its saga is finished, and it is
//!   still `FORCE_CHANGE_PASSWORD` — re-checked with `AdminGetUser` (same `sub`, same status) and against
//!   the database (no admin links its username or `sub`) right before the delete;
//! * marks `active` an `invited` admin whose Cognito user is `CONFIRMED` (re-checked with `AdminGetUser`);
//! * puts an admin's role groups back as the database says (`role_group_mismatch`: added to the group of
//!   their role, removed from the product's other role groups; groups of other names are never touched),
//!   re-checked right before (the admin's role read again, the user's groups listed again).
//!
//! Each repair is audited with actor `reconciler`. Nothing else is ever changed: the product never deletes
//! or re-attaches a Cognito user it did not create.

mod sort;

use crate::domain::{Actor, AdminRecord, UserStatus};
use crate::error::Error;
use crate::identity::{op as idp_op, IdentityProvider, IdpError, IdpUser, IdpUserStatus};
use crate::provisioner::{Ownership, Provisioner};
use crate::store::{AuditAction, AuditEntry, SagaState, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Cognito's largest `ListUsers` page.
pub const LIST_USERS_PAGE_SIZE: u32 = 60;

/// The database queries the reconciler needs beyond [`crate::store::AdminStore`].
#[async_trait]
pub trait ReconcileStore: Send + Sync + 'static {
    /// Up to `limit` admins whose `cognito_username` is greater than `after` (all when `None`), in byte
    /// order of `cognito_username` (PostgreSQL `COLLATE "C"`, SQLite `BINARY`): one keyset page.
    async fn admins_after_cognito_username(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError>;

    /// Takes or renews the lease `name` for `holder` until `now + ttl`. True when `holder` holds it now;
    /// false when another holder's lease has not expired. Serialises the background reconciler across
    /// replicas sharing one database.
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError>;

    /// Gives the lease up if `holder` holds it.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
}

/// The kinds of finding. Codes are stable (scripts and metrics use them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// A Cognito user the product created (its saga log proves it) with no database admin.
    Ghost,
    /// A database admin whose Cognito user is gone.
    Orphan,
    /// The admin's Cognito username exists, but with another `sub`: a different person.
    Relinked,
    /// Cognito's status and the database's disagree, or the Cognito user is disabled.
    Status,
    /// The Cognito `email` attribute no longer matches the database.
    Email,
    /// A Cognito user the product did not create and no admin links to: information only, never drift.
    Foreign,
    /// Roles mirrored into groups (`COGNITO_ROLE_GROUPS=true`): the admin's product-made Cognito groups
    /// differ from their database role (e.g. removed in the AWS console).
    RoleGroupMismatch,
}

impl DriftKind {
    /// Every kind, in report order.
    pub const ALL: [DriftKind; 7] = [
        DriftKind::Ghost,
        DriftKind::Orphan,
        DriftKind::Relinked,
        DriftKind::Status,
        DriftKind::Email,
        DriftKind::Foreign,
        DriftKind::RoleGroupMismatch,
    ];

    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            DriftKind::Ghost => "ghost",
            DriftKind::Orphan => "orphan",
            DriftKind::Relinked => "relinked",
            DriftKind::Status => "status",
            DriftKind::Email => "email",
            DriftKind::Foreign => "foreign",
            DriftKind::RoleGroupMismatch => "role_group_mismatch",
        }
    }

    /// False only for `foreign`.
    pub fn is_drift(&self) -> bool {
        *self != DriftKind::Foreign
    }
}

/// What happened to a finding's repair.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state", content = "detail")]
pub enum Repair {
    /// Not safe to repair automatically: a person acts on [`Finding::fix`].
    Manual,
    /// Safe; run with `--repair` to apply it.
    Available,
    /// Applied (and audited as `reconciler`).
    Applied,
    /// Attempted and refused or failed; the reason.
    Failed(String),
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The kind (`ghost`, `orphan`, …).
    pub kind: DriftKind,
    /// A stable, more precise code (e.g. `status_confirmed_not_recorded`).
    pub code: String,
    /// The admin's or Cognito user's e-mail.
    pub email: Option<String>,
    /// The database admin (`User.id`), if any.
    pub admin_id: Option<String>,
    /// The Cognito username the database links to.
    pub db_cognito_username: Option<String>,
    /// The `sub` the database links to.
    pub db_cognito_sub: Option<String>,
    /// The database status (`invited` / `active`).
    pub db_status: Option<String>,
    /// The Cognito user's username.
    pub cognito_username: Option<String>,
    /// The Cognito user's `sub`.
    pub cognito_sub: Option<String>,
    /// The Cognito `UserStatus`.
    pub cognito_status: Option<String>,
    /// Cognito `Enabled`.
    pub cognito_enabled: Option<bool>,
    /// What is wrong, for a person.
    pub message: String,
    /// The command or console action that fixes it.
    pub fix: String,
    /// The repair's state.
    pub repair: Repair,
}

impl Finding {
    fn new(kind: DriftKind, code: &str) -> Self {
        Self {
            kind,
            code: code.to_string(),
            email: None,
            admin_id: None,
            db_cognito_username: None,
            db_cognito_sub: None,
            db_status: None,
            cognito_username: None,
            cognito_sub: None,
            cognito_status: None,
            cognito_enabled: None,
            message: String::new(),
            fix: String::new(),
            repair: Repair::Manual,
        }
    }

    fn with_admin(mut self, a: &AdminRecord) -> Self {
        self.email = Some(a.user.email_normalized.clone());
        self.admin_id = Some(a.user.id.to_string());
        self.db_cognito_username = Some(a.user.cognito_username.clone());
        self.db_cognito_sub = Some(a.user.cognito_sub.clone());
        self.db_status = Some(a.user.status.as_str().to_string());
        self
    }

    fn with_user(mut self, u: &IdpUser) -> Self {
        if self.email.is_none() {
            self.email = u.email.as_ref().map(|e| e.to_lowercase());
        }
        self.cognito_username = Some(u.username.clone());
        self.cognito_sub = Some(u.sub.clone());
        self.cognito_status = Some(u.status.as_cognito().to_string());
        self.cognito_enabled = Some(u.enabled);
        self
    }

    fn says(mut self, message: String, fix: String) -> Self {
        self.message = message;
        self.fix = fix;
        self
    }

    /// True when this finding still needs attention after the run: drift that was not repaired.
    pub fn needs_attention(&self) -> bool {
        self.kind.is_drift() && self.repair != Repair::Applied
    }
}

/// Totals of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// When the run started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Wall time in seconds.
    pub seconds: f64,
    /// Of which reading every Cognito user (paced `ListUsers`) and sorting them, in seconds.
    pub cognito_read_seconds: f64,
    /// Whether repairs were allowed.
    pub repair: bool,
    /// Cognito users read.
    pub cognito_users: u64,
    /// Database admins read.
    pub database_admins: u64,
    /// `ListUsers` pages read.
    pub list_users_pages: u64,
    /// `TooManyRequests` answers waited out.
    pub throttled: u64,
    /// Findings per kind code (every kind present, zero included).
    pub counts: BTreeMap<String, u64>,
    /// Repairs applied.
    pub repaired: u64,
    /// Repairs attempted that failed or were refused on re-check.
    pub repair_failures: u64,
    /// Drift findings left after the run (not repaired): the exit status is 2 when this is not zero.
    pub needs_attention: u64,
    /// Findings not kept in [`Report::findings`] (beyond [`ReconcileSettings::max_kept_findings`]).
    pub findings_not_kept: u64,
}

/// The result of one run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Totals.
    pub summary: Summary,
    /// The findings, in username order (at most [`ReconcileSettings::max_kept_findings`]).
    pub findings: Vec<Finding>,
}

impl Report {
    /// True when nothing needs attention (foreign users do not count).
    pub fn is_clean(&self) -> bool {
        self.summary.needs_attention == 0
    }
}

/// Tunables of a run.
#[derive(Clone, Debug)]
pub struct ReconcileSettings {
    /// Apply the safe repairs.
    pub repair: bool,
    /// `ListUsers` calls per second at most (Cognito's UserList quota is 30 per account and region).
    pub list_users_per_second: f64,
    /// `Limit` of each `ListUsers` call (≤ 60).
    pub page_size: u32,
    /// Admins per database keyset page.
    pub db_page_size: i64,
    /// Cognito users held in memory before a sorted run is spilled to a temporary file.
    pub sort_run_len: usize,
    /// Where spilled runs go (default: the system's temporary folder).
    pub temp_dir: Option<PathBuf>,
    /// Findings kept in the [`Report`] (counts stay complete beyond it).
    pub max_kept_findings: usize,
    /// Attempts of one `ListUsers` page on `TooManyRequests` or another transient error.
    pub max_attempts: u32,
    /// First backoff delay after `TooManyRequests`; doubles per attempt.
    pub backoff_base: Duration,
    /// Largest backoff delay.
    pub backoff_max: Duration,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            repair: false,
            list_users_per_second: 30.0,
            page_size: LIST_USERS_PAGE_SIZE,
            db_page_size: 1000,
            sort_run_len: 100_000,
            temp_dir: None,
            max_kept_findings: 1000,
            max_attempts: 10,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(5),
        }
    }
}

/// Runs reconciliations over a [`Provisioner`]'s identity provider and store.
#[derive(Clone)]
pub struct Reconciler {
    provisioner: Provisioner,
    store: Arc<dyn ReconcileStore>,
    settings: ReconcileSettings,
}

/// Receives each finding as soon as it is known (the CLI prints it; the report keeps a bounded number).
pub type FindingSink<'a> = &'a mut (dyn FnMut(&Finding) + Send);

impl Reconciler {
    /// A reconciler over `provisioner`'s identity provider, admin store and saga log, with `store` for the
    /// keyset stream.
    pub fn new(provisioner: Provisioner, store: Arc<dyn ReconcileStore>, settings: ReconcileSettings) -> Self {
        Self {
            provisioner,
            store,
            settings,
        }
    }

    /// The settings.
    pub fn settings(&self) -> &ReconcileSettings {
        &self.settings
    }

    /// One full run; see the module docs. Errors: Cognito or the database cannot be read (after retries),
    /// or a temporary file cannot be written. A failed repair is not an error: it is recorded in its
    /// finding ([`Repair::Failed`]).
    #[tracing::instrument(skip_all, fields(repair = self.settings.repair))]
    pub async fn run(&self, sink: FindingSink<'_>) -> Result<Report, Error> {
        let started = Instant::now();
        let mut run = Run {
            r: self,
            report: Report::default(),
            sink,
        };
        run.report.summary.started_at = Some(self.provisioner.now());
        run.report.summary.repair = self.settings.repair;
        for kind in DriftKind::ALL {
            run.report.summary.counts.insert(kind.code().to_string(), 0);
        }

        let mut sorted = run.read_cognito().await?;
        run.report.summary.cognito_read_seconds = started.elapsed().as_secs_f64();
        let mut cognito = next_distinct(&mut sorted, None)?;
        let mut page: std::collections::VecDeque<AdminRecord> = Default::default();
        let mut after: Option<String> = None;
        let mut db_done = false;
        loop {
            if page.is_empty() && !db_done {
                let rows = self
                    .store
                    .admins_after_cognito_username(after.as_deref(), self.settings.db_page_size)
                    .await?;
                db_done = (rows.len() as i64) < self.settings.db_page_size;
                if let Some(last) = rows.last() {
                    after = Some(last.user.cognito_username.clone());
                }
                run.report.summary.database_admins += rows.len() as u64;
                page.extend(rows);
            }
            match (cognito.take(), page.front()) {
                (None, None) => break,
                (Some(c), Some(d)) if c.username == d.user.cognito_username => {
                    let d = page.pop_front().expect("front exists");
                    run.compare(&c, &d).await;
                    cognito = next_distinct(&mut sorted, Some(&c.username))?;
                }
                (Some(c), Some(d)) if c.username < d.user.cognito_username => {
                    run.lone_cognito_user(&c).await?;
                    cognito = next_distinct(&mut sorted, Some(&c.username))?;
                }
                (Some(c), None) => {
                    run.lone_cognito_user(&c).await?;
                    cognito = next_distinct(&mut sorted, Some(&c.username))?;
                }
                (c, Some(_)) => {
                    cognito = c;
                    let d = page.pop_front().expect("front exists");
                    run.lone_admin(&d).await?;
                }
            }
        }

        let mut report = run.report;
        report.summary.finished_at = Some(self.provisioner.now());
        report.summary.seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            cognito_users = report.summary.cognito_users,
            database_admins = report.summary.database_admins,
            needs_attention = report.summary.needs_attention,
            repaired = report.summary.repaired,
            seconds = report.summary.seconds,
            "reconcile finished"
        );
        Ok(report)
    }
}

impl Reconciler {
    fn idp(&self) -> &Arc<dyn IdentityProvider> {
        self.provisioner.identity_provider()
    }

    /// `AdminGetUser`, retried on transient errors; `None` for `UserNotFound`.
    async fn get_user(&self, username: &str) -> Result<Option<IdpUser>, Error> {
        let settings = &self.settings;
        let mut attempt = 0;
        loop {
            let call = self.idp().admin_get_user(username);
            let res = match tokio::time::timeout(self.provisioner.settings().call_timeout, call).await {
                Ok(r) => r,
                Err(_) => Err(IdpError::Timeout(idp_op::ADMIN_GET_USER.into())),
            };
            match res {
                Ok(u) => return Ok(Some(u)),
                Err(IdpError::UserNotFound) => return Ok(None),
                Err(e) if e.is_transient() && attempt + 1 < settings.max_attempts => {
                    attempt += 1;
                    let delay = settings
                        .backoff_base
                        .saturating_mul(1 << (attempt - 1).min(16))
                        .min(settings.backoff_max);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn audit(&self, action: AuditAction, target: &str, outcome: &str) -> AuditEntry {
        AuditEntry {
            actor: Actor::Reconciler,
            action,
            target: target.to_string(),
            outcome: outcome.to_string(),
            request_id: None,
            at: self.provisioner.now(),
        }
    }

    async fn repair_mark_active(&self, c: &IdpUser, d: &AdminRecord) -> Repair {
        match self.get_user(&c.username).await {
            Ok(Some(now)) if now.sub == d.user.cognito_sub && now.status == IdpUserStatus::Confirmed => {}
            Ok(_) => return Repair::Failed("the Cognito user changed since it was listed; not repaired".into()),
            Err(e) => return Repair::Failed(e.to_string()),
        }
        let audit = self.audit(
            AuditAction::ReconcileMarkActive,
            &d.user.email_normalized,
            "success: Cognito user CONFIRMED",
        );
        match self
            .provisioner
            .admin_store()
            .mark_accepted(d.user.id, self.provisioner.now(), audit)
            .await
        {
            Ok(_) => {
                tracing::info!(admin = %d.user.id, "reconciler marked the admin active");
                Repair::Applied
            }
            Err(e) => Repair::Failed(e.to_string()),
        }
    }

    /// Puts the admin's role groups back as the database says, after reading both again.
    async fn repair_role_groups(&self, d: &AdminRecord) -> Repair {
        let p = &self.provisioner;
        let now = match p.admin_store().get_admin(d.user.id).await {
            Ok(Some(now)) if now.user.cognito_sub == d.user.cognito_sub => now,
            Ok(_) => return Repair::Failed("the admin changed since it was read; not repaired".into()),
            Err(e) => return Repair::Failed(e.to_string()),
        };
        let role = now.admin_info.role;
        let Some(expected) = p.role_group(role) else {
            return Repair::Failed("roles are not mirrored into groups".into());
        };
        match p.product_groups_of(&now.user.cognito_username).await {
            Ok(groups) if groups == [expected.clone()] => {
                return Repair::Failed("the groups were put right meanwhile; nothing to do".into())
            }
            Ok(_) => {}
            Err(e) => return Repair::Failed(e.to_string()),
        }
        match p.set_role_group(&now.user.cognito_username, role).await {
            Ok((added, removed)) => {
                let audit = self.audit(
                    AuditAction::ReconcileRoleGroups,
                    &now.user.email_normalized,
                    &format!("success: role {role}; added to {added:?}, removed from {removed:?}"),
                );
                if let Err(e) = p.admin_store().append_audit(audit).await {
                    tracing::error!(error = %e, "role groups repaired but the audit event could not be written");
                }
                tracing::info!(admin = %now.user.id, ?added, ?removed, "reconciler repaired the role groups");
                Repair::Applied
            }
            Err(e) => Repair::Failed(e.to_string()),
        }
    }

    async fn repair_delete_ghost(&self, c: &IdpUser) -> Repair {
        // Re-check everything right before the delete: same user, still waiting for first login, still
        // linked to no admin, still the product's own.
        match self.get_user(&c.username).await {
            Ok(Some(now)) if now.sub == c.sub && now.status == IdpUserStatus::ForceChangePassword => {}
            Ok(_) => return Repair::Failed("the Cognito user changed since it was listed; not deleted".into()),
            Err(e) => return Repair::Failed(e.to_string()),
        }
        let admins = self.provisioner.admin_store();
        match (
            admins.find_admin_by_cognito_username(&c.username).await,
            admins.find_admin_by_cognito_sub(&c.sub).await,
        ) {
            (Ok(None), Ok(None)) => {}
            (Ok(_), Ok(_)) => return Repair::Failed("an admin links to this user now; not deleted".into()),
            (Err(e), _) | (_, Err(e)) => return Repair::Failed(e.to_string()),
        }
        match self.provisioner.identity_ownership(c).await {
            Ok(Ownership::Own { saga_state, .. }) if saga_state.is_terminal() => {}
            Ok(_) => return Repair::Failed("ownership is no longer proven; not deleted".into()),
            Err(e) => return Repair::Failed(e.to_string()),
        }
        let target = c
            .email
            .as_deref()
            .map(str::to_lowercase)
            .unwrap_or_else(|| c.username.clone());
        match self.idp().admin_delete_user(&c.username).await {
            Ok(()) | Err(IdpError::UserNotFound) => {
                let audit = self.audit(
                    AuditAction::ReconcileDeleteGhost,
                    &target,
                    &format!("success: deleted Cognito user {} (sub {})", c.username, c.sub),
                );
                if let Err(e) = self.provisioner.admin_store().append_audit(audit).await {
                    tracing::error!(error = %e, "ghost deleted but its audit event could not be written");
                }
                tracing::info!(username = %c.username, "reconciler deleted a ghost Cognito user");
                Repair::Applied
            }
            Err(e) => Repair::Failed(e.to_string()),
        }
    }
}

/// The next user of the sorted stream whose username differs from `previous` (a user listed twice
/// across pages is read once).
fn next_distinct(sorted: &mut sort::Sorted, previous: Option<&str>) -> Result<Option<IdpUser>, Error> {
    loop {
        match sorted.next_user().map_err(io_error)? {
            Some(u) if Some(u.username.as_str()) == previous => continue,
            other => return Ok(other),
        }
    }
}

fn io_error(e: std::io::Error) -> Error {
    Error::DatabaseUnavailable(format!("reconciler temporary file: {e}"))
}

/// The state of one run.
struct Run<'a, 's> {
    r: &'a Reconciler,
    report: Report,
    sink: FindingSink<'s>,
}

impl Run<'_, '_> {
    fn emit(&mut self, f: Finding) {
        let s = &mut self.report.summary;
        *s.counts.entry(f.kind.code().to_string()).or_default() += 1;
        match f.repair {
            Repair::Applied => s.repaired += 1,
            Repair::Failed(_) => s.repair_failures += 1,
            _ => {}
        }
        if f.needs_attention() {
            s.needs_attention += 1;
        }
        (self.sink)(&f);
        if self.report.findings.len() < self.r.settings.max_kept_findings {
            self.report.findings.push(f);
        } else {
            s.findings_not_kept += 1;
        }
    }

    /// Phase 1: every page of `ListUsers`, paced and retried, into the external sort.
    async fn read_cognito(&mut self) -> Result<sort::Sorted, Error> {
        let settings = &self.r.settings;
        let mut sorter = sort::ExternalSort::new(settings.sort_run_len, settings.temp_dir.clone());
        let interval = if settings.list_users_per_second > 0.0 {
            Duration::from_secs_f64(1.0 / settings.list_users_per_second)
        } else {
            Duration::ZERO
        };
        let mut next_call = tokio::time::Instant::now();
        let mut token: Option<String> = None;
        loop {
            let mut attempt = 0u32;
            let page = loop {
                tokio::time::sleep_until(next_call).await;
                next_call = tokio::time::Instant::now() + interval;
                let call = self
                    .r
                    .idp()
                    .list_users(token.clone(), settings.page_size.min(LIST_USERS_PAGE_SIZE));
                let res = match tokio::time::timeout(self.r.provisioner.settings().call_timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err(IdpError::Timeout(idp_op::LIST_USERS.into())),
                };
                match res {
                    Ok(p) => break p,
                    Err(e) if e.is_transient() && attempt + 1 < settings.max_attempts => {
                        attempt += 1;
                        if e == IdpError::TooManyRequests {
                            self.report.summary.throttled += 1;
                        }
                        let delay = settings
                            .backoff_base
                            .saturating_mul(1 << (attempt - 1).min(16))
                            .min(settings.backoff_max);
                        let jitter = rand::random::<f64>() * 0.5 + 0.75;
                        tracing::debug!(error = %e, attempt, "ListUsers retried");
                        next_call = next_call.max(tokio::time::Instant::now() + delay.mul_f64(jitter));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            self.report.summary.list_users_pages += 1;
            self.report.summary.cognito_users += page.users.len() as u64;
            for u in page.users {
                sorter.push(u).map_err(io_error)?;
            }
            match page.next_token {
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        tracing::debug!(spilled_runs = sorter.spilled_runs(), "Cognito users read");
        sorter.finish().map_err(io_error)
    }

    /// A Cognito user and the admin linked to the same username.
    async fn compare(&mut self, c: &IdpUser, d: &AdminRecord) {
        let id = d.user.id;
        if c.sub != d.user.cognito_sub {
            self.emit(
                Finding::new(DriftKind::Relinked, "relinked_sub_changed")
                    .with_admin(d)
                    .with_user(c)
                    .says(
                        format!(
                            "Cognito user {} now has sub {}, but the admin is linked to sub {}: the user was deleted and re-created outside admin-provisioner, so it may be a different person; it is not re-attached",
                            c.username, c.sub, d.user.cognito_sub
                        ),
                        format!(
                            "check who owns the new Cognito user; to give the admin access again remove the admin (console: Admins → Remove, or DELETE /api/admins/{id}) and provision it again"
                        ),
                    ),
            );
            return;
        }
        self.check_role_groups(c, d).await;
        let cognito_email = c.email.as_deref().map(str::to_lowercase);
        if cognito_email.as_deref() != Some(d.user.email_normalized.as_str()) {
            self.emit(
                Finding::new(DriftKind::Email, "email_mismatch")
                    .with_admin(d)
                    .with_user(c)
                    .says(
                        format!(
                            "the Cognito e-mail of {} is {}, the database says {}",
                            c.username,
                            c.email.as_deref().unwrap_or("(none)"),
                            d.user.email_normalized
                        ),
                        format!(
                            "set it back in Cognito: aws cognito-idp admin-update-user-attributes --username {} --user-attributes Name=email,Value={} Name=email_verified,Value=true; or remove the admin and provision the new address",
                            c.username, d.user.email_normalized
                        ),
                    ),
            );
        }
        if d.user.is_disabled() && c.enabled {
            self.emit(
                Finding::new(DriftKind::Status, "status_disabled_enabled_in_cognito")
                    .with_admin(d)
                    .with_user(c)
                    .says(
                        format!(
                            "{} is disabled in the database, but the Cognito user {} is enabled: they can still sign in to Cognito (the API refuses them)",
                            d.user.email_normalized, c.username
                        ),
                        format!(
                            "disable it in Cognito too: aws cognito-idp admin-disable-user --username {}; or enable the admin (POST /api/admins/{}/enable)",
                            c.username, d.user.id
                        ),
                    ),
            );
        }
        // A disabled admin's Cognito user is disabled too: that is the `disabled` state, not drift.
        if !c.enabled && !d.user.is_disabled() {
            self.emit(
                Finding::new(DriftKind::Status, "status_cognito_disabled")
                    .with_admin(d)
                    .with_user(c)
                    .says(
                        format!(
                            "the Cognito user {} is disabled: the admin cannot log in although the database lists them",
                            c.username
                        ),
                        format!(
                            "re-enable it (aws cognito-idp admin-enable-user --username {}), disable the admin in admin-provisioner too (POST /api/admins/{id}/disable), or remove the admin (console: Admins → Remove, or DELETE /api/admins/{id})",
                            c.username
                        ),
                    ),
            );
        }
        match (&c.status, d.user.status) {
            (IdpUserStatus::Confirmed, UserStatus::Invited) => {
                let mut f = Finding::new(DriftKind::Status, "status_confirmed_not_recorded")
                    .with_admin(d)
                    .with_user(c)
                    .says(
                        format!(
                            "{} already set a password in Cognito (CONFIRMED), but the database still says invited",
                            d.user.email_normalized
                        ),
                        "admin-provisioner reconcile --repair (marks the admin active, audited as reconciler)".into(),
                    );
                f.repair = if self.r.settings.repair {
                    self.r.repair_mark_active(c, d).await
                } else {
                    Repair::Available
                };
                self.emit(f);
            }
            (IdpUserStatus::ForceChangePassword, UserStatus::Active) => {
                self.emit(Finding::new(DriftKind::Status, "status_password_reset_for_active").with_admin(d).with_user(c).says(
                    format!("{} is active in the database, but Cognito is back at FORCE_CHANGE_PASSWORD (a temporary password was set outside admin-provisioner)", d.user.email_normalized),
                    format!("the admin signs in with the temporary password Cognito sent, or an operator sets one: aws cognito-idp admin-set-user-password --username {} --password … (then share it safely)", c.username),
                ));
            }
            (IdpUserStatus::Other(s), UserStatus::Active) if s == "RESET_REQUIRED" => {
                self.emit(Finding::new(DriftKind::Status, "status_reset_required_for_active").with_admin(d).with_user(c).says(
                    format!("{} is active in the database, but Cognito requires a password reset (RESET_REQUIRED): login fails until it is done", d.user.email_normalized),
                    "the admin uses \"forgot password\" on the login page of the app client, or an operator runs aws cognito-idp admin-set-user-password".into(),
                ));
            }
            (IdpUserStatus::Other(s), _) => {
                self.emit(Finding::new(DriftKind::Status, "status_unexpected").with_admin(d).with_user(c).says(
                    format!("the Cognito user {} is in status {s}, which admin-provisioner never sets", c.username),
                    "inspect the user in the Cognito console; if it should not exist any more remove the admin (console: Admins → Remove)".into(),
                ));
            }
            _ => {}
        }
    }

    /// Roles mirrored into groups: the admin's product-made groups must be exactly their role's.
    async fn check_role_groups(&mut self, c: &IdpUser, d: &AdminRecord) {
        let p = &self.r.provisioner;
        let Some(expected) = p.role_group(d.admin_info.role) else {
            return;
        };
        let groups = match p.product_groups_of(&c.username).await {
            Ok(g) => g,
            Err(e) => {
                tracing::warn!(username = %c.username, error = %e, "could not list the user's groups");
                return;
            }
        };
        if groups == [expected.clone()] {
            return;
        }
        let mut f = Finding::new(DriftKind::RoleGroupMismatch, "role_group_mismatch")
            .with_admin(d)
            .with_user(c)
            .says(
                format!(
                    "{} has role {} in the database, so its Cognito user {} should be in group {expected} (and no other role group), but its role groups are {}",
                    d.user.email_normalized,
                    d.admin_info.role,
                    c.username,
                    if groups.is_empty() { "none".to_string() } else { groups.join(", ") }
                ),
                "admin-provisioner reconcile --repair (puts the groups back as the database says, audited as reconciler)".into(),
            );
        f.repair = if self.r.settings.repair {
            self.r.repair_role_groups(d).await
        } else {
            Repair::Available
        };
        self.emit(f);
    }

    /// A database admin with no Cognito user at its username in the listing.
    async fn lone_admin(&mut self, d: &AdminRecord) -> Result<(), Error> {
        match self.r.get_user(&d.user.cognito_username).await? {
            Some(c) => self.compare(&c, d).await,
            None => {
                let id = d.user.id;
                self.emit(
                    Finding::new(DriftKind::Orphan, "orphan_cognito_user_missing")
                        .with_admin(d)
                        .says(
                            format!(
                                "the database admin {} is linked to Cognito user {}, which no longer exists: they cannot log in",
                                d.user.email_normalized, d.user.cognito_username
                            ),
                            format!(
                                "remove the admin (console: Admins → Remove, or DELETE /api/admins/{id}) and provision the address again"
                            ),
                        ),
                );
            }
        }
        Ok(())
    }

    /// A Cognito user that no admin links to by username.
    async fn lone_cognito_user(&mut self, c: &IdpUser) -> Result<(), Error> {
        // Linked by `sub` under another username? Then the admin's side reports it.
        if let Some(a) = self
            .r
            .provisioner
            .admin_store()
            .find_admin_by_cognito_sub(&c.sub)
            .await?
        {
            tracing::debug!(admin = %a.user.id, "Cognito user linked by sub under another username");
            return Ok(());
        }
        match self.r.provisioner.identity_ownership(c).await? {
            Ownership::Foreign => {
                self.emit(
                    Finding::new(DriftKind::Foreign, "foreign_user")
                        .with_user(c)
                        .says(
                            format!(
                                "Cognito user {} was not created by admin-provisioner and no admin links to it (information only)",
                                c.username
                            ),
                            "nothing to do; admin-provisioner never touches it".into(),
                        ),
                );
            }
            Ownership::Own {
                saga_state, saga_id, ..
            } if !saga_state.is_terminal() => {
                if saga_state == SagaState::Stuck {
                    self.emit(Finding::new(DriftKind::Ghost, "ghost_saga_stuck").with_user(c).says(
                        format!("Cognito user {} was created by provisioning saga {saga_id}, which is stuck; no admin links to it", c.username),
                        format!("admin-provisioner sagas retry {saga_id} (or let serve's recovery finish it)"),
                    ));
                } else {
                    tracing::debug!(%saga_id, "Cognito user of a saga still running: not drift");
                }
            }
            Ownership::Own { saga_id, .. } => {
                let repairable = c.status == IdpUserStatus::ForceChangePassword;
                let mut f = if repairable {
                    Finding::new(DriftKind::Ghost, "ghost_never_logged_in").with_user(c).says(
                        format!("Cognito user {} was created by admin-provisioner (saga {saga_id}) but no admin links to it; it never logged in", c.username),
                        "admin-provisioner reconcile --repair (deletes the Cognito user, audited as reconciler), or provision the address again".into(),
                    )
                } else {
                    Finding::new(DriftKind::Ghost, "ghost_has_logged_in").with_user(c).says(
                        format!("Cognito user {} was created by admin-provisioner (saga {saga_id}) but no admin links to it; it has set a password ({}), so it is not deleted automatically", c.username, c.status.as_cognito()),
                        format!("if the person should be an admin, restore the database records from a backup; otherwise delete the user: aws cognito-idp admin-delete-user --username {}", c.username),
                    )
                };
                if repairable {
                    f.repair = if self.r.settings.repair {
                        self.r.repair_delete_ghost(c).await
                    } else {
                        Repair::Available
                    };
                }
                self.emit(f);
            }
        }
        Ok(())
    }
}

/// Outcome of one [`Background::tick`].
#[derive(Clone, Debug, PartialEq)]
pub enum Tick {
    /// This replica held the lease and ran.
    Ran(Box<Report>),
    /// Another replica holds the lease.
    Skipped,
}

/// The background reconciler of `serve`: one run per interval, and one replica at a time across every
/// replica sharing the database (a lease row, renewed while a run lasts).
#[derive(Clone)]
pub struct Background {
    reconciler: Reconciler,
    store: Arc<dyn ReconcileStore>,
    holder: String,
    interval: Duration,
}

/// The lease the background reconciler takes.
pub const LEASE_NAME: &str = "reconciler";

impl Background {
    /// A background reconciler identified as `holder` (unique per process) running every `interval`.
    pub fn new(reconciler: Reconciler, holder: String, interval: Duration) -> Self {
        let store = reconciler.store.clone();
        Self {
            reconciler,
            store,
            holder,
            interval,
        }
    }

    fn ttl(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.interval).unwrap_or(chrono::Duration::hours(1)) + chrono::Duration::seconds(60)
    }

    /// Runs once if this replica holds (or can take) the lease; the lease is renewed every 30 s while the
    /// run lasts and kept afterwards until the next interval, so runs are spaced by the interval across
    /// replicas. A replica that lost the lease mid-run stops reporting. Errors: the lease or the run failed.
    pub async fn tick(&self) -> Result<Tick, Error> {
        let now = self.reconciler.provisioner.now();
        if !self
            .store
            .try_acquire_lease(LEASE_NAME, &self.holder, now, self.ttl())
            .await?
        {
            return Ok(Tick::Skipped);
        }
        let renew = {
            let store = self.store.clone();
            let holder = self.holder.clone();
            let ttl = self.ttl();
            let provisioner = self.reconciler.provisioner.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    match store
                        .try_acquire_lease(LEASE_NAME, &holder, provisioner.now(), ttl)
                        .await
                    {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!("reconciler lease taken by another replica");
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "reconciler lease renewal failed"),
                    }
                }
            })
        };
        let result = self.reconciler.run(&mut |_| {}).await;
        renew.abort();
        result.map(|r| Tick::Ran(Box::new(r)))
    }

    /// Gives the lease up (on shutdown), so another replica can take over without waiting for it to expire.
    pub async fn release(&self) {
        if let Err(e) = self.store.release_lease(LEASE_NAME, &self.holder).await {
            tracing::warn!(error = %e, "could not release the reconciler lease");
        }
    }
}
