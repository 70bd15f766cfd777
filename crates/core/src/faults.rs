//! Fault injection for tests: wrap any identity provider or store and make a chosen call fail.
//!
//! A [`FaultPlan`] holds rules "operation X fails in mode M (the next N times, or always)". The wrappers
//! [`FaultyIdentityProvider`] and [`FaultyStore`] consult it before (or after) delegating, so the same fault
//! matrix runs against the built-in emulator + SQLite and against moto + PostgreSQL. The plan is empty by
//! default; a production build never installs one.

use crate::domain::{AdminRecord, Password, Secret, UserId};
use crate::identity::{op as idp_op, *};
use crate::store::{op as store_op, *};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// The call fails without taking effect.
    Error,
    /// The call takes effect, then reports failure (Cognito's CodeDeliveryFailure case, a lost reply).
    SucceedThenError,
    /// The call never answers (until the caller's timeout) and does not take effect.
    Hang,
    /// The call takes effect and then never answers.
    SucceedThenHang,
    /// The call answers correctly, but only after this long (a slow Cognito: the lease race).
    Slow(std::time::Duration),
}

impl FaultMode {
    /// Every mode, for matrices.
    pub const ALL: [FaultMode; 4] = [
        FaultMode::Error,
        FaultMode::SucceedThenError,
        FaultMode::Hang,
        FaultMode::SucceedThenHang,
    ];
}

/// One rule of a plan.
#[derive(Clone, Debug)]
pub struct FaultRule {
    /// Operation name (see [`crate::identity::op`] and [`crate::store::op`]).
    pub op: String,
    /// Behaviour.
    pub mode: FaultMode,
    /// How many more calls it hits; `None` = every call.
    pub remaining: Option<u32>,
    /// The identity-provider error to return (default: `Unavailable`, a transient error).
    pub idp_error: Option<IdpError>,
    /// The store error to return (default: `Unavailable`).
    pub store_error: Option<StoreError>,
    /// How many matching calls to let through untouched before the rule starts hitting.
    pub skip: u32,
}

/// A shared, mutable set of fault rules; also counts calls per operation.
#[derive(Debug, Default)]
pub struct FaultPlan {
    rules: Mutex<Vec<FaultRule>>,
    calls: Mutex<Vec<String>>,
    fired: Mutex<Vec<String>>,
    hanging: tokio::sync::Notify,
}

impl FaultPlan {
    /// An empty plan.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// Shorthand: `op` fails in `mode` the next `times` calls (`None` = always) with the default error.
    pub fn fail(&self, op: &str, mode: FaultMode, times: Option<u32>) {
        self.add(FaultRule {
            op: op.to_string(),
            mode,
            remaining: times,
            idp_error: None,
            store_error: None,
            skip: 0,
        });
    }

    /// Shorthand: identity-provider `op` returns `err` in `mode`.
    pub fn fail_idp(&self, op: &str, mode: FaultMode, times: Option<u32>, err: IdpError) {
        self.add(FaultRule {
            op: op.to_string(),
            mode,
            remaining: times,
            idp_error: Some(err),
            store_error: None,
            skip: 0,
        });
    }

    /// Shorthand: store `op` returns `err` in `mode`.
    pub fn fail_store(&self, op: &str, mode: FaultMode, times: Option<u32>, err: StoreError) {
        self.add(FaultRule {
            op: op.to_string(),
            mode,
            remaining: times,
            idp_error: None,
            store_error: Some(err),
            skip: 0,
        });
    }

    /// Shorthand: `op` fails in `mode` from its `skip + 1`-th call on (`times` calls, `None` = always).
    pub fn fail_after(&self, op: &str, skip: u32, mode: FaultMode, times: Option<u32>) {
        self.add(FaultRule {
            op: op.to_string(),
            mode,
            remaining: times,
            idp_error: None,
            store_error: None,
            skip,
        });
    }

    /// Resolves once an injected hang has started (a "crash" point for tests: drop the caller's future
    /// then). Each hang stores one wake-up, so a hang that began before the call is not missed.
    pub async fn hang_started(&self) {
        self.hanging.notified().await
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.lock().unwrap().clear();
    }

    /// How many times `op` was called through a wrapper.
    pub fn calls(&self, op: &str) -> usize {
        self.calls.lock().unwrap().iter().filter(|c| c.as_str() == op).count()
    }

    /// How many times a rule for `op` actually hit a call: a test that injects a fault asserts that it fired.
    pub fn fired(&self, op: &str) -> usize {
        self.fired.lock().unwrap().iter().filter(|c| c.as_str() == op).count()
    }

    /// Every call seen, in order.
    pub fn call_log(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn take(&self, op: &str) -> Option<FaultRule> {
        self.calls.lock().unwrap().push(op.to_string());
        let mut rules = self.rules.lock().unwrap();
        let idx = rules.iter().position(|r| r.op == op && r.remaining != Some(0))?;
        if rules[idx].skip > 0 {
            rules[idx].skip -= 1;
            return None;
        }
        let rule = rules[idx].clone();
        self.fired.lock().unwrap().push(op.to_string());
        if let Some(n) = rules[idx].remaining.as_mut() {
            *n -= 1;
        }
        Some(rule)
    }
}

async fn hang_forever(plan: &FaultPlan) {
    plan.hanging.notify_one();
    // Long enough to outlive any caller timeout; the caller's timeout drops this future.
    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
}

macro_rules! inject {
    ($plan:expr, $op:expr, $err:expr, $call:expr) => {{
        match $plan.take($op) {
            None => $call.await,
            Some(rule) => {
                let err = $err(&rule);
                match rule.mode {
                    FaultMode::Error => Err(err),
                    FaultMode::Hang => {
                        hang_forever(&$plan).await;
                        Err(err)
                    }
                    FaultMode::SucceedThenError => {
                        let _ = $call.await;
                        Err(err)
                    }
                    FaultMode::SucceedThenHang => {
                        let _ = $call.await;
                        hang_forever(&$plan).await;
                        Err(err)
                    }
                    FaultMode::Slow(d) => {
                        tokio::time::sleep(d).await;
                        $call.await
                    }
                }
            }
        }
    }};
}

fn idp_err(rule: &FaultRule) -> IdpError {
    rule.idp_error
        .clone()
        .unwrap_or_else(|| IdpError::Unavailable(format!("injected fault in {}", rule.op)))
}

fn store_err(rule: &FaultRule) -> StoreError {
    rule.store_error
        .clone()
        .unwrap_or_else(|| StoreError::Unavailable(format!("injected fault in {}", rule.op)))
}

/// An identity provider whose calls can be made to fail by a [`FaultPlan`].
pub struct FaultyIdentityProvider {
    inner: Arc<dyn IdentityProvider>,
    plan: Arc<FaultPlan>,
}

impl FaultyIdentityProvider {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn IdentityProvider>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }
}

#[async_trait]
impl IdentityProvider for FaultyIdentityProvider {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn token_settings(&self) -> TokenSettings {
        self.inner.token_settings()
    }
    async fn admin_create_user(&self, req: CreateUserRequest) -> Result<IdpUser, IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_CREATE_USER,
            idp_err,
            self.inner.admin_create_user(req)
        )
    }
    async fn admin_get_user(&self, username: &str) -> Result<IdpUser, IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_GET_USER,
            idp_err,
            self.inner.admin_get_user(username)
        )
    }
    async fn admin_delete_user(&self, username: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_DELETE_USER,
            idp_err,
            self.inner.admin_delete_user(username)
        )
    }
    async fn admin_disable_user(&self, username: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_DISABLE_USER,
            idp_err,
            self.inner.admin_disable_user(username)
        )
    }
    async fn admin_enable_user(&self, username: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_ENABLE_USER,
            idp_err,
            self.inner.admin_enable_user(username)
        )
    }
    async fn list_users(&self, token: Option<String>, limit: u32) -> Result<UserPage, IdpError> {
        inject!(
            self.plan,
            idp_op::LIST_USERS,
            idp_err,
            self.inner.list_users(token, limit)
        )
    }
    async fn create_group(&self, name: &str, description: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::CREATE_GROUP,
            idp_err,
            self.inner.create_group(name, description)
        )
    }
    async fn get_group(&self, name: &str) -> Result<IdpGroup, IdpError> {
        inject!(self.plan, idp_op::GET_GROUP, idp_err, self.inner.get_group(name))
    }
    async fn admin_add_user_to_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_ADD_USER_TO_GROUP,
            idp_err,
            self.inner.admin_add_user_to_group(username, group)
        )
    }
    async fn admin_remove_user_from_group(&self, username: &str, group: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_REMOVE_USER_FROM_GROUP,
            idp_err,
            self.inner.admin_remove_user_from_group(username, group)
        )
    }
    async fn admin_list_groups_for_user(&self, username: &str) -> Result<Vec<String>, IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_LIST_GROUPS_FOR_USER,
            idp_err,
            self.inner.admin_list_groups_for_user(username)
        )
    }
    async fn initiate_auth(&self, username: &str, password: &Password) -> Result<AuthOutcome, IdpError> {
        inject!(
            self.plan,
            idp_op::INITIATE_AUTH,
            idp_err,
            self.inner.initiate_auth(username, password)
        )
    }
    async fn respond_to_auth_challenge(
        &self,
        username: &str,
        session: &Secret,
        answer: &ChallengeAnswer,
    ) -> Result<AuthOutcome, IdpError> {
        inject!(
            self.plan,
            idp_op::RESPOND_TO_AUTH_CHALLENGE,
            idp_err,
            self.inner.respond_to_auth_challenge(username, session, answer)
        )
    }
    async fn associate_software_token(&self, auth: &MfaAuth) -> Result<SoftwareTokenAssociation, IdpError> {
        inject!(
            self.plan,
            idp_op::ASSOCIATE_SOFTWARE_TOKEN,
            idp_err,
            self.inner.associate_software_token(auth)
        )
    }
    async fn verify_software_token(&self, auth: &MfaAuth, code: &Secret) -> Result<Option<Secret>, IdpError> {
        inject!(
            self.plan,
            idp_op::VERIFY_SOFTWARE_TOKEN,
            idp_err,
            self.inner.verify_software_token(auth, code)
        )
    }
    async fn set_user_mfa_preference(&self, access_token: &Secret, enabled: bool) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::SET_USER_MFA_PREFERENCE,
            idp_err,
            self.inner.set_user_mfa_preference(access_token, enabled)
        )
    }
    async fn forgot_password(&self, username: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::FORGOT_PASSWORD,
            idp_err,
            self.inner.forgot_password(username)
        )
    }
    async fn confirm_forgot_password(
        &self,
        username: &str,
        code: &Secret,
        password: &Password,
    ) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::CONFIRM_FORGOT_PASSWORD,
            idp_err,
            self.inner.confirm_forgot_password(username, code, password)
        )
    }
    async fn admin_reset_user_password(&self, username: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_RESET_USER_PASSWORD,
            idp_err,
            self.inner.admin_reset_user_password(username)
        )
    }
    async fn admin_user_global_sign_out(&self, username: &str) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_USER_GLOBAL_SIGN_OUT,
            idp_err,
            self.inner.admin_user_global_sign_out(username)
        )
    }
    async fn admin_set_user_mfa_preference(&self, username: &str, enabled: bool) -> Result<(), IdpError> {
        inject!(
            self.plan,
            idp_op::ADMIN_SET_USER_MFA_PREFERENCE,
            idp_err,
            self.inner.admin_set_user_mfa_preference(username, enabled)
        )
    }
    async fn jwks(&self) -> Result<serde_json::Value, IdpError> {
        self.inner.jwks().await
    }
    async fn ping(&self) -> Result<(), IdpError> {
        self.inner.ping().await
    }
}

pub use crate::store::Store;

/// A store whose writes and saga-relevant reads (`get_admin`, `find_admin_by_*`, `saga.get`) can be made
/// to fail by a [`FaultPlan`].
pub struct FaultyStore {
    inner: Arc<dyn Store>,
    plan: Arc<FaultPlan>,
}

impl FaultyStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn Store>, plan: Arc<FaultPlan>) -> Self {
        Self { inner, plan }
    }
}

#[async_trait]
impl AdminReads for FaultyStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn find_admin_by_email(&self, e: &str) -> Result<Option<AdminRecord>, StoreError> {
        inject!(
            self.plan,
            store_op::FIND_ADMIN_BY_EMAIL,
            store_err,
            self.inner.find_admin_by_email(e)
        )
    }

    async fn get_admin(&self, id: UserId) -> Result<Option<AdminRecord>, StoreError> {
        inject!(self.plan, store_op::GET_ADMIN, store_err, self.inner.get_admin(id))
    }

    async fn find_admin_by_cognito_username(&self, u: &str) -> Result<Option<AdminRecord>, StoreError> {
        inject!(
            self.plan,
            store_op::FIND_ADMIN_BY_COGNITO_USERNAME,
            store_err,
            self.inner.find_admin_by_cognito_username(u)
        )
    }

    async fn find_admin_by_cognito_sub(&self, s: &str) -> Result<Option<AdminRecord>, StoreError> {
        self.inner.find_admin_by_cognito_sub(s).await
    }

    async fn list_admins(&self) -> Result<Vec<AdminRecord>, StoreError> {
        self.inner.list_admins().await
    }

    async fn count_active_admins(&self) -> Result<i64, StoreError> {
        self.inner.count_active_admins().await
    }

    async fn find_admins_by_scim_key(&self, key: &crate::store::ScimKey) -> Result<Vec<AdminRecord>, StoreError> {
        self.inner.find_admins_by_scim_key(key).await
    }

    // The listing methods forward to the real adapter: fault tests list admins through the code
    // production runs (no in-memory fallback).
    async fn list_admins_page(
        &self,
        filter: &crate::pages::StoredAdminFilter,
        after: Option<(DateTime<Utc>, UserId)>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError> {
        self.inner.list_admins_page(filter, after, limit).await
    }

    async fn count_admins_by_status(&self, now: DateTime<Utc>) -> Result<(i64, i64, i64), StoreError> {
        self.inner.count_admins_by_status(now).await
    }
}

#[async_trait]
impl AdminWrites for FaultyStore {
    async fn insert_admin(
        &self,
        a: NewAdmin,
        audit: AuditEntry,
        saga: Option<Uuid>,
    ) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::INSERT_ADMIN,
            store_err,
            self.inner.insert_admin(a, audit, saga)
        )
    }

    async fn mark_accepted(&self, id: UserId, at: DateTime<Utc>, audit: AuditEntry) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::MARK_ACCEPTED,
            store_err,
            self.inner.mark_accepted(id, at, audit)
        )
    }

    async fn record_invite_sent(
        &self,
        id: UserId,
        sent_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
        delivered: bool,
        audit: AuditEntry,
    ) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::RECORD_INVITE_SENT,
            store_err,
            self.inner.record_invite_sent(id, sent_at, expires_at, delivered, audit)
        )
    }

    async fn delete_admin(&self, id: UserId, audit: AuditEntry, saga: Option<Uuid>) -> Result<(), StoreError> {
        inject!(
            self.plan,
            store_op::DELETE_ADMIN,
            store_err,
            self.inner.delete_admin(id, audit, saga)
        )
    }

    async fn set_admin_disabled(
        &self,
        id: UserId,
        at: Option<DateTime<Utc>>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::SET_ADMIN_DISABLED,
            store_err,
            self.inner.set_admin_disabled(id, at, audit, saga)
        )
    }

    async fn set_admin_role(
        &self,
        id: UserId,
        role: crate::domain::Role,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::SET_ADMIN_ROLE,
            store_err,
            self.inner.set_admin_role(id, role, audit, saga)
        )
    }

    async fn set_mfa_enrolled(&self, id: UserId, at: Option<DateTime<Utc>>) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::SET_MFA_ENROLLED,
            store_err,
            self.inner.set_mfa_enrolled(id, at)
        )
    }
    async fn record_credentials_reset(
        &self,
        id: UserId,
        reset: crate::store::CredentialsReset,
        at: DateTime<Utc>,
        audit: AuditEntry,
        saga: Option<(Uuid, SagaState)>,
    ) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::RECORD_CREDENTIALS_RESET,
            store_err,
            self.inner.record_credentials_reset(id, reset, at, audit, saga)
        )
    }
    async fn end_sessions(&self, id: UserId, at: DateTime<Utc>) -> Result<AdminRecord, StoreError> {
        inject!(
            self.plan,
            store_op::END_SESSIONS,
            store_err,
            self.inner.end_sessions(id, at)
        )
    }

    async fn set_scim_attributes(
        &self,
        id: UserId,
        external_id: Option<String>,
        user_name: Option<String>,
        profile: Option<String>,
    ) -> Result<AdminRecord, StoreError> {
        self.inner
            .set_scim_attributes(id, external_id, user_name, profile)
            .await
    }
}

#[async_trait]
impl AuditLog for FaultyStore {
    async fn append_audit(&self, audit: AuditEntry) -> Result<(), StoreError> {
        inject!(
            self.plan,
            store_op::APPEND_AUDIT,
            store_err,
            self.inner.append_audit(audit)
        )
    }

    async fn list_audit(&self, limit: i64) -> Result<Vec<AuditEvent>, StoreError> {
        self.inner.list_audit(limit).await
    }

    async fn list_audit_page(
        &self,
        before_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<(AuditEvent, Option<String>)>, StoreError> {
        self.inner.list_audit_page(before_id, limit).await
    }
}

#[async_trait]
impl IdempotencyKeys for FaultyStore {
    async fn idempotency_begin(&self, scope: &str, key: &str, hash: &str) -> Result<IdempotencyBegin, StoreError> {
        self.inner.idempotency_begin(scope, key, hash).await
    }

    async fn idempotency_complete(&self, scope: &str, key: &str, r: StoredResponse) -> Result<(), StoreError> {
        self.inner.idempotency_complete(scope, key, r).await
    }

    async fn idempotency_abandon(&self, scope: &str, key: &str) -> Result<(), StoreError> {
        self.inner.idempotency_abandon(scope, key).await
    }
}

#[async_trait]
impl SagaLog for FaultyStore {
    async fn begin(&self, saga: SagaRecord) -> Result<SagaRecord, StoreError> {
        inject!(self.plan, store_op::SAGA_BEGIN, store_err, self.inner.begin(saga))
    }
    async fn update(&self, id: Uuid, update: SagaUpdate) -> Result<SagaRecord, StoreError> {
        inject!(
            self.plan,
            store_op::SAGA_UPDATE,
            store_err,
            self.inner.update(id, update)
        )
    }
    async fn claim_expired(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        only: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<SagaRecord>, StoreError> {
        inject!(
            self.plan,
            store_op::SAGA_CLAIM,
            store_err,
            self.inner.claim_expired(owner, now, lease_until, only, limit)
        )
    }
    async fn get(&self, id: Uuid) -> Result<Option<SagaRecord>, StoreError> {
        inject!(self.plan, store_op::SAGA_GET, store_err, self.inner.get(id))
    }
    async fn list_unfinished(&self) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.list_unfinished().await
    }
    async fn list_recent(&self, limit: i64) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.list_recent(limit).await
    }
    async fn list_for_email(&self, email_normalized: &str) -> Result<Vec<SagaRecord>, StoreError> {
        self.inner.list_for_email(email_normalized).await
    }
}

/// SCIM tokens pass through untouched.
#[async_trait]
impl ScimTokenStore for FaultyStore {
    async fn create_scim_token(&self, name: &str, hash: &str, audit: AuditEntry) -> Result<ScimToken, StoreError> {
        self.inner.create_scim_token(name, hash, audit).await
    }
    async fn list_scim_tokens(&self) -> Result<Vec<ScimToken>, StoreError> {
        self.inner.list_scim_tokens().await
    }
    async fn revoke_scim_token(&self, name: &str, audit: AuditEntry) -> Result<ScimToken, StoreError> {
        self.inner.revoke_scim_token(name, audit).await
    }
    async fn authenticate_scim_token(&self, hash: &str, now: DateTime<Utc>) -> Result<Option<String>, StoreError> {
        self.inner.authenticate_scim_token(hash, now).await
    }
}

/// Reads and the reconciler's lease pass through untouched.
#[async_trait]
impl crate::reconcile::ReconcileStore for FaultyStore {
    async fn admins_after_cognito_username(
        &self,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AdminRecord>, StoreError> {
        self.inner.admins_after_cognito_username(after, limit).await
    }
    async fn try_acquire_lease(
        &self,
        name: &str,
        holder: &str,
        now: DateTime<Utc>,
        ttl: chrono::Duration,
    ) -> Result<bool, StoreError> {
        self.inner.try_acquire_lease(name, holder, now, ttl).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, holder).await
    }
}
