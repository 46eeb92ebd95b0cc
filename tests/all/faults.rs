//! Hardening on loopback: clients that half-close or leave, overload in every handler mode,
//! and worker processes that die or hang. Every test starts `servesim serve` on an ephemeral
//! port of 127.0.0.1; the handle stops it and its workers when it drops, even on failure.
//! Every read on a socket has a timeout.

use super::server::{BODY, TIMEOUT, closed_loop, start, stats, statuses};
use servesim::server::client::{self, HttpResponse};
use servesim::server::{ErrorBody, ServerProcess, WorkerStats};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Sends a `/correct` request with `body` on a fresh socket and returns the socket.
fn send_raw(addr: SocketAddr, body: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    let head = format!(
        "POST /correct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    s
}

/// Everything the server sends until it closes the connection (bounded by the read timeout).
fn read_until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    if let Err(e) = s.read_to_end(&mut got) {
        panic!("the server neither answered nor closed: {e}; got {:?}", String::from_utf8_lossy(&got));
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// How a client leaves before its answer.
#[derive(Debug, Clone, Copy)]
enum Leave {
    /// close() with `SO_LINGER` 0: a reset.
    Reset,
    /// close(): a FIN, as a client that times out usually does.
    Close,
}

impl Leave {
    fn apply(self, s: TcpStream) {
        if let Leave::Reset = self {
            socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(s);
    }
}

/// Polls `done` every 10 ms until it holds; fails after [`TIMEOUT`].
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !done() {
        assert!(t0.elapsed() < TIMEOUT, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The single worker's `/stats` once nothing is in flight, queued or running.
fn settled(server: &ServerProcess) -> WorkerStats {
    eventually("the worker is idle", || {
        let s = stats(server);
        s.in_flight == 0 && s.inference_running == 0 && s.pool.queued == 0 && s.batch.queued == 0
    });
    stats(server)
}

/// The value of an unlabelled metric in the single worker's `/metrics`.
fn metric(server: &ServerProcess, name: &str) -> Option<f64> {
    let admin = server.ready().workers[0].admin;
    let text = String::from_utf8(client::get(admin, "/metrics", TIMEOUT).unwrap().body).unwrap();
    let prefix = format!("{name} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok())
}

/// Every admitted request is answered, cancelled or still in flight, in `/stats` and in
/// `/metrics` alike.
fn assert_accounted(server: &ServerProcess, s: &WorkerStats) {
    let r = s.requests;
    assert_eq!(r.accepted, r.completed + r.timed_out + r.failed + r.cancelled + s.in_flight, "{r:?}");
    assert_eq!(metric(server, "servesim_requests_accepted_total"), Some(r.accepted as f64));
    assert_eq!(metric(server, "servesim_requests_cancelled_total"), Some(r.cancelled as f64));
}

#[test]
fn a_half_closed_client_gets_its_answer() {
    for (name, toml) in [
        ("sync", ""),
        ("async-blocking", "[worker]\nhandler = \"async-blocking\"\n"),
        ("continuous", "[batching]\nmode = \"continuous\"\n"),
    ] {
        let server = start(toml);
        let mut s = send_raw(server.addr(), BODY);
        // The client is done sending; it still reads.
        s.shutdown(Shutdown::Write).unwrap();
        let text = read_until_closed(&mut s);
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text:?}");
        assert!(text.contains("\"correction\""), "{name}: {text:?}");
        let st = settled(&server);
        assert_eq!((st.requests.completed, st.requests.cancelled), (1, 0), "{name}");
        assert_accounted(&server, &st);
    }
}

#[test]
fn a_client_that_leaves_while_its_request_waits_never_has_it_run() {
    for leave in [Leave::Reset, Leave::Close] {
        // One thread, busy with the first request for at least 1.5 s of CPU.
        let server = start("[worker]\nthreads = 1\n[cost]\nrequest_free_ms = 1500\n");
        let addr = server.addr();
        let first = std::thread::spawn(move || client::post_json(addr, "/correct", BODY, TIMEOUT));
        eventually("the first request is admitted", || stats(&server).requests.accepted == 1);
        let waiting = send_raw(addr, BODY);
        eventually("the second request is admitted", || stats(&server).requests.accepted == 2);
        // Well after its request: a client giving up, not one that has finished sending.
        std::thread::sleep(Duration::from_millis(300));
        leave.apply(waiting);
        assert_eq!(first.join().unwrap().unwrap().status, 200, "{leave:?}");
        std::thread::sleep(Duration::from_millis(200));
        let s = settled(&server);
        assert_eq!(s.pool.jobs, 1, "{leave:?}: the abandoned request ran");
        let r = s.requests;
        assert_eq!((r.accepted, r.completed, r.cancelled), (2, 1, 1), "{leave:?}: {r:?}");
        assert_accounted(&server, &s);
    }
}

#[test]
fn async_blocking_never_runs_a_request_whose_client_left_while_it_waited() {
    let server = start("[worker]\nhandler = \"async-blocking\"\n[cost]\nrequest_free_ms = 1500\n");
    let addr = server.addr();
    let mut a = send_raw(addr, BODY);
    // A runs on the loop; B and C wait in their sockets, B first.
    std::thread::sleep(Duration::from_millis(200));
    let mut b = send_raw(addr, BODY);
    std::thread::sleep(Duration::from_millis(50));
    let c = send_raw(addr, BODY);
    let answer = |s: &mut TcpStream| {
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("an answer");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert!(answer(&mut a).starts_with("HTTP/1.1 200"));
    // Once A is answered the loop reads B and C: B runs, C waits for the loop. C's client
    // gives up long after sending.
    std::thread::sleep(Duration::from_millis(600));
    Leave::Close.apply(c);
    assert!(answer(&mut b).starts_with("HTTP/1.1 200"));
    let s = settled(&server);
    let r = s.requests;
    assert_eq!((r.accepted, r.completed, r.cancelled), (3, 2, 1), "{r:?}");
    assert_accounted(&server, &s);
}

#[test]
fn every_handler_mode_sheds_with_503_at_its_queue_limit() {
    for (name, toml) in [
        ("sync", "[worker]\nthreads = 1\nqueue_limit = 2\n[cost]\nrequest_free_ms = 300\n"),
        (
            "async-offload",
            "[worker]\nhandler = \"async-offload\"\nthreads = 1\nqueue_limit = 2\n[cost]\nrequest_free_ms = 300\n",
        ),
        (
            "async-blocking",
            "[worker]\nhandler = \"async-blocking\"\nqueue_limit = 2\n[cost]\nrequest_free_ms = 300\n",
        ),
        (
            "continuous",
            "[worker]\nqueue_limit = 2\n[batching]\nmode = \"continuous\"\nmax_batch = 1\nstep_free_ms = 100\n",
        ),
    ] {
        let server = start(toml);
        let responses = closed_loop(server.addr(), 8, 1, BODY);
        let all = statuses(&responses);
        let ok = all.iter().filter(|&&s| s == 200).count();
        let shed = all.iter().filter(|&&s| s == 503).count();
        // Two admitted at once; a third at most, if it arrived after the first was answered.
        assert!(ok + shed == 8 && ok <= 3 && shed >= 5, "{name}: {all:?}");
        for r in responses.iter().flatten().filter(|r: &&HttpResponse| r.status == 503) {
            assert_eq!(r.header("retry-after"), Some("1"), "{name}");
            assert!(r.json::<ErrorBody>().unwrap().error.contains("limit"), "{name}");
        }
        let s = settled(&server);
        assert_eq!(s.requests.rejected, shed as u64, "{name}");
        assert!(s.peak_in_flight <= 2, "{name}: {s:?}");
        assert_accounted(&server, &s);
    }
}
