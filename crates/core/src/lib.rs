//! Core of admin-provisioner: domain types, ports (traits) and the provisioning saga.
//!
//! The orchestrator ([`Provisioner`]) knows only the ports: [`identity::IdentityProvider`] (Cognito or the
//! built-in emulator), [`store::AdminStore`] and [`store::SagaLog`] (SQLite or PostgreSQL). Adapters live
//! in their own crates. See the `admin-provisioner` crate for the whole flow in plain English.

pub mod clock;
pub mod crash;
pub mod domain;
pub mod error;
/// Fault injection for tests (the `testing` feature only: a production build has no fault wrapper).
#[cfg(feature = "testing")]
pub mod faults;
pub mod identity;
pub mod pages;
pub mod provisioner;
pub mod reconcile;
pub mod scim_tokens;
pub mod store;
pub mod totp;

pub use error::Error;

pub use provisioner::{decide, AdminAction, Rule, Target};
pub use provisioner::{
    AdminView, Caller, CreatedIdentity, InviteView, LoginOutcome, MfaEnrolment, Observer, ProvisionedAdmin,
    Provisioner, ProvisionerSettings, RecordPlan, RecoveryReport, RetryOutcome,
};
