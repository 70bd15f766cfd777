//! Idempotent requests, once for every surface that offers them (today the JSON API's
//! `POST /api/admins` with `Idempotency-Key`).
//!
//! A key is claimed per caller (`scope`) with the hash of the request ([`request_hash`]: canonical JSON, so
//! key order and spacing do not matter) before any work. The same key with the same request replays the
//! first definitive answer; with another request it is refused ([`Error::IdempotencyKeyReused`]); while
//! the first request still runs, a retry is told so ([`Error::IdempotencyInProgress`]) instead of
//! starting a second provisioning. Which answers are definitive is decided here: a success (2xx) and a
//! client error (4xx) other than `429` are remembered; throttling and server-side failures release the
//! key, because a retry may succeed.

use super::*;
use sha2::{Digest, Sha256};

/// What [`Provisioner::run_idempotently`] answers: the surface's rendering of the result.
#[derive(Debug, Clone, PartialEq)]
pub enum Idempotent {
    /// The work ran now; this is its answer (remembered when definitive).
    Fresh(StoredResponse),
    /// The key was used before with the same request: its first answer, replayed.
    Replayed(StoredResponse),
}

/// Whether an answer with this HTTP status may be replayed for the same key.
pub fn is_definitive(status: u16) -> bool {
    (200..300).contains(&status) || ((400..500).contains(&status) && status != 429)
}

/// SHA-256 (hex) of the request body's canonical JSON (object keys sorted, no insignificant whitespace),
/// so the same request with keys in another order or other spacing counts as the same request. A body
/// that is not JSON is hashed as it is.
pub fn request_hash(body: &[u8]) -> String {
    fn canonical(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&map[k.as_str()], out);
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(item, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut text = String::new();
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => canonical(&v, &mut text),
        Err(_) => text = String::from_utf8_lossy(body).into_owned(),
    }
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl Provisioner {
    /// Runs `work` at most once per (`scope`, `key`) and request: claims the key, runs `work`, remembers
    /// its answer when definitive ([`is_definitive`]) or releases the key otherwise. `scope` is the
    /// caller's identity (an admin's id), so two admins' keys never meet.
    ///
    /// Errors (the work did not run): [`Error::IdempotencyKeyReused`], [`Error::IdempotencyInProgress`],
    /// database errors. A failure to remember or release is logged, not returned: the work's answer is
    /// what the caller needs.
    pub async fn run_idempotently<F, Fut>(
        &self,
        scope: &str,
        key: &str,
        request_hash: &str,
        work: F,
    ) -> Result<Idempotent, Error>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = StoredResponse>,
    {
        match self.idempotency_begin(scope, key, request_hash).await? {
            IdempotencyBegin::Existing {
                request_hash: first, ..
            } if first != request_hash => Err(Error::IdempotencyKeyReused),
            IdempotencyBegin::Existing { response: None, .. } => Err(Error::IdempotencyInProgress),
            IdempotencyBegin::Existing {
                response: Some(stored), ..
            } => Ok(Idempotent::Replayed(stored)),
            IdempotencyBegin::Started => {
                let answer = work().await;
                if is_definitive(answer.status) {
                    if let Err(e) = self.idempotency_complete(scope, key, answer.clone()).await {
                        tracing::error!(error = %e, "could not store the idempotent response");
                    }
                } else if let Err(e) = self.idempotency_abandon(scope, key).await {
                    tracing::error!(error = %e, "could not release the idempotency key");
                }
                Ok(Idempotent::Fresh(answer))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_and_spacing_do_not_change_the_hash_but_values_do() {
        let a = request_hash(br#"{"email":"a@example.com","role":"admin"}"#);
        let b = request_hash(b"{ \"role\" : \"admin\",\n \"email\": \"a@example.com\" }");
        let c = request_hash(br#"{"email":"b@example.com","role":"admin"}"#);
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.len(), 64);
    }

    #[test]
    fn successes_and_client_errors_are_definitive_throttling_and_server_errors_are_not() {
        for s in [200, 201, 400, 403, 404, 409, 422] {
            assert!(is_definitive(s), "{s}");
        }
        for s in [429, 500, 502, 503] {
            assert!(!is_definitive(s), "{s}");
        }
    }
}
