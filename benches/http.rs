//! HTTP/1.1 "Hello, World!" under a load generator: green's example server
//! beside hyper on tokio, gevent's `pywsgi` and Go's `net/http`, on
//! 127.0.0.1, each for a bounded duration (issue 14).
//!
//! | bench | subject | the server |
//! | --- | --- | --- |
//! | `http/hello` | `green` | `examples/http_hello.rs` (compiled in) on `serve_threads` with 1 thread: one hub, a greenlet per connection |
//! | `http/hello` | `tokio` | hyper 1's `http1` server (`pipeline_flush` on) on a current-thread runtime: an accept task and a task per connection |
//! | `http/hello` | `gevent` | `benches/peers/python/http_hello.py`: `gevent.pywsgi.WSGIServer`, one process, access log off |
//! | `http/hello` | `go` | the binary named by `GREEN_BENCH_GO_HTTP` (`net/http`; it prints its port), run with `GOMAXPROCS=1` and `-max-seconds` |
//! | `http/hello_all_cores` | `green` | the same example on `serve_threads` with one thread (hub, `SO_REUSEPORT` listener) per CPU |
//! | `http/hello_all_cores` | `tokio` | the same hyper server on a multi-thread runtime with one worker per CPU |
//! | `http/hello_all_cores` | `go` | the same Go binary with `GOMAXPROCS` = the CPUs |
//!
//! | `http/hello_cpu`, `http/hello_all_cores_cpu` | each | the same servers over the same runs: their CPU time per request |
//!
//! Every server answers any `GET` with `200 OK`, `Content-Type:
//! text/plain`, `Content-Length: 13`, a `Date` and the 13-byte body, and
//! keeps the connection alive, with `TCP_NODELAY` on. The figure is
//! requests per second (median, min and max over the runs), the note gives
//! the latency's p50 and p99 (medians over the runs). With a fixed number
//! of connections each in lockstep, latency is about connections /
//! throughput, so the p99 is what the note adds; the chart needs no row of
//! its own for it.
//!
//! The `_cpu` rows are the server's CPU time (user and system, of every
//! thread of its process, from `/proc`) per request answered, in µs, over
//! the same runs. Requests per second depend on how much of the machine
//! the server and the generator get; on a shared machine that varies from
//! run to run by tens of per cent, and when the generator is the
//! bottleneck every fast server shows the generator's figure. The CPU time
//! per request is what the server itself costs, and repeats within a few
//! per cent. It includes the kernel's work for the server's socket calls,
//! which on loopback also delivers what the server sends (the same for
//! every subject). For the servers inside the bench, it is the bench
//! process's time, whose other threads are idle while one subject is
//! loaded (the bench's own generator, when it is used, is subtracted).
//!
//! The load: `wrk -t1 -c64 -d5s --latency http://127.0.0.1:PORT/`, three
//! runs after a one-second warm-up (`GREEN_BENCH_QUICK=1`: one run of one
//! second, no warm-up). The subjects of a bench take turns: every server is
//! started first, then each round loads each subject once, so that the
//! machine's background load, which drifts over the minutes a bench takes
//! on a shared machine, weighs on every subject alike. `wrk` comes from the system's packages (`cargo xtask
//! bench` installs it when missing); without it the bench falls back to
//! its own generator (`support/http_load.rs`: one thread, 64 keep-alive
//! connections in lockstep, the same request), and each note says which
//! one loaded the server.
//!
//! Where things run. `http/hello` measures one server thread: the server
//! (every thread it makes, for tokio's runtime, gevent's and Go's process)
//! is pinned to the last CPU and the load generator to the one before, so
//! that neither steals the other's time and a one-thread server is compared
//! with a one-thread server. `http/hello_all_cores` pins nothing: the
//! server's threads and the one generator thread share every CPU as the
//! kernel places them, the same way for every subject. On the shared
//! two-core machine the benches run on, that is two server threads and the
//! generator on two cores, so the generator's own CPU time bounds every
//! subject alike; compare the subjects within one run.
//!
//! gevent runs one process on one hub: it has no all-cores mode (one would
//! be several processes behind a balancer), so its all-cores row says so.
//! Its interpreter is `GREEN_BENCH_PYTHON` (the venv `cargo xtask bench`
//! makes); Go's server is `GREEN_BENCH_GO_HTTP` (built by `cargo xtask
//! bench` when `go` is installed). Without them those rows are skipped
//! with the reason.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/http_load.rs"]
mod http_load;
// The example's own server code; its `main` and command line are unused here.
#[allow(dead_code)]
#[path = "../examples/http_hello.rs"]
mod http_hello;

use std::convert::Infallible;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use core_affinity::CoreId;
use harness::{Harness, Stats};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// The benches of one server thread: its throughput, and the server's CPU
/// time per request over the same runs.
const HELLO: Bench = Bench {
    rate: "http/hello",
    cpu: "http/hello_cpu",
};
/// The same with every CPU.
const ALL_CORES: Bench = Bench {
    rate: "http/hello_all_cores",
    cpu: "http/hello_all_cores_cpu",
};

/// A pair of benches measured by the same runs.
struct Bench {
    rate: &'static str,
    cpu: &'static str,
}

impl Bench {
    fn enabled(&self, h: &Harness) -> bool {
        h.enabled(self.rate) || h.enabled(self.cpu)
    }

    /// Records that `subject` could not run, on both rows.
    fn skip(&self, h: &Harness, subject: Subject, reason: &str) {
        h.skip(self.rate, subject.name(), reason);
        h.skip(self.cpu, subject.name(), reason);
    }
}

/// Connections the load generator keeps open.
const CONNECTIONS: usize = 64;

/// How long a server may take to start listening.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// The gevent server, run by `GREEN_BENCH_PYTHON`.
const GEVENT_PROGRAM: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/benches/peers/python/http_hello.py"
);

fn main() {
    let h = Harness::from_env();
    let one_hub = HELLO.enabled(&h);
    let all_cores = ALL_CORES.enabled(&h);
    if !one_hub && !all_cores {
        return;
    }
    let plan = Plan::new(&h);
    let cpus = core_affinity::get_core_ids().unwrap_or_default();
    if one_hub {
        // The last CPU for the server (the first tends to take more of the
        // machine's interrupts), the one before for the load.
        let placement = match cpus.as_slice() {
            [] => Placement::unpinned(),
            [only] => Placement::pinned(*only, *only),
            [.., client, server] => Placement::pinned(*server, *client),
        };
        group(&h, &plan, &HELLO, &placement, 1);
    }
    if all_cores {
        let threads = thread::available_parallelism().map_or(1, |n| n.get());
        group(&h, &plan, &ALL_CORES, &Placement::unpinned(), threads);
    }
}

// ===== the plan and the placement =====

/// How long each subject is loaded.
struct Plan {
    runs: usize,
    duration: Duration,
    warm_up: Option<Duration>,
    generator: Generator,
}

impl Plan {
    fn new(h: &Harness) -> Plan {
        let generator = Generator::detect();
        if h.is_quick() {
            Plan {
                runs: 1,
                duration: Duration::from_secs(1),
                warm_up: None,
                generator,
            }
        } else {
            Plan {
                runs: 3,
                duration: Duration::from_secs(5),
                warm_up: Some(Duration::from_secs(1)),
                generator,
            }
        }
    }

    /// The whole time one subject is loaded.
    fn per_subject(&self) -> Duration {
        self.warm_up.unwrap_or_default() + self.duration * self.runs as u32
    }

    fn describe(&self) -> String {
        let load = match self.generator {
            Generator::Wrk => format!(
                "wrk -t1 -c{CONNECTIONS} -d{}s --latency",
                self.duration.as_secs()
            ),
            Generator::Own => format!(
                "the bench's own generator (wrk not found): 1 thread, {CONNECTIONS} keep-alive \
                 connections in lockstep, {} s",
                self.duration.as_secs()
            ),
        };
        let warm = match self.warm_up {
            Some(w) => format!(" after a {} s warm-up", w.as_secs()),
            None => String::new(),
        };
        format!("{load}, {} run(s){warm}", self.runs)
    }
}

/// The CPUs the server and the load generator are pinned to (none: every
/// CPU, placed by the kernel).
struct Placement {
    server: Option<CoreId>,
    client: Option<CoreId>,
}

impl Placement {
    fn unpinned() -> Placement {
        Placement {
            server: None,
            client: None,
        }
    }

    fn pinned(server: CoreId, client: CoreId) -> Placement {
        Placement {
            server: Some(server),
            client: Some(client),
        }
    }

    fn describe(&self) -> String {
        match (self.server, self.client) {
            (Some(s), Some(c)) if s.id == c.id => {
                format!("server and load share CPU {} (the only one)", s.id)
            }
            (Some(s), Some(c)) => format!("server on CPU {}, load on CPU {}", s.id, c.id),
            _ => "nothing pinned: server and load on every CPU".to_owned(),
        }
    }
}

// ===== the subjects =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subject {
    Green,
    Tokio,
    Gevent,
    Go,
}

impl Subject {
    const ALL: [Subject; 4] = [Subject::Green, Subject::Tokio, Subject::Gevent, Subject::Go];

    fn name(self) -> &'static str {
        match self {
            Subject::Green => "green",
            Subject::Tokio => "tokio",
            Subject::Gevent => "gevent",
            Subject::Go => "go",
        }
    }
}

/// One bench: every subject's server started, then loaded in rounds (a
/// run of each subject per round), so that a change in the machine's
/// background load over the minutes of the bench falls on every subject
/// alike rather than on whichever ran then; each row recorded at the end
/// (or why it was skipped).
fn group(h: &Harness, plan: &Plan, bench: &Bench, placement: &Placement, threads: usize) {
    let mut live = Vec::new();
    for subject in Subject::ALL {
        let Some((what, start)) = prepare(h, plan, bench, subject, threads) else {
            continue;
        };
        match Server::start(placement.server, start) {
            Ok(server) => live.push(Measured {
                subject,
                what,
                server,
                loads: Vec::new(),
                cpu_per_request: Vec::new(),
                failure: None,
            }),
            Err(e) => failed(h, bench, subject, &e),
        }
    }
    if let Some(warm_up) = plan.warm_up {
        for m in &mut live {
            if let Err(e) = load(plan.generator, m.server.addr, warm_up, placement.client) {
                m.failure = Some(e);
            }
        }
    }
    for _ in 0..plan.runs {
        for m in live.iter_mut().filter(|m| m.failure.is_none()) {
            let before = m.server.cpu_ticks();
            match load(
                plan.generator,
                m.server.addr,
                plan.duration,
                placement.client,
            ) {
                Ok((report, load_ticks)) => {
                    let mut ticks = m.server.cpu_ticks().saturating_sub(before);
                    if m.server.pid.is_none() {
                        ticks = ticks.saturating_sub(load_ticks);
                    }
                    let requests = report.requests_per_second * plan.duration.as_secs_f64();
                    m.cpu_per_request
                        .push(ticks as f64 / TICKS_PER_SECOND * 1e6 / requests.max(1.0));
                    m.loads.push(report);
                }
                Err(e) => m.failure = Some(e),
            }
        }
    }
    for mut m in live {
        let stopped = m.server.stop();
        match (m.failure.take(), stopped) {
            (Some(e), _) | (None, Err(e)) => failed(h, bench, m.subject, &e),
            (None, Ok(())) => record(h, plan, bench, placement, &m),
        }
    }
}

/// A subject's server and what its runs measured.
struct Measured {
    subject: Subject,
    what: String,
    server: Server,
    loads: Vec<http_load::LoadReport>,
    /// The server's CPU time per request in each run, in µs.
    cpu_per_request: Vec<f64>,
    failure: Option<String>,
}

/// Green's own failure fails the bench; a peer's skips its row.
fn failed(h: &Harness, bench: &Bench, subject: Subject, error: &str) {
    if subject == Subject::Green {
        panic!("{} on {}: {error}", subject.name(), bench.rate);
    }
    bench.skip(h, subject, error);
}

fn record(h: &Harness, plan: &Plan, bench: &Bench, placement: &Placement, m: &Measured) {
    let mut rates: Vec<f64> = m.loads.iter().map(|l| l.requests_per_second).collect();
    let mut p50: Vec<f64> = m.loads.iter().map(|l| micros(l.p50)).collect();
    let mut p99: Vec<f64> = m.loads.iter().map(|l| micros(l.p99)).collect();
    let rates = Stats::of(&mut rates);
    let cpu = Stats::of(&mut m.cpu_per_request.clone());
    let timeouts: u64 = m.loads.iter().map(|l| l.timeouts).sum();
    let mut runs = format!("{}; {}", plan.describe(), placement.describe());
    if timeouts > 0 {
        runs.push_str(&format!(
            "; {timeouts} requests took more than wrk's 2 s timeout"
        ));
    }
    if h.enabled(bench.rate) {
        let note = format!(
            "{}; {runs}; latency p50 {:.0} us, p99 {:.0} us; server CPU {:.2} us per request",
            m.what,
            Stats::of(&mut p50).median,
            Stats::of(&mut p99).median,
            cpu.median,
        );
        h.record_stats(bench.rate, m.subject.name(), "req/s", &rates, Some(&note));
    }
    if h.enabled(bench.cpu) {
        let note = format!(
            "{}; the server's CPU time (user + system, all its threads) per request answered, \
             over the runs of {} ({:.0} req/s), its kernel's TCP work for its sends over \
             loopback included; {runs}",
            m.what, bench.rate, rates.median,
        );
        h.record_stats(bench.cpu, m.subject.name(), "us", &cpu, Some(&note));
    }
}

/// How `subject` starts its server for `bench`, and what that server is
/// (for the note); `None`, with its skip line recorded, when it cannot run
/// here.
fn prepare(
    h: &Harness,
    plan: &Plan,
    bench: &Bench,
    subject: Subject,
    threads: usize,
) -> Option<(String, StartFn)> {
    Some(match subject {
        Subject::Green => (
            format!(
                "examples/http_hello.rs on serve_threads({threads}): {threads} hub(s), a \
                 greenlet per connection"
            ),
            Box::new(move |ready, stop| green_server(threads, ready, stop)),
        ),
        Subject::Tokio => {
            let runtime = if threads == 1 {
                "a current-thread runtime".to_owned()
            } else {
                format!("a multi-thread runtime with {threads} workers")
            };
            (
                format!("hyper 1 http1 server on {runtime}, a task per connection"),
                Box::new(move |ready, stop| tokio_server(threads, ready, stop)),
            )
        }
        Subject::Gevent => {
            if threads > 1 {
                bench.skip(
                    h,
                    subject,
                    "gevent has no all-cores mode: one process runs one hub",
                );
                return None;
            }
            let Some(python) = std::env::var_os("GREEN_BENCH_PYTHON").filter(|p| !p.is_empty())
            else {
                bench.skip(h, subject, "GREEN_BENCH_PYTHON not set: no gevent venv");
                return None;
            };
            let mut command = Command::new(python);
            command
                .arg(GEVENT_PROGRAM)
                .arg("--duration")
                .arg(lifetime(plan).as_secs().to_string());
            (
                "gevent.pywsgi.WSGIServer, one process, access log off, TCP_NODELAY".to_owned(),
                Box::new(move |ready, stop| child_server(command, ready, stop)),
            )
        }
        Subject::Go => {
            let Some(binary) = std::env::var_os("GREEN_BENCH_GO_HTTP").filter(|p| !p.is_empty())
            else {
                bench.skip(
                    h,
                    subject,
                    "GREEN_BENCH_GO_HTTP not set: no Go HTTP server built",
                );
                return None;
            };
            if !Path::new(&binary).exists() {
                let reason = format!(
                    "GREEN_BENCH_GO_HTTP={} does not exist",
                    Path::new(&binary).display()
                );
                bench.skip(h, subject, &reason);
                return None;
            }
            let mut command = Command::new(binary);
            command
                .env("GOMAXPROCS", threads.to_string())
                .arg("-max-seconds")
                .arg(lifetime(plan).as_secs().to_string());
            (
                format!("net/http server, GOMAXPROCS={threads}"),
                Box::new(move |ready, stop| child_server(command, ready, stop)),
            )
        }
    })
}

/// How long a peer's server process may live: the load of every subject
/// of its bench (they take turns), and a minute for starting and stopping.
/// It also stops when the bench closes its stdin.
fn lifetime(plan: &Plan) -> Duration {
    plan.per_subject() * Subject::ALL.len() as u32 + Duration::from_secs(60)
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

// ===== the servers =====

/// What a server thread is given: where to say it listens (or why it
/// cannot), and the signal to stop.
type Ready = mpsc::Sender<Result<Listening, String>>;

/// Where a started server listens, and its process when it has its own.
struct Listening {
    addr: SocketAddr,
    pid: Option<u32>,
}
type StartFn = Box<dyn FnOnce(&Ready, oneshot::Receiver<()>) -> Result<(), String> + Send>;

/// A server under test, run by a thread of its own (pinned or not, which
/// every thread and process it makes inherits).
struct Server {
    addr: SocketAddr,
    /// The server's own process; `None` for one inside the bench.
    pid: Option<u32>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<Result<(), String>>>,
}

impl Server {
    fn start(cpu: Option<CoreId>, start: StartFn) -> Result<Server, String> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = oneshot::channel();
        let thread = thread::Builder::new()
            .name("http-server".into())
            .spawn(move || {
                if let Some(cpu) = cpu {
                    if !core_affinity::set_for_current(cpu) {
                        let _ = ready_tx.send(Err(format!("cannot pin to CPU {}", cpu.id)));
                        return Ok(());
                    }
                }
                let outcome = start(&ready_tx, stop_rx);
                if let Err(e) = &outcome {
                    // Unheard if the server had said it was ready.
                    let _ = ready_tx.send(Err(e.clone()));
                }
                outcome
            })
            .map_err(|e| format!("cannot start the server thread: {e}"))?;
        let listening = match ready_rx.recv_timeout(START_PATIENCE) {
            Ok(Ok(listening)) => listening,
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(format!("not listening after {START_PATIENCE:?}")),
        };
        Ok(Server {
            addr: listening.addr,
            pid: listening.pid,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// CPU time used so far by the server's process (for a server inside
    /// the bench, by the bench's process, whose other threads are idle
    /// while it is loaded but for the bench's own load generator, which
    /// the caller subtracts).
    fn cpu_ticks(&self) -> u64 {
        let path = match self.pid {
            Some(pid) => format!("/proc/{pid}/stat"),
            None => "/proc/self/stat".to_owned(),
        };
        cpu_ticks(&path)
    }

    /// Stops the server and waits for its thread; the first call only.
    fn stop(&mut self) -> Result<(), String> {
        let (Some(stop), Some(thread)) = (self.stop.take(), self.thread.take()) else {
            return Ok(());
        };
        let _ = stop.send(());
        match thread.join() {
            Ok(outcome) => outcome,
            Err(_) => Err("the server thread panicked".to_owned()),
        }
    }
}

fn localhost() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Green: the example's `serve`, on `threads` hubs.
fn green_server(threads: usize, ready: &Ready, stop: oneshot::Receiver<()>) -> Result<(), String> {
    let servers = http_hello::serve(&localhost().to_string(), threads, None)
        .map_err(|e| format!("serve_threads: {e}"))?;
    let _ = ready.send(Ok(Listening {
        addr: servers.local_addr(),
        pid: None,
    }));
    // This thread's hub runs none of the servers: it may block.
    let _ = stop.blocking_recv();
    for outcome in servers.stop(Duration::from_secs(1)) {
        outcome.map_err(|e| format!("a server thread failed: {e}"))?;
    }
    Ok(())
}

/// Tokio: hyper's HTTP/1 server on a current-thread runtime (`threads`
/// 1, driven by this thread) or a multi-thread one.
fn tokio_server(threads: usize, ready: &Ready, stop: oneshot::Receiver<()>) -> Result<(), String> {
    let runtime = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_io()
            .build()
    }
    .map_err(|e| format!("tokio runtime: {e}"))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(localhost()))
        .map_err(|e| format!("bind: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    runtime.spawn(tokio_accept(listener));
    let _ = ready.send(Ok(Listening { addr, pid: None }));
    // A current-thread runtime runs its tasks inside `block_on` only.
    let _ = runtime.block_on(stop);
    // Dropping the runtime cancels the connections' tasks.
    Ok(())
}

async fn tokio_accept(listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // The bench's few connections never exhaust descriptors.
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // A connection ends in an error when the load generator drops
            // it mid-request at the end of a run: nothing to report.
            let _ = http1::Builder::new()
                .pipeline_flush(true)
                .serve_connection(TokioIo::new(stream), service_fn(tokio_hello))
                .await;
        });
    }
}

async fn tokio_hello(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(http_hello::BODY)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(response)
}

/// A peer's server process: it prints its port on its first line, and is
/// killed when the bench is done with it (it also stops by itself after
/// [`lifetime`]).
fn child_server(
    mut command: Command,
    ready: &Ready,
    stop: oneshot::Receiver<()>,
) -> Result<(), String> {
    let program = Path::new(command.get_program()).display().to_string();
    // Stdin is a pipe this thread holds: a server that watches it stops
    // when the bench is done, even if the bench dies before killing it.
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (line_tx, line_rx) = mpsc::channel();
    // Reads the port line, then whatever else the server prints, so that
    // it never blocks on a full pipe.
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let _ = line_tx.send(line);
        let _ = std::io::copy(&mut reader.by_ref(), &mut std::io::sink());
    });
    let port = match line_rx.recv_timeout(START_PATIENCE) {
        Ok(line) => last_number(&line),
        Err(_) => None,
    };
    let Some(port) = port else {
        let _ = child.kill();
        let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
        return Err(format!(
            "{program} printed no port within {START_PATIENCE:?} ({status})"
        ));
    };
    let _ = ready.send(Ok(Listening {
        addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        pid: Some(child.id()),
    }));
    let _ = stop.blocking_recv();
    let _ = child.kill();
    let _ = child.wait();
    Ok(())
}

/// The last run of digits in `line` (`8080`, `listening on
/// 127.0.0.1:8080`, `http://127.0.0.1:8080/`).
fn last_number(line: &str) -> Option<u16> {
    line.split(|c: char| !c.is_ascii_digit())
        .rfind(|part| !part.is_empty())?
        .parse()
        .ok()
}

// ===== the load =====

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generator {
    Wrk,
    Own,
}

impl Generator {
    /// `wrk` if it runs here, else the bench's own.
    fn detect() -> Generator {
        let found = Command::new("wrk")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if found {
            Generator::Wrk
        } else {
            Generator::Own
        }
    }
}

/// One load run of `duration` from a thread pinned to `cpu` (which `wrk`
/// inherits); also the CPU ticks that thread used (the bench's own
/// generator's work).
fn load(
    generator: Generator,
    addr: SocketAddr,
    duration: Duration,
    cpu: Option<CoreId>,
) -> Result<(http_load::LoadReport, u64), String> {
    let run = move || {
        if let Some(cpu) = cpu {
            if !core_affinity::set_for_current(cpu) {
                return Err(format!("cannot pin the load to CPU {}", cpu.id));
            }
        }
        let before = cpu_ticks("/proc/thread-self/stat");
        let report = match generator {
            Generator::Wrk => wrk(addr, duration),
            Generator::Own => http_load::run(addr, CONNECTIONS, duration),
        }?;
        Ok((report, cpu_ticks("/proc/thread-self/stat") - before))
    };
    thread::Builder::new()
        .name("http-load".into())
        .spawn(run)
        .map_err(|e| format!("cannot start the load thread: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("the load thread panicked".to_owned()))
}

fn wrk(addr: SocketAddr, duration: Duration) -> Result<http_load::LoadReport, String> {
    let seconds = duration.as_secs().max(1);
    let output = Command::new("wrk")
        .arg("-t1")
        .arg(format!("-c{CONNECTIONS}"))
        .arg(format!("-d{seconds}s"))
        .arg("--latency")
        .arg(format!("http://{addr}/"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            output.status,
            text.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    parse_wrk(&text)
}

/// Reads what `wrk --latency` printed: the requests per second, the
/// latency distribution and the requests that timed out. Errors it counted
/// (non-2xx replies, broken connections) fail the run: a server that drops
/// requests is not measured.
fn parse_wrk(text: &str) -> Result<http_load::LoadReport, String> {
    let mut rate = None;
    let mut p50 = None;
    let mut p99 = None;
    let mut timeouts = 0;
    for line in text.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            rate = rest.trim().parse::<f64>().ok();
        } else if let Some(rest) = line.strip_prefix("50%") {
            p50 = parse_wrk_duration(rest.trim());
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = parse_wrk_duration(rest.trim());
        } else if line.starts_with("Non-2xx") {
            return Err(format!("wrk saw errors: {line}"));
        } else if let Some(counts) = line.strip_prefix("Socket errors:") {
            // `connect A, read B, write C, timeout D`: a timeout is a
            // request slower than wrk's 2 s (a starved server on a loaded
            // machine), the others are broken connections.
            for count in counts.split(',') {
                let (kind, n) = count.trim().split_once(' ').unwrap_or(("", "0"));
                let n: u64 = n.trim().parse().unwrap_or(0);
                match kind {
                    "timeout" => timeouts = n,
                    _ if n > 0 => return Err(format!("wrk saw errors: {line}")),
                    _ => {}
                }
            }
        }
    }
    match (rate, p50, p99) {
        (Some(rate), Some(p50), Some(p99)) => Ok(http_load::LoadReport {
            requests_per_second: rate,
            p50,
            p99,
            timeouts,
        }),
        _ => Err(format!("cannot read wrk's output:\n{text}")),
    }
}

/// The user and system CPU time of the process or thread whose `stat` file
/// is at `path`, in clock ticks (`USER_HZ`, 100 per second on Linux), or 0
/// where it cannot be read.
fn cpu_ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is the first, utime the 12th, stime the 13th.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return 0;
    };
    let mut fields = fields.split_whitespace().skip(11);
    let mut next = || {
        fields
            .next()
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    next() + next()
}

/// Clock ticks per second of `/proc`'s CPU times (`USER_HZ`, fixed at 100
/// in Linux's user-space interface).
const TICKS_PER_SECOND: f64 = 100.0;

/// `312.00us`, `1.20ms`, `2.00s` as wrk prints them.
fn parse_wrk_duration(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| c.is_ascii_alphabetic())?;
    let value: f64 = text[..split].parse().ok()?;
    let scale = match &text[split..] {
        "us" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(value * scale))
}
