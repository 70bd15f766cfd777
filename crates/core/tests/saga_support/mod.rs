//! Shared harness for the saga specifications: a [`Provisioner`] whose identity provider and store are
//! wrapped in fault injectors, plus direct (un-faulted) access to both systems for the assertions.
#![allow(dead_code)]

use admin_provisioner_core::clock::{Clock, ManualClock};
use admin_provisioner_core::faults::{FaultMode, FaultPlan, FaultyIdentityProvider, FaultyStore};
use admin_provisioner_core::identity::{CreateUserRequest, IdentityProvider, IdpError, IdpUser, MessageAction};
use admin_provisioner_core::provisioner::saga_steps;
use admin_provisioner_core::store::Store;
use admin_provisioner_core::store::{op as store_op, SagaKind, SagaState};
use admin_provisioner_core::{Caller, Error, Provisioner, ProvisionerSettings};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use std::sync::Arc;
use std::time::Duration;

pub mod groups;

/// Settings that make hangs and retries quick in tests.
pub fn fast_settings() -> ProvisionerSettings {
    ProvisionerSettings {
        // Long enough for a slow moto or a queue of SQLite writers on a loaded machine; injected hangs
        // cost one timeout per attempt.
        call_timeout: Duration::from_secs(1),
        max_attempts: 3,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        resend_cooldown: Duration::from_secs(60),
        // Longer than the longest step (3 × 1 s + backoff); tests move the clock past it to let recovery in.
        lease_ttl: Duration::from_secs(5),
        ..ProvisionerSettings::default()
    }
}

/// The real time plus an offset the test can move: lets leases expire on moto + PostgreSQL runs, whose
/// Cognito clock is real.
#[derive(Debug, Default)]
pub struct OffsetClock(std::sync::Mutex<chrono::Duration>);

impl OffsetClock {
    pub fn advance(&self, by: chrono::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + *self.0.lock().unwrap()
    }
}

pub struct Harness {
    pub p: Provisioner,
    pub db_url: Option<String>,
    pub plan: Arc<FaultPlan>,
    pub raw_idp: Arc<dyn IdentityProvider>,
    pub raw_store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    pub offset: Option<Arc<OffsetClock>>,
    pub mailbox_dir: Option<std::path::PathBuf>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// The built-in emulator (in memory) and an SQLite file.
    pub async fn emulator_sqlite() -> Self {
        Self::emulator_sqlite_with(fast_settings()).await
    }

    /// The built-in emulator + SQLite with these saga settings.
    pub async fn emulator_sqlite_with(settings: ProvisionerSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::new());
        let mut ec = EmulatorConfig::in_memory(dir.path().join("mailbox"));
        ec.clock = clock.clone();
        let emu: Arc<dyn IdentityProvider> = Arc::new(CognitoEmulator::open(ec).await.unwrap());
        let url = format!("sqlite://{}", dir.path().join("db.sqlite").display());
        // The store stamps rows with the saga's clock, so recovery compares like with like.
        let store = admin_provisioner_store::connect_with_clock(&url, &Default::default(), clock.clone())
            .await
            .unwrap()
            .store;
        let mailbox = Some(dir.path().join("mailbox"));
        let mut h = Self::assemble(emu, store, clock.clone(), clock, None, mailbox, dir, settings);
        h.db_url = Some(url);
        h
    }

    /// Any identity provider and store (moto + PostgreSQL): real time.
    pub fn with(idp: Arc<dyn IdentityProvider>, store: Arc<dyn Store>) -> Self {
        Self::with_settings(idp, store, fast_settings())
    }

    /// [`Harness::with`] with these saga settings.
    pub fn with_settings(idp: Arc<dyn IdentityProvider>, store: Arc<dyn Store>, settings: ProvisionerSettings) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manual = Arc::new(ManualClock::new());
        let offset = Arc::new(OffsetClock::default());
        Self::assemble(idp, store, offset.clone(), manual, Some(offset), None, dir, settings)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        idp: Arc<dyn IdentityProvider>,
        store: Arc<dyn Store>,
        saga_clock: Arc<dyn Clock>,
        clock: Arc<ManualClock>,
        offset: Option<Arc<OffsetClock>>,
        mailbox_dir: Option<std::path::PathBuf>,
        dir: tempfile::TempDir,
        settings: ProvisionerSettings,
    ) -> Self {
        let plan = FaultPlan::new();
        let faulty_idp = Arc::new(FaultyIdentityProvider::new(idp.clone(), plan.clone()));
        let faulty_store = Arc::new(FaultyStore::new(store.clone(), plan.clone()));
        let p = Provisioner::new(faulty_idp, faulty_store, saga_clock, settings);
        Self {
            p,
            db_url: None,
            plan,
            raw_idp: idp,
            raw_store: store,
            clock,
            offset,
            mailbox_dir,
            _dir: dir,
        }
    }

    /// Moves the saga's clock by `by` (the manual clock, or the offset on real-time runs).
    pub fn advance(&self, by: chrono::Duration) {
        match &self.offset {
            Some(o) => o.advance(by),
            None => self.clock.advance(by),
        }
    }

    /// What a later recovery pass sees: every lease of a dead run has expired, then one pass runs.
    pub async fn recover(&self) -> Vec<admin_provisioner_core::RecoveryReport> {
        let lease = chrono::Duration::from_std(self.p.settings().lease_ttl).unwrap();
        self.advance(lease + chrono::Duration::seconds(1));
        self.p.recover_unfinished().await.unwrap()
    }

    pub async fn cognito_user(&self, username: &str) -> Option<IdpUser> {
        match self.raw_idp.admin_get_user(username).await {
            Ok(u) => Some(u),
            Err(IdpError::UserNotFound) => None,
            Err(e) => panic!("AdminGetUser failed: {e}"),
        }
    }

    pub async fn cognito_has(&self, username: &str) -> bool {
        self.cognito_user(username).await.is_some()
    }

    pub async fn cognito_users(&self) -> Vec<IdpUser> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self.raw_idp.list_users(token, 60).await.unwrap();
            out.extend(page.users);
            match page.next_token {
                Some(t) => token = Some(t),
                None => return out,
            }
        }
    }

    pub async fn db_has(&self, email: &str) -> bool {
        self.raw_store
            .find_admin_by_email(&email.to_lowercase())
            .await
            .unwrap()
            .is_some()
    }

    pub async fn saga_states(&self, email: &str) -> Vec<SagaState> {
        // Unfinished ones are listed; finished ones are read back through the provisioner's log by id.
        let mut out = Vec::new();
        for s in self.raw_store.list_unfinished().await.unwrap() {
            if s.email_normalized == email.to_lowercase() {
                out.push(s.state);
            }
        }
        if out.is_empty() {
            if let Some(id) = self.last_saga_id_for(email).await {
                out.push(self.raw_store.get(id).await.unwrap().unwrap().state);
            }
        }
        out
    }

    async fn last_saga_id_for(&self, email: &str) -> Option<uuid::Uuid> {
        // The audit log does not carry saga ids; the saga log is queried by e-mail through the store.
        self.raw_store
            .list_for_email(&email.to_lowercase())
            .await
            .ok()
            .and_then(|v| v.last().map(|s| s.id))
    }

    pub fn mailbox_count(&self) -> usize {
        match &self.mailbox_dir {
            Some(d) => admin_provisioner_emulator::mailbox::Mailbox::new(d)
                .messages()
                .map(|m| m.len())
                .unwrap_or(0),
            None => 0,
        }
    }

    /// A Cognito user created outside the product.
    pub async fn create_foreign_user(&self, email: &str) -> IdpUser {
        self.raw_idp
            .admin_create_user(CreateUserRequest {
                username: email.to_string(),
                email: email.to_string(),
                temporary_password: None,
                message_action: Some(MessageAction::Suppress),
            })
            .await
            .unwrap()
    }

    /// The invariant: the admin is in both systems, linked, or in neither.
    pub async fn assert_both_or_neither(&self, email: &str) {
        let norm = email.to_lowercase();
        let db = self.raw_store.find_admin_by_email(&norm).await.unwrap();
        match db {
            Some(record) => {
                let cognito = self
                    .cognito_user(&record.user.cognito_username)
                    .await
                    .unwrap_or_else(|| panic!("database admin {email} has no Cognito user"));
                assert_eq!(
                    cognito.sub, record.user.cognito_sub,
                    "linked to a different Cognito user"
                );
            }
            None => {
                assert!(
                    self.cognito_user(&norm).await.is_none(),
                    "Cognito user {email} has no database records"
                );
            }
        }
    }
}

/// One cell of the fault matrix. See `tests/saga.rs`.
pub async fn run_fault_case(h: &Harness, op: &str, mode: FaultMode, times: Option<u32>) {
    run_fault_case_at(h, op, 0, mode, times).await
}

/// [`run_fault_case`] with the fault on the `skip + 1`-th call of `op` (and, when `times` is `None`, on
/// every later one): a cell of the table-derived matrix targets one step's call.
pub async fn run_fault_case_at(h: &Harness, op: &str, skip: u32, mode: FaultMode, times: Option<u32>) {
    let ctx = format!("fault {op}#{skip} {mode:?} times={times:?}");
    // A pre-existing Cognito user the product did not create: it must survive whatever happens.
    h.clock.advance(chrono::Duration::seconds(-600));
    let legacy = h.create_foreign_user("legacy.user@example.com").await;
    h.clock.advance(chrono::Duration::seconds(600));
    let email = "victim@example.com";

    h.plan.fail_after(op, skip, mode, times);
    let result = h.p.provision_new_admin(&Caller::Operator, email, Some("matrix")).await;
    // A cell that tests nothing is a bug in the matrix: the fault must have hit a call.
    assert!(h.plan.fired(op) > 0, "{ctx}: the fault never fired");
    if times == Some(1) {
        // One transient fault is absorbed by the retry (or, after a call that landed, by adoption / the
        // read-back): the admin is created.
        assert!(
            result.is_ok(),
            "{ctx}: a single transient fault was not absorbed: {result:?}"
        );
    }
    match &result {
        Ok(admin) => {
            assert!(h.cognito_has(email).await, "{ctx}: Ok but no Cognito user");
            assert!(h.db_has(email).await, "{ctx}: Ok but no database records");
            assert_eq!(
                h.cognito_user(email).await.unwrap().sub,
                admin.user.cognito_sub,
                "{ctx}"
            );
        }
        Err(Error::SagaStuck { .. }) => panic!("{ctx}: a single fault must never leave a stuck saga"),
        Err(e) => {
            assert!(!h.db_has(email).await, "{ctx}: error {e:?} but database records exist");
            assert!(
                !h.cognito_has(email).await,
                "{ctx}: error {e:?} but a Cognito user exists"
            );
        }
    }
    h.assert_both_or_neither(email).await;

    // The recovery that follows the fault.
    h.plan.clear();
    h.recover().await;
    h.assert_both_or_neither(email).await;
    assert!(
        h.raw_store.list_unfinished().await.unwrap().is_empty(),
        "{ctx}: unfinished sagas remain after recovery"
    );
    let still = h
        .cognito_user("legacy.user@example.com")
        .await
        .expect("the pre-existing Cognito user was deleted");
    assert_eq!(
        still.sub, legacy.sub,
        "{ctx}: the pre-existing Cognito user was replaced"
    );

    // Nothing is left reserved: provisioning again ends with exactly one linked admin. (Recovery may have
    // finished an interrupted saga: then the admin exists and the second attempt is refused.)
    let exists_now = h.db_has(email).await;
    assert!(result.is_err() || exists_now, "{ctx}: Ok but the admin vanished");
    match h
        .p
        .provision_new_admin(&Caller::Operator, email, Some("matrix-again"))
        .await
    {
        Ok(_) => assert!(!exists_now, "{ctx}: created twice"),
        Err(Error::AdminExists) => assert!(exists_now, "{ctx}: e-mail still reserved after a failed saga"),
        Err(e) => panic!("{ctx}: second provisioning failed: {e:?}"),
    }
    h.assert_both_or_neither(email).await;
    assert!(h.db_has(email).await);
}

/// A fault at an identity-provider call of the *undo* path: the records write fails definitively (forcing
/// compensation) and `op` fails in `mode`. Either the undo still finishes (nothing anywhere) or the saga is
/// visibly stuck; after the recovery that follows, nothing is anywhere and no pre-existing user was touched.
pub async fn run_compensation_fault_case(h: &Harness, op: &str, mode: FaultMode, times: Option<u32>) {
    let ctx = format!("compensation fault {op} {mode:?} times={times:?}");
    h.clock.advance(chrono::Duration::seconds(-600));
    let legacy = h.create_foreign_user("legacy.user@example.com").await;
    h.clock.advance(chrono::Duration::seconds(600));
    let email = "undo.victim@example.com";
    h.plan.fail_store(
        admin_provisioner_core::store::op::INSERT_ADMIN,
        FaultMode::Error,
        None,
        admin_provisioner_core::store::StoreError::Other("check constraint violated".into()),
    );
    h.plan.fail(op, mode, times);
    let result = h.p.provision_new_admin(&Caller::Operator, email, None).await;
    match &result {
        Ok(_) => panic!("{ctx}: the records write always fails, provisioning cannot succeed"),
        Err(Error::SagaStuck { saga_id }) => {
            let saga = h.raw_store.get(*saga_id).await.unwrap().unwrap();
            assert_eq!(saga.state, SagaState::Stuck, "{ctx}");
            assert!(!h.db_has(email).await, "{ctx}");
        }
        Err(_) => {
            assert!(!h.db_has(email).await, "{ctx}");
            assert!(
                !h.cognito_has(email).await,
                "{ctx}: undo reported done but the Cognito user exists"
            );
        }
    }
    h.plan.clear();
    h.recover().await;
    assert!(h.raw_store.list_unfinished().await.unwrap().is_empty(), "{ctx}");
    assert!(
        !h.cognito_has(email).await,
        "{ctx}: Cognito user left behind after recovery"
    );
    assert!(!h.db_has(email).await, "{ctx}");
    assert_eq!(
        h.cognito_user("legacy.user@example.com").await.unwrap().sub,
        legacy.sub,
        "{ctx}"
    );
}

/// A fault while a Cognito user that the product did NOT create already holds the username: whatever the
/// fault, that user is never adopted, linked or deleted, and no database records appear.
pub async fn run_foreign_fault_case(h: &Harness, op: &str, mode: FaultMode, times: Option<u32>) {
    let ctx = format!("foreign user + fault {op} {mode:?} times={times:?}");
    let email = "taken@example.com";
    h.clock.advance(chrono::Duration::seconds(-3600));
    let foreign = h.create_foreign_user(email).await;
    h.clock.advance(chrono::Duration::seconds(3600));
    h.plan.fail(op, mode, times);
    let result = h.p.provision_new_admin(&Caller::Operator, email, None).await;
    assert!(
        result.is_err(),
        "{ctx}: provisioning over someone else's user succeeded"
    );
    h.plan.clear();
    h.recover().await;
    let still = h
        .cognito_user(email)
        .await
        .unwrap_or_else(|| panic!("{ctx}: the foreign user was deleted"));
    assert_eq!(still.sub, foreign.sub, "{ctx}: the foreign user was replaced");
    assert!(!h.db_has(email).await, "{ctx}: the foreign user was linked to an admin");
    assert!(h.raw_store.list_unfinished().await.unwrap().is_empty(), "{ctx}");
}

// ------------------------------------------------------------------------------------------------
// The fault matrix, derived from the saga tables
// ------------------------------------------------------------------------------------------------

/// One cell of the table-derived matrix: the `skip + 1`-th call of `op` in a clean run, made by `step`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    /// The step of the table (`precondition` for the reads before the intent, `intent` for the log row).
    pub step: &'static str,
    /// The port operation.
    pub op: &'static str,
    /// How many earlier calls of `op` a clean run makes.
    pub skip: u32,
}

/// Settings for matrix cells: [`fast_settings`] with a lease long enough that no renewal runs inside a
/// clean run (the cells count calls), on a loaded machine too.
pub fn matrix_settings() -> ProvisionerSettings {
    ProvisionerSettings {
        lease_ttl: Duration::from_secs(30),
        ..fast_settings()
    }
}

/// The cells of saga `kind`: the reads a clean run makes before its intent (taken from the clean
/// `call_log`), then every port call of every step of the table (`saga_steps`). Asserts that the table's
/// declared calls are exactly what the clean run called after its preconditions, so the declaration
/// cannot drift from the code.
pub fn table_cells(kind: SagaKind, clean_log: &[String]) -> Vec<Cell> {
    let begin = clean_log
        .iter()
        .position(|op| op == store_op::SAGA_BEGIN)
        .unwrap_or_else(|| panic!("no intent in the clean run {clean_log:?}"));
    let mut cells: Vec<Cell> = Vec::new();
    let push = |cells: &mut Vec<Cell>, step: &'static str, op: &'static str| {
        let skip = cells.iter().filter(|c| c.op == op).count() as u32;
        cells.push(Cell { step, op, skip });
    };
    for op in &clean_log[..begin] {
        let op: &'static str = Box::leak(op.clone().into_boxed_str());
        push(&mut cells, "precondition", op);
    }
    for step in saga_steps(kind) {
        for op in step.calls {
            push(&mut cells, step.name, op);
        }
    }
    let declared: Vec<&str> = cells.iter().map(|c| c.op).collect();
    let called: Vec<&str> = clean_log.iter().map(String::as_str).collect();
    assert_eq!(
        declared, called,
        "the {kind:?} table's declared calls differ from a clean run's calls"
    );
    cells
}

/// The calls of a clean provisioning (on a fresh harness of the same system).
pub async fn clean_provision_log(h: &Harness) -> Vec<String> {
    h.p.provision_new_admin(&Caller::Operator, "probe@example.com", None)
        .await
        .unwrap();
    h.plan.call_log()
}

/// The calls of a clean removal of an invited admin (on a fresh harness of the same system).
pub async fn clean_remove_log(h: &Harness) -> Vec<String> {
    let admin =
        h.p.provision_new_admin(&Caller::Operator, "probe@example.com", None)
            .await
            .unwrap();
    let before = h.plan.call_log().len();
    h.p.remove_admin(&Caller::Operator, admin.user.id, None).await.unwrap();
    h.plan.call_log()[before..].to_vec()
}

/// One removal cell: an invited admin is removed while `op`'s `skip + 1`-th call fails in `mode`. The fault
/// fires; a single transient fault is absorbed (removed from both systems); otherwise the admin is in
/// both systems (nothing done), or removed from the database with the saga stuck; after the recovery that
/// follows, no saga is unfinished and the admin is in neither system or (untouched) in both; removing it
/// again then succeeds.
pub async fn run_remove_fault_case(h: &Harness, op: &str, skip: u32, mode: FaultMode, times: Option<u32>) {
    let ctx = format!("removal fault {op}#{skip} {mode:?} times={times:?}");
    let email = "leaver@example.com";
    let admin = h.p.provision_new_admin(&Caller::Operator, email, None).await.unwrap();
    h.plan.fail_after(op, skip, mode, times);
    let result = h.p.remove_admin(&Caller::Operator, admin.user.id, Some("matrix")).await;
    assert!(h.plan.fired(op) > 0, "{ctx}: the fault never fired");
    if times == Some(1) {
        assert!(
            result.is_ok(),
            "{ctx}: a single transient fault was not absorbed: {result:?}"
        );
    }
    match &result {
        Ok(()) => {
            assert!(!h.db_has(email).await, "{ctx}: Ok but the records remain");
            assert!(!h.cognito_has(email).await, "{ctx}: Ok but the Cognito user remains");
        }
        Err(Error::SagaStuck { saga_id }) => {
            assert!(!h.db_has(email).await, "{ctx}: stuck before the records were deleted");
            let saga = h.raw_store.get(*saga_id).await.unwrap().unwrap();
            assert!(
                !saga.state.is_terminal(),
                "{ctx}: stuck but the saga is {:?}",
                saga.state
            );
        }
        Err(e) => {
            assert!(h.db_has(email).await, "{ctx}: error {e:?} but the records are gone");
            h.assert_both_or_neither(email).await;
        }
    }
    h.plan.clear();
    h.recover().await;
    assert!(
        h.raw_store.list_unfinished().await.unwrap().is_empty(),
        "{ctx}: unfinished sagas remain after recovery"
    );
    h.assert_both_or_neither(email).await;
    if result.is_ok() || matches!(result, Err(Error::SagaStuck { .. })) {
        assert!(
            !h.cognito_has(email).await,
            "{ctx}: recovery did not finish the removal"
        );
    }
    if h.db_has(email).await {
        h.p.remove_admin(&Caller::Operator, admin.user.id, None)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: removing again failed: {e:?}"));
    }
    assert!(!h.db_has(email).await && !h.cognito_has(email).await, "{ctx}");
}

// ------------------------------------------------------------------------------------------------
// Disable / enable
// ------------------------------------------------------------------------------------------------

/// Whether the admin `email` is disabled in the database and in Cognito, as `(database, cognito)`.
pub async fn disabled_states(h: &Harness, email: &str) -> (bool, bool) {
    let record = h
        .raw_store
        .find_admin_by_email(&email.to_lowercase())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{email} has no database records"));
    let user = h
        .cognito_user(&record.user.cognito_username)
        .await
        .unwrap_or_else(|| panic!("{email} has no Cognito user"));
    (record.user.is_disabled(), !user.enabled)
}

/// An invited admin for a disable / enable cell; for an enable cell it is disabled first (cleanly).
pub async fn lifecycle_subject(h: &Harness, kind: SagaKind, email: &str) -> admin_provisioner_core::domain::UserId {
    let admin = h.p.provision_new_admin(&Caller::Operator, email, None).await.unwrap();
    if kind == SagaKind::Enable {
        h.p.disable_admin(&Caller::Operator, admin.user.id, None).await.unwrap();
    }
    admin.user.id
}

/// Runs the disable (or enable) saga of `kind` on `id`.
pub async fn run_lifecycle(
    h: &Harness,
    kind: SagaKind,
    id: admin_provisioner_core::domain::UserId,
    request_id: Option<&str>,
) -> Result<admin_provisioner_core::domain::AdminRecord, Error> {
    match kind {
        SagaKind::Disable => h.p.disable_admin(&Caller::Operator, id, request_id).await,
        SagaKind::Enable => h.p.enable_admin(&Caller::Operator, id, request_id).await,
        other => panic!("{other:?} is not a lifecycle saga"),
    }
}

/// The calls of a clean disable (or enable) of an invited admin (on a fresh harness of the same system).
pub async fn clean_lifecycle_log(h: &Harness, kind: SagaKind) -> Vec<String> {
    let id = lifecycle_subject(h, kind, "probe@example.com").await;
    let before = h.plan.call_log().len();
    run_lifecycle(h, kind, id, None).await.unwrap();
    h.plan.call_log()[before..].to_vec()
}

/// One disable / enable cell: `op`'s `skip + 1`-th call fails in `mode` while the saga runs. The fault
/// fires; a single transient fault is absorbed (the admin ends in the target state in both systems);
/// `Ok` means both systems are in the target state; `SagaStuck` leaves an unfinished saga; any other error
/// leaves both systems as they were. After the recovery that follows, no saga is unfinished and the two
/// systems agree (in the target state if the run succeeded); running the saga again then succeeds.
pub async fn run_lifecycle_fault_case(
    h: &Harness,
    kind: SagaKind,
    op: &str,
    skip: u32,
    mode: FaultMode,
    times: Option<u32>,
) {
    let ctx = format!("{kind:?} fault {op}#{skip} {mode:?} times={times:?}");
    let email = "switch@example.com";
    let target = kind == SagaKind::Disable;
    let id = lifecycle_subject(h, kind, email).await;
    assert_eq!(disabled_states(h, email).await, (!target, !target), "{ctx}: set-up");
    h.plan.fail_after(op, skip, mode, times);
    let result = run_lifecycle(h, kind, id, Some("matrix")).await;
    assert!(h.plan.fired(op) > 0, "{ctx}: the fault never fired");
    h.plan.clear();
    if times == Some(1) {
        assert!(
            result.is_ok(),
            "{ctx}: a single transient fault was not absorbed: {result:?}"
        );
    }
    match &result {
        Ok(record) => {
            assert_eq!(record.user.is_disabled(), target, "{ctx}: the answer's state");
            assert_eq!(disabled_states(h, email).await, (target, target), "{ctx}: Ok");
        }
        Err(Error::SagaStuck { saga_id }) => {
            let saga = h.raw_store.get(*saga_id).await.unwrap().unwrap();
            assert!(
                !saga.state.is_terminal(),
                "{ctx}: stuck but the saga is {:?}",
                saga.state
            );
        }
        Err(e) => {
            assert_eq!(
                disabled_states(h, email).await,
                (!target, !target),
                "{ctx}: error {e:?} but the systems changed"
            );
        }
    }
    h.recover().await;
    assert!(
        h.raw_store.list_unfinished().await.unwrap().is_empty(),
        "{ctx}: unfinished sagas remain after recovery"
    );
    let (db, cognito) = disabled_states(h, email).await;
    assert_eq!(db, cognito, "{ctx}: the systems disagree after recovery");
    if result.is_ok() {
        assert_eq!(db, target, "{ctx}: recovery undid a saga that had answered Ok");
    }
    h.assert_both_or_neither(email).await;
    let again = run_lifecycle(h, kind, id, None)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: running again failed: {e:?}"));
    assert_eq!(again.user.is_disabled(), target, "{ctx}");
    assert_eq!(
        disabled_states(h, email).await,
        (target, target),
        "{ctx}: after running again"
    );
}

// ------------------------------------------------------------------------------------------------
// Password reset / MFA reset by another admin
// ------------------------------------------------------------------------------------------------

/// An active admin (first login done, an MFA enrolment recorded) for a reset cell; emulator only (the
/// temporary password comes from the mailbox).
pub async fn reset_subject(h: &Harness, email: &str) -> admin_provisioner_core::domain::UserId {
    use admin_provisioner_core::domain::{Password, TemporaryPassword};
    let admin = h.p.provision_new_admin(&Caller::Operator, email, None).await.unwrap();
    let dir = h.mailbox_dir.as_ref().expect("an emulator harness");
    let temp = admin_provisioner_emulator::mailbox::Mailbox::new(dir)
        .latest_for(email)
        .unwrap()
        .and_then(|m| m.temporary_password())
        .expect("an invitation");
    h.p.handle_new_password_challenge(
        email,
        &TemporaryPassword::new(temp.expose()),
        &Password::new("Subject-Pass-1"),
        None,
    )
    .await
    .unwrap();
    h.raw_store
        .set_mfa_enrolled(admin.user.id, Some(h.clock.now()))
        .await
        .unwrap();
    admin.user.id
}

/// Runs the reset saga of `kind` on `id` as the operator.
pub async fn run_reset(
    h: &Harness,
    kind: SagaKind,
    id: admin_provisioner_core::domain::UserId,
    request_id: Option<&str>,
) -> Result<admin_provisioner_core::domain::AdminRecord, Error> {
    match kind {
        SagaKind::ResetPassword => h.p.reset_admin_password(&Caller::Operator, id, request_id).await,
        SagaKind::ResetMfa => h.p.reset_admin_mfa(&Caller::Operator, id, request_id).await,
        other => panic!("{other:?} is not a reset saga"),
    }
}

/// The calls of a clean reset of `kind` (on a fresh harness of the same system).
pub async fn clean_reset_log(h: &Harness, kind: SagaKind) -> Vec<String> {
    let id = reset_subject(h, "probe@example.com").await;
    let before = h.plan.call_log().len();
    run_reset(h, kind, id, None).await.unwrap();
    h.plan.call_log()[before..].to_vec()
}

/// Whether the reset of `kind` shows, as `(database, cognito)`: the database ended the admin's sessions
/// (and, for an MFA reset, cleared the enrolment); Cognito has the user `RESET_REQUIRED` (for an MFA
/// reset the preference is not readable through the port: `None`).
pub async fn reset_states(h: &Harness, kind: SagaKind, email: &str) -> (bool, Option<bool>) {
    let record = h
        .raw_store
        .find_admin_by_email(email)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{email} has no database records"));
    let db = record.user.sessions_valid_after.is_some()
        && (kind != SagaKind::ResetMfa || record.user.mfa_enrolled_at.is_none());
    let cognito = (kind == SagaKind::ResetPassword).then_some(());
    let cognito = match cognito {
        Some(()) => Some(
            h.cognito_user(&record.user.cognito_username)
                .await
                .unwrap_or_else(|| panic!("{email} has no Cognito user"))
                .status
                .as_cognito()
                == "RESET_REQUIRED",
        ),
        None => None,
    };
    (db, cognito)
}

/// One reset cell: `op`'s `skip + 1`-th call fails in `mode` while the reset saga runs. The fault fires; a
/// single transient fault is absorbed (reset in both systems); `Ok` means both systems show the reset;
/// `SagaStuck` leaves an unfinished saga (the reset cannot be taken back: recovery finishes it); any other
/// error changed nothing. After the recovery that follows no saga is unfinished, the two systems agree,
/// and the reset shows where the run succeeded or was stuck; resetting again then succeeds.
pub async fn run_reset_fault_case(
    h: &Harness,
    kind: SagaKind,
    op: &str,
    skip: u32,
    mode: FaultMode,
    times: Option<u32>,
) {
    let ctx = format!("{kind:?} fault {op}#{skip} {mode:?} times={times:?}");
    let email = "resettee@example.com";
    let id = reset_subject(h, email).await;
    let untouched = (false, (kind == SagaKind::ResetPassword).then_some(false));
    let reset = (true, (kind == SagaKind::ResetPassword).then_some(true));
    assert_eq!(reset_states(h, kind, email).await, untouched, "{ctx}: set-up");
    h.plan.fail_after(op, skip, mode, times);
    let result = run_reset(h, kind, id, Some("matrix")).await;
    assert!(h.plan.fired(op) > 0, "{ctx}: the fault never fired");
    h.plan.clear();
    if times == Some(1) {
        assert!(
            result.is_ok(),
            "{ctx}: a single transient fault was not absorbed: {result:?}"
        );
    }
    let stuck = matches!(result, Err(Error::SagaStuck { .. }));
    match &result {
        Ok(_) => assert_eq!(reset_states(h, kind, email).await, reset, "{ctx}: Ok"),
        Err(Error::SagaStuck { saga_id }) => {
            let saga = h.raw_store.get(*saga_id).await.unwrap().unwrap();
            assert!(
                !saga.state.is_terminal(),
                "{ctx}: stuck but the saga is {:?}",
                saga.state
            );
        }
        Err(e) => assert_eq!(
            reset_states(h, kind, email).await,
            untouched,
            "{ctx}: error {e:?} but the systems changed"
        ),
    }
    h.recover().await;
    assert!(
        h.raw_store.list_unfinished().await.unwrap().is_empty(),
        "{ctx}: unfinished sagas remain after recovery"
    );
    let after = reset_states(h, kind, email).await;
    if let (db, Some(cognito)) = after {
        assert_eq!(db, cognito, "{ctx}: the systems disagree after recovery");
    }
    if result.is_ok() || stuck {
        assert_eq!(after, reset, "{ctx}: recovery did not finish the reset");
    }
    let again = run_reset(h, kind, id, None)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: resetting again failed: {e:?}"));
    assert!(again.user.sessions_valid_after.is_some(), "{ctx}");
    assert_eq!(
        reset_states(h, kind, email).await,
        reset,
        "{ctx}: after resetting again"
    );
}
