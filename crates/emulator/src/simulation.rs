//! Cognito's request quotas and network latency, simulated, so imports and benchmarks can be measured
//! without AWS.
//!
//! Cognito limits each API operation per account (`AdminCreateUser`: 50 requests per second by default) and
//! answers `TooManyRequestsException` beyond that. With a [`Simulation`] the emulator does the same: each
//! named operation has a token bucket (capacity = one second of its rate, refilled continuously) and a
//! call that finds its bucket empty fails with [`IdpError::TooManyRequests`] without taking effect. Every
//! call can also wait a fixed added latency first, as a round trip to AWS would.
//!
//! Set by environment variables (read by [`Simulation::from_env`]; both unset = no simulation):
//! * `COGNITO_EMULATOR_RATE_LIMITS` — `Operation=rate/s` pairs separated by commas, e.g.
//!   `AdminCreateUser=50,InitiateAuth=120`. Operation names are Cognito's.
//! * `COGNITO_EMULATOR_LATENCY_MS` — milliseconds added to every call (default 0).
//!
//! Quotas are per emulator instance (per process), where Cognito's are per account. They can also be set
//! or lifted at run time per operation ([`CognitoEmulator::set_rate_limit`](crate::CognitoEmulator::set_rate_limit),
//! e.g. the UserList quota in the reconciler's tests): the same buckets, the emulator's only rate limiter.

use admin_provisioner_core::identity::IdpError;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Environment variable with the per-operation rate limits.
pub const RATE_LIMITS_ENV: &str = "COGNITO_EMULATOR_RATE_LIMITS";
/// Environment variable with the added latency in milliseconds.
pub const LATENCY_ENV: &str = "COGNITO_EMULATOR_LATENCY_MS";

/// The operations the emulator meters (Cognito's names).
pub const OPERATIONS: &[&str] = &[
    "AdminCreateUser",
    "AdminGetUser",
    "AdminDeleteUser",
    "AdminDisableUser",
    "AdminEnableUser",
    "ListUsers",
    "InitiateAuth",
    "RespondToAuthChallenge",
    "AssociateSoftwareToken",
    "VerifySoftwareToken",
    "SetUserMFAPreference",
    "ForgotPassword",
    "ConfirmForgotPassword",
    "AdminResetUserPassword",
    "AdminUserGlobalSignOut",
    "AdminSetUserMFAPreference",
    "CreateGroup",
    "GetGroup",
    "AdminAddUserToGroup",
    "AdminRemoveUserFromGroup",
    "AdminListGroupsForUser",
];

/// Quotas and latency to simulate. `Default` simulates nothing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Simulation {
    /// Requests per second allowed for each operation (absent = unlimited).
    pub rate_limits: HashMap<String, f64>,
    /// Added before every call.
    pub latency: Duration,
}

impl Simulation {
    /// Reads [`RATE_LIMITS_ENV`] and [`LATENCY_ENV`]. Errors name the variable and the bad part.
    pub fn from_env() -> Result<Self, String> {
        let limits = std::env::var(RATE_LIMITS_ENV).unwrap_or_default();
        let latency = std::env::var(LATENCY_ENV).unwrap_or_default();
        Self::parse(&limits, &latency)
    }

    /// Parses the two variables' values (empty = not set).
    pub fn parse(rate_limits: &str, latency_ms: &str) -> Result<Self, String> {
        let mut out = Simulation::default();
        for pair in rate_limits.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (op, rate) = pair
                .split_once('=')
                .ok_or_else(|| format!("{RATE_LIMITS_ENV}: `{pair}` is not Operation=rate"))?;
            let op = op.trim();
            if !OPERATIONS.contains(&op) {
                return Err(format!(
                    "{RATE_LIMITS_ENV}: unknown operation `{op}` (one of {})",
                    OPERATIONS.join(", ")
                ));
            }
            let rate: f64 = rate
                .trim()
                .trim_end_matches("/s")
                .parse()
                .ok()
                .filter(|r: &f64| r.is_finite() && *r > 0.0)
                .ok_or_else(|| format!("{RATE_LIMITS_ENV}: the rate of {op} must be a positive number per second"))?;
            out.rate_limits.insert(op.to_string(), rate);
        }
        let latency_ms = latency_ms.trim();
        if !latency_ms.is_empty() {
            let ms: u64 = latency_ms
                .parse()
                .map_err(|_| format!("{LATENCY_ENV}: `{latency_ms}` is not a whole number of milliseconds"))?;
            out.latency = Duration::from_millis(ms);
        }
        Ok(out)
    }

    /// True when nothing is simulated.
    pub fn is_off(&self) -> bool {
        self.rate_limits.is_empty() && self.latency.is_zero()
    }
}

/// The running simulation: the added latency, and one token bucket per limited operation. The only rate
/// limiter of the emulator: the quotas of [`Simulation`] and the ones set at run time
/// ([`CognitoEmulator::set_rate_limit`](crate::CognitoEmulator::set_rate_limit)) both live here.
#[derive(Debug)]
pub(crate) struct Meter {
    latency: Duration,
    /// Every operation of [`OPERATIONS`], limited or not, so a limit can be set at run time.
    limits: HashMap<&'static str, Mutex<Limit>>,
}

#[derive(Debug, Default)]
struct Limit {
    /// `None` = unlimited.
    bucket: Option<Bucket>,
    /// Calls answered `TooManyRequests` so far.
    refused: u64,
}

#[derive(Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Full: one second of the rate (at least one call).
    fn full(rate: f64) -> Self {
        Self {
            rate,
            tokens: rate.max(1.0),
            at: Instant::now(),
        }
    }

    /// Refills by the time elapsed, then takes a token if there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let capacity = self.rate.max(1.0);
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * self.rate).min(capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self::new(&Simulation::default())
    }
}

impl Meter {
    pub(crate) fn new(sim: &Simulation) -> Self {
        let limits = OPERATIONS
            .iter()
            .map(|op| {
                let bucket = sim.rate_limits.get(*op).map(|rate| Bucket::full(*rate));
                (*op, Mutex::new(Limit { bucket, refused: 0 }))
            })
            .collect();
        Self {
            latency: sim.latency,
            limits,
        }
    }

    fn limit(&self, op: &str) -> std::sync::MutexGuard<'_, Limit> {
        self.limits
            .get(op)
            .unwrap_or_else(|| panic!("`{op}` is not one of the metered operations"))
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Limits `op` to `per_second` calls a second (`None` = unlimited) from now on, with a full bucket.
    /// The refusal count is kept.
    pub(crate) fn set_rate(&self, op: &str, per_second: Option<f64>) {
        self.limit(op).bucket = per_second.filter(|r| r.is_finite() && *r > 0.0).map(Bucket::full);
    }

    /// How many calls of `op` were answered `TooManyRequests` so far.
    pub(crate) fn refused(&self, op: &str) -> u64 {
        self.limit(op).refused
    }

    /// Waits the added latency, then takes a token for `op`: `TooManyRequests` when its quota is spent.
    pub(crate) async fn admit(&self, op: &str) -> Result<(), IdpError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        let mut limit = self.limit(op);
        let admitted = limit.bucket.as_mut().is_none_or(Bucket::take);
        if admitted {
            return Ok(());
        }
        limit.refused += 1;
        drop(limit);
        tracing::info!(op, "simulated quota exceeded: TooManyRequests");
        Err(IdpError::TooManyRequests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_bad_ones_are_named() {
        let sim = Simulation::parse("AdminCreateUser=50, InitiateAuth=2.5/s", "50").unwrap();
        assert_eq!(sim.rate_limits["AdminCreateUser"], 50.0);
        assert_eq!(sim.rate_limits["InitiateAuth"], 2.5);
        assert_eq!(sim.latency, Duration::from_millis(50));
        assert!(Simulation::parse("", "").unwrap().is_off());
        assert!(Simulation::parse("CreateUser=5", "")
            .unwrap_err()
            .contains("unknown operation"));
        assert!(Simulation::parse("AdminCreateUser=0", "")
            .unwrap_err()
            .contains("positive"));
        assert!(Simulation::parse("AdminCreateUser", "")
            .unwrap_err()
            .contains("Operation=rate"));
        assert!(Simulation::parse("", "fast").unwrap_err().contains(LATENCY_ENV));
    }

    #[tokio::test]
    async fn a_spent_quota_answers_too_many_requests_and_refills() {
        let meter = Meter::new(&Simulation::parse("AdminCreateUser=20", "").unwrap());
        let mut ok = 0;
        let mut refused = 0;
        for _ in 0..30 {
            match meter.admit("AdminCreateUser").await {
                Ok(()) => ok += 1,
                Err(IdpError::TooManyRequests) => refused += 1,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(
            (20..=24).contains(&ok),
            "one second of quota, then refusals ({ok} admitted)"
        );
        assert!(refused >= 6);
        assert!(
            meter.admit("AdminGetUser").await.is_ok(),
            "other operations are not limited"
        );
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert!(
            meter.admit("AdminCreateUser").await.is_ok(),
            "the bucket refills at the rate"
        );
    }

    #[tokio::test]
    async fn a_limit_set_at_run_time_applies_counts_refusals_and_can_be_lifted() {
        let meter = Meter::default();
        for _ in 0..10 {
            assert!(meter.admit("ListUsers").await.is_ok(), "unlimited by default");
        }
        meter.set_rate("ListUsers", Some(2.0));
        assert!(meter.admit("ListUsers").await.is_ok());
        assert!(meter.admit("ListUsers").await.is_ok());
        assert!(matches!(meter.admit("ListUsers").await, Err(IdpError::TooManyRequests)));
        assert_eq!(meter.refused("ListUsers"), 1);
        assert_eq!(meter.refused("AdminCreateUser"), 0);
        meter.set_rate("ListUsers", None);
        for _ in 0..10 {
            assert!(meter.admit("ListUsers").await.is_ok(), "lifted");
        }
        assert_eq!(meter.refused("ListUsers"), 1, "the count is kept");
    }
}
