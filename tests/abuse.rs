//! Specification of issue 18, finding 3: no client can starve the others.
//!
//! From outside, over real sockets: a body trickled a byte at a time is answered `408` at the body
//! deadline; one address gets at most `MAX_CONNECTIONS_PER_CLIENT` connections and the next is answered
//! `503` at once while other addresses are served; past `MAX_CONNECTIONS` a new connection is answered
//! `503` at once (never left in the listen backlog) and `/healthz` answers again as soon as a slot frees;
//! an idle keep-alive connection is closed after the header-read timeout. The abuse test runs the real
//! `serve` binary with its default limits while one address holds 600 slow-body and 1,200 idle sockets.
//!
//! Other addresses are other loopback addresses (`127.0.0.2`, `127.0.0.3`: all of 127.0.0.0/8 is local on
//! Linux), so every byte stays on this machine. Every loop is bounded by a deadline of its own.

mod common;
mod process;

use admin_provisioner::http::{self, ServeLimits};
use common::*;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A login attempt for nobody: `401` when it is served.
const LOGIN_BODY: &str = r#"{"email":"nobody@example.com","password":"Wrong-Password-1"}"#;

/// A TCP connection to `addr` from the loopback address `source`.
async fn connect_from(source: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source.parse().unwrap(), 0))?;
    socket.connect(addr).await
}

/// One HTTP answer read off a socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: String,
}

/// Reads one HTTP/1.1 answer (its head, then `content-length` bytes of body), for at most `within`.
/// `None` when the socket closed, failed or stayed silent before a whole answer arrived.
async fn read_answer(s: &mut TcpStream, within: Duration) -> Option<Answer> {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= length {
                let status = head.split_whitespace().nth(1)?.parse().ok()?;
                return Some(Answer {
                    status,
                    head: head.to_ascii_lowercase(),
                    body: body.to_string(),
                });
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// True when the server closes `s` (EOF or reset) within `within`; bytes read meanwhile are dropped.
async fn closed_by_server(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

/// A whole request on a new connection from `source`; its answer (within `within`), or `None`.
async fn exchange(source: &str, addr: SocketAddr, request: &str, within: Duration) -> Option<Answer> {
    tokio::time::timeout(within, async {
        let mut s = connect_from(source, addr).await.ok()?;
        s.write_all(request.as_bytes()).await.ok()?;
        read_answer(&mut s, within).await
    })
    .await
    .ok()
    .flatten()
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
}

fn login() -> String {
    format!(
        "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{LOGIN_BODY}",
        LOGIN_BODY.len()
    )
}

/// The head of a login whose 60,000-byte body is never sent in full, and its first byte.
const SLOW_LOGIN_HEAD: &str = "POST /api/auth/login HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 60000\r\n\r\n{";

fn error_code(a: &Answer) -> String {
    serde_json::from_str::<serde_json::Value>(&a.body).unwrap_or_default()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `serve_with` on a fresh loopback port; the server task and the sender that shuts it down.
async fn spawn_server(
    t: &TestApp,
    limits: ServeLimits,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<anyhow::Result<()>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(http::serve_with(t.state.clone(), listener, limits, async {
        let _ = rx.await;
    }));
    (addr, server, tx)
}

/// Connections that are open and silent, from `source`, once the server has taken them.
async fn idle_sockets(source: &str, addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(connect_from(source, addr).await.unwrap());
    }
    // Let the accept loop take them all before the next connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    out
}

#[tokio::test]
async fn a_body_still_arriving_at_the_body_deadline_is_408_request_timeout_and_its_connection_closed() {
    let t = bare_app_with(|c| c.body_read_timeout_secs = 1).await;
    let (addr, _server, _stop) = spawn_server(&t, ServeLimits::default()).await;
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    s.write_all(SLOW_LOGIN_HEAD.as_bytes()).await.unwrap();
    let started = Instant::now();

    // One byte every 300 ms: each arrives well within any per-frame timeout.
    let answer = loop {
        tokio::select! {
            a = read_answer(&mut s, Duration::from_secs(5)) => break a,
            () = tokio::time::sleep(Duration::from_millis(300)) => {}
        }
        let _ = s.write_all(b" ").await;
    };

    let answer = answer.expect("no answer to a trickled body");
    assert_eq!(answer.status, 408, "{answer:?}");
    assert_eq!(error_code(&answer), "request_timeout", "{answer:?}");
    assert!(answer.head.contains("connection: close"), "{answer:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    assert!(closed_by_server(&mut s, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_body_that_arrives_in_pieces_within_the_body_deadline_is_served() {
    let t = bare_app_with(|c| c.body_read_timeout_secs = 2).await;
    let (addr, _server, _stop) = spawn_server(&t, ServeLimits::default()).await;
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    let request = login();
    let (first, second) = request.split_at(request.len() - 10);

    s.write_all(first.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(second.as_bytes()).await.unwrap();

    let answer = read_answer(&mut s, Duration::from_secs(5)).await.expect("no answer");
    assert_eq!(answer.status, 401, "{answer:?}");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_read_timeout() {
    let t = bare_app().await;
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ServeLimits::default()
    };
    let (addr, _server, _stop) = spawn_server(&t, limits).await;
    let mut s = connect_from("127.0.0.1", addr).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = read_answer(&mut s, Duration::from_secs(2)).await.expect("no answer");
    assert_eq!(answer.status, 200, "{answer:?}");
    let served = Instant::now();

    assert!(
        closed_by_server(&mut s, Duration::from_secs(4)).await,
        "the idle keep-alive connection was kept open"
    );
    assert!(served.elapsed() >= Duration::from_millis(900), "{:?}", served.elapsed());
}

#[tokio::test]
async fn the_connection_past_the_per_client_limit_gets_a_fast_503_while_another_address_gets_200() {
    let t = bare_app().await;
    let limits = ServeLimits {
        max_connections: 64,
        max_connections_per_client: 4,
        ..ServeLimits::default()
    };
    let (addr, _server, _stop) = spawn_server(&t, limits).await;
    let mut held = idle_sockets("127.0.0.1", addr, 4).await;

    let started = Instant::now();
    let refused = exchange("127.0.0.1", addr, &get("/healthz"), Duration::from_secs(2))
        .await
        .expect("the fifth connection got no answer");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(error_code(&refused), "too_many_connections", "{refused:?}");
    assert!(refused.head.contains("connection: close"), "{refused:?}");
    assert!(refused.head.contains("retry-after: 1"), "{refused:?}");

    let other = exchange("127.0.0.2", addr, &get("/healthz"), Duration::from_secs(2))
        .await
        .expect("another address got no answer");
    assert_eq!(other.status, 200, "{other:?}");

    // A connection that ends gives its address's slot back.
    held.pop();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let again = exchange("127.0.0.1", addr, &get("/healthz"), Duration::from_secs(2)).await;
        if again.as_ref().is_some_and(|a| a.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "the slot did not come back: {again:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn past_max_connections_a_new_connection_gets_a_fast_503_and_healthz_answers_once_idle_ones_are_reaped() {
    let t = bare_app().await;
    let limits = ServeLimits {
        header_read_timeout: Duration::from_secs(2),
        max_connections: 4,
        max_connections_per_client: 0,
        ..ServeLimits::default()
    };
    let (addr, _server, _stop) = spawn_server(&t, limits).await;
    let mut held = idle_sockets("127.0.0.1", addr, 4).await;
    let filled = Instant::now();

    let started = Instant::now();
    let refused = exchange("127.0.0.3", addr, &get("/healthz"), Duration::from_secs(2))
        .await
        .expect("a connection past the cap got no answer");
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(error_code(&refused), "too_many_connections", "{refused:?}");
    assert!(
        filled.elapsed() < Duration::from_secs(2),
        "the cap was not held while checked"
    );

    // The idle sockets are closed by the header-read timeout, so /healthz answers again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let again = exchange("127.0.0.3", addr, &get("/healthz"), Duration::from_secs(2)).await;
        if again.as_ref().is_some_and(|a| a.status == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "/healthz never answered again: {again:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for s in held.iter_mut() {
        assert!(closed_by_server(s, Duration::from_secs(1)).await);
    }
}

// ---------------------------------------------------------------------------------------------------
// The abuse test: the real binary, its default limits, one address holding 1,800 sockets
// ---------------------------------------------------------------------------------------------------

/// The defaults (README), spelled out so the expectations below follow from them.
const PER_CLIENT: usize = 64;
const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const SLOW_SOCKETS: usize = 600;
const IDLE_SOCKETS: usize = 1200;
/// How long the probes run: through the burst, the body deadline and after.
const PROBE_FOR: Duration = Duration::from_secs(15);
/// How long after the start every attacking socket must have been answered or closed. A burst of 1,800
/// connects overflows the kernel's listen queue, and a connection the kernel completes late may be
/// admitted late too (once the 408s freed the address's slots), so its timeouts count from then.
const REAPED_WITHIN: Duration = Duration::from_secs(15 + 10 + 3);

/// What became of one attacking socket.
#[derive(Debug)]
enum Fate {
    /// Answered this status, this long after it connected.
    Answered(u16, Duration),
    /// Closed without an answer, this long after it connected.
    Closed(Duration),
    /// Still open when the attack gave up on it: a slot held for good.
    Open,
}

/// A socket that announces a 60,000-byte login body and sends one more byte every 2 s.
async fn slow_body(addr: SocketAddr, stop: Instant) -> Fate {
    let Ok(mut s) = connect_from("127.0.0.1", addr).await else {
        return Fate::Closed(Duration::ZERO);
    };
    let connected = Instant::now();
    if s.write_all(SLOW_LOGIN_HEAD.as_bytes()).await.is_err() {
        return Fate::Closed(connected.elapsed());
    }
    while Instant::now() < stop {
        tokio::select! {
            a = read_answer(&mut s, stop.saturating_duration_since(Instant::now())) => {
                return match a {
                    Some(a) => Fate::Answered(a.status, connected.elapsed()),
                    None if Instant::now() < stop => Fate::Closed(connected.elapsed()),
                    None => Fate::Open,
                };
            }
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
        // A write into a closed socket fails; the read above then reports the close.
        let _ = s.write_all(b" ").await;
    }
    Fate::Open
}

/// A socket that connects and never sends a byte.
async fn idle(addr: SocketAddr, stop: Instant) -> Fate {
    let Ok(mut s) = connect_from("127.0.0.1", addr).await else {
        return Fate::Closed(Duration::ZERO);
    };
    let connected = Instant::now();
    match read_answer(&mut s, stop.saturating_duration_since(Instant::now())).await {
        Some(a) => Fate::Answered(a.status, connected.elapsed()),
        None if Instant::now() < stop => Fate::Closed(connected.elapsed()),
        None => Fate::Open,
    }
}

/// One probe: `/healthz` and `/readyz` from 127.0.0.3, a login from 127.0.0.2; each must answer within
/// 2 s with its normal status. Returns the failures.
async fn probe(addr: SocketAddr) -> Vec<String> {
    let mut failures = Vec::new();
    for (source, request, want) in [
        ("127.0.0.3", get("/healthz"), 200),
        ("127.0.0.3", get("/readyz"), 200),
        ("127.0.0.2", login(), 401),
    ] {
        let started = Instant::now();
        let answer = exchange(source, addr, &request, Duration::from_secs(2)).await;
        let took = started.elapsed();
        match answer {
            Some(a) if a.status == want => {}
            other => failures.push(format!(
                "{} from {source}: {:?} after {took:?}",
                request.lines().next().unwrap(),
                other.map(|a| (a.status, a.body))
            )),
        }
    }
    failures
}

#[test]
fn one_address_holding_600_slow_body_and_1200_idle_sockets_starves_neither_healthz_nor_another_client() {
    // 1,800 sockets here, the server's end of them in the child (which raises its own limit).
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap();
    assert!(
        limit >= 4096,
        "this test needs `ulimit -n` of at least 4096 (hard limit {limit})"
    );
    let d = process::Deployment::emulator_sqlite();
    let server = d.serve(&[
        ("MAX_CONNECTIONS", "512"),
        ("MAX_CONNECTIONS_PER_CLIENT", &PER_CLIENT.to_string()),
        ("BODY_READ_TIMEOUT_SECS", &BODY_READ_TIMEOUT.as_secs().to_string()),
        ("HEADER_READ_TIMEOUT_SECS", &HEADER_READ_TIMEOUT.as_secs().to_string()),
    ]);
    let addr: SocketAddr = server.base_url.trim_start_matches("http://").parse().unwrap();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (probes, failures, slow, idle_fates) = rt.block_on(async move {
        let started = Instant::now();
        let stop = started + PROBE_FOR;
        let probing = tokio::spawn(async move {
            let (mut n, mut failures) = (0, Vec::new());
            while Instant::now() < stop {
                failures.extend(probe(addr).await);
                n += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            (n, failures)
        });
        // The slow bodies first, so that they are the ones holding the address's connections.
        let mut slow = Vec::new();
        for _ in 0..SLOW_SOCKETS {
            slow.push(tokio::spawn(slow_body(addr, started + REAPED_WITHIN)));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut idle_tasks = Vec::new();
        for _ in 0..IDLE_SOCKETS {
            idle_tasks.push(tokio::spawn(idle(addr, started + REAPED_WITHIN)));
            tokio::task::yield_now().await;
        }
        let (probes, failures) = probing.await.unwrap();
        let mut slow_fates = Vec::new();
        for t in slow {
            slow_fates.push(t.await.unwrap());
        }
        let mut idle_fates = Vec::new();
        for t in idle_tasks {
            idle_fates.push(t.await.unwrap());
        }
        (probes, failures, slow_fates, idle_fates)
    });

    assert!(
        failures.is_empty(),
        "{} probe failures in {probes} probes: {:#?}",
        failures.len(),
        failures
    );
    assert!(probes >= 20, "only {probes} probes ran");

    // The address's share is taken by slow bodies, each answered 408 at the body deadline; every other
    // slow body is refused at once (503, or closed when too many refusals linger), or, admitted late,
    // answered 408 later. None holds its connection for good.
    let (mut timed_out, mut answered_503, mut unanswered, mut late) = (0, 0, 0, 0);
    for f in &slow {
        match f {
            Fate::Answered(408, after) if *after < BODY_READ_TIMEOUT + Duration::from_secs(3) => timed_out += 1,
            Fate::Answered(408, _) => late += 1,
            Fate::Answered(503, after) if *after < Duration::from_secs(2) => answered_503 += 1,
            Fate::Closed(after) if *after < Duration::from_secs(2) => unanswered += 1,
            other => panic!("a slow-body socket was {other:?}"),
        }
    }
    assert!(
        timed_out >= PER_CLIENT,
        "only {timed_out} slow bodies got 408 in time: {slow:?}"
    );
    assert!(answered_503 > 0, "no slow body was answered 503: {slow:?}");

    // Idle sockets never hold a slot for good: each is refused, or closed by the header-read timeout.
    let mut idle_late = 0;
    for f in &idle_fates {
        match f {
            Fate::Answered(503, _) | Fate::Closed(_) => {}
            other => panic!("an idle socket was {other:?}"),
        }
        if let Fate::Answered(_, after) | Fate::Closed(after) = f {
            idle_late += usize::from(*after >= Duration::from_secs(2));
        }
    }
    eprintln!(
        "{probes} probes, none failed; slow bodies: {timed_out} x 408 at the deadline, {answered_503} x 503 \
         at once, {unanswered} closed unanswered, {late} x 408 after a late admission; idle sockets closed \
         after more than 2 s: {idle_late}"
    );
    drop(server);
}
