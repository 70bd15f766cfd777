// The crate documentation IS the README (one source, so the two cannot drift).
#![doc = include_str!("../README.md")]

pub mod app;
pub mod cli;
pub mod config;
pub mod demo;
pub mod doctor;
pub mod events;
pub mod http;
pub mod import;
pub mod reconcile;
pub mod scim;
pub mod serve;

pub use admin_provisioner_core::*;
