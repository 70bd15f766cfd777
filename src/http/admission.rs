//! Connection admission: which accepted socket gets a connection slot, and the fast answer for one that
//! does not.
//!
//! Every socket is accepted at once (none waits in the listen backlog, where a client cannot tell a full
//! server from a dead one). [`Admission::admit`] then counts it under its client address and overall:
//! * beyond `MAX_CONNECTIONS_PER_CLIENT` open connections from one address, or
//! * beyond `MAX_CONNECTIONS` open connections in all,
//!
//! the socket gets `503 too_many_connections` in the JSON envelope with `Connection: close` and
//! `Retry-After: 1`, written without reading the request ([`refuse`]). So one address holding hundreds of
//! slow or idle sockets uses up its own share only: `/healthz`, `/readyz` and every other client keep
//! being served. The address is the TCP peer (a header could be forged, and a connection is admitted
//! before any header is read); an IPv6 peer counts under its /64 prefix, the block one host is usually
//! given. A [`Slot`] gives its place back when the connection ends.
//!
//! Refusals are cheap and bounded: at most [`MAX_LINGERING_REFUSALS`] refused sockets are kept open at
//! once, each for at most [`REFUSAL_LINGER`] (long enough for the client to read the 503 before the close:
//! closing a socket that still holds unread request bytes would reset it and lose the answer); beyond
//! that a refused socket is closed at once.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a refused socket is kept open after its 503 was written, for the client to read it.
pub const REFUSAL_LINGER: Duration = Duration::from_millis(500);
/// Most refused sockets kept open at once (see [`REFUSAL_LINGER`]); more are closed without an answer.
pub const MAX_LINGERING_REFUSALS: usize = 512;

/// Why a connection got no slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its address already holds `MAX_CONNECTIONS_PER_CLIENT` connections.
    ClientLimit,
    /// `MAX_CONNECTIONS` connections are open.
    GlobalLimit,
}

impl Refusal {
    fn message(self) -> &'static str {
        match self {
            Refusal::ClientLimit => {
                "too many open connections from your address (see MAX_CONNECTIONS_PER_CLIENT); close some and retry"
            }
            Refusal::GlobalLimit => {
                "the server holds as many connections as it accepts (see MAX_CONNECTIONS); retry shortly"
            }
        }
    }
}

/// The key a client's connections are counted under: the IPv4 address (an IPv4-mapped IPv6 address
/// counts as its IPv4 address), or the /64 prefix of an IPv6 address.
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The connection counters of one server (see the module docs).
pub struct Admission {
    max_total: usize,
    max_per_client: usize,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
    refused_client: u64,
    refused_global: u64,
    last_report: Option<Instant>,
}

impl Admission {
    /// Counters for at most `max_total` connections in all (at least 1) and `max_per_client` per client
    /// address (0 = no per-address limit).
    pub fn new(max_total: usize, max_per_client: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_client,
            state: Mutex::new(Counts::default()),
        })
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        // The counters stay consistent even if a holder panicked: every update is one statement.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A slot for a connection from `peer`, or why there is none. A refusal is logged (at most one
    /// `WARN` line per second, with the counts since the last one).
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slot, Refusal> {
        let key = client_key(peer);
        let mut counts = self.counts();
        let from_client = counts.per_client.get(&key).copied().unwrap_or(0);
        let refusal = if self.max_per_client > 0 && from_client >= self.max_per_client {
            Some(Refusal::ClientLimit)
        } else if counts.total >= self.max_total {
            Some(Refusal::GlobalLimit)
        } else {
            None
        };
        match refusal {
            None => {
                counts.total += 1;
                *counts.per_client.entry(key).or_insert(0) += 1;
                Ok(Slot {
                    admission: self.clone(),
                    key,
                })
            }
            Some(r) => {
                match r {
                    Refusal::ClientLimit => counts.refused_client += 1,
                    Refusal::GlobalLimit => counts.refused_global += 1,
                }
                let now = Instant::now();
                if counts
                    .last_report
                    .is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1))
                {
                    tracing::warn!(
                        open = counts.total,
                        refused_per_client_limit = counts.refused_client,
                        refused_connection_cap = counts.refused_global,
                        "connections refused with 503 (MAX_CONNECTIONS_PER_CLIENT / MAX_CONNECTIONS)"
                    );
                    counts.refused_client = 0;
                    counts.refused_global = 0;
                    counts.last_report = Some(now);
                }
                Err(r)
            }
        }
    }

    /// Connections holding a slot now.
    pub fn open(&self) -> usize {
        self.counts().total
    }

    /// Connections holding a slot now from `peer`'s address (its [`client_key`]).
    pub fn open_from(&self, peer: IpAddr) -> usize {
        self.counts().per_client.get(&client_key(peer)).copied().unwrap_or(0)
    }
}

/// The place of one admitted connection; given back when dropped.
pub struct Slot {
    admission: Arc<Admission>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.admission.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_client.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                counts.per_client.remove(&self.key);
            }
        }
    }
}

/// The raw HTTP/1.1 answer to a refused connection: `503 too_many_connections` in the JSON envelope,
/// `Connection: close`, `Retry-After: 1`, a fresh request id (also in `x-request-id`).
pub fn refusal_response(refusal: Refusal) -> Vec<u8> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({
        "error": {"code": "too_many_connections", "message": refusal.message(), "request_id": request_id}
    })
    .to_string();
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\nretry-after: 1\r\nx-request-id: {request_id}\r\n\
         x-content-type-options: nosniff\r\ncache-control: no-store\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Answers a refused socket ([`refusal_response`]) without reading its request, then closes it: after
/// the answer, its write side is shut and whatever the client still sends is read and dropped until it
/// closes too, for at most [`REFUSAL_LINGER`] in all.
pub async fn refuse(mut stream: tokio::net::TcpStream, refusal: Refusal) {
    let answer = refusal_response(refusal);
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_address_gets_at_most_its_share_and_another_address_still_gets_a_slot() {
        let a = Admission::new(10, 2);
        let first = a.admit(ip("192.0.2.1")).unwrap();
        let _second = a.admit(ip("192.0.2.1")).unwrap();

        assert_eq!(a.admit(ip("192.0.2.1")).err(), Some(Refusal::ClientLimit));
        assert!(a.admit(ip("192.0.2.2")).is_ok());

        drop(first);
        assert!(
            a.admit(ip("192.0.2.1")).is_ok(),
            "a closed connection gives its slot back"
        );
    }

    #[test]
    fn past_the_global_cap_every_address_is_refused_until_a_slot_frees() {
        let a = Admission::new(2, 0);
        let first = a.admit(ip("192.0.2.1")).unwrap();
        let _second = a.admit(ip("192.0.2.2")).unwrap();

        assert_eq!(a.admit(ip("192.0.2.3")).err(), Some(Refusal::GlobalLimit));

        drop(first);
        let third = a.admit(ip("192.0.2.3"));
        assert!(third.is_ok());
        assert_eq!(a.open(), 2);
    }

    #[test]
    fn slots_are_counted_back_to_zero_and_the_address_is_forgotten() {
        let a = Admission::new(4, 4);
        let slots: Vec<_> = (0..3).map(|_| a.admit(ip("192.0.2.1")).unwrap()).collect();
        assert_eq!(a.open_from(ip("192.0.2.1")), 3);
        drop(slots);
        assert_eq!(a.open(), 0);
        assert!(a.counts().per_client.is_empty());
    }

    #[test]
    fn an_ipv6_client_counts_under_its_64_prefix_and_a_mapped_ipv4_as_itself() {
        assert_eq!(client_key(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            client_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff")),
            client_key(ip("2001:db8:1:2::7"))
        );
        assert_ne!(client_key(ip("2001:db8:1:3::1")), client_key(ip("2001:db8:1:2::1")));
        assert_eq!(client_key(ip("::ffff:192.0.2.9")), ip("192.0.2.9"));
    }

    #[test]
    fn the_refusal_is_a_complete_503_in_the_envelope_that_closes_the_connection() {
        let raw = String::from_utf8(refusal_response(Refusal::ClientLimit)).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").unwrap();

        assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
        assert!(head.contains("\r\nconnection: close\r\n"), "{head}");
        assert!(head.contains("\r\nretry-after: 1\r\n"), "{head}");
        assert!(
            head.contains(&format!("\r\ncontent-length: {}\r\n", body.len())),
            "{head}"
        );
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["error"]["code"], "too_many_connections");
        assert!(json["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MAX_CONNECTIONS_PER_CLIENT"));
    }
}
