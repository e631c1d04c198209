//! The errors the kernel reports through green sockets, as std reports
//! them: refused, address in use, reset, broken pipe (with SIGPIPE at its
//! default action, which must never fire), and running out of descriptors
//! in `accept` (in a child process with a low `RLIMIT_NOFILE`), after
//! which the listener keeps working.

use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use green_core::net::{TcpListener, TcpStream, UdpSocket, UnixStream};
use green_core::{sleep, spawn, Greenlet};

const CHILD_ENV: &str = "GREEN_NET_ERRORS_CHILD";

fn finish<T: 'static>(g: Greenlet<T>) -> T {
    g.join();
    match g.take() {
        Ok(v) => v,
        Err(e) => panic!("greenlet failed: {e}"),
    }
}

fn pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Runs this binary's `child` test in a shell that first lowers the
/// descriptor limit to `nofile`; returns (success, stdout, stderr).
fn run_child(mode: &str, nofile: u32) -> (bool, String, String) {
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
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
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
        "sigpipe" => sigpipe_child(),
        other => panic!("unknown child mode {other}"),
    }
}

#[test]
fn connection_refused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    let e = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    // Several addresses: each is tried, the last error is reported.
    let addrs = [addr, addr];
    let e = TcpStream::connect(&addrs[..]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    // No address at all.
    let e = TcpStream::connect(&[][..]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
}

#[test]
fn address_in_use() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let e = TcpListener::bind(addr).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = UdpSocket::bind(u.local_addr().unwrap()).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
    // bind_reuse_port shares a port only among listeners that all set it.
    let a = TcpListener::bind_reuse_port("127.0.0.1:0").unwrap();
    let port_addr: SocketAddr = a.local_addr().unwrap();
    let b = TcpListener::bind_reuse_port(port_addr).unwrap();
    assert_eq!(b.local_addr().unwrap(), port_addr);
    let e = TcpListener::bind(port_addr).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
}

#[test]
fn connection_reset_when_the_peer_closes_with_unread_data() {
    let (c, s) = pair();
    (&c).write_all(b"never read").unwrap();
    // Wait until the bytes sit unread in the peer's buffer, then close it:
    // the kernel answers with a RST instead of a FIN.
    let mut buf = [0u8; 1];
    assert_eq!(s.peek(&mut buf).unwrap(), 1);
    drop(s);
    let e = (&c).read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    // A reset connection is closed for writing too.
    let e = (&c).write(b"more").unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{e}"
    );
}

#[test]
fn a_parked_reader_sees_the_reset() {
    let (c, s) = pair();
    (&c).write_all(b"unread").unwrap();
    let reader = spawn(move || (&c).read(&mut [0u8; 16]).map_err(|e| e.kind()));
    sleep(Duration::from_millis(5)); // parked in its read
    assert_eq!(s.peek(&mut [0u8; 1]).unwrap(), 1);
    drop(s); // with unread data: a RST
    assert_eq!(finish(reader), Err(io::ErrorKind::ConnectionReset));
}

#[test]
fn writes_to_a_closed_peer_are_broken_pipe() {
    let (c, s) = pair();
    drop(s);
    // The first write may still be accepted (the peer answers it with a
    // RST); a later one fails. Bounded.
    let mut last = Ok(0);
    for _ in 0..200 {
        last = (&c).write(&[1u8; 1024]);
        if last.is_err() {
            break;
        }
        sleep(Duration::from_millis(1));
    }
    let e = last.unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{e}"
    );
    // After the reset, it is EPIPE for good.
    let e = (&c).write(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
}

#[test]
fn sigpipe_never_fires_even_at_its_default_action() {
    let (ok, out, err) = run_child("sigpipe", 1024);
    assert!(
        ok,
        "the child died (SIGPIPE?):\nstdout: {out}\nstderr: {err}"
    );
    assert!(
        out.contains("SIGPIPE_SURVIVED"),
        "stdout: {out}\nstderr: {err}"
    );
}

fn sigpipe_child() {
    // Rust's runtime ignores SIGPIPE; restore the default action (death),
    // as a C host or `-Zon-broken-pipe=kill` program would have it.
    // SAFETY: a test-only signal(2) call before any other thread of this
    // process touches signals; SIG_DFL is a valid disposition.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // TCP: send and sendmsg paths.
    let (c, s) = pair();
    c.shutdown(Shutdown::Write).unwrap();
    let e = (&c).write(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    let e = (&c)
        .write_vectored(&[IoSlice::new(b"a"), IoSlice::new(b"b")])
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    drop(s);
    // Unix stream to a closed peer.
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let e = (&a).write(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    let e = (&a).write_vectored(&[IoSlice::new(b"xy")]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    // And a nonblocking std socket wrapped.
    let (x, y) = std::os::unix::net::UnixStream::pair().unwrap();
    x.set_nonblocking(true).unwrap();
    drop(y);
    let x = UnixStream::from_std(x);
    let e = (&x).write(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
    println!("SIGPIPE_SURVIVED");
}

#[test]
fn accept_out_of_descriptors_is_emfile_and_the_listener_recovers() {
    let (ok, out, err) = run_child("emfile", 64);
    assert!(ok, "the child failed:\nstdout: {out}\nstderr: {err}");
    assert!(
        out.contains("EMFILE_RECOVERED"),
        "stdout: {out}\nstderr: {err}"
    );
}

fn emfile_child() {
    use std::cell::Cell;
    use std::rc::Rc;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    // Start the hub (and its descriptors) before the table fills.
    sleep(Duration::from_millis(1));
    let emfiles = Rc::new(Cell::new(0usize));
    let accepted = Rc::new(Cell::new(0usize));
    // A server greenlet that keeps accepting through EMFILE.
    let server = {
        let (emfiles, accepted) = (Rc::clone(&emfiles), Rc::clone(&accepted));
        spawn(move || {
            let mut conns = Vec::new();
            while accepted.get() < 2 {
                match l.accept() {
                    Ok((c, _)) => {
                        accepted.set(accepted.get() + 1);
                        conns.push(c);
                    }
                    Err(e) => {
                        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                        emfiles.set(emfiles.get() + 1);
                        sleep(Duration::from_millis(2));
                    }
                }
            }
            conns.len()
        })
    };
    // Fill the descriptor table, leaving one for the client socket.
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => fillers.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                break;
            }
        }
        assert!(fillers.len() < 100_000, "the limit was not lowered");
    }
    fillers.pop();
    let client = TcpStream::connect(addr).expect("the client's connect");
    // The connection is queued, but accept has no descriptor to give it.
    let start = Instant::now();
    while emfiles.get() < 3 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "accept never failed with EMFILE"
        );
        sleep(Duration::from_millis(1));
    }
    assert_eq!(accepted.get(), 0);
    // Free descriptors: the listener accepts the queued connection and
    // then a new one.
    fillers.truncate(fillers.len().saturating_sub(4));
    let second = TcpStream::connect(addr).unwrap();
    assert_eq!(finish(server), 2);
    (&client).write_all(b"ok").unwrap();
    drop((client, second));
    println!("EMFILE_RECOVERED after {} EMFILE errors", emfiles.get());
}
