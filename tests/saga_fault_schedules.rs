//! Property test of the saga's guarantee over random fault schedules, in-process on the built-in emulator
//! + SQLite (the public API of `admin-provisioner-core` and its fault machinery, `faults::FaultPlan`).
//!
//! A schedule is: up to 3 faults during the provisioning (on any Cognito or database call the saga
//! makes, reads included: an error that did not take effect, a call that took effect and then reported
//! failure, a hang past the call timeout, a call that took effect and then hung; transient or definitive;
//! from the first call or after a few; once, twice or always), optionally a crash (the run is abandoned,
//! its future dropped, at the n-th call of any operation, before or after that call took effect), then a
//! recovery pass under up to 2 more faults and possibly a crash of its own, and at last clean recovery
//! passes (the clock moved past each lease). After that the guarantee must hold: the e-mail is in both
//! systems and linked, or in neither; no Cognito user without its record (no ghost); no saga unfinished;
//! an admin answered as created exists, and one answered with an error (other than "stuck") does not.
//!
//! A crash is a second fault plan wrapped outside the first, holding the one crash rule: its "hang started"
//! signal is the moment to drop the run, and its `fired` count proves the crash happened.
//!
//! Fixed budget: [`RUNNERS`] runners × [`CASES_PER_RUNNER`] cases = 1,000 schedules, each runner on an
//! emulator and SQLite file of its own (in `/dev/shm` where it exists), about 20–30 s on 2 loaded cores.
//!
//! Replay: the master seed is printed (`fault schedules: seed S`); a failure names the runner, the seed
//! and the minimal failing schedule. `SAGA_SCHEDULE_SEED=S cargo nextest run --test saga_fault_schedules`
//! replays the same schedules (timing aside: a call can still time out by itself on a loaded machine).

use admin_provisioner_core::clock::ManualClock;
use admin_provisioner_core::faults::{FaultMode, FaultPlan, FaultRule, FaultyIdentityProvider, FaultyStore};
use admin_provisioner_core::identity::{op as idp_op, IdentityProvider, IdpError};
use admin_provisioner_core::store::{op as store_op, Store, StoreError};
use admin_provisioner_core::{Caller, Error, Provisioner, ProvisionerSettings};
use admin_provisioner_emulator::{CognitoEmulator, EmulatorConfig};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RUNNERS: u32 = 4;
const CASES_PER_RUNNER: u32 = 250;

/// The calls a provisioning makes through the ports, weighted by how often a run reaches them (reads
/// and undo calls happen only on some paths).
const FORWARD_OPS: &[(u32, &str)] = &[
    (2, store_op::FIND_ADMIN_BY_EMAIL),
    (3, store_op::SAGA_BEGIN),
    (4, store_op::SAGA_UPDATE),
    (4, idp_op::ADMIN_CREATE_USER),
    (3, store_op::INSERT_ADMIN),
    (2, store_op::GET_ADMIN),
    (2, idp_op::ADMIN_GET_USER),
    (2, idp_op::ADMIN_DELETE_USER),
    (1, store_op::FIND_ADMIN_BY_COGNITO_USERNAME),
    (1, store_op::SAGA_GET),
    (1, store_op::APPEND_AUDIT),
];

/// The calls a recovery pass makes.
const RECOVERY_OPS: &[(u32, &str)] = &[
    (2, store_op::SAGA_CLAIM),
    (2, store_op::GET_ADMIN),
    (3, idp_op::ADMIN_GET_USER),
    (3, store_op::SAGA_UPDATE),
    (2, store_op::INSERT_ADMIN),
    (1, store_op::FIND_ADMIN_BY_COGNITO_USERNAME),
    (2, idp_op::ADMIN_DELETE_USER),
    (1, store_op::SAGA_GET),
];

/// With roles mirrored into groups (`COGNITO_ROLE_GROUPS=true`): the provisioning's calls, the
/// `add_to_group` step's included.
const FORWARD_OPS_GROUPS: &[(u32, &str)] = &[
    (2, store_op::FIND_ADMIN_BY_EMAIL),
    (3, store_op::SAGA_BEGIN),
    (4, store_op::SAGA_UPDATE),
    (4, idp_op::ADMIN_CREATE_USER),
    (4, idp_op::ADMIN_ADD_USER_TO_GROUP),
    (3, store_op::INSERT_ADMIN),
    (2, store_op::GET_ADMIN),
    (2, idp_op::ADMIN_GET_USER),
    (2, idp_op::ADMIN_DELETE_USER),
    (2, idp_op::ADMIN_REMOVE_USER_FROM_GROUP),
    (1, store_op::FIND_ADMIN_BY_COGNITO_USERNAME),
    (1, store_op::SAGA_GET),
    (1, store_op::APPEND_AUDIT),
];

/// With roles mirrored into groups: a recovery pass's calls (the group step's probe and redo included).
const RECOVERY_OPS_GROUPS: &[(u32, &str)] = &[
    (2, store_op::SAGA_CLAIM),
    (2, store_op::GET_ADMIN),
    (3, idp_op::ADMIN_GET_USER),
    (3, idp_op::ADMIN_LIST_GROUPS_FOR_USER),
    (2, idp_op::ADMIN_ADD_USER_TO_GROUP),
    (3, store_op::SAGA_UPDATE),
    (2, store_op::INSERT_ADMIN),
    (1, store_op::FIND_ADMIN_BY_COGNITO_USERNAME),
    (2, idp_op::ADMIN_DELETE_USER),
    (1, idp_op::ADMIN_REMOVE_USER_FROM_GROUP),
    (1, store_op::SAGA_GET),
];

/// Every operation above.
const OPS: &[&str] = &[
    idp_op::ADMIN_ADD_USER_TO_GROUP,
    idp_op::ADMIN_REMOVE_USER_FROM_GROUP,
    idp_op::ADMIN_LIST_GROUPS_FOR_USER,
    idp_op::ADMIN_CREATE_USER,
    idp_op::ADMIN_GET_USER,
    idp_op::ADMIN_DELETE_USER,
    store_op::FIND_ADMIN_BY_EMAIL,
    store_op::SAGA_BEGIN,
    store_op::SAGA_UPDATE,
    store_op::INSERT_ADMIN,
    store_op::GET_ADMIN,
    store_op::FIND_ADMIN_BY_COGNITO_USERNAME,
    store_op::SAGA_GET,
    store_op::SAGA_CLAIM,
    store_op::APPEND_AUDIT,
];

fn is_idp(op: &str) -> bool {
    op.starts_with("Admin")
}

#[derive(Clone, Debug)]
struct Fault {
    op: &'static str,
    mode: FaultMode,
    /// Matching calls let through first.
    skip: u32,
    /// Calls hit (`None`: all of them).
    times: Option<u32>,
    /// A definitive refusal (`InvalidParameter` / `StoreError::Other`) instead of a transient error.
    definitive: bool,
}

#[derive(Clone, Debug)]
struct Crash {
    op: &'static str,
    /// Calls of `op` that pass before the crash.
    skip: u32,
    /// The call took effect before the process "died".
    after_effect: bool,
}

#[derive(Clone, Debug)]
struct Schedule {
    forward: Vec<Fault>,
    crash: Option<Crash>,
    recovery: Vec<Fault>,
    recovery_crash: Option<Crash>,
}

fn op(ops: &'static [(u32, &'static str)]) -> impl Strategy<Value = &'static str> {
    let weighted: Vec<&'static str> = ops
        .iter()
        .flat_map(|(w, op)| std::iter::repeat_n(*op, *w as usize))
        .collect();
    proptest::sample::select(weighted)
}

fn fault(ops: &'static [(u32, &'static str)]) -> impl Strategy<Value = Fault> {
    let mode = prop_oneof![
        3 => Just(FaultMode::Error),
        3 => Just(FaultMode::SucceedThenError),
        1 => Just(FaultMode::Hang),
        1 => Just(FaultMode::SucceedThenHang),
    ];
    let times = prop_oneof![3 => Just(Some(1)), 2 => Just(Some(2)), 1 => Just(None)];
    let skip = prop_oneof![3 => Just(0u32), 1 => Just(1), 1 => Just(2)];
    (op(ops), mode, skip, times, proptest::bool::weighted(0.25)).prop_map(|(op, mode, skip, times, definitive)| Fault {
        op,
        mode,
        skip,
        times,
        definitive,
    })
}

fn crash(ops: &'static [(u32, &'static str)]) -> impl Strategy<Value = Crash> {
    let skip = prop_oneof![3 => Just(0u32), 1 => Just(1), 1 => Just(2)];
    (op(ops), skip, any::<bool>()).prop_map(|(op, skip, after_effect)| Crash { op, skip, after_effect })
}

fn schedule(groups: bool) -> impl Strategy<Value = Schedule> {
    let (forward, recovery) = if groups {
        (FORWARD_OPS_GROUPS, RECOVERY_OPS_GROUPS)
    } else {
        (FORWARD_OPS, RECOVERY_OPS)
    };
    (
        proptest::collection::vec(fault(forward), 0..=3),
        proptest::option::weighted(0.6, crash(forward)),
        proptest::collection::vec(fault(recovery), 0..=2),
        proptest::option::weighted(0.3, crash(recovery)),
    )
        .prop_map(|(forward, crash, recovery, recovery_crash)| Schedule {
            forward,
            crash,
            recovery,
            recovery_crash,
        })
}

fn plan_of(faults: &[Fault]) -> Arc<FaultPlan> {
    let plan = FaultPlan::new();
    for f in faults {
        plan.add(FaultRule {
            op: f.op.to_string(),
            mode: f.mode,
            remaining: f.times,
            idp_error: (f.definitive && is_idp(f.op))
                .then(|| IdpError::InvalidParameter("injected definitive refusal".into())),
            store_error: (f.definitive && !is_idp(f.op))
                .then(|| StoreError::Other("injected definitive refusal".into())),
            skip: f.skip,
        });
    }
    plan
}

fn crash_plan(c: &Option<Crash>) -> Arc<FaultPlan> {
    let plan = FaultPlan::new();
    if let Some(c) = c {
        let mode = if c.after_effect {
            FaultMode::SucceedThenHang
        } else {
            FaultMode::Hang
        };
        plan.fail_after(c.op, c.skip, mode, Some(1));
    }
    plan
}

/// One runner's systems: an emulator and an SQLite file, and the clock both share.
struct Env {
    idp: Arc<dyn IdentityProvider>,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    settings: ProvisionerSettings,
    /// Roles mirrored into groups (the role groups created at the start, as `serve` does).
    groups: bool,
    _dir: tempfile::TempDir,
}

fn settings() -> ProvisionerSettings {
    let s = ProvisionerSettings {
        // Hangs cost one timeout per attempt; long enough that SQLite calls on a loaded machine rarely
        // time out by themselves.
        call_timeout: Duration::from_millis(250),
        max_attempts: 2,
        backoff_base: Duration::from_millis(1),
        backoff_max: Duration::from_millis(4),
        lease_ttl: Duration::from_secs(5),
        ..ProvisionerSettings::default()
    };
    s.validate().unwrap();
    s
}

impl Env {
    async fn new(groups: bool) -> Self {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            tempfile::tempdir_in("/dev/shm").unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let clock = Arc::new(ManualClock::new());
        let mut ec = EmulatorConfig::in_memory(dir.path().join("mailbox"));
        ec.clock = clock.clone();
        let idp: Arc<dyn IdentityProvider> = Arc::new(CognitoEmulator::open(ec).await.unwrap());
        let store = admin_provisioner_store::connect(&format!("sqlite://{}", dir.path().join("db.sqlite").display()))
            .await
            .unwrap();
        let settings = ProvisionerSettings {
            role_groups: groups.then(|| "admin-provisioner-".to_string()),
            ..settings()
        };
        let env = Self {
            idp,
            store,
            clock,
            settings,
            groups,
            _dir: dir,
        };
        if groups {
            env.provisioner(&FaultPlan::new(), &FaultPlan::new())
                .ensure_role_groups()
                .await
                .unwrap();
        }
        env
    }

    /// A provisioner over the systems: the crash plan outside, the fault plan inside.
    fn provisioner(&self, faults: &Arc<FaultPlan>, crash: &Arc<FaultPlan>) -> Provisioner {
        let idp = Arc::new(FaultyIdentityProvider::new(
            Arc::new(FaultyIdentityProvider::new(self.idp.clone(), faults.clone())),
            crash.clone(),
        ));
        let store = Arc::new(FaultyStore::new(
            Arc::new(FaultyStore::new(self.store.clone(), faults.clone())),
            crash.clone(),
        ));
        Provisioner::new(idp, store, self.clock.clone(), self.settings.clone())
    }

    fn expire_leases(&self) {
        self.clock
            .advance(chrono::Duration::from_std(self.settings.lease_ttl).unwrap() + chrono::Duration::seconds(1));
    }
}

/// What the schedules did, over the whole run (the faults must reach the code).
#[derive(Debug, Default)]
struct Stats {
    cases: u64,
    faults_fired: u64,
    fired_by_op: BTreeMap<&'static str, u64>,
    crashes: BTreeMap<&'static str, u64>,
    crashes_not_reached: u64,
    recovery_crashes: u64,
    answers: BTreeMap<String, u64>,
    both: u64,
    neither: u64,
}

#[derive(Debug)]
enum Answer {
    Created(Box<admin_provisioner_core::ProvisionedAdmin>),
    Refused(Error),
    Crashed,
}

async fn run_case(env: &Env, n: u64, s: &Schedule, stats: &Mutex<Stats>) -> Result<(), TestCaseError> {
    let email = format!("case.{n}@example.com");

    // The provisioning, under faults, abandoned at the crash if it comes.
    let faults = plan_of(&s.forward);
    let crash = crash_plan(&s.crash);
    let p = env.provisioner(&faults, &crash);
    let answer = tokio::select! {
        r = p.provision_new_admin(&Caller::Operator, &email, Some("schedule")) => match r {
            Ok(a) => Answer::Created(Box::new(a)),
            Err(e) => Answer::Refused(e),
        },
        _ = crash.hang_started() => Answer::Crashed,
    };
    drop(p);
    if let Some(c) = &s.crash {
        // A crash is the crash rule firing (a crash "after effect" whose call hung inside, under an injected
        // hang, fired without crashing: the call timed out first).
        let fired = crash.fired(c.op);
        if matches!(answer, Answer::Crashed) {
            prop_assert_eq!(fired, 1, "crashed without the crash rule firing");
        }
        prop_assert!(fired <= 1);
    }

    // A recovery pass under its own faults (and maybe a crash of its own).
    env.expire_leases();
    let rfaults = plan_of(&s.recovery);
    let rcrash = crash_plan(&s.recovery_crash);
    let r = env.provisioner(&rfaults, &rcrash);
    let recovery_crashed = tokio::select! {
        _ = r.recover_unfinished() => false,
        _ = rcrash.hang_started() => true,
    };
    drop(r);

    // Clean recovery passes, each after the leases expired, until nothing is left.
    let clean = env.provisioner(&FaultPlan::new(), &FaultPlan::new());
    for _ in 0..4 {
        if env.store.list_unfinished().await.unwrap().is_empty() {
            break;
        }
        env.expire_leases();
        clean
            .recover_unfinished()
            .await
            .map_err(|e| TestCaseError::fail(format!("clean recovery failed: {e}")))?;
    }

    // The guarantee.
    let unfinished = env.store.list_unfinished().await.unwrap();
    prop_assert!(
        unfinished.is_empty(),
        "unfinished after recovery: {:?}",
        unfinished
            .iter()
            .map(|s| (s.id, s.state, s.last_error.clone()))
            .collect::<Vec<_>>()
    );
    let record = env.store.find_admin_by_email(&email).await.unwrap();
    let user = match env.idp.admin_get_user(&email).await {
        Ok(u) => Some(u),
        Err(IdpError::UserNotFound) => None,
        Err(e) => return Err(TestCaseError::fail(format!("AdminGetUser: {e}"))),
    };
    let sagas = env.store.list_for_email(&email).await.unwrap();
    let both = match (&record, &user) {
        (Some(r), Some(u)) => {
            prop_assert_eq!(&r.user.cognito_sub, &u.sub, "record linked to another Cognito user");
            prop_assert_eq!(&r.user.cognito_username, &u.username);
            true
        }
        (None, None) => false,
        _ => {
            return Err(TestCaseError::fail(format!(
                "not both-or-neither: answer {answer:?}, record {record:?}, Cognito user {user:?}, sagas {sagas:?}"
            )))
        }
    };
    match &answer {
        Answer::Created(a) => {
            prop_assert!(both, "answered created, but not in both systems: sagas {:?}", sagas);
            prop_assert_eq!(record.as_ref().unwrap().user.id, a.user.id);
        }
        Answer::Refused(Error::SagaStuck { .. }) | Answer::Crashed => {}
        Answer::Refused(e) => {
            prop_assert!(
                !both,
                "answered {} ({}), but the admin exists: sagas {:?}",
                e.code(),
                e,
                sagas
            );
        }
    }

    if env.groups && both {
        // Mirrored: the admin's Cognito user is in exactly its role's group.
        let groups = env
            .idp
            .admin_list_groups_for_user(&email)
            .await
            .map_err(|e| TestCaseError::fail(format!("AdminListGroupsForUser: {e}")))?;
        prop_assert_eq!(groups, vec!["admin-provisioner-admin".to_string()], "sagas {:?}", sagas);
    }

    let mut st = stats.lock().unwrap();
    st.cases += 1;
    for op in OPS {
        let fired = (faults.fired(op) + rfaults.fired(op)) as u64;
        st.faults_fired += fired;
        *st.fired_by_op.entry(op).or_default() += fired;
    }
    match (&s.crash, &answer) {
        (Some(c), Answer::Crashed) => *st.crashes.entry(c.op).or_default() += 1,
        (Some(_), _) => st.crashes_not_reached += 1,
        _ => {}
    }
    st.recovery_crashes += u64::from(recovery_crashed);
    let key = match &answer {
        Answer::Created(_) => "created".to_string(),
        Answer::Refused(e) => e.code().to_string(),
        Answer::Crashed => "crashed".to_string(),
    };
    *st.answers.entry(key).or_default() += 1;
    if both {
        st.both += 1;
    } else {
        st.neither += 1;
    }
    Ok(())
}

#[test]
fn random_fault_schedules_keep_both_or_neither_after_recovery() {
    run_schedules(false, RUNNERS, CASES_PER_RUNNER);
}

/// The same with roles mirrored into Cognito groups (the provisioning table's `add_to_group` step and its
/// undo and probe in the schedules): 2 runners × 125 schedules; a settled admin is also in exactly its
/// role's group.
#[test]
fn random_fault_schedules_with_role_groups_keep_both_or_neither_and_the_group() {
    run_schedules(true, 2, 125);
}

fn run_schedules(groups: bool, runner_count: u32, cases_per_runner: u32) {
    let seed: u64 = std::env::var("SAGA_SCHEDULE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    println!("fault schedules: seed {seed} (replay with SAGA_SCHEDULE_SEED={seed})");
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let stats = Arc::new(Mutex::new(Stats::default()));
    let counter = Arc::new(AtomicU64::new(0));
    let runners: Vec<_> = (0..runner_count)
        .map(|i| {
            let handle = rt.handle().clone();
            let (stats, counter) = (stats.clone(), counter.clone());
            std::thread::spawn(move || {
                let env = handle.block_on(Env::new(groups));
                let mut runner = TestRunner::new(Config {
                    cases: cases_per_runner,
                    rng_algorithm: RngAlgorithm::ChaCha,
                    rng_seed: RngSeed::Fixed(seed.wrapping_add(u64::from(i))),
                    failure_persistence: None,
                    max_shrink_iters: 64,
                    ..Config::default()
                });
                let result = runner.run(&schedule(groups), |s| {
                    let n = counter.fetch_add(1, Ordering::SeqCst);
                    handle.block_on(async {
                        match tokio::time::timeout(Duration::from_secs(60), run_case(&env, n, &s, &stats)).await {
                            Ok(r) => r,
                            Err(_) => Err(TestCaseError::fail("the case did not finish within 60 s")),
                        }
                    })
                });
                match result {
                    Ok(()) => Ok(()),
                    Err(TestError::Fail(why, s)) => Err(format!(
                        "runner {i} (seed {seed}, runner seed {}): {why}\nminimal failing schedule: {s:#?}",
                        seed.wrapping_add(u64::from(i))
                    )),
                    Err(TestError::Abort(why)) => Err(format!("runner {i} aborted: {why}")),
                }
            })
        })
        .collect();
    let failures: Vec<String> = runners
        .into_iter()
        .filter_map(|r| r.join().unwrap_or_else(|_| Err("a runner panicked".into())).err())
        .collect();
    let st = stats.lock().unwrap();
    println!(
        "fault schedules{}: {} cases in {:.1} s; {} faults fired {:?}; crashes {:?} ({} scheduled but not reached, {} in recovery); answers {:?}; {} in both, {} in neither",
        if groups { " (role groups)" } else { "" },
        st.cases,
        started.elapsed().as_secs_f64(),
        st.faults_fired,
        st.fired_by_op,
        st.crashes,
        st.crashes_not_reached,
        st.recovery_crashes,
        st.answers,
        st.both,
        st.neither
    );
    assert!(failures.is_empty(), "seed {seed}: {}", failures.join("\n\n"));
    assert!(st.cases >= u64::from(runner_count * cases_per_runner));
    // The schedules reached the code: faults fired on every step of the forward run, crashes happened
    // at each of them, and both outcomes occurred.
    let mut reached = vec![
        store_op::FIND_ADMIN_BY_EMAIL,
        store_op::SAGA_BEGIN,
        store_op::SAGA_UPDATE,
        idp_op::ADMIN_CREATE_USER,
        store_op::INSERT_ADMIN,
    ];
    if groups {
        reached.push(idp_op::ADMIN_ADD_USER_TO_GROUP);
    }
    for op in reached {
        assert!(
            st.fired_by_op.get(op).copied().unwrap_or(0) > 0,
            "no fault fired on {op}"
        );
        assert!(st.crashes.get(op).copied().unwrap_or(0) > 0, "no crash at {op}");
    }
    assert!(st.both > 0 && st.neither > 0, "{st:?}");
    drop(st);
    rt.shutdown_timeout(Duration::from_secs(5));
}
