//! Who may act on whom, and how often: the rules every surface (JSON API, console, SCIM, CLI) reaches
//! through the core, written once.
//!
//! * **No self-harm.** An admin can neither disable nor remove their own account, whatever door they use
//!   ([`Error::SelfAction`], code `self_action_forbidden`, 403): another admin has to do it, so an
//!   account cannot be locked out by a mistyped click or a stolen session deleting its own trail.
//! * **One budget per actor.** Every mutating operation on admins (create, resend, disable, enable,
//!   remove) and on SCIM tokens (issue, revoke) spends one unit of the actor's budget of `admin_actions_per_minute`
//!   (`ADMIN_RATE_LIMIT_PER_MINUTE`); an admin and a SCIM token are actors alike. Past it the answer is
//!   [`Error::TooManyActions`] (`429 rate_limited`, `Retry-After`). Each create and resend mails an
//!   invitation, and Cognito's default sender allows about 50 e-mails a day, so an unlimited door would
//!   spend the pool's budget for everyone. The operator (the CLI on the server, including `import`, which
//!   paces itself) and the reconciler are trusted by access to the machine and not limited.
//!
//! The limiter is `governor`'s keyed GCRA (the same crate the HTTP edge uses for login attempts): memory
//! is bounded by dropping stale keys past [`MAX_KEYS`].

use super::*;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::num::NonZeroU32;

/// Keys kept before stale ones are dropped.
const MAX_KEYS: usize = 50_000;

/// A mutating operation on an admin, as the policy sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminAction {
    /// Provision a new admin.
    Create,
    /// Resend an invitation.
    Resend,
    /// Disable an admin.
    Disable,
    /// Enable an admin.
    Enable,
    /// Remove an admin (or revoke an unfinished invitation).
    Remove,
    /// Issue a SCIM token (a new actor that can create admins).
    CreateScimToken,
    /// Revoke a SCIM token.
    RevokeScimToken,
}

impl AdminAction {
    /// Whether the actor may do this to themselves.
    fn allowed_on_self(self) -> bool {
        !matches!(self, AdminAction::Disable | AdminAction::Remove)
    }
}

/// The per-actor budget of mutating operations (cheap to clone: shared).
#[derive(Clone)]
pub(crate) struct ActionLimiter(Option<Arc<DefaultKeyedRateLimiter<String>>>);

impl ActionLimiter {
    /// `per_minute` operations per actor; 0 = unlimited.
    pub(crate) fn new(per_minute: u32) -> Self {
        Self(NonZeroU32::new(per_minute).map(|n| Arc::new(governor::RateLimiter::keyed(Quota::per_minute(n)))))
    }

    fn check(&self, key: String) -> Result<(), Error> {
        let Some(limiter) = &self.0 else {
            return Ok(());
        };
        if limiter.len() > MAX_KEYS {
            limiter.retain_recent();
        }
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Error::TooManyActions {
                retry_after_secs: secs.max(1),
            }
        })
    }
}

impl Provisioner {
    /// The policy check every mutating operation makes after [`Provisioner::authorize`] and before any
    /// work: refuses an admin acting on themselves where that is not allowed, then spends one unit of
    /// the actor's budget. `target` is the admin acted on (`None` for a create).
    ///
    /// Errors: [`Error::SelfAction`], [`Error::TooManyActions`].
    pub fn permit(&self, actor: &Actor, action: AdminAction, target: Option<UserId>) -> Result<(), Error> {
        check(&self.limiter, actor, action, target)
    }
}

/// The rule of [`Provisioner::permit`] over a limiter.
fn check(limiter: &ActionLimiter, actor: &Actor, action: AdminAction, target: Option<UserId>) -> Result<(), Error> {
    if let (Actor::Admin(me), Some(target)) = (actor, target) {
        if *me == target && !action.allowed_on_self() {
            return Err(Error::SelfAction);
        }
    }
    match actor {
        Actor::Admin(_) | Actor::Scim(_) => limiter.check(actor.audit_name()),
        Actor::Operator | Actor::Reconciler => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disable_and_remove_of_oneself_are_refused_and_spend_no_budget() {
        let limiter = ActionLimiter::new(1);
        let me = UserId::new();
        let policy = |action| check(&limiter, &Actor::Admin(me), action, Some(me));
        assert_eq!(policy(AdminAction::Disable), Err(Error::SelfAction));
        assert_eq!(policy(AdminAction::Remove), Err(Error::SelfAction));
        // The budget of one is still there for an allowed operation.
        assert_eq!(policy(AdminAction::Resend), Ok(()));
    }

    #[test]
    fn an_actor_past_its_budget_is_told_when_to_come_back_and_others_are_not_affected() {
        let limiter = ActionLimiter::new(2);
        let scim = Actor::Scim("okta".into());
        for _ in 0..2 {
            check(&limiter, &scim, AdminAction::Create, None).unwrap();
        }
        match check(&limiter, &scim, AdminAction::Create, None) {
            Err(Error::TooManyActions { retry_after_secs }) => assert!((1..=60).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        check(&limiter, &Actor::Scim("entra".into()), AdminAction::Create, None).unwrap();
        check(
            &limiter,
            &Actor::Admin(UserId::new()),
            AdminAction::Remove,
            Some(UserId::new()),
        )
        .unwrap();
    }

    #[test]
    fn the_operator_and_the_reconciler_are_not_limited_and_zero_means_unlimited() {
        let limiter = ActionLimiter::new(1);
        for _ in 0..5 {
            check(&limiter, &Actor::Operator, AdminAction::Create, None).unwrap();
            check(&limiter, &Actor::Reconciler, AdminAction::Remove, Some(UserId::new())).unwrap();
        }
        let unlimited = ActionLimiter::new(0);
        let admin = Actor::Admin(UserId::new());
        for _ in 0..100 {
            check(&unlimited, &admin, AdminAction::Create, None).unwrap();
        }
    }
}
