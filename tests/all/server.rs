//! The real server on loopback: behaviour, not timings. Every test starts `servesim serve`
//! on an ephemeral port of 127.0.0.1; the handle stops it when it drops, even on failure.

use servesim::scenario::Scenario;
use servesim::server::client::{Connection, HttpResponse};
use servesim::server::{
    CorrectResponse, ErrorBody, LaunchOptions, Limits, ServerConfig, ServerProcess, WorkerStats,
    resolve_model_dir,
};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

pub(crate) const TIMEOUT: Duration = Duration::from_secs(30);
pub(crate) const BODY: &[u8] = br#"{"sentence": "the quick brown fox", "max_new_tokens": 4}"#;

pub(crate) fn start_with(toml: &str, limits: Limits) -> ServerProcess {
    let sc = Scenario::parse(toml, Path::new("test"), Path::new("."), &[]).expect("scenario");
    let config = ServerConfig::from_scenario(&sc, limits, resolve_model_dir(None)).expect("servable");
    let opts =
        LaunchOptions { binary: Some(env!("CARGO_BIN_EXE_servesim").into()), ..LaunchOptions::default() };
    ServerProcess::start(&config, &opts).expect("the server starts")
}

pub(crate) fn start(toml: &str) -> ServerProcess {
    start_with(toml, Limits::default())
}

pub(crate) fn stats(server: &ServerProcess) -> WorkerStats {
    let mut all = server.stats().expect("/stats");
    assert_eq!(all.len(), 1);
    all.remove(0)
}

/// `clients` threads, released together, each sending `per_client` requests on its own
/// keep-alive connection; every response, per client.
pub(crate) fn closed_loop(
    addr: SocketAddr,
    clients: usize,
    per_client: usize,
    body: &'static [u8],
) -> Vec<Vec<HttpResponse>> {
    closed_loop_each(addr, vec![body.to_vec(); clients], per_client)
}

/// [`closed_loop`] with one client per body, each sending its own.
fn closed_loop_each(addr: SocketAddr, bodies: Vec<Vec<u8>>, per_client: usize) -> Vec<Vec<HttpResponse>> {
    let go = Arc::new(Barrier::new(bodies.len()));
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|body| {
            let go = Arc::clone(&go);
            std::thread::spawn(move || {
                let mut c = Connection::open(addr, TIMEOUT).expect("connect");
                go.wait();
                (0..per_client)
                    .map(|_| c.request("POST", "/correct", Some(&body), &[]).expect("a response"))
                    .collect()
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().expect("client thread")).collect()
}

pub(crate) fn statuses(responses: &[Vec<HttpResponse>]) -> Vec<u16> {
    let mut s: Vec<u16> = responses.iter().flatten().map(|r| r.status).collect();
    s.sort_unstable();
    s
}

#[test]
fn async_blocking_runs_one_inference_at_a_time_whatever_the_threads() {
    let server = start(
        "[system]\ncores = 2\n[worker]\nhandler = \"async-blocking\"\nthreads = 8\n\
         [cost]\nrequest_free_ms = 5\n",
    );
    let responses = closed_loop(server.addr(), 6, 3, BODY);
    assert!(statuses(&responses).iter().all(|&s| s == 200));
    let s = stats(&server);
    assert_eq!(s.requests.completed, 18);
    assert_eq!(s.peak_inference, 1, "the loop thread ran two handlers at once");
    assert_eq!(s.pool.threads, 0, "async-blocking has no threadpool");
    let r: CorrectResponse = responses[0][0].json().unwrap();
    assert_eq!((r.tokens, r.timing.thread_wait_ms), (4, 0.0));
}

#[test]
fn pool_handlers_reach_min_of_threads_and_clients() {
    for (handler, threads, clients) in [("sync", 3, 6), ("sync", 8, 2), ("async-offload", 3, 6)] {
        let server = start(&format!(
            "[system]\ncores = 2\n[worker]\nhandler = \"{handler}\"\nthreads = {threads}\n\
             [cost]\nrequest_free_ms = 20\n"
        ));
        let responses = closed_loop(server.addr(), clients, 3, BODY);
        assert!(statuses(&responses).iter().all(|&s| s == 200));
        let s = stats(&server);
        assert_eq!(s.requests.completed, 3 * clients as u64);
        assert_eq!(
            s.peak_inference,
            threads.min(clients) as u64,
            "{handler}, {threads} threads, {clients} clients"
        );
        assert_eq!(s.pool.threads as usize, threads);
    }
}

#[test]
fn the_lock_is_never_held_by_two_threads() {
    for (lock, forced) in [("gil", true), ("mutex", false)] {
        let server = start(&format!(
            "[system]\ncores = 2\n[worker]\nthreads = 4\nlock = \"{lock}\"\nswitch_interval_ms = 0.2\n\
             [cost]\nrequest_locked_ms = 2\ntoken_locked_ms = 1\ntoken_free_ms = 0.5\n"
        ));
        let responses = closed_loop(server.addr(), 4, 4, BODY);
        assert!(statuses(&responses).iter().all(|&s| s == 200));
        let l = stats(&server).lock_stats;
        assert_eq!(l.max_holders, 1, "{lock}: {l:?}");
        assert!(l.handoffs > 0, "{lock}: no contention, so the test proves nothing: {l:?}");
        assert_eq!(l.forced_drops > 0, forced, "{lock}: {l:?}");
        let r: CorrectResponse = responses[0][0].json().unwrap();
        assert!(r.timing.lock_held_ms > 0.0 && r.timing.busy_locked_ms > 0.0, "{:?}", r.timing);
    }
}

#[test]
fn two_workers_answer_from_two_pids() {
    let server = start("[system]\nworkers = 2\ncores = 2\n");
    let ready = server.ready().clone();
    let pids: BTreeSet<u32> = ready.workers.iter().map(|w| w.pid).collect();
    assert_eq!(pids.len(), 2, "{ready:?}");
    assert!(!pids.contains(&server.pid()));
    assert!(ready.workers.iter().all(|w| w.rss_kb > 0), "{ready:?}");
    let before: std::collections::BTreeMap<u32, u64> =
        server.stats().unwrap().iter().map(|s| (s.pid, s.connections)).collect();
    let mut seen = std::collections::BTreeMap::new();
    for _ in 0..200 {
        // A fresh connection each time: SO_REUSEPORT hashes connections, not requests.
        let r = servesim::server::client::post_json(server.addr(), "/correct", BODY, TIMEOUT).unwrap();
        assert_eq!(r.status, 200);
        let pid = r.header("x-worker-pid").and_then(|p| p.parse::<u32>().ok()).expect("pid header");
        *seen.entry(pid).or_insert(0u64) += 1;
        if seen.len() == 2 {
            break;
        }
    }
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), pids);
    let stats = server.stats().unwrap();
    assert_eq!(stats.iter().map(|s| s.pid).collect::<BTreeSet<_>>(), pids);
    // Each worker counts the connections it accepted (the start's health probes too): the
    // split `validate` reads.
    let counted: std::collections::BTreeMap<u32, u64> =
        stats.iter().map(|s| (s.pid, s.connections - before[&s.pid])).collect();
    assert_eq!(counted, seen);
}

/// A declared body over the limit is refused before it is sent: a client that asks
/// `Expect: 100-continue` gets the 413 (a JSON error), not a go-ahead to upload it.
#[test]
fn an_over_limit_content_length_is_refused_before_the_body() {
    use std::io::{Read, Write};
    let server = start("");
    let mut s = std::net::TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let head = "POST /correct HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                Content-Length: 10000000\r\nExpect: 100-continue\r\n\r\n";
    s.write_all(head.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    // Read until the head and its JSON body are in (or the server closes).
    while !String::from_utf8_lossy(&got).contains('}') {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!("no answer: {e}; got {:?}", String::from_utf8_lossy(&got)),
        }
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(!text.contains("100 Continue"), "{text}");
    assert!(text.contains("larger than the limit"), "{text}");
}

#[test]
fn every_bad_input_gets_its_4xx_with_a_json_error() {
    let server = start("");
    let big = format!(r#"{{"sentence": "{}"}}"#, "a".repeat(70 * 1024));
    let long = format!(r#"{{"sentence": "{}"}}"#, "a".repeat(200));
    let cases: Vec<(Vec<u8>, u16, Option<&str>)> = vec![
        (b"{oops".to_vec(), 400, None),
        (b"\"just a string\"".to_vec(), 400, None),
        (b"{}".to_vec(), 422, Some("sentence")),
        (br#"{"sentence": ""}"#.to_vec(), 422, Some("sentence")),
        (br#"{"sentence": 42}"#.to_vec(), 422, Some("sentence")),
        (long.into_bytes(), 422, Some("sentence")),
        (br#"{"sentence": "a", "max_new_tokens": -3}"#.to_vec(), 422, Some("max_new_tokens")),
        (br#"{"sentence": "a", "max_new_tokens": 1.5}"#.to_vec(), 422, Some("max_new_tokens")),
        (br#"{"sentence": "a", "max_new_tokens": 100000}"#.to_vec(), 422, Some("max_new_tokens")),
        (br#"{"sentence": "a", "stop_at_eos": "yes"}"#.to_vec(), 422, Some("stop_at_eos")),
        (br#"{"sentence": "a", "max_tokens": 3}"#.to_vec(), 422, Some("max_tokens")),
        (big.into_bytes(), 413, None),
    ];
    let n = cases.len() as u64;
    let mut by_status = std::collections::BTreeMap::new();
    for (_, status, _) in &cases {
        *by_status.entry(*status).or_insert(0u64) += 1;
    }
    for (body, status, field) in cases {
        let r = servesim::server::client::post_json(server.addr(), "/correct", &body, TIMEOUT).unwrap();
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        assert_eq!(r.status, status, "{shown}");
        let e: ErrorBody = r.json().unwrap_or_else(|_| panic!("{shown}: not a JSON error"));
        assert_eq!(e.field.as_deref(), field, "{shown}: {e:?}");
        assert!(!e.error.is_empty());
    }
    // An unknown route, and a known one with the wrong method: JSON errors too.
    let mut c = Connection::open(server.addr(), TIMEOUT).unwrap();
    for (method, path, status, allow) in [
        ("GET", "/nope", 404, None),
        ("GET", "/correct", 405, Some("POST")),
        ("POST", "/healthz", 405, Some("GET")),
    ] {
        let r = c.request(method, path, None, &[]).unwrap();
        assert_eq!(r.status, status, "{method} {path}");
        let e: ErrorBody = r.json().unwrap_or_else(|_| panic!("{method} {path}: not a JSON error"));
        assert!(e.error.contains(path) && e.field.is_none(), "{method} {path}: {e:?}");
        if let Some(allow) = allow {
            assert!(r.header("allow").is_some_and(|a| a.contains(allow)), "{method} {path}: Allow header");
        }
    }
    // Still serving, and every refusal was counted.
    let ok = servesim::server::client::post_json(server.addr(), "/correct", BODY, TIMEOUT).unwrap();
    assert_eq!(ok.status, 200);
    let s = stats(&server);
    assert_eq!((s.requests.invalid, s.requests.accepted, s.requests.completed), (n, 1, 1));
    let metrics = servesim::server::client::get(server.addr(), "/metrics", TIMEOUT).unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    let lines: BTreeSet<&str> = text.lines().collect();
    // Every /correct answer is in the duration histogram; the lock wait of the completed one.
    let answered = n + 1;
    by_status.insert(200, 1);
    let mut want: Vec<String> =
        by_status.iter().map(|(s, k)| format!("servesim_requests_total{{status=\"{s}\"}} {k}")).collect();
    want.extend([
        // Scraped with nothing admitted or queued.
        "servesim_requests_in_flight 0".to_string(),
        "servesim_queue_depth 0".to_string(),
        "servesim_inference_in_flight 0".to_string(),
        // Explicit buckets: the top ones hold every observation.
        format!("servesim_request_duration_seconds_bucket{{le=\"30\"}} {answered}"),
        format!("servesim_request_duration_seconds_bucket{{le=\"+Inf\"}} {answered}"),
        format!("servesim_request_duration_seconds_count {answered}"),
        "servesim_lock_wait_seconds_bucket{le=\"5\"} 1".to_string(),
        "servesim_lock_wait_seconds_count 1".to_string(),
    ]);
    for line in want {
        assert!(lines.contains(line.as_str()), "`{line}` missing from /metrics:\n{text}");
    }
    for (histogram, low) in
        [("servesim_request_duration_seconds", "0.001"), ("servesim_lock_wait_seconds", "0.00001")]
    {
        let bucket = format!("{histogram}_bucket{{le=\"{low}\"}} ");
        assert!(text.lines().any(|l| l.starts_with(&bucket)), "`{bucket}` missing from /metrics:\n{text}");
    }
}

#[test]
fn a_full_admission_queue_sheds_with_503_and_retry_after() {
    let server = start("[worker]\nthreads = 1\nqueue_limit = 2\n[cost]\nrequest_free_ms = 300\n");
    let responses = closed_loop(server.addr(), 6, 1, BODY);
    assert_eq!(statuses(&responses), [200, 200, 503, 503, 503, 503]);
    for r in responses.iter().flatten().filter(|r| r.status == 503) {
        assert_eq!(r.header("retry-after"), Some("1"));
        assert!(r.json::<ErrorBody>().unwrap().error.contains("limit"));
    }
    let s = stats(&server);
    assert_eq!((s.requests.rejected, s.peak_in_flight), (4, 2));
}

#[test]
fn a_request_still_queued_at_the_timeout_gets_504() {
    let limits = Limits { request_timeout_ms: 100.0, ..Limits::default() };
    let server = start_with("[worker]\nthreads = 1\n[cost]\nrequest_free_ms = 400\n", limits);
    let responses = closed_loop(server.addr(), 3, 1, BODY);
    assert_eq!(statuses(&responses), [504, 504, 504]);
    // One ran: its per-request work cannot be interrupted, and it stopped at the first token
    // boundary after it (before the prefill, no token made). The others never left the queue.
    let bodies: Vec<ErrorBody> = responses.iter().flatten().map(|r| r.json().unwrap()).collect();
    let mut tokens: Vec<Option<u32>> = bodies.iter().map(|e| e.tokens).collect();
    tokens.sort_unstable();
    assert_eq!(tokens, [None, None, Some(0)], "{bodies:?}");
    assert_eq!(stats(&server).requests.timed_out, 3);
}

#[test]
fn a_running_generation_stops_at_the_timeout_with_504() {
    // 100 tokens of at least 10 ms of CPU each (per token, or per batched step) cannot be
    // done in 300 ms: the handler must stop part-way, at a token boundary.
    let limits = Limits { request_timeout_ms: 300.0, ..Limits::default() };
    for (name, toml) in [
        ("sync", "[worker]\nthreads = 2\nlock = \"gil\"\n[cost]\ntoken_free_ms = 5\ntoken_locked_ms = 5\n"),
        (
            "async-blocking",
            "[worker]\nhandler = \"async-blocking\"\nlock = \"gil\"\n[cost]\ntoken_free_ms = 10\n",
        ),
        ("continuous", "[worker]\nlock = \"gil\"\n[batching]\nmode = \"continuous\"\nstep_free_ms = 10\n"),
    ] {
        let server = start_with(toml, limits.clone());
        let r =
            servesim::server::client::post_json(server.addr(), "/correct", &body_with_tokens(100), TIMEOUT)
                .unwrap();
        assert_eq!(r.status, 504, "{name}");
        let e: ErrorBody = r.json().unwrap_or_else(|_| panic!("{name}: not a JSON error"));
        let tokens = e.tokens.unwrap_or_else(|| panic!("{name}: the 504 says how far it got: {e:?}"));
        assert!(tokens < 100, "{name}: {e:?}");
        assert!(e.error.contains("timeout") && e.field.is_none(), "{name}: {e:?}");
        // The lock and the thread (or batch slot) are free: a request that needs both is
        // answered, and nothing is left running.
        let ok =
            servesim::server::client::post_json(server.addr(), "/correct", &body_with_tokens(0), TIMEOUT)
                .unwrap();
        assert_eq!(ok.status, 200, "{name}");
        let s = stats(&server);
        assert_eq!((s.requests.timed_out, s.requests.completed), (1, 1), "{name}");
        assert_eq!((s.in_flight, s.inference_running), (0, 0), "{name}");
        assert_eq!(s.lock_stats.max_holders, 1, "{name}");
    }
}

#[test]
fn sigterm_under_load_loses_no_accepted_request() {
    drain_loses_nothing("[system]\ncores = 2\n[worker]\nthreads = 4\n[cost]\nrequest_free_ms = 5\n");
}

/// Clients keep sending until the server, terminated once 40 answers are in, stops
/// accepting; every accepted request must have been answered and received.
fn drain_loses_nothing(toml: &str) {
    let server = start(toml);
    let answered = Arc::new(AtomicU64::new(0));
    let addr = server.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            let answered = Arc::clone(&answered);
            std::thread::spawn(move || {
                let (mut ok, t0) = (0u64, Instant::now());
                let Ok(mut c) = Connection::open(addr, TIMEOUT) else { return ok };
                // Bounded in count and time; ends at the first refused or closed connection.
                while ok < 10_000 && t0.elapsed() < TIMEOUT {
                    match c.request("POST", "/correct", Some(BODY), &[]) {
                        Ok(r) => {
                            assert_eq!(r.status, 200, "an accepted request failed");
                            ok += 1;
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(_) => break,
                    }
                }
                ok
            })
        })
        .collect();
    let t0 = Instant::now();
    while answered.load(Ordering::SeqCst) < 40 && t0.elapsed() < TIMEOUT {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.terminate();
    let received: u64 = clients.into_iter().map(|h| h.join().unwrap()).sum();
    let stopped = server.wait(TIMEOUT).expect("a stopped line");
    assert!(stopped.clean, "{stopped:?}");
    let counts = stopped.workers[0].requests.expect("the worker reported its counts");
    assert!(received >= 40);
    assert_eq!(counts.accepted, counts.completed, "{counts:?}");
    assert_eq!(counts.completed, received, "every accepted request was answered and received");
}

fn body_with_tokens(n: u32) -> Vec<u8> {
    format!(r#"{{"sentence": "the quick brown fox", "max_new_tokens": {n}}}"#).into_bytes()
}

#[test]
fn continuous_batching_shares_steps_and_gives_each_request_its_own_tokens() {
    // The event loop's locked work contends with the scheduler's locked step work.
    let server = start(
        "[system]\ncores = 2\n[worker]\nlock = \"gil\"\n[cost]\nloop_in_ms = 0.2\n\
         [batching]\nmode = \"continuous\"\nmax_batch = 4\nstep_locked_ms = 0.5\nstep_free_ms = 1.5\n",
    );
    // Eight clients of different lengths: sequences of different lengths share batches.
    let tokens = [2, 3, 5, 7, 8, 11, 13, 16];
    let responses = closed_loop_each(server.addr(), tokens.iter().map(|&n| body_with_tokens(n)).collect(), 3);
    for (&n, rs) in tokens.iter().zip(&responses) {
        for r in rs {
            assert_eq!(r.status, 200);
            let c: CorrectResponse = r.json().unwrap();
            assert_eq!((c.tokens, c.timing.tokens), (n, n));
            assert!(c.timing.lock_held_ms > 0.0 && c.timing.busy_locked_ms > 0.0, "{:?}", c.timing);
        }
    }
    let s = stats(&server);
    let b = &s.batch;
    assert_eq!((s.requests.completed, b.joined, b.mode.as_str()), (24, 24, "continuous"));
    assert_eq!(b.sequences, 3 * tokens.iter().map(|&n| u64::from(n)).sum::<u64>(), "{b:?}");
    assert!(b.mean_batch > 1.0 && b.mean_batch <= 4.0, "{b:?}");
    assert!(b.peak_batch <= 4 && s.peak_inference <= 4, "{s:?}");
    assert_eq!(s.pool.threads, 0, "batching starts no threadpool");
    assert_eq!(s.lock_stats.max_holders, 1, "{:?}", s.lock_stats);
    let metrics = servesim::server::client::get(server.addr(), "/metrics", TIMEOUT).unwrap();
    let text = String::from_utf8(metrics.body).unwrap();
    for bucket in ["le=\"1\"", "le=\"4\"", "le=\"64\""] {
        let line = format!("servesim_batch_size_bucket{{{bucket}}}");
        assert!(text.contains(&line), "{line} missing from /metrics");
    }
}

#[test]
fn a_static_batch_alone_goes_after_max_wait() {
    let server = start("[batching]\nmode = \"static\"\nmax_batch = 8\nmax_wait_ms = 50\n");
    let r = servesim::server::client::post_json(server.addr(), "/correct", BODY, TIMEOUT).unwrap();
    assert_eq!(r.status, 200);
    let c: CorrectResponse = r.json().unwrap();
    assert_eq!(c.tokens, 4);
    assert!(c.timing.queue_wait_ms >= 45.0, "{:?}", c.timing);
    let b = stats(&server).batch;
    assert_eq!((b.mode.as_str(), b.steps, b.sequences, b.mean_batch), ("static", 4, 4, 1.0));
}

#[test]
fn a_full_batch_queue_sheds_with_503_and_retry_after() {
    let server = start(
        "[worker]\nqueue_limit = 2\n[batching]\nmode = \"continuous\"\nmax_batch = 1\nstep_free_ms = 100\n",
    );
    let responses = closed_loop(server.addr(), 6, 1, BODY);
    assert_eq!(statuses(&responses), [200, 200, 503, 503, 503, 503]);
    for r in responses.iter().flatten().filter(|r| r.status == 503) {
        assert_eq!(r.header("retry-after"), Some("1"));
    }
    let s = stats(&server);
    assert_eq!((s.requests.rejected, s.requests.completed, s.batch.peak_batch), (4, 2, 1));
}

#[test]
fn sigterm_with_batching_loses_no_accepted_request() {
    drain_loses_nothing("[batching]\nmode = \"continuous\"\nmax_batch = 4\nstep_free_ms = 1\n");
}
