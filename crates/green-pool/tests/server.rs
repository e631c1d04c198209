//! StreamServer and serve_threads through the public API: the pool cap
//! under load, graceful stop with handlers running, the port released by
//! close, accept pausing on EMFILE, and one server per thread.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use green_core::net::{TcpListener, TcpStream};
use green_pool::{serve_threads, Pool, ServerOptions, StreamServer};

const CHILD_ENV: &str = "GREEN_POOL_SERVER_CHILD";

/// A handler that echoes until the peer closes.
fn echo(mut stream: TcpStream, _peer: SocketAddr) -> io::Result<()> {
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        stream.write_all(&buf[..n])?;
    }
}

/// One request and its echo on a fresh connection.
fn roundtrip(addr: SocketAddr, message: &[u8]) -> io::Result<Vec<u8>> {
    let mut client = TcpStream::connect(addr)?;
    client.write_all(message)?;
    let mut reply = vec![0u8; message.len()];
    client.read_exact(&mut reply)?;
    Ok(reply)
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn serves_echo_and_counts() {
    let server = StreamServer::bind("127.0.0.1:0", echo).unwrap();
    assert!(!server.is_started());
    server.start().unwrap();
    assert!(server.is_started());
    let addr = server.local_addr();
    for i in 0..10u8 {
        assert_eq!(roundtrip(addr, &[i; 10]).unwrap(), vec![i; 10]);
    }
    server.stop(Duration::from_secs(5));
    let stats = server.stats();
    assert_eq!(stats.accepted, 10);
    assert_eq!(stats.active, 0);
    assert_eq!(stats.handler_errors, 0);
    assert!(server.is_closed() && !server.is_started());
}

#[test]
fn a_pool_caps_the_handlers_under_a_thousand_connections() {
    let running = Rc::new(Cell::new(0usize));
    let most = Rc::new(Cell::new(0usize));
    let served = Rc::new(Cell::new(0usize));
    let (r, m, s) = (running.clone(), most.clone(), served.clone());
    let options = ServerOptions::new().pool_size(100);
    let server =
        StreamServer::bind_with("127.0.0.1:0", options, move |mut stream: TcpStream, _| {
            r.set(r.get() + 1);
            m.set(m.get().max(r.get()));
            // Hold the slot across a switch, so that handlers overlap.
            green_core::sleep(Duration::from_millis(1));
            let mut byte = [0u8; 1];
            let result = stream
                .read_exact(&mut byte)
                .and_then(|()| stream.write_all(&byte));
            r.set(r.get() - 1);
            s.set(s.get() + 1);
            result
        })
        .unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    // 300 clients connected at once (the rest of the thousand wait for a
    // client slot), so that connections queue behind the cap.
    let clients = Pool::new(300);
    let ok = Rc::new(Cell::new(0usize));
    for i in 0..1000usize {
        let ok = ok.clone();
        clients.spawn(move || {
            let byte = [i as u8];
            if roundtrip(addr, &byte).unwrap() == byte {
                ok.set(ok.get() + 1);
            }
        });
    }
    clients.join();
    assert_eq!(ok.get(), 1000);
    assert_eq!(served.get(), 1000);
    assert!(most.get() <= 100, "{} handlers ran at once", most.get());
    assert!(most.get() > 1, "handlers never overlapped");
    assert_eq!(server.stats().accepted, 1000);
    server.stop(Duration::from_secs(5));
}

#[test]
fn stop_gives_grace_then_kills_and_leaks_no_descriptor() {
    // In a child process: other tests' descriptors would blur the count.
    let (ok, output) = run_child("grace", 1024);
    assert!(ok, "child failed:\n{output}");
    assert!(output.contains("GRACE CHILD OK"), "{output}");
}

fn grace_child() {
    // The hub's own descriptors (ring, wake-up) exist before the count.
    green_core::yield_now();
    let before = open_fds();
    let finished = Rc::new(Cell::new(0usize));
    let killed = Rc::new(Cell::new(0usize));
    let (f, k) = (finished.clone(), killed.clone());
    let server = StreamServer::bind("127.0.0.1:0", move |mut stream: TcpStream, _| {
        let mut first = [0u8; 1];
        stream.read_exact(&mut first)?;
        struct CountKill(Rc<Cell<usize>>);
        impl Drop for CountKill {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.set(self.0.get() + 1);
                }
            }
        }
        let _guard = CountKill(k.clone());
        if first[0] == b's' {
            // Slow but within the grace.
            green_core::sleep(Duration::from_millis(20));
            stream.write_all(b"done")?;
            f.set(f.get() + 1);
        } else {
            // Never ends on its own.
            green_core::sleep(Duration::from_secs(3600));
        }
        Ok(())
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    let mut clients = Vec::new();
    for i in 0..6 {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(if i % 2 == 0 { b"s" } else { b"h" }).unwrap();
        clients.push(c);
    }
    while server.stats().active < 6 {
        green_core::sleep(Duration::from_millis(1));
    }
    server.stop(Duration::from_millis(300));
    assert_eq!(finished.get(), 3);
    assert_eq!(killed.get(), 3);
    assert_eq!(server.stats().active, 0);
    // Every client sees its connection closed: the slow ones after their
    // reply, the hanging ones at once.
    for (i, c) in clients.iter_mut().enumerate() {
        let mut rest = Vec::new();
        c.read_to_end(&mut rest).unwrap();
        assert_eq!(
            rest,
            if i % 2 == 0 {
                b"done".to_vec()
            } else {
                Vec::new()
            }
        );
    }
    drop(clients);
    // The listener and every accepted stream are closed.
    assert_eq!(open_fds(), before);
    // The port is free again.
    drop(TcpListener::bind(addr).unwrap());
    println!("GRACE CHILD OK");
}

#[test]
fn close_releases_the_port_at_once_and_handlers_go_on() {
    let server = StreamServer::bind("127.0.0.1:0", echo).unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    let mut live = TcpStream::connect(addr).unwrap();
    live.write_all(b"a").unwrap();
    let mut one = [0u8; 1];
    live.read_exact(&mut one).unwrap();
    server.close();
    assert!(server.is_closed());
    // The port can be bound again right away...
    let again = TcpListener::bind(addr).unwrap();
    drop(again);
    // ...and the connection already accepted is still served.
    live.write_all(b"b").unwrap();
    live.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"b");
    assert_eq!(server.stats().active, 1);
    server.close(); // twice: nothing
    drop(live);
    server.stop(Duration::from_secs(5));
    assert_eq!(server.stats().active, 0);
}

#[test]
fn start_twice_or_after_close_is_a_clear_error() {
    let server = StreamServer::bind("127.0.0.1:0", echo).unwrap();
    server.start().unwrap();
    let e = server.start().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("already started"), "{e}");
    server.close();
    let e = server.start().unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
    let e = server.serve_forever().unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
}

#[test]
fn serve_forever_returns_after_close_from_another_greenlet_and_waits_for_handlers() {
    let server = StreamServer::bind_with(
        "127.0.0.1:0",
        ServerOptions::new().stop_timeout(Duration::from_secs(10)),
        |mut stream: TcpStream, _| {
            let mut b = [0u8; 1];
            stream.read_exact(&mut b)?;
            green_core::sleep(Duration::from_millis(30));
            stream.write_all(&b)
        },
    )
    .unwrap();
    let addr = server.local_addr();
    let s2 = server.clone();
    let client = green_core::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"z").unwrap();
        // Close while the handler sleeps: serve_forever must still let it
        // reply.
        green_core::sleep(Duration::from_millis(5));
        s2.close();
        let mut b = [0u8; 1];
        c.read_exact(&mut b).unwrap();
        b[0]
    });
    server.serve_forever().unwrap();
    assert_eq!(server.stats().active, 0);
    assert_eq!(client.get().unwrap(), b'z');
}

#[test]
fn handler_errors_and_panics_end_one_connection_only() {
    let server = StreamServer::bind("127.0.0.1:0", |mut stream: TcpStream, _| {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b)?;
        match b[0] {
            b'e' => Err(io::Error::other("refused by the handler")),
            b'p' => panic!("handler panics on purpose"),
            _ => stream.write_all(&b),
        }
    })
    .unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    for kind in [b'e', b'p', b'k', b'e', b'p'] {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(&[kind]).unwrap();
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert_eq!(rest, if kind == b'k' { vec![b'k'] } else { Vec::new() });
    }
    assert_eq!(roundtrip_one(addr, b'x'), b'x');
    server.stop(Duration::from_secs(5));
    let stats = server.stats();
    assert_eq!(stats.accepted, 6);
    assert_eq!(stats.handler_errors, 2);
}

fn roundtrip_one(addr: SocketAddr, byte: u8) -> u8 {
    roundtrip(addr, &[byte]).unwrap()[0]
}

#[test]
fn stop_from_a_handler_does_not_wait_for_itself() {
    let server_slot: Rc<std::cell::RefCell<Option<StreamServer>>> = Rc::default();
    let slot = server_slot.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |mut stream: TcpStream, _| {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b)?;
        let server = slot.borrow().clone().unwrap();
        server.stop(Duration::from_secs(5));
        // stop returned at once; this handler still replies within its
        // grace.
        stream.write_all(b"bye")
    })
    .unwrap();
    *server_slot.borrow_mut() = Some(server.clone());
    let addr = server.local_addr();
    let client = green_core::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(b"q").unwrap();
        let mut reply = Vec::new();
        c.read_to_end(&mut reply).unwrap();
        reply
    });
    server.serve_forever().unwrap();
    assert_eq!(client.get().unwrap(), b"bye");
    assert!(server.is_closed());
    assert_eq!(server.stats().active, 0);
    server_slot.borrow_mut().take();
}

#[test]
fn a_killed_serve_forever_closes_and_stops_gracefully() {
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let server = StreamServer::bind("127.0.0.1:0", move |mut stream: TcpStream, _| {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b)?;
        green_core::sleep(Duration::from_millis(20));
        f.set(true);
        stream.write_all(&b)
    })
    .unwrap();
    let addr = server.local_addr();
    let s2 = server.clone();
    let serving = green_core::spawn(move || s2.serve_forever());
    let mut c = TcpStream::connect(addr).unwrap();
    c.write_all(b"k").unwrap();
    while server.stats().active == 0 {
        green_core::sleep(Duration::from_millis(1));
    }
    serving.kill();
    assert!(server.is_closed());
    // The handler got its grace and replied.
    let mut b = [0u8; 1];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"k");
    while server.stats().active > 0 {
        green_core::sleep(Duration::from_millis(1));
    }
    assert!(finished.get());
    // The port was released.
    drop(TcpListener::bind(addr).unwrap());
}

#[test]
fn a_server_from_an_existing_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = StreamServer::new(listener, |mut s: TcpStream, peer: SocketAddr| {
        assert!(peer.ip().is_loopback());
        s.write_all(b"hello")
    })
    .unwrap();
    assert_eq!(server.local_addr(), addr);
    server.start().unwrap();
    let mut c = TcpStream::connect(addr).unwrap();
    let mut reply = Vec::new();
    c.read_to_end(&mut reply).unwrap();
    assert_eq!(reply, b"hello");
    server.stop(Duration::from_secs(1));
}

#[test]
fn max_accept_of_one_still_serves_everyone() {
    let server =
        StreamServer::bind_with("127.0.0.1:0", ServerOptions::new().max_accept(1), echo).unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    let clients: Vec<_> = (0..50u8)
        .map(|i| green_core::spawn(move || roundtrip_one(addr, i)))
        .collect();
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.get().unwrap(), i as u8);
    }
    server.stop(Duration::from_secs(1));
}

#[test]
#[should_panic(expected = "pool_size(0)")]
fn a_pool_of_zero_is_refused() {
    let _ = ServerOptions::new().pool_size(0);
}

#[test]
fn bind_errors_name_the_cause() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = StreamServer::bind(taken.local_addr().unwrap(), echo).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
}

// ===== serve_threads =====

#[test]
fn serve_threads_serves_from_every_thread() {
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    let servers = serve_threads("127.0.0.1:0", 2, ServerOptions::new(), move |s, peer| {
        counter.fetch_add(1, Ordering::Relaxed);
        echo(s, peer)
    })
    .unwrap();
    assert_eq!(servers.threads(), 2);
    let addr = servers.local_addr();
    assert_ne!(addr.port(), 0);
    // Many short connections from distinct ports: SO_REUSEPORT spreads them
    // by their address hash, so both threads get some.
    let clients = Pool::new(50);
    for i in 0..400u32 {
        clients.spawn(move || assert_eq!(roundtrip_one(addr, i as u8), i as u8));
    }
    clients.join();
    let stats = servers.stop(Duration::from_secs(5));
    assert_eq!(stats.len(), 2);
    let per_thread: Vec<u64> = stats.iter().map(|s| s.as_ref().unwrap().accepted).collect();
    assert_eq!(per_thread.iter().sum::<u64>(), 400, "{per_thread:?}");
    assert!(
        per_thread.iter().all(|&n| n > 0),
        "a thread served nothing: {per_thread:?}"
    );
    assert_eq!(served.load(Ordering::Relaxed), 400);
    // Every listener is closed: the port is free.
    drop(TcpListener::bind(addr).unwrap());
}

#[test]
fn serve_threads_stop_kills_hanging_handlers_after_the_grace() {
    let servers = serve_threads(
        "127.0.0.1:0",
        2,
        ServerOptions::new().pool_size(10),
        |_s: TcpStream, _| green_core::sleep(Duration::from_secs(3600)),
    )
    .unwrap();
    let addr = servers.local_addr();
    let mut clients: Vec<_> = (0..8).map(|_| TcpStream::connect(addr).unwrap()).collect();
    // Wait until all are accepted: each handler closes its stream when
    // killed, and the client then reads EOF.
    green_core::sleep(Duration::from_millis(50));
    let stopper = servers.stopper();
    stopper.stop(Duration::from_millis(10));
    stopper.stop(Duration::from_secs(100)); // the first request wins
    let stats = servers.join();
    let accepted: u64 = stats.iter().map(|s| s.as_ref().unwrap().accepted).sum();
    assert!(accepted <= 8);
    for c in &mut clients {
        let mut rest = Vec::new();
        // Killed handlers closed theirs; connections still in a backlog were
        // closed with the listener (reset).
        let _ = c.read_to_end(&mut rest);
        assert!(rest.is_empty());
    }
}

#[test]
fn serve_threads_refuses_bad_input() {
    let e = serve_threads("127.0.0.1:0", 0, ServerOptions::new(), echo).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("0 threads"), "{e}");
    // A port held by a listener without SO_REUSEPORT cannot be shared.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let e = serve_threads(taken.local_addr().unwrap(), 2, ServerOptions::new(), echo).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
}

#[test]
fn dropping_serve_threads_stops_them() {
    let servers = serve_threads("127.0.0.1:0", 2, ServerOptions::new(), echo).unwrap();
    let addr = servers.local_addr();
    assert_eq!(roundtrip_one(addr, 7), 7);
    drop(servers);
    // The threads close their listeners soon after.
    let start = Instant::now();
    loop {
        match TcpListener::bind(addr) {
            Ok(_) => break,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
                green_core::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("the port stayed bound: {e}"),
        }
    }
}

// ===== EMFILE, in a child process with a low descriptor limit =====

/// Runs this binary's `child` test in a shell that lowers the descriptor
/// limit first; returns (success, stdout + stderr).
fn run_child(mode: &str, nofile: u32) -> (bool, String) {
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {nofile} && exec \"$0\" --exact child --nocapture --test-threads=1 --include-ignored"
        ))
        .arg(exe)
        .env(CHILD_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the child");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child '{mode}' hangs");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "emfile" => emfile_child(),
        "grace" => grace_child(),
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn emfile_pauses_accepting_instead_of_spinning() {
    let (ok, output) = run_child("emfile", 64);
    assert!(ok, "child failed:\n{output}");
    assert!(output.contains("EMFILE CHILD OK"), "{output}");
}

fn emfile_child() {
    let server = StreamServer::bind("127.0.0.1:0", echo).unwrap();
    server.start().unwrap();
    let addr = server.local_addr();
    // Fill the descriptor table, then give one back for the client.
    let mut hogs = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hogs.push(f);
    }
    hogs.pop();
    let client = green_core::spawn(move || roundtrip_one(addr, b'm'));
    // The client is connected (in the backlog); the server cannot accept
    // it. Over 300 ms a busy retry would fail thousands of times.
    green_core::sleep(Duration::from_millis(300));
    let errors = server.stats().accept_errors;
    assert!(
        errors >= 1,
        "accept never failed: the test did not exhaust descriptors"
    );
    assert!(
        errors <= 20,
        "{errors} failed accepts in 300 ms: accepting spins on EMFILE"
    );
    assert!(!client.dead());
    // Descriptors come back: the waiting client is served.
    hogs.truncate(hogs.len().saturating_sub(8));
    assert_eq!(client.get().unwrap(), b'm');
    assert!(!server.is_closed());
    server.stop(Duration::from_secs(1));
    println!("EMFILE CHILD OK ({errors} failed accepts)");
}
