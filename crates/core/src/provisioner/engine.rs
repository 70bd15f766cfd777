//! The saga engine: a saga is a table of steps, each an action with its undo beside it (the model:
//! oxidecomputer/steno's action/undo pairs and omicron's `declare_saga_actions!`). One state machine
//! drives the forward run, the compensation and crash recovery from that table and the state recorded in
//! the saga log; the sagas themselves (provisioning in `saga.rs`, removal in `removal.rs`, disable and
//! enable in `lifecycle.rs`) only declare their table and write their steps.
//!
//! # The log
//! A saga's row ([`SagaRecord`]) is written before the first side effect ([`SagaDef::run`]: the intent,
//! with the lease). Its state is `started`, or the first step's [`Step::begins`] when it has one: the
//! intent and "the first action may have run" are then one write (both precede any side effect, so
//! nothing is lost by merging them; it saves a durable commit per saga). Then, per step:
//! * a step with [`Step::begins`] logs that state (compare-and-set from the previous one) before its action,
//!   so a crash afterwards tells recovery "this action may have run" (for the first step the intent
//!   already said so);
//! * the action runs (with the provisioner's timeouts and one retry layer inside it);
//! * its end state [`Step::done`] is logged, with the fields the action returned ([`Logged::After`]), or the
//!   action wrote it in its own transaction ([`Logged::InAction`], atomic with its effect). A step whose
//!   `done` is its `begins` state writes nothing after its action: the next step's transaction logs the
//!   saga's progress (and the fields the action returned, which the engine also carries into any state it
//!   logs before then: `compensating`, `stuck`), and recovery learns whether it ran from its probe.
//!
//! # Failure (a caller waits: [`Mode::Forward`])
//! * [`StepError::Refused`]: the action certainly took no effect; the earlier steps are undone.
//! * [`StepError::Failed`]: it may have taken effect; it is undone too (undos are idempotent and apply the
//!   ownership rule, so undoing an effect that never happened is harmless).
//! * [`StepError::Undecided`]: it cannot tell and must not undo: the saga is marked `stuck` (lease given
//!   up) for recovery.
//!
//! Undoing logs `compensating`, runs the undos last first, then logs `compensated`; with nothing to undo
//! the saga is `aborted`. An undo that fails leaves the saga `stuck`. A step without an undo is the saga's
//! point of no return: a failure after it cannot be compensated, the saga is marked `stuck` and recovery
//! takes it forward ([`SagaDef::stuck`]). A failure to log the end state of the last step is left to
//! recovery (the last step is idempotent) and the run succeeds.
//!
//! # Lease loss
//! A run holds its saga's lease and renews it (`Provisioner::with_lease`). A log write refused with
//! [`StoreError::LeaseLost`] means recovery took the saga over: before a step's action nothing is undone
//! (the new owner sees the log); after it, the run waits (at most one lease) for the new owner to settle
//! the saga and then calls the step's [`Step::lost`], which undoes only what this run alone knows it
//! created.
//!
//! # Recovery ([`Mode::Recovery`]: no caller waits)
//! [`SagaDef::recover`] reads the state: if the last step has a [`Step::probe`] and it finds the effect,
//! the saga is complete. `started` with a first step that recovery does not [`Step::redo`]: aborted (no
//! side effect ever happened; none is started on behalf of a caller who has gone). `compensating` (and
//! `stuck` when [`SagaDef::stuck`] is [`Direction::Undo`]): every undo runs, last first. Otherwise
//! recovery resumes at the step the state names: each step with a probe is asked whether its effect
//! exists (loading its output into the saga's data); found, the step is skipped; not found, it is run
//! again if it is a [`Step::redo`] step, or the saga is compensated; `Foreign` (someone else's), the
//! saga is aborted. A failure while recovering is left for the next pass (the state is kept).
//!
//! # Crash points
//! Derived from the table ([`SagaDef::crash_points`]): `<saga>.after_intent`, then per step
//! `<saga>.before_<step>` (after its `begins` state is logged; not for the first step, whose `begins` the
//! intent logs), `<saga>.after_<step>` (after its action), and `<saga>.after_<label>` (after a
//! [`Logged::After`] write).

use super::*;
use std::pin::Pin;

/// A boxed, sendable future borrowing the step's context.
pub type StepFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Whether a caller waits for the run (forward) or recovery settles an interrupted saga.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A caller waits: a failure is compensated now.
    Forward,
    /// Recovery: a failure is left for the next pass; a step is run only if it is a redo step.
    Recovery,
}

/// What a step sees: the provisioner (ports, clock, timeouts, retry), the saga's row as this run last
/// wrote it, the saga's own working data, and the mode.
pub struct Cx<D> {
    /// The orchestrator (cheap clone).
    pub p: Provisioner,
    /// The saga's log row as this run last wrote or read it.
    pub saga: SagaRecord,
    /// The saga's working data (inputs, and the outputs of the steps so far).
    pub data: D,
    /// Forward or recovery.
    pub mode: Mode,
    /// Fields returned by [`Logged::InAction`] steps that no write of the engine has carried yet: merged
    /// into the next state the engine logs (`compensating`, `stuck`, a later step's `begins`).
    unlogged: SagaUpdate,
}

/// `base` with the fields of `extra` that `base` leaves unset (attempts added).
fn merged(base: SagaUpdate, extra: &SagaUpdate) -> SagaUpdate {
    SagaUpdate {
        cognito_username: base.cognito_username.or_else(|| extra.cognito_username.clone()),
        cognito_sub: base.cognito_sub.or_else(|| extra.cognito_sub.clone()),
        identity_created_by_saga: base.identity_created_by_saga.or(extra.identity_created_by_saga),
        invite_delivered: base.invite_delivered.or(extra.invite_delivered),
        add_attempts: base.add_attempts + extra.add_attempts,
        ..base
    }
}

impl<D> Cx<D> {
    /// Writes `update` to the saga's row (with the retry layer), carrying the unlogged fields; on success
    /// the row written is this run's view of the saga and nothing is left unlogged.
    async fn write(&mut self, update: SagaUpdate) -> Result<(), StoreError> {
        let update = merged(update, &self.unlogged);
        let id = self.saga.id;
        let row = self
            .p
            .retry(|| self.p.store_call(self.p.sagas.update(id, update.clone())))
            .await?;
        self.saga = row;
        self.unlogged = SagaUpdate::default();
        Ok(())
    }

    /// Logs `state` (with `last_error`) under this run's lease, carrying the unlogged fields.
    async fn log_state(&mut self, state: SagaState, last_error: Option<String>) -> Result<(), StoreError> {
        let update = SagaUpdate {
            state: Some(state),
            last_error: last_error.map(Some),
            ..self.p.owned(&self.saga)
        };
        self.write(update).await
    }
}

/// How a step's action failed.
#[derive(Debug)]
pub enum StepError {
    /// The action certainly took no effect (a definitive refusal, a failed precondition, a read-back that
    /// found nothing): only the earlier steps are undone.
    Refused(Error),
    /// The action may have taken effect: its own undo runs too.
    Failed(Error),
    /// It cannot tell whether the action took effect and must not undo: the saga is marked `stuck` with
    /// this message, for recovery to decide.
    Undecided(String),
}

/// What a step's probe found (recovery asks it when the log cannot tell).
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// The effect exists and is this saga's (its output is now in the saga's data).
    Done,
    /// The effect does not exist (the message says why, for the log).
    NotDone(String),
    /// Something exists that is not this saga's: never touched; the saga is aborted with this message.
    Foreign(String),
}

/// Where a saga marked `stuck` resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Undoing: `stuck` means an undo could not finish (or the run could not tell, and undoing is safe).
    Undo,
    /// Forward: `stuck` means a step after the point of no return failed; recovery finishes it.
    Forward,
}

/// How a step's end state reaches the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logged {
    /// The action writes it in its own transaction, atomically with its effect.
    InAction,
    /// The engine writes it after the action (with the fields the action returned); `label` names the
    /// crash point after that write (`<saga>.after_<label>`).
    After(&'static str),
}

/// A step's action: performs the side effect (idempotently) and returns the fields to log with its end
/// state. It may keep outputs in `cx.data`.
pub type Action<D> = for<'a> fn(&'a mut Cx<D>) -> StepFuture<'a, Result<SagaUpdate, StepError>>;
/// A step's undo: removes the step's effect if (and only if) it is this saga's own; idempotent, harmless
/// when the action never took effect.
pub type Undo<D> = for<'a> fn(&'a mut Cx<D>) -> StepFuture<'a, Result<(), Error>>;
/// A step's probe: does its effect exist? Loads the step's output into `cx.data` when it does.
pub type ProbeFn<D> = for<'a> fn(&'a mut Cx<D>) -> StepFuture<'a, Result<Probe, Error>>;
/// What a run that lost its lease after this step's action does once the new owner has settled the saga:
/// undo what it alone knows it created. `true` when the saga stands with this run's effect (the run then
/// reports success).
pub type LostFn<D> = for<'a> fn(&'a mut Cx<D>) -> StepFuture<'a, bool>;

/// One entry of a saga's table.
pub struct Step<D: 'static> {
    /// The step's name (crash points `<saga>.before_<name>`, `<saga>.after_<name>`; logs).
    pub name: &'static str,
    /// What the saga is doing while this step is in progress, in words for people (the console's saga
    /// page reads it from here: one registry, [`SagaDef::words`]).
    pub doing: &'static str,
    /// The state logged before the action, when a crash during it must be visible ("may have run").
    pub begins: Option<SagaState>,
    /// The state once the step took effect.
    pub done: SagaState,
    /// How `done` is logged.
    pub logged: Logged,
    /// The side effect.
    pub action: Action<D>,
    /// Its undo; `None` makes the step a point of no return (after it, the saga only goes forward).
    pub undo: Option<Undo<D>>,
    /// How recovery finds out whether the effect exists; `None`: the log alone decides.
    pub probe: Option<ProbeFn<D>>,
    /// Whether recovery runs the action when the step has not taken effect (`false`: the saga is undone
    /// instead; no side effect is started on behalf of a caller who has gone).
    pub redo: bool,
    /// Lease lost after the action (see [`LostFn`]); `None`: nothing to undo, the new owner sees the log.
    pub lost: Option<LostFn<D>>,
    /// The port operations the action calls on a clean run, in order (the fault matrix is derived from
    /// them; a test checks them against a clean run's call log).
    pub calls: &'static [&'static str],
}

/// One step of a saga's table, as data ([`SagaDef::describe`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepInfo {
    /// The step's name (`intent` for the row the engine logs before any step).
    pub name: &'static str,
    /// The port operations a clean run calls for this step, in order (see [`crate::identity::op`],
    /// [`crate::store::op`]).
    pub calls: Vec<&'static str>,
    /// Whether the step has an undo.
    pub undoable: bool,
}

/// A saga: its kind in the log, its name (crash-point prefix) and its table of steps.
pub struct SagaDef<D: 'static> {
    /// The kind recorded in the log; recovery dispatches on it (`Provisioner::recover_one`).
    pub kind: SagaKind,
    /// Prefix of the crash points.
    pub name: &'static str,
    /// The steps, in order.
    pub steps: &'static [Step<D>],
    /// Where `stuck` resumes.
    pub stuck: Direction,
    /// What compensation does, in words for people (the saga page shows it for `compensating`).
    pub undoing: &'static str,
}

/// Fires crash point `<saga>.<what>` (testing builds only; see [`crate::crash`]).
fn crash(saga: &str, what: &str) {
    if cfg!(feature = "testing") {
        crate::crash::point(&format!("{saga}.{what}"));
    }
}

/// The outcome of a forward run that did not finish normally.
enum Stop {
    /// The run ended with this error (the saga is settled or left for recovery as logged).
    Err(Error),
    /// The run lost its lease and the new owner finished the saga with this run's effect.
    Stands,
}

impl<D: Send + 'static> SagaDef<D> {
    /// The crash points of this saga, in the order a clean run passes them.
    pub fn crash_points(&self) -> Vec<String> {
        let mut out = vec![format!("{}.after_intent", self.name)];
        for (i, s) in self.steps.iter().enumerate() {
            if s.begins.is_some() && i > 0 {
                out.push(format!("{}.before_{}", self.name, s.name));
            }
            out.push(format!("{}.after_{}", self.name, s.name));
            if let Logged::After(label) = s.logged {
                out.push(format!("{}.after_{label}", self.name));
            }
        }
        out
    }

    /// The table as data: first the intent (`saga.begin`), then each step with the port calls a clean
    /// run makes for it (the engine's log writes around the action included), in order.
    /// What a saga of this table in `state` is doing (or last did), in words: the step in progress is
    /// the first whose `begins` is `state`, else the one after the step whose `done` is `state`.
    pub fn words(&self, state: SagaState) -> &'static str {
        match state {
            SagaState::Started => return "intent recorded; nothing changed yet",
            SagaState::Completed => return "done",
            SagaState::Compensated => return "undone",
            SagaState::Aborted => return "abandoned before any change",
            SagaState::Stuck => return "stopped: retries exhausted, waiting for an operator or the next recovery pass",
            SagaState::Compensating => return self.undoing,
            _ => {}
        }
        if let Some(step) = self.steps.iter().find(|s| s.begins == Some(state)) {
            return step.doing;
        }
        match self.steps.iter().position(|s| s.done == state) {
            Some(i) => self.steps.get(i + 1).map_or("finishing", |s| s.doing),
            // A state this table no longer logs (a row of an earlier version): recovery asks every probe.
            None => "interrupted in a state of an earlier version; recovery will finish or undo it",
        }
    }

    pub fn describe(&self) -> Vec<StepInfo> {
        let mut out = vec![StepInfo {
            name: "intent",
            calls: vec![crate::store::op::SAGA_BEGIN],
            undoable: false,
        }];
        for (i, s) in self.steps.iter().enumerate() {
            let mut calls = Vec::new();
            if s.begins.is_some() && i > 0 {
                calls.push(crate::store::op::SAGA_UPDATE);
            }
            calls.extend_from_slice(s.calls);
            if let Logged::After(_) = s.logged {
                calls.push(crate::store::op::SAGA_UPDATE);
            }
            out.push(StepInfo {
                name: s.name,
                calls,
                undoable: s.undo.is_some(),
            });
        }
        out
    }

    /// Records `intent` (holding its lease; state `started`, or the first step's `begins`) and runs every
    /// step under the lease. Returns the saga's data (with the steps' outputs), or the error to report
    /// after compensation.
    pub async fn run(&'static self, p: &Provisioner, mut intent: SagaRecord, data: D) -> Result<D, Error> {
        debug_assert_eq!(intent.kind, self.kind);
        if let Some(begins) = self.steps.first().and_then(|s| s.begins) {
            intent.state = begins;
        }
        let saga = match p.retry(|| p.store_call(p.sagas.begin(intent.clone()))).await {
            Ok(s) => s,
            Err(StoreError::SagaInFlight) => return Err(Error::AdminExists),
            Err(e) => {
                // The row may exist (a lost reply): release it. If even that fails, the saga is still
                // `started` with no side effect; recovery settles it once the lease expires.
                let _ = p.set_state(&intent, SagaState::Aborted, Some(e.to_string())).await;
                return Err(e.into());
            }
        };
        crash(self.name, "after_intent");
        let mut cx = Cx {
            p: p.clone(),
            saga: saga.clone(),
            data,
            mode: Mode::Forward,
            unlogged: SagaUpdate::default(),
        };
        match p.with_lease(&saga, self.forward(&mut cx, 0)).await {
            Ok(()) | Err(Stop::Stands) => Ok(cx.data),
            Err(Stop::Err(e)) => Err(e),
        }
    }

    /// Runs steps `from..` (either mode). In forward mode a failure is compensated here; in recovery it is
    /// returned (the saga is left as logged for the next pass).
    async fn forward(&'static self, cx: &mut Cx<D>, from: usize) -> Result<(), Stop> {
        // Steps whose action succeeded in this run (their effect is known to this run).
        let mut known: Vec<usize> = Vec::new();
        for (i, step) in self.steps.iter().enumerate().skip(from) {
            // Already logged (the intent logs the first step's `begins`): nothing to write.
            if let Some(begins) = step.begins.filter(|b| *b != cx.saga.state) {
                let update = SagaUpdate {
                    state: Some(begins),
                    expected_state: Some(cx.saga.state),
                    ..cx.p.owned(&cx.saga)
                };
                match cx.write(update).await {
                    Ok(()) => {}
                    // A retry whose first attempt landed.
                    Err(StoreError::SagaStateChanged(ref st)) if st == begins.as_str() => cx.saga.state = begins,
                    Err(e @ StoreError::LeaseLost(_)) => {
                        // Nothing of this step happened; the new owner sees the log.
                        tracing::error!(saga_id = %cx.saga.id, step = step.name, error = %e, "saga lease lost before the step's side effect");
                        return Err(Stop::Err(Error::DatabaseUnavailable(e.to_string())));
                    }
                    Err(e) => return self.fail(cx, i, StepError::Refused(e.into()), &known).await,
                }
                crash(self.name, &format!("before_{}", step.name));
            }
            match (step.action)(cx).await {
                Ok(fields) => {
                    crash(self.name, &format!("after_{}", step.name));
                    known.push(i);
                    if let Logged::After(label) = step.logged {
                        let update = SagaUpdate {
                            state: Some(step.done),
                            expected_owner: cx.saga.owner.clone(),
                            at: Some(cx.p.now()),
                            ..fields
                        };
                        match cx.write(update).await {
                            Ok(()) => {}
                            Err(StoreError::LeaseLost(_) | StoreError::SagaStateChanged(_)) => {
                                return Err(self.lost(cx, i).await)
                            }
                            Err(e) if i + 1 == self.steps.len() && cx.mode == Mode::Forward => {
                                // The last step took effect; recovery redoes it (idempotent) and logs it.
                                tracing::warn!(saga_id = %cx.saga.id, error = %e, "could not log the saga's completion; recovery will");
                                cx.p.release_lease(&cx.saga).await;
                                return Ok(());
                            }
                            Err(e) => return self.fail(cx, i, StepError::Failed(e.into()), &known).await,
                        }
                        crash(self.name, &format!("after_{label}"));
                    } else {
                        cx.saga.state = step.done;
                        cx.unlogged = merged(fields, &cx.unlogged);
                    }
                }
                Err(e) => return self.fail(cx, i, e, &known).await,
            }
        }
        Ok(())
    }

    /// Step `i` failed with `err`: compensate (forward mode) or leave it for the next pass (recovery).
    async fn fail(&'static self, cx: &mut Cx<D>, i: usize, err: StepError, known: &[usize]) -> Result<(), Stop> {
        let id = cx.saga.id;
        let (cause, include_failed) = match err {
            StepError::Undecided(msg) => {
                if cx.mode == Mode::Forward {
                    tracing::error!(saga_id = %id, step = self.steps[i].name, "{msg}; leaving the saga for recovery");
                    let _ = cx.log_state(SagaState::Stuck, Some(msg)).await;
                    cx.p.release_lease(&cx.saga).await;
                }
                return Err(Stop::Err(Error::SagaStuck { saga_id: id }));
            }
            StepError::Refused(e) => (e, false),
            StepError::Failed(e) => (e, true),
        };
        if cx.mode == Mode::Recovery {
            tracing::warn!(saga_id = %id, step = self.steps[i].name, error = %cause, "recovery could not finish the saga yet");
            return Err(Stop::Err(cause));
        }
        let end = if include_failed { i + 1 } else { i };
        // Past a point of no return (a step without undo that took effect), or a failed step that may have
        // taken effect and cannot be undone: only forward is left.
        if (0..end).any(|j| self.steps[j].undo.is_none()) {
            tracing::error!(saga_id = %id, step = self.steps[i].name, error = %cause, "step failed past the point of no return; saga is stuck and will be retried");
            let _ = cx.log_state(SagaState::Stuck, Some(cause.to_string())).await;
            cx.p.release_lease(&cx.saga).await;
            return Err(Stop::Err(Error::SagaStuck { saga_id: id }));
        }
        if end == 0 {
            // Nothing took effect: nothing to undo.
            let _ = cx.log_state(SagaState::Aborted, Some(cause.to_string())).await;
            return Err(Stop::Err(cause));
        }
        tracing::warn!(saga_id = %id, cause = %cause, "compensating {} saga", self.name);
        match cx.log_state(SagaState::Compensating, Some(cause.to_string())).await {
            Ok(()) => {}
            Err(StoreError::LeaseLost(_) | StoreError::SagaStateChanged(_)) => {
                // Recovery took the saga over meanwhile: undo only what this run knows it created, once
                // the new owner has settled.
                return match known.last() {
                    Some(&j) => Err(self.lost(cx, j).await),
                    None => {
                        tracing::warn!(saga_id = %id, "saga taken over elsewhere; not compensating");
                        Err(Stop::Err(cause))
                    }
                };
            }
            // The undos run anyway (they are idempotent); the final state carries the fields.
            Err(_) => {}
        }
        match self.undo_all(cx, end).await {
            Ok(()) => {
                let _ = cx.log_state(SagaState::Compensated, Some(cause.to_string())).await;
                Err(Stop::Err(cause))
            }
            Err(undo_err) => {
                tracing::error!(saga_id = %id, error = %undo_err, "compensation could not finish; saga is stuck");
                let msg = format!("{cause}; compensation failed: {undo_err}");
                let _ = cx.log_state(SagaState::Stuck, Some(msg)).await;
                cx.p.release_lease(&cx.saga).await;
                Err(Stop::Err(Error::SagaStuck { saga_id: id }))
            }
        }
    }

    /// Runs the undos of steps `..end`, last first.
    async fn undo_all(&'static self, cx: &mut Cx<D>, end: usize) -> Result<(), Error> {
        for step in self.steps[..end].iter().rev() {
            if let Some(undo) = step.undo {
                undo(cx).await?;
            }
        }
        Ok(())
    }

    /// The run lost its lease after step `i`'s action: wait (at most one lease) for the new owner to
    /// settle the saga, then let the step undo what this run alone knows it created.
    async fn lost(&'static self, cx: &mut Cx<D>, i: usize) -> Stop {
        let id = cx.saga.id;
        tracing::error!(saga_id = %id, step = self.steps[i].name, "saga lease lost after the step's side effect; waiting for the new owner, then undoing this run's own effect");
        let err = Error::DatabaseUnavailable(format!(
            "saga {id} lost its lease to recovery while it worked; its partial work was undone, try again"
        ));
        let Some(lost) = self.steps[i].lost else {
            return Stop::Err(err);
        };
        let deadline = tokio::time::Instant::now() + cx.p.settings.lease_ttl;
        let settled = loop {
            match cx.p.store_call(cx.p.sagas.get(id)).await {
                Ok(Some(cur)) if cur.state.is_terminal() => break true,
                _ if tokio::time::Instant::now() >= deadline => break false,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        if !settled {
            tracing::error!(saga_id = %id, "the new owner has not settled the saga; it will adopt or undo the effect");
            return Stop::Err(err);
        }
        if lost(cx).await {
            Stop::Stands
        } else {
            Stop::Err(err)
        }
    }

    /// Settles an interrupted saga (already claimed, under its lease) from its logged state and the table.
    /// Returns the state it ends in; a saga it cannot settle yet keeps its state.
    pub async fn recover(&'static self, p: &Provisioner, saga: &SagaRecord, data: D) -> SagaState {
        let mut cx = Cx {
            p: p.clone(),
            saga: saga.clone(),
            data,
            mode: Mode::Recovery,
            unlogged: SagaUpdate::default(),
        };
        let Some(last) = self.steps.last() else {
            return saga.state;
        };
        // The last step's effect exists: the saga is complete.
        if let Some(probe) = last.probe {
            match probe(&mut cx).await {
                Ok(Probe::Done) => return p.finish_state(saga, last.done, None).await,
                Ok(_) => {}
                Err(_) => return saga.state, // unreachable system: try again next pass
            }
        }
        let undoing = match saga.state {
            SagaState::Compensating => true,
            SagaState::Stuck => self.stuck == Direction::Undo,
            _ => false,
        };
        if undoing {
            return match self.undo_all(&mut cx, self.steps.len()).await {
                Ok(()) => {
                    p.finish_state(saga, SagaState::Compensated, Some("undo finished by recovery"))
                        .await
                }
                Err(e) => {
                    let _ = p.set_state(saga, SagaState::Stuck, Some(e.to_string())).await;
                    SagaState::Stuck
                }
            };
        }
        // Where to resume: the step whose `begins` or `done` state is logged (`done`: its probe, if any,
        // reloads its output), or the first step.
        let (from, logged_done) = match saga.state {
            SagaState::Started | SagaState::Stuck => (0, false),
            s => match self.steps.iter().position(|st| st.begins == Some(s) || st.done == s) {
                Some(i) => (i, self.steps[i].done == s),
                // A state this table does not log (an earlier version's, e.g. a provisioning's
                // `identity_created`): every step's probe decides, from the first.
                None => {
                    tracing::warn!(saga_id = %saga.id, state = s.as_str(), "{} saga in a state its table does not log; asking every step's probe", self.name);
                    (0, false)
                }
            },
        };
        if saga.state == SagaState::Started && !self.steps[0].redo {
            return p
                .finish_state(saga, SagaState::Aborted, Some("interrupted before any side effect"))
                .await;
        }
        let mut resume = from;
        for (j, step) in self.steps.iter().enumerate().skip(from) {
            let is_last = j + 1 == self.steps.len();
            let found = match step.probe {
                // The last step's probe already answered: not done.
                Some(_) if is_last => Probe::NotDone(String::new()),
                Some(probe) => match probe(&mut cx).await {
                    Ok(f) => f,
                    Err(_) => return saga.state,
                },
                None if j == from && logged_done => Probe::Done,
                None => Probe::NotDone(String::new()),
            };
            match found {
                Probe::Done => resume = j + 1,
                Probe::Foreign(why) => return p.finish_state(saga, SagaState::Aborted, Some(&why)).await,
                Probe::NotDone(_) if step.redo => break,
                Probe::NotDone(why) => {
                    // Not started again without a caller: undo what the earlier steps did.
                    return match self.undo_all(&mut cx, j).await {
                        Ok(()) => p.finish_state(saga, SagaState::Compensated, Some(&why)).await,
                        Err(e) => {
                            let _ = p.set_state(saga, SagaState::Stuck, Some(e.to_string())).await;
                            SagaState::Stuck
                        }
                    };
                }
            }
        }
        if resume == self.steps.len() {
            // Every step's effect exists: only the log is behind.
            return p.finish_state(saga, last.done, None).await;
        }
        match self.forward(&mut cx, resume).await {
            Ok(()) => {
                tracing::warn!(saga_id = %saga.id, "recovery finished an interrupted {} saga", self.name);
                cx.saga.state = last.done;
                last.done
            }
            Err(_) => saga.state,
        }
    }
}

#[cfg(test)]
mod words_tests {
    use super::super::saga_step_words;
    use crate::store::{SagaKind, SagaState};

    #[test]
    fn a_compensating_saga_is_described_by_its_own_undo() {
        assert_eq!(
            saga_step_words(SagaKind::Provision, SagaState::Compensating),
            "undoing: deleting the Cognito user it created"
        );
        // A disable saga being undone re-enables; it deletes nobody.
        let disable = saga_step_words(SagaKind::Disable, SagaState::Compensating);
        assert!(disable.contains("enabling the admin again"), "{disable}");
        assert!(!disable.contains("deleting"), "{disable}");
    }

    #[test]
    fn each_state_names_the_step_in_progress_from_the_table() {
        assert_eq!(
            saga_step_words(SagaKind::Provision, SagaState::IdentityCreating),
            "creating the Cognito user"
        );
        assert_eq!(
            saga_step_words(SagaKind::Remove, SagaState::IdentityPendingDelete),
            "database records removed; deleting the Cognito user"
        );
        assert_eq!(
            saga_step_words(SagaKind::Disable, SagaState::IdentityUpdating),
            "database marked disabled; disabling the Cognito user"
        );
        assert!(saga_step_words(SagaKind::Enable, SagaState::IdentityUpdating).starts_with("enabling the Cognito user"));
        assert!(saga_step_words(SagaKind::Provision, SagaState::IdentityCreated).contains("earlier version"));
    }
}
