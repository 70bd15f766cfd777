//! Driver: builds `verify` once per jsonwebtoken backend, then runs them alternately
//! (`JWT_BENCH_ROUNDS` rounds, default 5, of `JWT_BENCH_ITERATIONS` verifications, default 20,000) plus the
//! cache lookup, and prints the median of the rounds. Run it with
//! `cargo run --release --manifest-path benches/jwt-backends/Cargo.toml`.

use std::path::{Path, PathBuf};
use std::process::Command;

const BACKENDS: [&str; 2] = ["rust_crypto", "aws_lc_rs"];

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().expect("a number"))
        .unwrap_or(default)
}

fn build(manifest: &str, target_root: &Path, backend: &str) -> PathBuf {
    let target_dir = target_root.join(backend);
    eprintln!("building verify with --features {backend} (first time: minutes for aws_lc_rs)");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "--bin",
            "verify",
            "--no-default-features",
            "--features",
            backend,
        ])
        .arg("--manifest-path")
        .arg(manifest)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the {backend} binary failed");
    target_dir.join("release").join("verify")
}

/// A fresh RSA-2048 key pair for this run (nothing committed): `openssl genpkey`, private half mode 0600.
fn generate_key(dir: &Path) -> (PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).expect("key dir");
    let private = dir.join("bench-key.pem");
    let public = dir.join("bench-key.pub.pem");
    let _ = std::fs::remove_file(&private);
    let openssl = |args: &[&std::ffi::OsStr]| {
        let status = Command::new("openssl")
            .args(args)
            .status()
            .expect("openssl runs (Debian: apt-get install openssl)");
        assert!(status.success(), "openssl {args:?} failed");
    };
    openssl(&[
        "genpkey".as_ref(),
        "-algorithm".as_ref(),
        "RSA".as_ref(),
        "-pkeyopt".as_ref(),
        "rsa_keygen_bits:2048".as_ref(),
        "-out".as_ref(),
        private.as_os_str(),
    ]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).expect("chmod 0600");
    }
    openssl(&[
        "pkey".as_ref(),
        "-in".as_ref(),
        private.as_os_str(),
        "-pubout".as_ref(),
        "-out".as_ref(),
        public.as_os_str(),
    ]);
    (private, public)
}

fn run(bin: &Path, key: &(PathBuf, PathBuf), mode: &str, n: u32) -> f64 {
    let out = Command::new(bin)
        .env("JWT_BENCH_PRIVATE_PEM", &key.0)
        .env("JWT_BENCH_PUBLIC_PEM", &key.1)
        .arg(mode)
        .arg(n.to_string())
        .output()
        .expect("verify runs");
    assert!(
        out.status.success(),
        "{} {mode} failed: {}",
        bin.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("ns per operation")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let target_root = std::env::var_os("JWT_BENCH_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("backends")
        });
    let rounds = env_or("JWT_BENCH_ROUNDS", 5);
    let n = env_or("JWT_BENCH_ITERATIONS", 20_000);
    let bins: Vec<PathBuf> = BACKENDS.iter().map(|b| build(manifest, &target_root, b)).collect();
    let key = generate_key(&target_root);

    let mut verify: Vec<Vec<f64>> = vec![Vec::new(); BACKENDS.len()];
    let mut cache = Vec::new();
    for round in 1..=rounds {
        for (i, bin) in bins.iter().enumerate() {
            let ns = run(bin, &key, "verify", n);
            eprintln!(
                "round {round}: {:<12} {:8.1} µs per verification",
                BACKENDS[i],
                ns / 1000.0
            );
            verify[i].push(ns);
        }
        let ns = run(&bins[0], &key, "cache", n * 50);
        eprintln!("round {round}: cache lookup {:8.3} µs", ns / 1000.0);
        cache.push(ns);
    }
    println!("RS256 verification of a Cognito access token, {n} per round, median of {rounds} alternating rounds:");
    for (i, backend) in BACKENDS.iter().enumerate() {
        let ns = median(verify[i].clone());
        println!(
            "  {backend:<12} {:8.1} µs/verification  {:9.0} verifications/s",
            ns / 1000.0,
            1e9 / ns
        );
    }
    let ns = median(cache);
    println!(
        "  cache lookup (sha256 + HashMap under a Mutex) {:8.3} µs  {:9.0} lookups/s",
        ns / 1000.0,
        1e9 / ns
    );
}
