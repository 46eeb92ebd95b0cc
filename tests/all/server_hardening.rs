//! The real server against slow, idle and malformed clients: the read timeouts, health checks
//! under a full connection table, shutdown with idle connections open, and protocol errors.
//! Sockets go to 127.0.0.1 only, every read has a timeout, and the server handle stops the
//! server when it drops, even on failure. Bounds are generous: "within a few seconds", never
//! a tight latency.

use crate::server::{BODY, TIMEOUT, start_with};
use servesim::server::client::{self, Connection, HttpResponse};
use servesim::server::{ErrorBody, Limits, ServerProcess};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// How long an answer that should come at once may take on a busy machine.
const PROMPT: Duration = Duration::from_secs(5);

/// A connection that sent part of a request head and then nothing.
fn partial_head(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, PROMPT).expect("connect");
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    s
}

/// Waits until the server closes `s` (a read returns end of file or the connection is
/// reset), reading and discarding what it sends; the time it took, or `None` after `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut buf = [0u8; 4096];
    while t0.elapsed() < within {
        match s.read(&mut buf) {
            Ok(0) => return Some(t0.elapsed()),
            Ok(_) => {}
            Err(e) if waiting(&e) => {}
            Err(_) => return Some(t0.elapsed()),
        }
    }
    None
}

/// Whether a read error only means "nothing yet": its timeout, or a signal (a process
/// stopped and continued by the machine interrupts reads that have a timeout).
fn waiting(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted)
}

/// `s.read`, retried when a signal interrupts it.
fn read_some(s: &mut TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match s.read(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            r => return r,
        }
    }
}

/// Sends `raw` on a fresh connection and reads one response (its head, then a
/// `Content-Length` body), every read bounded by [`PROMPT`].
fn exchange(addr: SocketAddr, raw: &[u8]) -> io::Result<HttpResponse> {
    let mut s = TcpStream::connect_timeout(&addr, PROMPT)?;
    s.set_read_timeout(Some(PROMPT))?;
    s.set_write_timeout(Some(PROMPT))?;
    // The server may answer and close before it has read everything: a failed write still
    // leaves its answer to read.
    let _ = s.write_all(raw);
    read_response(&mut s)
}

fn read_response(s: &mut TcpStream) -> io::Result<HttpResponse> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match read_some(s, &mut buf)? {
            0 => return Err(io::Error::new(ErrorKind::UnexpectedEof, "closed before a response head")),
            n => got.extend_from_slice(&buf[..n]),
        }
    };
    let head = String::from_utf8_lossy(&got[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|c| c.parse().ok());
    let status = status.ok_or_else(|| io::Error::new(ErrorKind::InvalidData, head.clone()))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut r = HttpResponse { status, headers, body: got[end..].to_vec() };
    let len: usize = r.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while r.body.len() < len {
        match read_some(s, &mut buf)? {
            0 => break,
            n => r.body.extend_from_slice(&buf[..n]),
        }
    }
    Ok(r)
}

fn admin(server: &ServerProcess) -> SocketAddr {
    server.ready().workers[0].admin
}

#[test]
fn slow_heads_do_not_starve_health_checks_or_requests() {
    // queue_limit 16 allows 96 connections with a request in progress.
    let server = start_with("[worker]\nqueue_limit = 16\n", Limits::default());
    let slow: Vec<TcpStream> = (0..150).map(|_| partial_head(server.addr())).collect();
    let slow_admin: Vec<TcpStream> = (0..80).map(|_| partial_head(admin(&server))).collect();
    for (name, addr) in [("shared port", server.addr()), ("admin port", admin(&server))] {
        let r = client::get(addr, "/healthz", PROMPT).unwrap_or_else(|e| panic!("{name}: /healthz: {e}"));
        assert_eq!(r.status, 200, "{name}");
    }
    let r = client::post_json(server.addr(), "/correct", BODY, PROMPT).expect("/correct answered");
    assert_eq!(r.status, 200);
    drop((slow, slow_admin));
}

#[test]
fn a_head_that_never_ends_is_cut_off_at_the_header_timeout() {
    let limits = Limits { header_read_timeout_ms: 300.0, ..Limits::default() };
    let server = start_with("", limits);
    // One byte every 50 ms: never idle, never done.
    let mut s = partial_head(server.addr());
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    let closed = loop {
        assert!(t0.elapsed() < PROMPT, "still open after {PROMPT:?} with a 300 ms header timeout");
        if s.write_all(b"a").is_err() {
            break t0.elapsed();
        }
        match s.read(&mut buf) {
            Ok(0) => break t0.elapsed(),
            Ok(n) => panic!("answered: {}", String::from_utf8_lossy(&buf[..n])),
            Err(e) if waiting(&e) => {}
            Err(_) => break t0.elapsed(),
        }
    };
    assert!(closed >= Duration::from_millis(250), "closed after {closed:?}, before the timeout");
    // The server itself is fine.
    assert_eq!(client::get(server.addr(), "/healthz", PROMPT).unwrap().status, 200);
}

#[test]
fn idle_connections_are_closed_at_the_keep_alive_timeout() {
    let limits = Limits { keep_alive_timeout_ms: 300.0, ..Limits::default() };
    let server = start_with("", limits);
    let mut silent = TcpStream::connect_timeout(&server.addr(), PROMPT).unwrap();
    let silent_since = Instant::now();
    let mut c = Connection::open(server.addr(), PROMPT).unwrap();
    assert_eq!(c.request("GET", "/healthz", None, &[]).unwrap().status, 200);
    // A request on a kept-alive connection before the timeout is served.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(c.request("GET", "/healthz", None, &[]).unwrap().status, 200);
    let mut used = TcpStream::connect_timeout(&server.addr(), PROMPT).unwrap();
    used.set_read_timeout(Some(PROMPT)).unwrap();
    used.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut used).unwrap().status, 200);
    let used_since = Instant::now();
    for (name, s, since) in [("kept alive", &mut used, used_since), ("never used", &mut silent, silent_since)]
    {
        assert!(closed_within(s, PROMPT).is_some(), "{name}: open after {PROMPT:?}");
        let idle = since.elapsed();
        assert!(idle >= Duration::from_millis(250), "{name}: closed after {idle:?} idle, before the timeout");
    }
}

#[test]
fn a_client_connection_closed_while_idle_sends_again_on_a_new_one() {
    // The server closes an idle keep-alive connection after its timeout; the crate's own
    // client (calibration, tests) then sends its next request again, once, on a new one.
    let limits = Limits { keep_alive_timeout_ms: 200.0, ..Limits::default() };
    let server = start_with("", limits);
    let mut c = Connection::open(server.addr(), PROMPT).unwrap();
    assert_eq!(c.request("GET", "/healthz", None, &[]).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(600));
    let r = c.request("POST", "/correct", Some(BODY), &[]).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(c.request("GET", "/healthz", None, &[]).unwrap().status, 200);
    // Unless told not to: a client counting lost requests sees the close.
    let mut c = Connection::open(server.addr(), PROMPT).unwrap().resend_unanswered(false);
    assert_eq!(c.request("GET", "/healthz", None, &[]).unwrap().status, 200);
    std::thread::sleep(Duration::from_millis(600));
    assert!(c.request("POST", "/correct", Some(BODY), &[]).is_err(), "sent again");
}

#[test]
fn a_body_that_never_arrives_gets_408() {
    let limits = Limits { body_read_timeout_ms: 300.0, ..Limits::default() };
    let server = start_with("", limits);
    let mut s = TcpStream::connect_timeout(&server.addr(), PROMPT).unwrap();
    s.set_read_timeout(Some(PROMPT)).unwrap();
    s.write_all(
        b"POST /correct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"sentence\"",
    )
    .unwrap();
    let r = read_response(&mut s).expect("an answer before the client's read timeout");
    assert_eq!(r.status, 408);
    let e: ErrorBody = r.json().expect("a JSON error");
    assert!(e.error.contains("300 ms") && e.field.is_none(), "{e:?}");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(closed_within(&mut s, PROMPT).is_some(), "the connection stays open after a 408");
    assert_eq!(server.stats().unwrap()[0].requests.invalid, 1);
}

#[test]
fn shutdown_closes_idle_connections_at_once_and_drains_in_flight_requests() {
    // A drain deadline far longer than the test allows: waiting for it fails the test.
    let limits = Limits { drain_timeout_ms: 60_000.0, ..Limits::default() };
    let server = start_with("[worker]\nthreads = 1\n[cost]\nrequest_free_ms = 1000\n", limits);
    let addr = server.addr();
    let mut idle = Connection::open(addr, PROMPT).unwrap();
    assert_eq!(idle.request("GET", "/healthz", None, &[]).unwrap().status, 200);
    let mut slow = partial_head(addr);
    let mut silent = TcpStream::connect_timeout(&addr, PROMPT).unwrap();
    let in_flight = std::thread::spawn(move || client::post_json(addr, "/correct", BODY, TIMEOUT));
    let t0 = Instant::now();
    while server.stats().unwrap()[0].in_flight == 0 {
        assert!(t0.elapsed() < PROMPT, "the request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t0 = Instant::now();
    server.terminate();
    for (name, s) in [("partial head", &mut slow), ("silent", &mut silent)] {
        assert!(closed_within(s, PROMPT).is_some(), "{name}: still open {PROMPT:?} after SIGTERM");
    }
    let r = in_flight.join().unwrap().expect("the in-flight request was answered");
    assert_eq!(r.status, 200);
    let stopped = server.wait(TIMEOUT).expect("a stopped line");
    let took = t0.elapsed();
    assert!(stopped.clean, "{stopped:?}");
    assert!(took < Duration::from_secs(20), "shutdown took {took:?}");
    assert_eq!(stopped.workers[0].requests.map(|c| c.completed), Some(1), "{stopped:?}");
}

#[test]
fn over_long_targets_and_heads_get_json_errors() {
    let server = start_with("", Limits::default());
    let long_uri = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(10 * 1024));
    let long_head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "b".repeat(20 * 1024));
    for (raw, status, says) in [(long_uri, 414, "target"), (long_head, 431, "head")] {
        let r = exchange(server.addr(), raw.as_bytes()).unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(r.status, status);
        let e: ErrorBody = r.json().unwrap_or_else(|_| panic!("{status}: not a JSON error"));
        assert!(e.error.contains(says) && e.field.is_none(), "{status}: {e:?}");
    }
    // What the HTTP parser itself refuses (see the README): a status, no body to promise.
    let huge_head = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "c".repeat(100 * 1024));
    let many = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect::<String>();
    let many_headers = format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n");
    for (raw, status) in [("NOT HTTP AT ALL\r\n\r\n".to_string(), 400), (huge_head, 431), (many_headers, 431)]
    {
        let r = exchange(server.addr(), raw.as_bytes()).unwrap_or_else(|e| panic!("{status}: {e}"));
        assert_eq!(r.status, status);
    }
    assert_eq!(client::get(server.addr(), "/healthz", PROMPT).unwrap().status, 200);
}

/// Raises this process's soft limit on open files to its hard limit; returns the new soft
/// limit.
fn raise_fd_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    lim.rlim_cur
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// With 1,000 idle or slow-head sockets open on one worker, health checks stay fast and
/// `/correct` is served. Prints the figures; run with
/// `cargo test --release --test all server_hardening::figures -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: opens 1,000 sockets; prints figures"]
fn figures_health_checks_with_a_thousand_slow_sockets() {
    const SOCKETS: usize = 1_000;
    const PROBES: usize = 500;
    let fds = raise_fd_limit();
    assert!(fds > 2 * SOCKETS as libc::rlim_t, "RLIMIT_NOFILE is {fds}: too low for {SOCKETS} sockets");
    println!("RLIMIT_NOFILE (soft, raised to the hard limit): {fds}");
    println!(
        "| worker.queue_limit | worker's open descriptors | sockets still open | /healthz p50 | p99 | max | /correct |"
    );
    println!("|---|---|---|---|---|---|---|");
    for queue_limit in [16, 1024] {
        let server = start_with(&format!("[worker]\nqueue_limit = {queue_limit}\n"), Limits::default());
        let addr = server.addr();
        // Half connect and say nothing, half send part of a head.
        let sockets: Vec<TcpStream> = (0..SOCKETS)
            .map(|i| if i % 2 == 0 { partial_head(addr) } else { TcpStream::connect(addr).unwrap() })
            .collect();
        // Let the worker accept them all (well within the keep-alive timeout).
        std::thread::sleep(Duration::from_secs(1));
        let held = worker_fds(&server);
        let mut took: Vec<Duration> = (0..PROBES)
            .map(|_| {
                let t = Instant::now();
                let r = client::get(addr, "/healthz", PROMPT).expect("/healthz answered");
                assert_eq!(r.status, 200);
                t.elapsed()
            })
            .collect();
        let correct: Vec<u16> = (0..5)
            .map(|_| client::post_json(addr, "/correct", BODY, PROMPT).expect("/correct answered").status)
            .collect();
        let open = sockets.iter().filter(|s| still_open(s)).count();
        took.sort_unstable();
        let ms = |d: Duration| format!("{:.2} ms", d.as_secs_f64() * 1e3);
        println!(
            "| {queue_limit} | {held} | {open} of {SOCKETS} | {} | {} | {} | {correct:?} |",
            ms(percentile(&took, 0.5)),
            ms(percentile(&took, 0.99)),
            ms(took[took.len() - 1]),
        );
        assert!(correct.iter().all(|&s| s == 200), "{correct:?}");
        assert!(percentile(&took, 0.99) <= Duration::from_millis(50), "p99 over 50 ms");
        drop(sockets);
    }
}

/// How many descriptors the (only) worker process has open.
fn worker_fds(server: &ServerProcess) -> usize {
    let pid = server.ready().workers[0].pid;
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Whether the server still holds `s` open (a read would block rather than see the end).
fn still_open(s: &TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 1];
    let open = matches!((&*s).read(&mut buf), Err(e) if e.kind() == ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    open
}

/// A raw `POST /correct` of `body` with a `Content-Type` line when `content_type` is given.
fn post_raw(content_type: Option<&str>, body: &str) -> String {
    let ct = content_type.map(|t| format!("Content-Type: {t}\r\n")).unwrap_or_default();
    format!(
        "POST /correct HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_body_announced_as_another_type_than_json_gets_415() {
    let server = start_with("", Limits::default());
    let body = r#"{"sentence": "the quick brown fox", "max_new_tokens": 2}"#;
    for (content_type, status) in [
        (None, 200),
        (Some("application/json"), 200),
        (Some("application/json; charset=utf-8"), 200),
        (Some("text/plain"), 415),
        (Some("application/x-www-form-urlencoded"), 415),
    ] {
        let r = exchange(server.addr(), post_raw(content_type, body).as_bytes())
            .unwrap_or_else(|e| panic!("{content_type:?}: {e}"));
        assert_eq!(r.status, status, "{content_type:?}");
        if status == 415 {
            let e: ErrorBody = r.json().unwrap_or_else(|_| panic!("{content_type:?}: not a JSON error"));
            assert!(e.error.contains("application/json") && e.field.is_none(), "{e:?}");
        }
    }
    // Out of range, the answer gives the range and the value.
    let huge = r#"{"sentence": "a", "max_new_tokens": 99999999999999999999}"#;
    let r = exchange(server.addr(), post_raw(Some("application/json"), huge).as_bytes()).unwrap();
    let e: ErrorBody = r.json().expect("a JSON error");
    assert_eq!((r.status, e.field.as_deref()), (422, Some("max_new_tokens")), "{e:?}");
    assert!(e.error.starts_with("must be a whole number in [0, ") && e.error.ends_with("got 1e+20"), "{e:?}");
    // Still serving.
    assert_eq!(client::post_json(server.addr(), "/correct", BODY, PROMPT).unwrap().status, 200);
}

#[test]
fn the_supervisor_s_admin_address_answers_unknown_routes_and_methods_in_json() {
    let server = start_with("", Limits::default());
    let admin = server.ready().admin.expect("the supervisor's admin address");
    for (raw, status) in [
        ("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
        ("POST /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", 405),
        ("DELETE /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
    ] {
        let r = exchange(admin, raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert_eq!(r.status, status, "{raw:?}");
        let e: ErrorBody = r.json().unwrap_or_else(|_| panic!("{raw:?}: not a JSON error"));
        assert!(e.error.contains("GET /healthz, /metrics or /stats"), "{e:?}");
        if status == 405 {
            assert!(r.header("allow").is_some_and(|a| a.contains("GET")), "{raw:?}: Allow header");
        }
    }
    assert_eq!(client::get(admin, "/healthz", PROMPT).unwrap().status, 200);
}
