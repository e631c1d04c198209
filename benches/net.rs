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
//!
//! The echo benches report ns per request (per connection for
//! `connect_accept`), like every timed case of the harness; the throughput is
//! 1e9 / that figure in req/s (conn/s), as each note says.
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
//! more of the machine's interrupts).
//!
//! `connect_accept` uses blocking std calls on the client side (connect,
//! write, read the reply, read the end). The server closes first, so the
//! TIME_WAIT state stays on the server's side and the client's ephemeral
//! ports are free again at once, which a run of tens of thousands of
//! connects needs; a `Connection: close` HTTP/1.0 server does the same.
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

const ECHO_1CONN: &str = "net/echo_1conn";
const ECHO_64CONN: &str = "net/echo_64conn";
const CONNECT_ACCEPT: &str = "net/connect_accept";
const ENTER_PER_REQUEST: &str = "net/enter_per_request";

/// Connections of `echo_64conn` and `enter_per_request`.
const MANY: usize = 64;

/// Requests over which `enter_per_request` counts, after the server has
/// served the timed case (or a warm-up of the same size when that case is
/// filtered out).
const ENTER_REQUESTS: u64 = 100_000;
const ENTER_REQUESTS_QUICK: u64 = 5_000;

fn main() {
    let h = Harness::from_env();
    pin_to_one_cpu();
    if h.enabled(ECHO_1CONN) {
        for subject in Subject::WITH_FLOOR {
            echo(&h, ECHO_1CONN, subject, 1);
        }
    }
    if h.enabled(ECHO_64CONN) || h.enabled(ENTER_PER_REQUEST) {
        for subject in Subject::ALL {
            echo(&h, ECHO_64CONN, subject, MANY);
        }
    }
    if h.enabled(CONNECT_ACCEPT) {
        for subject in Subject::WITH_FLOOR {
            connect_accept(&h, subject);
        }
    }
}

/// Pins this thread, and so every thread it makes afterwards, to the last
/// CPU it may run on (module doc).
fn pin_to_one_cpu() {
    let cpu = core_affinity::get_core_ids()
        .and_then(|ids| ids.last().copied())
        .expect("net bench: cannot read the CPUs this process may run on");
    assert!(
        core_affinity::set_for_current(cpu),
        "net bench: cannot pin the main thread to CPU {}",
        cpu.id
    );
}

// ---------------------------------------------------------------------------
// The benches

/// `net/echo_1conn` or `net/echo_64conn` (`conns` connections) against
/// `subject`'s server; with 64 connections, green's case also measures
/// `net/enter_per_request` on the same server.
fn echo(h: &Harness, bench: &str, subject: Subject, conns: usize) {
    let enters = subject == Subject::Green && conns == MANY && h.enabled(ENTER_PER_REQUEST);
    if !h.enabled(bench) && !enters {
        return;
    }
    let server = Server::start(subject, Mode::Persistent);
    let mut client = EchoClient::connect(server.addr, conns).expect("echo client: connect");
    let lockstep = if conns == 1 {
        "one connection".to_owned()
    } else {
        format!("{conns} connections, each in lockstep")
    };
    h.bench(bench, subject.name())
        .note(format!(
            "{}; {lockstep}; the same epoll client thread for every subject, both pinned to \
             one CPU; ns per {MSG}-byte request/echo, req/s = 1e9 / ns",
            subject.server()
        ))
        .iter_custom(|iters| {
            let start = Instant::now();
            client.run(iters);
            start.elapsed()
        });

    if enters {
        let requests = if h.is_quick() {
            ENTER_REQUESTS_QUICK
        } else {
            ENTER_REQUESTS
        };
        if !h.enabled(bench) {
            // The timed case did not warm the server up: do it here.
            client.run(requests);
        }
        let before = server.hub_stats();
        client.run(requests);
        let after = server.hub_stats();
        let calls = after.enter_calls - before.enter_calls;
        let iterations = after.iterations - before.iterations;
        h.record(
            ENTER_PER_REQUEST,
            subject.name(),
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

    assert!(client.answered() > 0, "the echo client made no request");
    drop(client);
    server.stop();
}

/// `net/connect_accept` against `subject`'s server.
fn connect_accept(h: &Harness, subject: Subject) {
    let server = Server::start(subject, Mode::OneShot);
    let addr = server.addr;
    h.bench(CONNECT_ACCEPT, subject.name())
        .note(format!(
            "{}; client: blocking std connect, {MSG}-byte write, read the echo, read the \
             server's close, close; both pinned to one CPU; ns per connection, conn/s = \
             1e9 / ns",
            subject.server()
        ))
        .iter(|| connect_echo_close(addr));
    server.stop();
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
