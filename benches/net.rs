//! TCP echo over loopback: green's `net` serving beside tokio's and may's,
//! loaded by the same client in the same run (issue 12).
//!
//! | bench | subject | what one operation is |
//! | --- | --- | --- |
//! | `net/echo_1conn` | `green` | one 64-byte request and its echo over one connection to a `green_core::net::TcpListener` server (a greenlet per connection doing `read_exact` / `write_all`) |
//! | `net/echo_1conn` | `tokio` | the same against a `tokio::net::TcpListener` server on a current-thread runtime (a task per connection) |
//! | `net/echo_1conn` | `may` | the same against a `may::net::TcpListener` server on one may worker (a coroutine per connection) |
//! | `net/echo_1conn` | `std` | the same against a blocking std server thread that serves its one connection itself: the floor (two thread wake-ups and the loopback path, no runtime) |
//! | `net/echo_64conn` | `green`, `tokio`, `may` | one request and its echo, with 64 connections each in lockstep (one request in flight per connection) |
//! | `net/connect_accept` | `green`, `tokio`, `may` | one connection: connect, one 64-byte echo, the server closes, the client sees the end and closes |
//! | `net/connect_accept` | `std` | the same against a blocking std server thread that accepts and serves one connection at a time: the floor |
//! | `net/enter_per_request` | `green` | `io_uring_enter` (`epoll_wait` on the epoll backend) calls of the server's hub per request at 64 connections |
//! | `pool/server_2threads` | `green` | one request and its echo, 64 connections in lockstep, against `green_pool::serve_threads` on 2 threads (a hub and an `SO_REUSEPORT` listener each, a greenlet per connection) |
//! | `pool/server_2threads` | `tokio` | the same against a `new_multi_thread` runtime with 2 workers (the accept loop a task on them, a task per connection) |
//! | `net/echo_1conn`, `net/echo_64conn`, `net/connect_accept` | a peer in another language (`gevent`, `eventlet`, `go`) | the same against that peer's server, running in a process of its own (below) |
//! | `net/echo_1conn_cpu`, `net/echo_64conn_cpu`, `net/connect_accept_cpu`, `pool/server_2threads_cpu` | each subject of the bench without `_cpu` | the server's CPU time (user + system, every thread of it) per request (per connection), measured around the same samples |
//!
//! The echo benches report ns per request (per connection for
//! `connect_accept`), like every timed case of the harness; the throughput is
//! 1e9 / that figure in req/s (conn/s), as each note says.
//!
//! The subjects take turns (`support/rounds.rs`). Every subject's server of
//! a bench is started and its client connected first; then each of 10
//! rounds runs 5 samples of 10 ms of each subject in turn (2 rounds of
//! 2 ms samples with `GREEN_BENCH_QUICK`), the first subject of a round
//! rotating. On the shared two-core virtual machine, other sessions' builds
//! come and go over seconds, and with the subjects timed one after the
//! other, two runs of the same binary a minute apart gave medians up to
//! 50% apart and the subjects in a different order; in rounds, a slow phase
//! of the machine falls on every subject alike. The figure is the median,
//! min and max over a subject's 50 samples, and its note gives the range of
//! the per-round medians and the share of the wall time that the client and
//! the server ran (on one CPU, the rest went to other processes).
//!
//! The `_cpu` rows are the servers' CPU time per operation over the same
//! rounds (median, min and max over the rounds), read around each round's
//! samples: for a server inside the bench, the process's CPU clock less the
//! client thread's; for one in another process, its threads' `schedstat`.
//! It includes the kernel's work for the server's socket calls, which on
//! loopback also delivers what the server sends. Wall time on a shared CPU
//! counts whatever else ran on it; CPU time does not, so it is the figure
//! to compare across runs, and across the separate runs in which
//! `cargo xtask bench` measures the peers in other languages (below). It is
//! not immune either: with nothing else on the bench's CPU, the same work
//! was seen to take tens of per cent more CPU time while the other sessions
//! were busy (the host's sharing of its cores is not visible from inside),
//! so compare subjects within one run first.
//!
//! How the load is made, and why. Each subject's server runs on its own
//! runtime in one std thread: green's hub under `green_core::run`, tokio's
//! `new_current_thread` runtime, may with one worker
//! (`support/may_peer.rs`). The client is the bench's main thread, which also
//! runs the harness, and is the same code for every subject
//! (`support/echo_client.rs`): std sockets made non-blocking under one
//! edge-triggered epoll set (through mio, no runtime), one `write` per
//! request, one `read` per reply. So the servers see exactly the same
//! syscalls from the other side, and what differs between the figures is
//! the server: its runtime's wake-up, scheduling and socket calls. Running
//! client and server in one runtime thread instead would have made each
//! subject generate its own load with its own code, and counted the
//! runtime's costs twice.
//!
//! The `std` subject, as in `sync/cross_thread_set`, measures the floor in
//! the same run: a plain blocking server thread (`accept`, `read`, `write`
//! on one connection at a time), so what each runtime adds to the kernel's
//! work can be read off. It has no `echo_64conn` case, since serving 64
//! connections needs 64 threads or a poller of its own.
//!
//! One CPU for client and server. The bench pins its main thread to one
//! CPU before anything starts, so every thread it makes (the server
//! threads, may's worker) shares that CPU. Unpinned, the kernel puts the two
//! threads on one core in some runs and on both in others, and on the
//! shared two-core virtual machine the benches run on a wake-up across
//! cores costs about three times one on the same core: `echo_1conn` then
//! flipped between about 17 and 50 µs from run to run. Pinned, the figures
//! repeat within a few per cent, and they read as CPU cost: the time per
//! request is the client's work (the same for every subject), the server's
//! work and the switches between them. With one connection every request
//! switches to the server and back, so `echo_1conn` is dominated by two
//! thread wake-ups and the loopback path. With 64 connections in lockstep a
//! server that handles the ready connections in one loop iteration answers
//! many requests per wake-up and per system call (`enter_per_request` shows
//! green's count), so `echo_64conn` is where the runtimes' own costs show.
//! The CPU is the last one the process may run on (the first tends to take
//! more of the machine's interrupts). Client and server on two different
//! CPUs would make every request a wake-up across cores (the costly case
//! above) and expose the bench to the other sessions' load on both CPUs
//! instead of one; the runs then depend on where that load lands.
//!
//! `connect_accept` uses blocking std calls on the client side (connect,
//! write, read the reply, read the end). The server closes first, so the
//! TIME_WAIT state stays on the server's side and the client's ephemeral
//! ports are free again at once, which a run of tens of thousands of
//! connects needs; a `Connection: close` HTTP/1.0 server does the same.
//!
//! `pool/server_2threads` is the one bench not on one CPU: serving from two
//! threads is about using both cores. Its thread is made before the pin,
//! so it and every thread it starts (green's two hubs, tokio's two workers,
//! both up for the whole bench as they take turns in rounds) may run on
//! every CPU the process may, and nothing is pinned further:
//! the client, the same one thread as above, competes with the two server
//! threads for the two cores, the same way for both subjects, and the
//! kernel's scheduler places all three. That is the two-core equivalent of
//! the one-CPU setup: the same client with twice the CPU, so a server that
//! scales shows up to about 2x its one-thread `echo_64conn` figure (less
//! the cross-core wake-ups). It runs last, after the pinned benches, and
//! its note gives the ratio of its throughput to this run's green (and, for
//! tokio, tokio's) `echo_64conn` figure, which is measured for that purpose
//! even when the filter leaves `net/echo_64conn` out. Green's note also
//! says how the kernel spread the 64 connections over the two listeners,
//! and both notes say how busy each CPU was over the case (from
//! `/proc/stat`, every process and the softirq work of loopback TCP
//! included): near 100% on both means the figure is a CPU cost, lower
//! means the threads waited for each other's wake-ups. On the shared
//! two-core virtual machine this figure varies from run to run far more
//! than the pinned ones: three busy threads on two cores are placed by the
//! scheduler, beside the other sessions' load, and once client and servers
//! run at the same time on different cores each wake-up serves fewer
//! requests (in one measurement green's hubs made 0.4 to 0.8
//! `io_uring_enter` calls per request instead of `enter_per_request`'s
//! 0.12 on one CPU) and a wake-up across cores costs several times one on
//! the same core. Medians between about 1x and 1.9x the one-thread figure
//! were seen for both subjects, with the min steady near 5.3 µs for green
//! (1.9x its one-thread figure) and 5.8 µs for tokio (1.95x its own, 1.75x
//! green's): read the min and the CPUs' load beside the median.
//!
//! Servers in another process. The peers written in other languages serve
//! the echo from a process of their own, which `cargo xtask bench` starts
//! (`xtask/src/peers/`, the programs under `benches/peers/`) and names in
//! `GREEN_BENCH_EXTERNAL_ECHO`, a comma-separated list of
//! `SUBJECT=HOST:PORT[/HOST:PORT][@PID]`. When it is set, the bench runs
//! only the echo cases, against those servers, with the same client and the
//! same pin, in rounds among themselves, and records them under the
//! subjects given: the first address
//! echoes until the client closes (`echo_1conn`, `echo_64conn`), the
//! optional second echoes once and closes first (`connect_accept`, a skipped
//! row without it). The bench cannot pin another process: the launcher starts
//! the server on the CPU the bench pins to (the last one it may run on, with
//! `taskset -c`), and, given the server's pid, each note says whether its
//! process really is on that CPU (`Cpus_allowed_list` of `/proc/PID/status`).
//! `GREEN_BENCH_EXTERNAL_THREADED`, in the same form (a one-shot address is
//! not used), names servers that serve from several threads: the bench then
//! runs only `pool/server_2threads` against them, with nothing pinned, as
//! for green's and tokio's two-thread servers.
//!
//! Every server binds 127.0.0.1 on a port the kernel picks, sets
//! `TCP_NODELAY` on its connections as the client does, and stops when the
//! bench is done with it: a flag is set and one last connection wakes its
//! accept loop. A server that stops answering fails the client after 10 s
//! instead of hanging.

#[path = "support/echo_client.rs"]
mod echo_client;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/may_peer.rs"]
mod may_peer;
#[path = "support/rounds.rs"]
mod rounds;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use echo_client::{connect_echo_close, EchoClient, MSG};
use green_core::sync::{Queue, RemotePutter};
use green_core::LoopStats;
use harness::Harness;
use rounds::{Entrant, Measured, Plan, ServerThreads};

/// A bench timed in wall time, and the row of its servers' CPU time per
/// operation measured around the same samples.
#[derive(Debug, Clone, Copy)]
struct Pair {
    wall: &'static str,
    cpu: &'static str,
}

impl Pair {
    fn enabled(&self, h: &Harness) -> bool {
        h.enabled(self.wall) || h.enabled(self.cpu)
    }
}

const ECHO_1CONN: Pair = Pair {
    wall: "net/echo_1conn",
    cpu: "net/echo_1conn_cpu",
};
const ECHO_64CONN: Pair = Pair {
    wall: "net/echo_64conn",
    cpu: "net/echo_64conn_cpu",
};
const CONNECT_ACCEPT: Pair = Pair {
    wall: "net/connect_accept",
    cpu: "net/connect_accept_cpu",
};
const SERVER_2THREADS: Pair = Pair {
    wall: "pool/server_2threads",
    cpu: "pool/server_2threads_cpu",
};
const ENTER_PER_REQUEST: &str = "net/enter_per_request";

/// Server threads of `pool/server_2threads`.
const SERVER_THREADS: usize = 2;

/// Connections of `echo_64conn` and `enter_per_request`.
const MANY: usize = 64;

/// Requests over which `enter_per_request` counts, after the server has
/// served the timed case (or a warm-up of the same size when that case is
/// filtered out).
const ENTER_REQUESTS: u64 = 100_000;
const ENTER_REQUESTS_QUICK: u64 = 5_000;

fn main() {
    let h = Harness::from_env();
    if let Some(servers) = external_servers(EXTERNAL_THREADED_VAR) {
        external_server_2threads(&h, &servers);
        return;
    }
    if let Some(servers) = external_servers(EXTERNAL_VAR) {
        let cpu = pin_to_one_cpu();
        external_echo(&h, &servers, cpu);
        return;
    }
    // Made before the pin, so that it and its servers may use every CPU.
    let threaded = SERVER_2THREADS
        .enabled(&h)
        .then(|| ThreadedBench::spawn(&h));
    pin_to_one_cpu();
    if ECHO_1CONN.enabled(&h) {
        echo(&h, ECHO_1CONN, &Subject::WITH_FLOOR, 1, false);
    }
    let mut one_thread = OneThread::default();
    if ECHO_64CONN.enabled(&h) || h.enabled(ENTER_PER_REQUEST) || threaded.is_some() {
        // Green's and tokio's figures are the threaded bench's reference.
        for m in echo(&h, ECHO_64CONN, &Subject::ALL, MANY, threaded.is_some()) {
            match m.subject.as_str() {
                "green" => one_thread.green = Some(m.wall.median),
                "tokio" => one_thread.tokio = Some(m.wall.median),
                _ => {}
            }
        }
    }
    if CONNECT_ACCEPT.enabled(&h) {
        connect_accept(&h, &Subject::WITH_FLOOR);
    }
    if let Some(threaded) = threaded {
        threaded.run(one_thread);
    }
}

/// Pins this thread, and so every thread it makes afterwards, to the last
/// CPU it may run on (module doc); returns that CPU's number.
fn pin_to_one_cpu() -> usize {
    let cpu = core_affinity::get_core_ids()
        .and_then(|ids| ids.last().copied())
        .expect("net bench: cannot read the CPUs this process may run on");
    assert!(
        core_affinity::set_for_current(cpu),
        "net bench: cannot pin the main thread to CPU {}",
        cpu.id
    );
    cpu.id
}

// ---------------------------------------------------------------------------
// The benches

/// `net/echo_1conn` or `net/echo_64conn` (`conns` connections) against
/// the servers of `subjects`, in rounds; returns what was measured. With
/// 64 connections, green's server also measures `net/enter_per_request`
/// afterwards. With `reference`, the rounds run even if the filter leaves
/// out both rows of `pair`.
fn echo(
    h: &Harness,
    pair: Pair,
    subjects: &[Subject],
    conns: usize,
    reference: bool,
) -> Vec<Measured> {
    let enters = conns == MANY && h.enabled(ENTER_PER_REQUEST);
    let timed = pair.enabled(h) || reference;
    let subjects: Vec<Subject> = subjects
        .iter()
        .copied()
        .filter(|&s| timed || s == Subject::Green)
        .collect();
    let servers: Vec<Server> = subjects
        .iter()
        .map(|&s| Server::start(s, Mode::Persistent))
        .collect();
    let mut clients: Vec<EchoClient> = servers
        .iter()
        .map(|s| EchoClient::connect(s.addr, conns).expect("echo client: connect"))
        .collect();
    let plan = Plan::of(h);
    let measured = if timed {
        let mut entrants: Vec<Entrant<'_>> = subjects
            .iter()
            .zip(clients.iter_mut())
            .map(|(s, client)| Entrant {
                subject: s.name().to_owned(),
                run: echo_run(client),
                server: ServerThreads::ThisProcessButClient,
            })
            .collect();
        rounds::run(h, pair.wall, &plan, &mut entrants)
    } else {
        Vec::new()
    };
    for (m, subject) in measured.iter().zip(&subjects) {
        record_pair(
            h,
            pair,
            m,
            &plan,
            &format!(
                "{}; {}; the same epoll client thread for every subject, both pinned to one CPU; \
                 ns per {MSG}-byte request/echo, req/s = 1e9 / ns",
                subject.server(),
                lockstep(conns)
            ),
            IN_PROCESS_CPU,
        );
    }

    if enters {
        let green = subjects.iter().position(|&s| s == Subject::Green);
        let green = green.expect("green's server runs for enter_per_request");
        let (server, client) = (&servers[green], &mut clients[green]);
        let requests = if h.is_quick() {
            ENTER_REQUESTS_QUICK
        } else {
            ENTER_REQUESTS
        };
        if !timed {
            // The rounds did not warm the server up: do it here.
            client.run(requests);
        }
        let before = server.hub_stats();
        client.run(requests);
        let after = server.hub_stats();
        let calls = after.enter_calls - before.enter_calls;
        let iterations = after.iterations - before.iterations;
        h.record(
            ENTER_PER_REQUEST,
            "green",
            "calls/req",
            calls as f64 / requests as f64,
            Some(&format!(
                "{} calls of the server hub's loop per request over {requests} \
                 requests at {MANY} connections in lockstep ({:.3} loop iterations per request); \
                 below 1 means a wake-up serves several requests",
                server.backend_call(),
                iterations as f64 / requests as f64,
            )),
        );
    }

    for client in &clients {
        assert!(client.answered() > 0, "the echo client made no request");
    }
    drop(clients);
    for server in servers {
        server.stop();
    }
    measured
}

/// Where the CPU rows of servers inside the bench read their time.
const IN_PROCESS_CPU: &str =
    "every thread of the bench process but the client's: the process's CPU clock less the \
     client thread's";

/// Records the wall row and the CPU row of `pair` for `m`, each if the
/// filter lets it through; `what` describes the server and the load,
/// `cpu_source` where the server's CPU time was read.
fn record_pair(h: &Harness, pair: Pair, m: &Measured, plan: &Plan, what: &str, cpu_source: &str) {
    if h.enabled(pair.wall) {
        let note = format!("{what}; {}", m.describe(plan));
        h.record_stats(pair.wall, &m.subject, "ns", &m.wall, Some(&note));
    }
    if h.enabled(pair.cpu) {
        match &m.server_cpu {
            Some(cpu) => {
                let note = format!(
                    "the server's CPU time (user + system, {cpu_source}) per operation of {}, \
                     its kernel's TCP work for its sends over loopback included; read around \
                     each round's samples, median/min/max over the rounds; unlike the wall \
                     time it leaves out the time other processes took the CPU; {what}; {}",
                    pair.wall,
                    m.describe(plan)
                );
                h.record_stats(pair.cpu, &m.subject, "ns", cpu, Some(&note));
            }
            None => h.skip(
                pair.cpu,
                &m.subject,
                &format!(
                    "the CPU time of {}'s server threads could not be read ({cpu_source})",
                    m.subject
                ),
            ),
        }
    }
}

/// `net/connect_accept` against the servers of `subjects`, in rounds.
fn connect_accept(h: &Harness, subjects: &[Subject]) {
    let servers: Vec<Server> = subjects
        .iter()
        .map(|&s| Server::start(s, Mode::OneShot))
        .collect();
    let plan = Plan::of(h);
    let mut entrants: Vec<Entrant<'_>> = subjects
        .iter()
        .zip(&servers)
        .map(|(s, server)| {
            let addr = server.addr;
            Entrant {
                subject: s.name().to_owned(),
                run: connect_run(addr),
                server: ServerThreads::ThisProcessButClient,
            }
        })
        .collect();
    let measured = rounds::run(h, CONNECT_ACCEPT.wall, &plan, &mut entrants);
    drop(entrants);
    for (m, subject) in measured.iter().zip(subjects) {
        record_pair(
            h,
            CONNECT_ACCEPT,
            m,
            &plan,
            &format!(
                "{}; client: blocking std connect, {MSG}-byte write, read the echo, read the \
                 server's close, close; both pinned to one CPU; ns per connection, conn/s = \
                 1e9 / ns",
                subject.server()
            ),
            IN_PROCESS_CPU,
        );
    }
    for server in servers {
        server.stop();
    }
}

/// How the connections of an echo case are driven, for the notes.
fn lockstep(conns: usize) -> String {
    if conns == 1 {
        "one connection".to_owned()
    } else {
        format!("{conns} connections, each in lockstep")
    }
}

/// The timed routine of an echo client: `iters` requests, their wall time.
fn echo_run(client: &mut EchoClient) -> Box<dyn FnMut(u64) -> Duration + '_> {
    Box::new(move |iters| {
        let start = Instant::now();
        client.run(iters);
        start.elapsed()
    })
}

/// The timed routine of `connect_accept` against `addr`: `iters`
/// connections, their wall time.
fn connect_run(addr: SocketAddr) -> Box<dyn FnMut(u64) -> Duration> {
    Box::new(move |iters| {
        let start = Instant::now();
        for _ in 0..iters {
            connect_echo_close(addr);
        }
        start.elapsed()
    })
}

// ---------------------------------------------------------------------------
// Servers in another process: the peers in other languages

/// Names the echo servers that other processes run (module doc).
const EXTERNAL_VAR: &str = "GREEN_BENCH_EXTERNAL_ECHO";

/// The grammar of one entry of [`EXTERNAL_VAR`], for its errors.
const EXTERNAL_GRAMMAR: &str = "SUBJECT=HOST:PORT[/HOST:PORT][@PID]";

/// An echo server that another process runs.
#[derive(Debug, PartialEq, Eq)]
struct External {
    subject: String,
    /// Echoes every request until the client closes.
    persistent: SocketAddr,
    /// Echoes one request, then closes first: `net/connect_accept` runs
    /// for the subject only when it is given.
    oneshot: Option<SocketAddr>,
    /// The serving process, whose CPUs the notes report.
    pid: Option<u32>,
}

/// Names the servers in other processes that serve `pool/server_2threads`
/// from several threads (module doc).
const EXTERNAL_THREADED_VAR: &str = "GREEN_BENCH_EXTERNAL_THREADED";

/// The servers `var` ([`EXTERNAL_VAR`] or [`EXTERNAL_THREADED_VAR`]) names,
/// or `None` when it is unset or empty.
fn external_servers(var: &str) -> Option<Vec<External>> {
    let spec = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
    let servers = spec
        .split(',')
        .map(|entry| {
            parse_external(entry.trim()).unwrap_or_else(|e| {
                panic!("{var}: `{entry}`: {e}; each entry is {EXTERNAL_GRAMMAR}")
            })
        })
        .collect();
    Some(servers)
}

/// One entry of [`EXTERNAL_VAR`]: [`EXTERNAL_GRAMMAR`].
fn parse_external(entry: &str) -> Result<External, String> {
    let (subject, rest) = entry.split_once('=').ok_or("no `=` after the subject")?;
    if subject.is_empty() {
        return Err("the subject is empty".to_owned());
    }
    let (addrs, pid) = match rest.split_once('@') {
        Some((addrs, pid)) => {
            let pid = pid
                .parse::<u32>()
                .map_err(|e| format!("pid `{pid}`: {e}"))?;
            (addrs, Some(pid))
        }
        None => (rest, None),
    };
    let (persistent, oneshot) = match addrs.split_once('/') {
        Some((persistent, oneshot)) => (persistent, Some(oneshot)),
        None => (addrs, None),
    };
    let addr = |a: &str| {
        a.parse::<SocketAddr>()
            .map_err(|e| format!("address `{a}`: {e}"))
    };
    Ok(External {
        subject: subject.to_owned(),
        persistent: addr(persistent)?,
        oneshot: oneshot.map(addr).transpose()?,
        pid,
    })
}

/// Whether the server process shares the client's CPU `cpu`, read from
/// `/proc`, for the notes: the bench cannot pin another process itself,
/// its launcher does (module doc), and the note says whether it did.
fn external_pinning(pid: Option<u32>, cpu: usize) -> String {
    let Some(pid) = pid else {
        return format!("client pinned to CPU {cpu}, the server's CPUs unknown (no pid given)");
    };
    let allowed = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .map(|list| list.trim().to_owned())
        });
    match allowed {
        Some(list) if list == cpu.to_string() => {
            format!("server process and client both pinned to CPU {cpu}")
        }
        Some(list) => format!(
            "client pinned to CPU {cpu}, the server process NOT pinned with it (its CPUs: {list})"
        ),
        None => format!("client pinned to CPU {cpu}, server process {pid} not found in /proc"),
    }
}

/// Whose threads are an external server's, for its CPU rows.
fn external_threads(server: &External) -> ServerThreads {
    server
        .pid
        .map_or(ServerThreads::Unknown, ServerThreads::Process)
}

/// Where the CPU rows of external servers read their time.
const EXTERNAL_CPU: &str = "every thread of the server's process, from /proc/PID/task/*/schedstat";

/// `pool/server_2threads` against servers that other processes run on
/// several threads, under their subjects' names, in rounds; nothing is
/// pinned (module doc).
fn external_server_2threads(h: &Harness, servers: &[External]) {
    if !SERVER_2THREADS.enabled(h) {
        return;
    }
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut clients: Vec<EchoClient> = servers
        .iter()
        .map(|server| {
            EchoClient::connect(server.persistent, MANY).unwrap_or_else(|e| {
                panic!(
                    "echo client: connect to {}'s server at {}: {e}",
                    server.subject, server.persistent
                )
            })
        })
        .collect();
    let plan = Plan::of(h);
    let mut entrants: Vec<Entrant<'_>> = servers
        .iter()
        .zip(clients.iter_mut())
        .map(|(server, client)| Entrant {
            subject: server.subject.clone(),
            run: echo_run(client),
            server: external_threads(server),
        })
        .collect();
    let measured = rounds::run(h, SERVER_2THREADS.wall, &plan, &mut entrants);
    drop(entrants);
    for m in &measured {
        let what = format!(
            "{}'s echo server in its own process (benches/peers/) on the threads its launcher \
             gave it (GOMAXPROCS=2 for go), unpinned; {MANY} connections, each in lockstep; the \
             same epoll client thread as net/echo_64conn, unpinned (all share the {cpus} CPUs \
             this process may use); ns per {MSG}-byte request/echo, req/s = 1e9 / ns; {}",
            m.subject,
            m.describe_cpu_busy()
        );
        record_pair(h, SERVER_2THREADS, m, &plan, &what, EXTERNAL_CPU);
    }
    for client in &clients {
        assert!(client.answered() > 0, "the echo client made no request");
    }
}

/// `net/echo_1conn`, `net/echo_64conn` and (for those given a one-shot
/// address) `net/connect_accept` against servers other processes run,
/// under their subjects' names, in rounds, with the client pinned to `cpu`.
fn external_echo(h: &Harness, servers: &[External], cpu: usize) {
    let serves = |server: &External| {
        format!(
            "{}'s echo server in its own process (benches/peers/); {}",
            server.subject,
            external_pinning(server.pid, cpu)
        )
    };
    let plan = Plan::of(h);
    for (pair, conns) in [(ECHO_1CONN, 1), (ECHO_64CONN, MANY)] {
        if !pair.enabled(h) {
            continue;
        }
        let mut clients: Vec<EchoClient> = servers
            .iter()
            .map(|server| {
                EchoClient::connect(server.persistent, conns).unwrap_or_else(|e| {
                    panic!(
                        "echo client: connect to {}'s server at {}: {e}",
                        server.subject, server.persistent
                    )
                })
            })
            .collect();
        let mut entrants: Vec<Entrant<'_>> = servers
            .iter()
            .zip(clients.iter_mut())
            .map(|(server, client)| Entrant {
                subject: server.subject.clone(),
                run: echo_run(client),
                server: external_threads(server),
            })
            .collect();
        let measured = rounds::run(h, pair.wall, &plan, &mut entrants);
        drop(entrants);
        for (m, server) in measured.iter().zip(servers) {
            let what = format!(
                "{}; {}; the same epoll client thread for every subject; ns per {MSG}-byte \
                 request/echo, req/s = 1e9 / ns",
                serves(server),
                lockstep(conns)
            );
            record_pair(h, pair, m, &plan, &what, EXTERNAL_CPU);
        }
        for client in &clients {
            assert!(client.answered() > 0, "the echo client made no request");
        }
    }
    if !CONNECT_ACCEPT.enabled(h) {
        return;
    }
    let mut one_shot = Vec::new();
    for server in servers {
        match server.oneshot {
            Some(addr) => one_shot.push((server, addr)),
            None => {
                let reason = format!(
                    "{EXTERNAL_VAR} gives no one-shot address for {}'s server",
                    server.subject
                );
                h.skip(CONNECT_ACCEPT.wall, &server.subject, &reason);
                h.skip(CONNECT_ACCEPT.cpu, &server.subject, &reason);
            }
        }
    }
    if one_shot.is_empty() {
        return;
    }
    let mut entrants: Vec<Entrant<'_>> = one_shot
        .iter()
        .map(|&(server, addr)| Entrant {
            subject: server.subject.clone(),
            run: connect_run(addr),
            server: external_threads(server),
        })
        .collect();
    let measured = rounds::run(h, CONNECT_ACCEPT.wall, &plan, &mut entrants);
    drop(entrants);
    for (m, (server, _)) in measured.iter().zip(&one_shot) {
        let what = format!(
            "{}, closing after one echo; client: blocking std connect, {MSG}-byte write, read \
             the echo, read the server's close, close; ns per connection, conn/s = 1e9 / ns",
            serves(server)
        );
        record_pair(h, CONNECT_ACCEPT, m, &plan, &what, EXTERNAL_CPU);
    }
}

// ---------------------------------------------------------------------------
// The servers

/// A runtime serving the echo.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Subject {
    Green,
    Tokio,
    May,
    /// The floor: blocking std calls, one connection at a time.
    Std,
}

impl Subject {
    /// The runtimes.
    const ALL: [Subject; 3] = [Subject::Green, Subject::Tokio, Subject::May];
    /// The runtimes and the floor, for the one-connection-at-a-time benches.
    const WITH_FLOOR: [Subject; 4] = [Subject::Green, Subject::Tokio, Subject::May, Subject::Std];

    fn name(self) -> &'static str {
        match self {
            Subject::Green => "green",
            Subject::Tokio => "tokio",
            Subject::May => "may",
            Subject::Std => "std",
        }
    }

    /// The server, for the notes.
    fn server(self) -> &'static str {
        match self {
            Subject::Green => "green_core::run on one thread, a greenlet per connection",
            Subject::Tokio => "current_thread runtime on one thread, a task per connection",
            Subject::May => "may with one worker, a coroutine per connection",
            Subject::Std => "baseline: one blocking std thread serving one connection at a time",
        }
    }
}

/// What a server does with a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Echo each 64-byte request until the client closes.
    Persistent,
    /// Echo one request, then close (the server closes first).
    OneShot,
}

/// Asks green's server thread for its hub's counters: the reply channel.
type Probe = RemotePutter<SyncSender<LoopStats>>;

/// What a server thread hands back once it listens.
struct Ready {
    addr: SocketAddr,
    /// Green's only.
    probe: Option<Probe>,
    /// Green's only: the hub's backend, for the note.
    backend: Option<green_core::BackendKind>,
}

/// A server thread, listening.
struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    probe: Option<Probe>,
    backend: Option<green_core::BackendKind>,
    thread: JoinHandle<()>,
}

impl Server {
    /// Starts `subject`'s server on a thread of its own and waits until it
    /// listens.
    fn start(subject: Subject, mode: Mode) -> Server {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready, listening) = std::sync::mpsc::channel();
        let thread = {
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("{} echo server", subject.name()))
                .spawn(move || match subject {
                    Subject::Green => green_server(mode, &stop, &ready),
                    Subject::Tokio => tokio_server(mode, &stop, &ready),
                    Subject::May => may_server(mode, stop, ready),
                    Subject::Std => std_server(mode, &stop, &ready),
                })
                .expect("spawn the server thread")
        };
        let Ready {
            addr,
            probe,
            backend,
        } = listening
            .recv()
            .expect("the server thread ended before it listened");
        Server {
            addr,
            stop,
            probe,
            backend,
            thread,
        }
    }

    /// The counters of green's server hub, read on its thread.
    fn hub_stats(&self) -> LoopStats {
        let probe = self.probe.as_ref().expect("only green's server has a hub");
        let (reply, stats) = sync_channel(1);
        if probe.put(reply).is_err() {
            panic!("green's server hub is gone");
        }
        stats
            .recv_timeout(Duration::from_secs(10))
            .expect("green's server hub answers the probe")
    }

    /// The syscall `enter_calls` counts, for the note.
    fn backend_call(&self) -> &'static str {
        match self.backend {
            Some(green_core::BackendKind::Epoll) => "epoll_wait",
            _ => "io_uring_enter",
        }
    }

    /// Stops the server: the flag, then one connection to wake its accept.
    /// Its connections must be closed already.
    fn stop(self) {
        self.stop.store(true, Relaxed);
        drop(std::net::TcpStream::connect(self.addr).expect("connect to stop the server"));
        self.thread.join().expect("the server thread");
    }
}

fn green_server(mode: Mode, stop: &AtomicBool, ready: &Sender<Ready>) {
    use green_core::net::{TcpListener, TcpStream};
    use std::io::{ErrorKind, Read as _, Write as _};

    fn serve(mut stream: TcpStream, mode: Mode) {
        stream.set_nodelay(true).expect("green: TCP_NODELAY");
        let mut buf = [0_u8; MSG];
        loop {
            match stream.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("green server: read: {e}"),
            }
            stream.write_all(&buf).expect("green server: write");
            if mode == Mode::OneShot {
                return;
            }
        }
    }

    green_core::run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("green: bind 127.0.0.1");
        // Answers the bench's requests for the hub's counters (from the
        // client thread); killed with the hub when `run` ends.
        let probes = Queue::<SyncSender<LoopStats>>::new();
        let probe = probes.remote_putter();
        green_core::spawn(move || {
            for reply in &probes {
                let _ = reply.send(green_core::hub_stats());
            }
        });
        ready
            .send(Ready {
                addr: listener.local_addr().expect("green: local_addr"),
                probe: Some(probe),
                backend: Some(green_core::loop_backend()),
            })
            .expect("the bench waits for the server");
        loop {
            let (stream, _) = listener.accept().expect("green: accept");
            if stop.load(Relaxed) {
                break;
            }
            green_core::spawn(move || serve(stream, mode));
        }
    });
}

fn tokio_server(mode: Mode, stop: &AtomicBool, ready: &Sender<Ready>) {
    use std::io::ErrorKind;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::{TcpListener, TcpStream};

    async fn serve(mut stream: TcpStream, mode: Mode) {
        stream.set_nodelay(true).expect("tokio: TCP_NODELAY");
        let mut buf = [0_u8; MSG];
        loop {
            match stream.read_exact(&mut buf).await {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("tokio server: read: {e}"),
            }
            stream.write_all(&buf).await.expect("tokio server: write");
            if mode == Mode::OneShot {
                return;
            }
        }
    }

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("tokio current-thread runtime");
    rt.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("tokio: bind 127.0.0.1");
        ready
            .send(Ready {
                addr: listener.local_addr().expect("tokio: local_addr"),
                probe: None,
                backend: None,
            })
            .expect("the bench waits for the server");
        loop {
            let (stream, _) = listener.accept().await.expect("tokio: accept");
            if stop.load(Relaxed) {
                break;
            }
            tokio::spawn(serve(stream, mode));
        }
    });
}

fn may_server(mode: Mode, stop: Arc<AtomicBool>, ready: Sender<Ready>) {
    use may::net::{TcpListener, TcpStream};
    use std::io::{ErrorKind, Read as _, Write as _};

    fn serve(mut stream: TcpStream, mode: Mode) {
        stream.set_nodelay(true).expect("may: TCP_NODELAY");
        let mut buf = [0_u8; MSG];
        loop {
            match stream.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
                Err(e) => panic!("may server: read: {e}"),
            }
            stream.write_all(&buf).expect("may server: write");
            if mode == Mode::OneShot {
                return;
            }
        }
    }

    may_peer::run_on_one_worker("net echo server", move || {
        let listener = TcpListener::bind("127.0.0.1:0").expect("may: bind 127.0.0.1");
        ready
            .send(Ready {
                addr: listener.local_addr().expect("may: local_addr"),
                probe: None,
                backend: None,
            })
            .expect("the bench waits for the server");
        loop {
            let (stream, _) = listener.accept().expect("may: accept");
            if stop.load(Relaxed) {
                break;
            }
            // SAFETY: as for the driver in `may_peer` (one worker, so no
            // migration; no thread-locals); `serve` needs a few hundred
            // bytes of its 32 KiB stack. It ends when the client closes, so
            // dropping its handle (detaching it) leaks nothing.
            drop(unsafe { may::coroutine::spawn(move || serve(stream, mode)) });
        }
    });
}

fn std_server(mode: Mode, stop: &AtomicBool, ready: &Sender<Ready>) {
    use std::io::{ErrorKind, Read as _, Write as _};
    use std::net::TcpListener;

    let listener = TcpListener::bind("127.0.0.1:0").expect("std: bind 127.0.0.1");
    ready
        .send(Ready {
            addr: listener.local_addr().expect("std: local_addr"),
            probe: None,
            backend: None,
        })
        .expect("the bench waits for the server");
    loop {
        let (mut stream, _) = listener.accept().expect("std: accept");
        if stop.load(Relaxed) {
            break;
        }
        // Served here, not on a thread of its own: the client of these
        // benches has one connection open at a time.
        stream.set_nodelay(true).expect("std: TCP_NODELAY");
        let mut buf = [0_u8; MSG];
        loop {
            match stream.read_exact(&mut buf) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::UnexpectedEof => break,
                Err(e) => panic!("std server: read: {e}"),
            }
            stream.write_all(&buf).expect("std server: write");
            if mode == Mode::OneShot {
                break;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// pool/server_2threads

/// This run's `net/echo_64conn` medians (ns per request), the reference of
/// `pool/server_2threads`.
#[derive(Clone, Copy, Debug, Default)]
struct OneThread {
    green: Option<f64>,
    tokio: Option<f64>,
}

/// The thread that runs `pool/server_2threads`: made before the bench pins
/// its main thread, it waits for the one-thread figures, then runs.
struct ThreadedBench {
    start: Sender<OneThread>,
    thread: JoinHandle<()>,
}

impl ThreadedBench {
    fn spawn(h: &Harness) -> ThreadedBench {
        let h = h.clone();
        let (start, figures) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("threaded echo bench".to_owned())
            .spawn(move || {
                // No figures: the main thread failed before, and says why.
                if let Ok(one_thread) = figures.recv() {
                    server_2threads(&h, one_thread);
                }
            })
            .expect("spawn the threaded bench's thread");
        ThreadedBench { start, thread }
    }

    /// Runs the bench with this run's one-thread figures and waits for it.
    fn run(self, one_thread: OneThread) {
        self.start
            .send(one_thread)
            .expect("the threaded bench's thread waits for its start");
        self.thread.join().expect("the threaded bench's thread");
    }
}

/// `pool/server_2threads` for green and tokio, in rounds: both servers
/// are up for the whole bench, and the one not loaded waits idle.
fn server_2threads(h: &Harness, one_thread: OneThread) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let setup = format!(
        "{MANY} connections, each in lockstep; the same epoll client thread as net/echo_64conn, \
         unpinned like the {SERVER_THREADS} server threads (all share the {cpus} CPUs this \
         process may use); ns per {MSG}-byte request/echo, req/s = 1e9 / ns"
    );
    let ratio = |ns: f64, reference: Option<f64>, whose: &str| match reference {
        Some(one) => format!(
            "{:.2}x the req/s of {whose} net/echo_64conn ({:.0} ns, one thread and one CPU)",
            one / ns,
            one
        ),
        None => format!("{whose} net/echo_64conn was not measured"),
    };

    // tokio: two workers; the accept loop is a task on them.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(SERVER_THREADS)
        .thread_name("tokio-server")
        .enable_io()
        .build()
        .expect("tokio multi-thread runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("tokio: bind 127.0.0.1");
    let tokio_addr = listener.local_addr().expect("tokio: local_addr");
    let acceptor = rt.spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.expect("tokio: accept");
            tokio::spawn(tokio_echo_until_eof(stream));
        }
    });

    // green: serve_threads, one hub and one SO_REUSEPORT listener per thread.
    green_core::run(|| {
        let spread = Arc::new(ConnectionSpread::default());
        let handler = {
            let spread = Arc::clone(&spread);
            move |stream: green_core::net::TcpStream, _peer| {
                spread.count();
                green_echo_until_eof(stream)
            }
        };
        let servers = green_pool::serve_threads(
            "127.0.0.1:0",
            SERVER_THREADS,
            green_pool::ServerOptions::new(),
            handler,
        )
        .expect("green: serve_threads on 127.0.0.1");
        let mut green_client =
            EchoClient::connect(servers.local_addr(), MANY).expect("echo client: connect");
        let mut tokio_client = EchoClient::connect(tokio_addr, MANY).expect("echo client: connect");
        let plan = Plan::of(h);
        let mut entrants = vec![
            Entrant {
                subject: "green".to_owned(),
                run: echo_run(&mut green_client),
                server: ServerThreads::ThisProcessButClient,
            },
            Entrant {
                subject: "tokio".to_owned(),
                run: echo_run(&mut tokio_client),
                server: ServerThreads::ThisProcessButClient,
            },
        ];
        let measured = rounds::run(h, SERVER_2THREADS.wall, &plan, &mut entrants);
        drop(entrants);
        for m in &measured {
            let what = if m.subject == "green" {
                format!(
                    "green_pool::serve_threads(2), a greenlet per connection; connections per \
                     thread {}; {setup}; {}; {}",
                    spread.describe(),
                    m.describe_cpu_busy(),
                    ratio(m.wall.median, one_thread.green, "green's"),
                )
            } else {
                format!(
                    "new_multi_thread runtime with 2 workers, a task per connection; {setup}; \
                     {}; {}; {}",
                    m.describe_cpu_busy(),
                    ratio(m.wall.median, one_thread.tokio, "tokio's"),
                    ratio(m.wall.median, one_thread.green, "green's"),
                )
            };
            record_pair(h, SERVER_2THREADS, m, &plan, &what, IN_PROCESS_CPU);
        }
        assert!(
            green_client.answered() > 0,
            "the echo client made no request"
        );
        assert!(
            tokio_client.answered() > 0,
            "the echo client made no request"
        );
        drop(green_client);
        drop(tokio_client);
        for outcome in servers.stop(Duration::from_secs(10)) {
            let stats = outcome.expect("green: a server thread failed");
            assert_eq!(stats.handler_errors, 0, "green: a handler failed");
        }
    });
    acceptor.abort();
    rt.shutdown_timeout(Duration::from_secs(10));
}

/// Green's handler of `pool/server_2threads`: echoes 64-byte messages
/// until the client closes.
fn green_echo_until_eof(mut stream: green_core::net::TcpStream) -> std::io::Result<()> {
    use std::io::{ErrorKind, Read as _, Write as _};

    stream.set_nodelay(true)?;
    let mut buf = [0_u8; MSG];
    loop {
        match stream.read_exact(&mut buf) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
        stream.write_all(&buf)?;
    }
}

/// Tokio's task of `pool/server_2threads`: the same.
async fn tokio_echo_until_eof(mut stream: tokio::net::TcpStream) {
    use std::io::ErrorKind;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    stream.set_nodelay(true).expect("tokio: TCP_NODELAY");
    let mut buf = [0_u8; MSG];
    loop {
        match stream.read_exact(&mut buf).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return,
            Err(e) => panic!("tokio server: read: {e}"),
        }
        stream.write_all(&buf).await.expect("tokio server: write");
    }
}

/// How many connections each of green's server threads took, told apart
/// by the thread names `serve_threads` gives (`green-server-<index>`).
#[derive(Default)]
struct ConnectionSpread {
    per_thread: [std::sync::atomic::AtomicUsize; SERVER_THREADS],
}

impl ConnectionSpread {
    /// Counts a connection for the calling server thread.
    fn count(&self) {
        let index = std::thread::current()
            .name()
            .and_then(|name| name.strip_prefix("green-server-"))
            .and_then(|index| index.parse::<usize>().ok())
            .filter(|&index| index < SERVER_THREADS);
        if let Some(index) = index {
            self.per_thread[index].fetch_add(1, Relaxed);
        }
    }

    /// `a/b`, thread by thread.
    fn describe(&self) -> String {
        let counts: Vec<String> = self
            .per_thread
            .iter()
            .map(|n| n.load(Relaxed).to_string())
            .collect();
        counts.join("/")
    }
}
