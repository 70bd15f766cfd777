//! One backend's measurement: `verify <verify|cache> <iterations>` prints nanoseconds per operation.
//! Built by the driver (`src/main.rs`) once with `--features rust_crypto` and once with
//! `--features aws_lc_rs`.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[cfg(all(feature = "rust_crypto", feature = "aws_lc_rs"))]
compile_error!("build with exactly one of the features rust_crypto, aws_lc_rs");

/// The RSA-2048 key pair the driver generates for this run (`openssl genpkey`, mode 0600 under the bench's
/// target dir): paths in these variables. No key is committed.
const PRIVATE_PEM_ENV: &str = "JWT_BENCH_PRIVATE_PEM";
const PUBLIC_PEM_ENV: &str = "JWT_BENCH_PUBLIC_PEM";

fn read_env_file(var: &str) -> Vec<u8> {
    let path = std::env::var_os(var).unwrap_or_else(|| panic!("{var} is not set: run the driver (src/main.rs)"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{var}: {e}"))
}
const KID: &str = "bench-kid-1";
const ISSUER: &str = "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_BenchPool";
const CLIENT_ID: &str = "3n4b5urk1ft4fl3mg5e62d9ado";

/// A Cognito access token's claims (cognito-facts.md).
#[derive(Serialize)]
struct AccessClaims<'a> {
    sub: &'a str,
    iss: &'a str,
    client_id: &'a str,
    origin_jti: &'a str,
    event_id: &'a str,
    token_use: &'a str,
    scope: &'a str,
    auth_time: i64,
    exp: i64,
    iat: i64,
    jti: &'a str,
    username: &'a str,
}

/// The claims the service deserializes (src/http/auth.rs `Claims`).
#[derive(Deserialize)]
#[allow(dead_code)]
struct Claims {
    sub: String,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
    token_use: Option<String>,
    aud: Option<serde_json::Value>,
    client_id: Option<String>,
    #[serde(rename = "cognito:username")]
    cognito_username: Option<String>,
    username: Option<String>,
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn token() -> String {
    let now = now();
    let claims = AccessClaims {
        sub: "8f2b6a3e-5c1d-4e7a-9b0f-2d4c6e8a1b3c",
        iss: ISSUER,
        client_id: CLIENT_ID,
        origin_jti: "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
        event_id: "6a5b4c3d-2e1f-0a9b-8c7d-6e5f4a3b2c1d",
        token_use: "access",
        scope: "aws.cognito.signin.user.admin",
        auth_time: now - 60,
        exp: now + 3600,
        iat: now - 60,
        jti: "a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
        username: "8f2b6a3e-5c1d-4e7a-9b0f-2d4c6e8a1b3c",
    };
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(KID.to_owned());
    let key = EncodingKey::from_rsa_pem(&read_env_file(PRIVATE_PEM_ENV)).expect("the generated key parses");
    jsonwebtoken::encode(&header, &claims, &key).expect("signing works")
}

/// What the service does per request once the JWKS is cached: header, key by `kid`, RS256 with `iss`
/// and required claims, then `exp` and `client_id` against its own clock and settings.
fn verify(token: &str, keys: &HashMap<String, DecodingKey>, now: i64) -> String {
    let header = jsonwebtoken::decode_header(token).expect("a JWT");
    assert_eq!(header.alg, Algorithm::RS256);
    let key = &keys[header.kid.as_deref().expect("kid")];
    let mut validation = Validation::new(Algorithm::RS256);
    validation.algorithms = vec![Algorithm::RS256];
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.set_issuer(&[ISSUER]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .expect("verifies")
        .claims;
    assert!(claims.exp > now);
    assert_eq!(claims.client_id.as_deref(), Some(CLIENT_ID));
    claims.username.expect("username")
}

struct CacheEntry {
    username: String,
    exp: i64,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "verify".into());
    let n: u32 = args.next().map(|s| s.parse().expect("iterations")).unwrap_or(20_000);

    // The user pool's public key by `kid`, as the service keeps it once the JWKS is cached.
    let keys: HashMap<String, DecodingKey> = HashMap::from([(
        KID.to_owned(),
        DecodingKey::from_rsa_pem(&read_env_file(PUBLIC_PEM_ENV)).expect("the generated public key parses"),
    )]);
    let token = token();
    let now = now();
    // A wrong signature must fail, so the loop below measures a real check.
    let mut forged = token.clone();
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    let mut validation = Validation::new(Algorithm::RS256);
    validation.validate_aud = false;
    let bad = jsonwebtoken::decode::<Claims>(&forged, &keys[KID], &validation);
    assert!(bad.is_err(), "a forged signature verified");

    let elapsed = match mode.as_str() {
        "verify" => {
            for _ in 0..n / 20 {
                black_box(verify(black_box(&token), &keys, now));
            }
            let start = Instant::now();
            for _ in 0..n {
                black_box(verify(black_box(&token), &keys, now));
            }
            start.elapsed()
        }
        "cache" => {
            // sha256(token) -> (username, exp) behind a mutex, 10,000 other entries present.
            let cache: Mutex<HashMap<[u8; 32], CacheEntry>> = Mutex::new(HashMap::new());
            {
                let mut map = cache.lock().unwrap();
                for i in 0..10_000u32 {
                    let key: [u8; 32] = Sha256::digest(format!("{token}{i}")).into();
                    map.insert(
                        key,
                        CacheEntry {
                            username: format!("user{i}"),
                            exp: now + 3600,
                        },
                    );
                }
                let key: [u8; 32] = Sha256::digest(&token).into();
                let username = verify(&token, &keys, now);
                map.insert(
                    key,
                    CacheEntry {
                        username,
                        exp: now + 3600,
                    },
                );
            }
            let lookup = |t: &str| -> String {
                let key: [u8; 32] = Sha256::digest(t.as_bytes()).into();
                let map = cache.lock().unwrap();
                let entry = map.get(&key).expect("cached");
                assert!(entry.exp > now);
                entry.username.clone()
            };
            for _ in 0..n / 20 {
                black_box(lookup(black_box(&token)));
            }
            let start = Instant::now();
            for _ in 0..n {
                black_box(lookup(black_box(&token)));
            }
            start.elapsed()
        }
        other => panic!("unknown mode {other}"),
    };
    println!("{}", elapsed.as_nanos() as f64 / f64::from(n));
}
