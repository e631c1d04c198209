//! Green UDP and Unix-domain sockets through the public API: datagrams
//! (addressed, connected, peeked, truncated), Unix streams over a path and
//! as a pair, Unix datagrams from named and unnamed senders.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use green_core::net::{ToSocketAddrs, UdpSocket, UnixDatagram, UnixListener, UnixStream};
use green_core::{sleep, spawn, Greenlet};

fn finish<T: 'static>(g: Greenlet<T>) -> T {
    g.join();
    match g.take() {
        Ok(v) => v,
        Err(e) => panic!("greenlet failed: {e}"),
    }
}

/// A fresh directory under /tmp, removed with its contents on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "green-net-udp-unix-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }
    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn udp() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a = s.local_addr().unwrap();
    (s, a)
}

// ===== UDP =====

#[test]
fn udp_recv_from_parks_until_a_datagram_arrives() {
    let (a, a_addr) = udp();
    let (b, b_addr) = udp();
    let sender = spawn(move || {
        sleep(Duration::from_millis(5));
        for i in 0..10u8 {
            assert_eq!(a.send_to(&[i; 32], b_addr).unwrap(), 32);
        }
        a
    });
    for i in 0..10u8 {
        let mut buf = [0u8; 64];
        let (n, from) = b.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (32, a_addr));
        assert!(
            buf[..n].iter().all(|&x| x == i),
            "datagrams arrive whole, in order"
        );
    }
    finish(sender);
}

#[test]
fn udp_connected_send_recv_and_peeks() {
    let (a, a_addr) = udp();
    let (b, b_addr) = udp();
    a.connect(b_addr).unwrap();
    b.connect(a_addr).unwrap();
    assert_eq!(a.peer_addr().unwrap(), b_addr);
    assert_eq!(a.send(b"first").unwrap(), 5);
    assert_eq!(a.send(b"second").unwrap(), 6);
    let mut buf = [0u8; 16];
    assert_eq!(b.peek(&mut buf).unwrap(), 5);
    assert_eq!(&buf[..5], b"first");
    let (n, from) = b.peek_from(&mut buf).unwrap();
    assert_eq!((n, from), (5, a_addr));
    assert_eq!(b.recv(&mut buf).unwrap(), 5, "a peek consumed nothing");
    assert_eq!(&buf[..5], b"first");
    assert_eq!(b.recv(&mut buf).unwrap(), 6);
    assert_eq!(&buf[..6], b"second");
    // A name resolves off the hub; send_to takes its first address, as
    // std's, so this needs `localhost` to come back as IPv4 first.
    let by_name = format!("localhost:{}", a_addr.port());
    let first = by_name.as_str().to_socket_addrs().unwrap().next().unwrap();
    if first.is_ipv4() {
        assert_eq!(b.send_to(b"by name", by_name.as_str()).unwrap(), 7);
        assert_eq!(a.recv(&mut buf).unwrap(), 7);
        assert_eq!(&buf[..7], b"by name");
    }
}

#[test]
fn udp_long_datagrams_are_truncated_and_the_rest_discarded() {
    let (a, _) = udp();
    let (b, b_addr) = udp();
    let long: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    a.send_to(&long, b_addr).unwrap();
    a.send_to(b"next", b_addr).unwrap();
    let mut small = [0u8; 10];
    let (n, _) = b.recv_from(&mut small).unwrap();
    assert_eq!(n, 10);
    assert_eq!(&small[..], &long[..10]);
    let (n, _) = b.recv_from(&mut small).unwrap();
    assert_eq!(&small[..n], b"next", "the truncated tail is gone");
    // peek truncates the same way.
    a.send_to(&long, b_addr).unwrap();
    let mut tiny = [0u8; 3];
    assert_eq!(b.peek_from(&mut tiny).unwrap().0, 3);
    let mut whole = vec![0u8; 2000];
    let (n, _) = b.recv_from(&mut whole).unwrap();
    assert_eq!(&whole[..n], &long[..]);
}

#[test]
fn udp_read_timeout_and_clone() {
    let (a, _) = udp();
    assert!(a.set_read_timeout(Some(Duration::ZERO)).is_err());
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let clone = a.try_clone().unwrap();
    assert_eq!(
        clone.read_timeout().unwrap(),
        Some(Duration::from_millis(20))
    );
    let e = clone.recv_from(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    let e = a.recv(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    a.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    assert_eq!(a.write_timeout().unwrap(), Some(Duration::from_secs(1)));
}

#[test]
fn udp_send_without_a_peer_is_an_error() {
    let (a, _) = udp();
    let e = a.send(b"nowhere").unwrap_err();
    assert!(
        matches!(e.kind(), io::ErrorKind::NotConnected)
            || e.raw_os_error() == Some(libc::EDESTADDRREQ),
        "{e:?}"
    );
}

// ===== Unix streams =====

#[test]
fn unix_listener_and_stream_round_trip() {
    let dir = TempDir::new();
    let path = dir.join("stream.sock");
    let l = UnixListener::bind(&path).unwrap();
    assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
    let server = spawn(move || {
        let mut served = 0;
        for conn in l.incoming().take(3) {
            let conn = conn.unwrap();
            let mut got = Vec::new();
            (&conn).read_to_end(&mut got).unwrap();
            got.reverse();
            (&conn).write_all(&got).unwrap();
            served += 1;
        }
        served
    });
    for i in 0..3 {
        let c = UnixStream::connect(&path).unwrap();
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
        let msg = format!("message {i}");
        (&c).write_all(msg.as_bytes()).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = String::new();
        (&c).read_to_string(&mut back).unwrap();
        assert_eq!(back, msg.chars().rev().collect::<String>());
    }
    assert_eq!(finish(server), 3);
    // The accepted address of an unbound client is unnamed.
    let l = UnixListener::bind(dir.join("second.sock")).unwrap();
    let c = spawn({
        let p = dir.join("second.sock");
        move || UnixStream::connect(p).unwrap()
    });
    let (_s, peer) = l.accept().unwrap();
    assert!(peer.is_unnamed(), "{peer:?}");
    finish(c);
}

#[test]
fn unix_connect_errors() {
    let dir = TempDir::new();
    let e = UnixStream::connect(dir.join("absent.sock")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
    let long = dir.join(&"x".repeat(200));
    let e = UnixStream::connect(&long).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    // A socket file whose listener is closed: refused.
    drop(UnixListener::bind(dir.join("closed.sock")).unwrap());
    let e = UnixStream::connect(dir.join("closed.sock")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
    // Binding a path that exists is AddrInUse.
    let _l = UnixListener::bind(dir.join("l.sock")).unwrap();
    let e = UnixListener::bind(dir.join("l.sock")).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::AddrInUse, "{e}");
}

#[test]
fn unix_stream_pair_clone_and_timeouts() {
    let (a, b) = UnixStream::pair().unwrap();
    let b2 = b.try_clone().unwrap();
    let echo = spawn(move || {
        let mut buf = [0u8; 1024];
        let mut total = 0;
        loop {
            let n = (&b2).read(&mut buf).unwrap();
            if n == 0 {
                return total;
            }
            (&b2).write_all(&buf[..n]).unwrap();
            total += n;
        }
    });
    const TOTAL: usize = 1 << 20;
    let a = std::rc::Rc::new(a);
    let reader = {
        let a = std::rc::Rc::clone(&a);
        spawn(move || {
            let mut got = vec![0u8; TOTAL];
            (&*a).read_exact(&mut got).unwrap();
            got.iter().enumerate().all(|(i, &x)| x == (i % 251) as u8)
        })
    };
    let data: Vec<u8> = (0..TOTAL).map(|i| (i % 251) as u8).collect();
    (&*a).write_all(&data).unwrap();
    assert!(finish(reader), "echoed bytes differ");
    a.shutdown(Shutdown::Write).unwrap();
    assert_eq!(finish(echo), TOTAL);
    drop(b);
    a.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    assert_eq!(a.read_timeout().unwrap(), Some(Duration::from_millis(20)));
    // The peer's clone is gone and b dropped: EOF, not a timeout.
    assert_eq!((&*a).read(&mut [0u8; 4]).unwrap(), 0);
    let (c, _d) = UnixStream::pair().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let e = (&c).read(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    assert!(c.set_write_timeout(Some(Duration::ZERO)).is_err());
}

// ===== Unix datagrams =====

#[test]
fn unix_datagram_from_a_named_and_an_unnamed_sender() {
    let dir = TempDir::new();
    let server_path = dir.join("server.sock");
    let client_path = dir.join("client.sock");
    let server = UnixDatagram::bind(&server_path).unwrap();
    let named = UnixDatagram::bind(&client_path).unwrap();
    let unnamed = UnixDatagram::unbound().unwrap();
    let senders = spawn({
        let server_path = server_path.clone();
        move || {
            sleep(Duration::from_millis(5));
            assert_eq!(named.send_to(b"from a path", &server_path).unwrap(), 11);
            assert_eq!(unnamed.send_to(b"anonymous", &server_path).unwrap(), 9);
            // The reply to the named sender.
            let mut buf = [0u8; 32];
            let (n, from) = named.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"reply");
            assert_eq!(from.as_pathname(), Some(server_path.as_path()));
        }
    });
    let mut buf = [0u8; 32];
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"from a path");
    assert_eq!(from.as_pathname(), Some(client_path.as_path()));
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"anonymous");
    assert!(from.is_unnamed(), "{from:?}");
    server.send_to(b"reply", &client_path).unwrap();
    finish(senders);
    // A path nobody bound: an error naming it, not a hang.
    let e = server.send_to(b"x", dir.join("nobody.sock")).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
        ),
        "{e}"
    );
}

#[test]
fn unix_datagram_pair_connect_and_truncation() {
    let (a, b) = UnixDatagram::pair().unwrap();
    let receiver = spawn(move || {
        let mut buf = [0u8; 8];
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"12345678", "cut to the buffer");
        let n = b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"short");
        b
    });
    sleep(Duration::from_millis(2));
    a.send(b"1234567890abcdef").unwrap();
    a.send(b"short").unwrap();
    let b = finish(receiver);
    b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let e = b.recv(&mut [0u8; 4]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    // connect() to a path, then plain send.
    let dir = TempDir::new();
    let target = UnixDatagram::bind(dir.join("t.sock")).unwrap();
    let c = UnixDatagram::unbound().unwrap();
    c.connect(dir.join("t.sock")).unwrap();
    assert_eq!(
        c.peer_addr().unwrap().as_pathname(),
        Some(dir.join("t.sock").as_path())
    );
    c.send(b"connected").unwrap();
    let mut buf = [0u8; 16];
    let n = target.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"connected");
    assert!(target.local_addr().unwrap().as_pathname().is_some());
}

#[test]
fn unix_connect_to_a_full_backlog_parks_and_can_time_out() {
    use std::os::fd::AsRawFd;
    let dir = TempDir::new();
    let path = dir.join("full.sock");
    let l = UnixListener::bind(&path).unwrap();
    // SAFETY: plain listen(2) on a socket this test owns, shrinking its
    // backlog so that the queue fills after a connection or two.
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    // Fill the queue: a connect into a full Unix backlog waits (it does not
    // fail) until the listener accepts.
    let mut queued = Vec::new();
    let mut blocked = false;
    for _ in 0..8 {
        match green_core::with_timeout(Duration::from_millis(50), || UnixStream::connect(&path)) {
            Ok(Ok(c)) => queued.push(c),
            Ok(Err(e)) => panic!("connect into a full backlog: {e} ({:?})", e.kind()),
            Err(_) => {
                blocked = true;
                break;
            }
        }
    }
    assert!(blocked, "{} connects all went through", queued.len());
    // A parked connect completes once the listener makes room.
    let p = path.clone();
    let waiting = spawn(move || UnixStream::connect(p));
    sleep(Duration::from_millis(20));
    assert!(!waiting.dead(), "the connect did not wait for room");
    let (_first, _) = l.accept().unwrap();
    let c = finish(waiting).expect("the parked connect");
    drop(c);
}
