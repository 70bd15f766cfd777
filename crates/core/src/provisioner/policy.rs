//! Who may act on whom, and how often: the rules every surface (JSON API, console, SCIM, CLI) reaches
//! through the core, written once.
//!
//! * **The permission table** ([`AdminAction::rule`]): one line per operation, naming the least role
//!   that may do it to another admin and the least role that may do it to themselves (`None`: nobody).
//!   Over it, one rule for every operation: **only an owner acts on an owner or gives the owner role**
//!   (creating an owner, promoting to or demoting from `owner`, and every write whose target is an
//!   owner). A viewer's write answers [`Error::RoleForbidden`] (`403 forbidden`). An operation added
//!   later (an MFA reset, a password reset) is one enum variant and one line of the table.
//! * **Who the actors are.** An admin acts with their role as the database says at the time of the
//!   request; a SCIM token acts as an `admin` (an identity provider manages admins and viewers, never
//!   owners: the Kanidm "high-privilege group the service desk cannot touch"); the operator (the CLI on
//!   the server) and the reconciler act as owners, trusted by access to the machine.
//! * **No self-harm.** An admin can neither disable, remove nor change the role of their own account,
//!   whatever door they use ([`Error::SelfAction`], code `self_action_forbidden`, 403): another admin
//!   has to do it, so an account cannot be locked out by a mistyped click or a stolen session deleting
//!   its own trail.
//! * **At least one active owner.** Demoting, disabling or removing the last active owner answers
//!   `409 last_owner`: checked by the store inside the change's transaction, under the lock of the
//!   last-admin guard, so two owners acting on each other at the same instant cannot both pass.
//! * **One budget per actor.** Every mutating operation on admins (create, resend, disable, enable,
//!   remove, change role) and on SCIM tokens (issue, revoke) spends one unit of the actor's budget of
//!   `admin_actions_per_minute`
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
    /// Change an admin's role.
    ChangeRole,
    /// Issue a SCIM token (a new actor that can create admins; no admin target).
    CreateScimToken,
    /// Revoke a SCIM token.
    RevokeScimToken,
    /// Replace an admin's SCIM attributes (`externalId`, `userName`, `emails`).
    SetScimAttributes,
    /// Reset another admin's password (`AdminResetUserPassword`; one's own: forgot-password instead).
    ResetPassword,
    /// Clear another admin's authenticator (lost device).
    ResetMfa,
    /// Sign another admin out everywhere (one's own: sign-out).
    SignOut,
}

/// One line of the permission table: the least role that may do an operation to another admin, and to
/// themselves (`None`: nobody, whatever their role). Owners as targets (and the owner role as the role
/// given) need an owner on top of this, for every operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The least role that may do it to another admin (or with no target, such as a create).
    pub others: Option<Role>,
    /// The least role that may do it to their own account.
    pub own: Option<Role>,
}

impl AdminAction {
    /// Every operation, for tests and documentation.
    pub const ALL: [AdminAction; 12] = [
        AdminAction::Create,
        AdminAction::Resend,
        AdminAction::Disable,
        AdminAction::Enable,
        AdminAction::Remove,
        AdminAction::ChangeRole,
        AdminAction::CreateScimToken,
        AdminAction::RevokeScimToken,
        AdminAction::SetScimAttributes,
        AdminAction::ResetPassword,
        AdminAction::ResetMfa,
        AdminAction::SignOut,
    ];

    /// **The permission table**: one line per operation. Reads (lists, an admin, audit, events) are open
    /// to every role and are not in it.
    #[rustfmt::skip]
    pub const fn rule(self) -> Rule {
        use Role::*;
        match self {
            AdminAction::Create            => Rule { others: Some(Admin), own: None },
            AdminAction::Resend            => Rule { others: Some(Admin), own: Some(Admin) },
            AdminAction::Disable           => Rule { others: Some(Admin), own: None },
            AdminAction::Enable            => Rule { others: Some(Admin), own: None },
            AdminAction::Remove            => Rule { others: Some(Admin), own: None },
            AdminAction::ChangeRole        => Rule { others: Some(Admin), own: None },
            AdminAction::CreateScimToken   => Rule { others: Some(Admin), own: None },
            AdminAction::RevokeScimToken   => Rule { others: Some(Admin), own: None },
            AdminAction::SetScimAttributes => Rule { others: Some(Admin), own: Some(Admin) },
            AdminAction::ResetPassword     => Rule { others: Some(Admin), own: None },
            AdminAction::ResetMfa          => Rule { others: Some(Admin), own: None },
            AdminAction::SignOut           => Rule { others: Some(Admin), own: None },
        }
    }

    /// Whether the operation spends the actor's budget (the ones that change an admin in Cognito or send
    /// mail do; database-only bookkeeping does not).
    pub fn limited(self) -> bool {
        !matches!(self, AdminAction::SetScimAttributes)
    }

    /// The operation in words, for messages (`"disable an admin"`).
    pub fn words(self) -> &'static str {
        match self {
            AdminAction::Create => "create an admin",
            AdminAction::Resend => "resend an invitation",
            AdminAction::Disable => "disable an admin",
            AdminAction::Enable => "enable an admin",
            AdminAction::Remove => "remove an admin",
            AdminAction::ChangeRole => "change a role",
            AdminAction::CreateScimToken => "issue a SCIM token",
            AdminAction::RevokeScimToken => "revoke a SCIM token",
            AdminAction::SetScimAttributes => "change SCIM attributes",
            AdminAction::ResetPassword => "reset a password",
            AdminAction::ResetMfa => "reset an authenticator",
            AdminAction::SignOut => "sign an admin out",
        }
    }
}

/// The target of an operation, as the permission table sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The admin acted on.
    pub id: UserId,
    /// Their current role.
    pub role: Role,
}

impl Target {
    /// The target of an operation on `record`.
    pub fn of(record: &AdminRecord) -> Self {
        Self {
            id: record.user.id,
            role: record.admin_info.role,
        }
    }
}

/// The permission table's decision, without the budget: may an actor of role `actor_role` (who is the
/// admin `actor_id`, if an admin) do `action` to `target` (`None`: no target, such as a create), giving
/// role `gives` (a create's or a role change's new role)? The console asks it to hide what the signed-in
/// admin may not do; [`Provisioner::permit`] asks it (and then spends the budget) before every write.
///
/// Errors: [`Error::RoleForbidden`], [`Error::SelfAction`].
pub fn decide(
    actor_role: Role,
    actor_id: Option<UserId>,
    action: AdminAction,
    target: Option<Target>,
    gives: Option<Role>,
) -> Result<(), Error> {
    let rule = action.rule();
    let on_self = matches!((actor_id, target), (Some(me), Some(t)) if me == t.id);
    let least = if on_self { rule.own } else { rule.others };
    match least {
        None if on_self => return Err(Error::SelfAction),
        None => {
            return Err(Error::RoleForbidden {
                role: actor_role,
                why: "nobody may do this to another admin",
            })
        }
        Some(least) if actor_role < least => {
            return Err(Error::RoleForbidden {
                role: actor_role,
                why: if actor_role == Role::Viewer {
                    "a viewer may only read"
                } else {
                    "this needs a higher role"
                },
            })
        }
        Some(_) => {}
    }
    let touches_owner = target.is_some_and(|t| t.role == Role::Owner) || gives == Some(Role::Owner);
    if touches_owner && actor_role != Role::Owner {
        return Err(Error::RoleForbidden {
            role: actor_role,
            why: "only an owner may act on an owner or give the owner role",
        });
    }
    Ok(())
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
    /// work: the permission table ([`decide`]) for the actor's role (read from the database for an
    /// admin), then one unit of the actor's budget. `target` is the admin acted on (`None` for a create),
    /// `gives` the role a create or a role change gives.
    ///
    /// Errors: [`Error::RoleForbidden`], [`Error::SelfAction`], [`Error::Forbidden`] (an admin actor no
    /// longer in the database), [`Error::TooManyActions`], [`Error::DatabaseUnavailable`].
    pub async fn permit(
        &self,
        actor: &Actor,
        action: AdminAction,
        target: Option<&AdminRecord>,
        gives: Option<Role>,
    ) -> Result<(), Error> {
        let role = self.role_of(actor).await?;
        check(&self.limiter, actor, role, action, target.map(Target::of), gives)
    }

    /// The role an actor acts with: an admin's as stored now, `admin` for a SCIM token, `owner` for the
    /// operator and the reconciler. [`Error::Forbidden`] for an admin no longer in the database.
    pub async fn role_of(&self, actor: &Actor) -> Result<Role, Error> {
        match actor {
            Actor::Admin(id) => Ok(self
                .store_read(|| self.admins.get_admin(*id))
                .await?
                .ok_or(Error::Forbidden)?
                .admin_info
                .role),
            Actor::Scim(_) => Ok(Role::Admin),
            Actor::Operator | Actor::Reconciler => Ok(Role::Owner),
        }
    }
}

/// The rule of [`Provisioner::permit`] over a limiter: the table, then the budget (a refused operation
/// spends none).
fn check(
    limiter: &ActionLimiter,
    actor: &Actor,
    role: Role,
    action: AdminAction,
    target: Option<Target>,
    gives: Option<Role>,
) -> Result<(), Error> {
    let actor_id = match actor {
        Actor::Admin(id) => Some(*id),
        _ => None,
    };
    decide(role, actor_id, action, target, gives)?;
    match actor {
        Actor::Admin(_) | Actor::Scim(_) if action.limited() => limiter.check(actor.audit_name()),
        Actor::Admin(_) | Actor::Scim(_) => Ok(()),
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
        let target = Some(Target {
            id: me,
            role: Role::Admin,
        });
        let policy = |action| check(&limiter, &Actor::Admin(me), Role::Admin, action, target, None);
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
            check(&limiter, &scim, Role::Admin, AdminAction::Create, None, None).unwrap();
        }
        match check(&limiter, &scim, Role::Admin, AdminAction::Create, None, None) {
            Err(Error::TooManyActions { retry_after_secs }) => assert!((1..=60).contains(&retry_after_secs)),
            other => panic!("{other:?}"),
        }
        check(
            &limiter,
            &Actor::Scim("entra".into()),
            Role::Admin,
            AdminAction::Create,
            None,
            None,
        )
        .unwrap();
        let other = Some(Target {
            id: UserId::new(),
            role: Role::Admin,
        });
        check(
            &limiter,
            &Actor::Admin(UserId::new()),
            Role::Admin,
            AdminAction::Remove,
            other,
            None,
        )
        .unwrap();
    }

    #[test]
    fn the_operator_and_the_reconciler_are_not_limited_and_zero_means_unlimited() {
        let limiter = ActionLimiter::new(1);
        for _ in 0..5 {
            check(&limiter, &Actor::Operator, Role::Owner, AdminAction::Create, None, None).unwrap();
            let other = Some(Target {
                id: UserId::new(),
                role: Role::Owner,
            });
            check(
                &limiter,
                &Actor::Reconciler,
                Role::Owner,
                AdminAction::Remove,
                other,
                None,
            )
            .unwrap();
        }
        let unlimited = ActionLimiter::new(0);
        let admin = Actor::Admin(UserId::new());
        for _ in 0..100 {
            check(&unlimited, &admin, Role::Admin, AdminAction::Create, None, None).unwrap();
        }
    }
}
