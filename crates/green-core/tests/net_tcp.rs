//! Green TCP through the public API: a thousand concurrent echo clients on
//! one thread, and std's `TcpListener`/`TcpStream` surface (addresses,
//! half-close, vectored I/O, peek, clones shared between greenlets, names
//! resolved off the hub, timeouts, std interop, `BufReader`).

use std::cell::Cell;
use std::io::{self, BufRead, BufReader, IoSlice, IoSliceMut, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use green_core::net::{TcpListener, TcpStream, ToSocketAddrs};
use green_core::{sleep, spawn, Greenlet};

/// A small seeded generator (xorshift64*), so every run sends the same
/// bytes and a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// FNV-1a, the checksum each client compares its echo against.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Joins `g` and returns its value, failing with its error otherwise.
fn finish<T: 'static>(g: Greenlet<T>) -> T {
    g.join();
    match g.take() {
        Ok(v) => v,
        Err(e) => panic!("greenlet failed: {e}"),
    }
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// A connected pair: (client, server side).
fn pair() -> (TcpStream, TcpStream) {
    let (l, addr) = listener();
    let c = TcpStream::connect(addr).unwrap();
    let (s, peer) = l.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    (c, s)
}

/// Echoes everything until EOF.
fn echo(conn: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut total = 0;
    loop {
        let n = (&conn).read(&mut buf)?;
        if n == 0 {
            return Ok(total);
        }
        (&conn).write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[test]
fn a_thousand_concurrent_echo_clients_get_their_bytes_back() {
    const CLIENTS: usize = 1000;
    let (l, addr) = listener();
    let server = spawn(move || -> u64 {
        let handlers: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (conn, _) = l.accept().expect("accept");
                spawn(move || echo(conn).expect("echo"))
            })
            .collect();
        handlers.into_iter().map(finish).sum()
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            spawn(move || -> usize {
                let mut rng = Rng::new(i as u64 + 1);
                let len = 1024 + rng.below(7 * 1024);
                let data = rng.bytes(len);
                let c = TcpStream::connect(addr).expect("connect");
                let mut sent = 0;
                while sent < len {
                    let chunk = (1 + rng.below(1500)).min(len - sent);
                    (&c).write_all(&data[sent..sent + chunk]).expect("write");
                    sent += chunk;
                    if rng.below(4) == 0 {
                        green_core::yield_now();
                    }
                }
                c.shutdown(Shutdown::Write).unwrap();
                let mut back = Vec::with_capacity(len);
                (&c).read_to_end(&mut back).expect("read echo");
                assert_eq!(back.len(), len, "client {i}: echo length");
                assert_eq!(checksum(&back), checksum(&data), "client {i}: echo bytes");
                len
            })
        })
        .collect();
    let sent: usize = clients.into_iter().map(finish).sum();
    assert_eq!(finish(server), sent as u64, "the server echoed every byte");
}

#[test]
fn accept_incoming_and_addresses() {
    let (l, addr) = listener();
    assert_eq!(addr.ip(), Ipv4Addr::LOCALHOST);
    assert_ne!(addr.port(), 0);
    let clients: Vec<_> = (0..3)
        .map(|_| spawn(move || TcpStream::connect(addr).unwrap()))
        .collect();
    let served: Vec<TcpStream> = l.incoming().take(3).map(Result::unwrap).collect();
    let clients: Vec<TcpStream> = clients.into_iter().map(finish).collect();
    for s in &served {
        assert_eq!(s.local_addr().unwrap(), addr);
        let peer = s.peer_addr().unwrap();
        let c = clients
            .iter()
            .find(|c| c.local_addr().unwrap() == peer)
            .expect("the accepted peer is one of the clients");
        assert_eq!(c.peer_addr().unwrap(), addr);
    }
    let listener_dbg = format!("{l:?}");
    assert!(listener_dbg.contains("TcpListener"), "{listener_dbg}");
}

#[test]
fn half_close_gives_the_peer_eof_and_it_can_still_answer() {
    let (c, s) = pair();
    (&c).write_all(b"question").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let server = spawn(move || {
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        assert_eq!(got, b"question");
        (&s).write_all(b"answer after EOF").unwrap();
    });
    let mut answer = Vec::new();
    (&c).read_to_end(&mut answer).unwrap();
    assert_eq!(answer, b"answer after EOF");
    finish(server);
    // Writing on the shut half fails cleanly.
    let e = (&c).write(b"x").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::BrokenPipe, "{e}");
}

#[test]
fn vectored_reads_and_writes() {
    let (c, s) = pair();
    let parts: [&[u8]; 3] = [b"hello", b", ", b"vectored world"];
    let slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let n = (&c).write_vectored(&slices).unwrap();
    assert_eq!(n, 21, "a small vectored write goes out whole");
    let (mut a, mut b) = ([0u8; 7], [0u8; 64]);
    let mut got = 0usize;
    while got < 21 {
        // Read into the remaining space of the two buffers.
        let (a_off, b_off) = (got.min(7), got.saturating_sub(7));
        let mut bufs = [
            IoSliceMut::new(&mut a[a_off..]),
            IoSliceMut::new(&mut b[b_off..]),
        ];
        let n = (&s).read_vectored(&mut bufs).unwrap();
        assert!(n > 0);
        got += n;
    }
    assert_eq!(&a, b"hello, ");
    assert_eq!(&b[..14], b"vectored world");
    // All-empty buffers read and write nothing, without blocking.
    assert_eq!(
        (&s).read_vectored(&mut [IoSliceMut::new(&mut [])]).unwrap(),
        0
    );
    assert_eq!((&c).write_vectored(&[IoSlice::new(&[])]).unwrap(), 0);
}

#[test]
fn peek_waits_for_data_and_consumes_nothing() {
    let (c, s) = pair();
    let writer = spawn(move || {
        sleep(Duration::from_millis(5));
        (&c).write_all(b"peekaboo").unwrap();
        c
    });
    let mut buf = [0u8; 4];
    assert_eq!(s.peek(&mut buf).unwrap(), 4);
    assert_eq!(&buf, b"peek");
    let mut all = [0u8; 8];
    (&s).read_exact(&mut all).unwrap();
    assert_eq!(&all, b"peekaboo");
    let _c = finish(writer);
    assert_eq!(s.peek(&mut []).unwrap(), 0);
}

#[test]
fn nodelay_and_ttl_round_trip() {
    let (c, _s) = pair();
    c.set_nodelay(true).unwrap();
    assert!(c.nodelay().unwrap());
    c.set_nodelay(false).unwrap();
    assert!(!c.nodelay().unwrap());
    c.set_ttl(33).unwrap();
    assert!(c.take_error().unwrap().is_none());
}

#[test]
fn one_greenlet_reads_while_another_writes_the_same_stream() {
    const TOTAL: usize = 1 << 20;
    let (c, s) = pair();
    let server = spawn(move || echo(s).unwrap());
    let c = Rc::new(c);
    let clone = c.try_clone().unwrap();
    // The reader parks in a read on the clone while the writer writes on
    // the original: neither call may hold the other up (a megabyte does
    // not fit in the socket buffers, so this deadlocks unless both run).
    let reader = spawn(move || {
        let mut rng = Rng::new(99);
        let expect = rng.bytes(TOTAL);
        let mut got = vec![0u8; TOTAL];
        (&clone).read_exact(&mut got).unwrap();
        assert!(got == expect, "echoed bytes differ");
    });
    let writer = {
        let c = Rc::clone(&c);
        spawn(move || {
            let data = Rng::new(99).bytes(TOTAL);
            for chunk in data.chunks(10_000) {
                (&*c).write_all(chunk).unwrap();
            }
        })
    };
    finish(writer);
    finish(reader);
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(finish(server), TOTAL as u64);
}

#[test]
fn a_clone_shares_the_timeouts() {
    let (c, _s) = pair();
    let clone = c.try_clone().unwrap();
    c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
    assert_eq!(
        clone.read_timeout().unwrap(),
        Some(Duration::from_millis(30))
    );
    let e = (&clone).read(&mut [0u8; 8]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
}

#[test]
fn names_resolve_off_the_hub_and_connect_works_by_name() {
    let (l, addr) = listener();
    let ran = Rc::new(Cell::new(false));
    let flag = Rc::clone(&ran);
    let other = spawn(move || flag.set(true));
    // The lookup parks this greenlet (it runs on a resolver thread), so
    // the greenlet spawned above runs meanwhile.
    let addrs: Vec<SocketAddr> = format!("localhost:{}", addr.port())
        .to_socket_addrs()
        .unwrap()
        .collect();
    assert!(
        ran.get(),
        "the lookup parked the caller instead of blocking the hub"
    );
    finish(other);
    assert!(addrs
        .iter()
        .all(|a| a.ip().is_loopback() && a.port() == addr.port()));
    let server = spawn(move || l.accept().unwrap().0);
    let c = TcpStream::connect(format!("localhost:{}", addr.port())).unwrap();
    let s = finish(server);
    assert_eq!(s.peer_addr().unwrap(), c.local_addr().unwrap());
    // The listener is gone now: a (host, port) pair is refused, not hung.
    let e = TcpStream::connect(("localhost", addr.port())).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
}

#[test]
fn a_name_that_does_not_resolve_is_an_error_not_a_hang() {
    let start = std::time::Instant::now();
    let e = TcpStream::connect("no-such-host.invalid:80").unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_ne!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    let e = TcpStream::connect("not an address").unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    // A resolving greenlet can be killed; the hub stays usable.
    let g = spawn(|| TcpStream::connect("no-such-host-2.invalid:80").map(drop));
    g.kill();
    assert!(g.dead());
}

#[test]
fn connect_timeout_zero_is_invalid_input() {
    let (_l, addr) = listener();
    let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    let c = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    assert_eq!(c.peer_addr().unwrap(), addr);
}

#[test]
fn connect_timeout_to_a_full_accept_queue_times_out() {
    // A listener whose accept queue is full drops new SYNs, so a connect to
    // it stays unanswered: a deterministic non-answering peer on loopback.
    let (l, addr) = listener();
    // SAFETY: not green-core; a plain listen(2) on a listening socket we
    // own, which only shrinks its backlog to 0 (one queued connection).
    assert_eq!(unsafe { libc::listen(l.as_raw_fd(), 0) }, 0);
    let mut held = Vec::new();
    let mut timed_out = false;
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(c) => held.push(c),
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                timed_out = true;
                break;
            }
        }
    }
    assert!(
        timed_out,
        "{} connects into a full queue all succeeded",
        held.len()
    );
}

#[test]
fn read_timeout_is_would_block_and_zero_is_invalid() {
    let (c, s) = pair();
    for e in [
        c.set_read_timeout(Some(Duration::ZERO)).unwrap_err(),
        c.set_write_timeout(Some(Duration::ZERO)).unwrap_err(),
    ] {
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
    }
    assert_eq!(c.read_timeout().unwrap(), None);
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let start = std::time::Instant::now();
    let e = (&c).read(&mut [0u8; 16]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    assert!(start.elapsed() >= Duration::from_millis(15));
    // The stream still works, and data that is there is read at once.
    (&s).write_all(b"late").unwrap();
    let mut buf = [0u8; 4];
    (&c).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"late");
    // Peek honours the read timeout too.
    let e = c.peek(&mut buf).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
    c.set_read_timeout(None).unwrap();
    assert_eq!(c.read_timeout().unwrap(), None);
}

#[test]
fn write_timeout_with_a_full_socket_buffer_loses_no_byte() {
    let (c, s) = pair();
    c.set_write_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(c.write_timeout().unwrap(), Some(Duration::from_millis(50)));
    let chunk = vec![0x5a_u8; 64 * 1024];
    let mut written = 0usize;
    let mut timed_out = false;
    // The peer reads nothing, so the buffers fill; bounded at 256 MiB.
    for _ in 0..4096 {
        match (&c).write(&chunk) {
            Ok(n) => written += n,
            Err(e) => {
                assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
                timed_out = true;
                break;
            }
        }
    }
    assert!(timed_out, "the write never timed out after {written} bytes");
    c.shutdown(Shutdown::Write).unwrap();
    // Every byte a write reported is delivered, and nothing else.
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), written);
    assert!(got.iter().all(|&b| b == 0x5a));
}

#[test]
fn from_std_with_a_nonblocking_listener_still_parks() {
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_l.set_nonblocking(true).unwrap();
    let addr = std_l.local_addr().unwrap();
    let l = TcpListener::from_std(std_l);
    let connector = spawn(move || {
        sleep(Duration::from_millis(10));
        TcpStream::connect(addr).unwrap()
    });
    // Nothing is queued yet: the accept parks (never WouldBlock) until the
    // connection arrives.
    let (s, peer) = l.accept().unwrap();
    let c = finish(connector);
    assert_eq!(peer, c.local_addr().unwrap());
    drop(s);
    // into_std gives back the (still nonblocking) std listener.
    let std_l = l.into_std();
    let e = std_l.accept().unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "{e}");
}

#[test]
fn a_nonblocking_std_stream_read_and_write_park_instead_of_would_block() {
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    let std_c = std::net::TcpStream::connect(addr).unwrap();
    let (std_s, _) = std_l.accept().unwrap();
    std_c.set_nonblocking(true).unwrap();
    std_s.set_nonblocking(true).unwrap();
    let c = TcpStream::from_std(std_c);
    let s = TcpStream::from_std(std_s);
    let writer = spawn(move || {
        sleep(Duration::from_millis(10));
        (&s).write_all(b"parked").unwrap();
        // Fill the buffers so that the peer's writes below must park too.
        s
    });
    let mut buf = [0u8; 6];
    (&c).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"parked");
    let s = finish(writer);
    // A big write on the nonblocking socket parks until a reader drains.
    const BIG: usize = 8 << 20;
    let reader = spawn(move || {
        let mut got = 0usize;
        let mut buf = vec![0u8; 65536];
        while got < BIG {
            let n = (&s).read(&mut buf).unwrap();
            assert!(n > 0);
            got += n;
        }
        s
    });
    (&c).write_all(&vec![7u8; BIG]).unwrap();
    let s = finish(reader);
    // into_std gives back the std socket, still connected.
    let mut std_c = c.into_std();
    std_c.set_nonblocking(false).unwrap();
    std_c.write_all(b"std").unwrap();
    let mut buf = [0u8; 3];
    (&s).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"std");
}

#[test]
fn bufreader_line_protocol() {
    let (l, addr) = listener();
    let server = spawn(move || {
        let (conn, _) = l.accept().unwrap();
        let mut reader = BufReader::new(&conn);
        let mut served = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                return served;
            }
            let reply = match line.trim_end().split_once(' ') {
                Some(("ADD", args)) => {
                    let sum: i64 = args.split(' ').map(|a| a.parse::<i64>().unwrap()).sum();
                    format!("= {sum}\n")
                }
                Some(("ECHO", text)) => format!("{text}\n"),
                _ => "ERR\n".to_owned(),
            };
            (&conn).write_all(reply.as_bytes()).unwrap();
            served += 1;
        }
    });
    let c = TcpStream::connect(addr).unwrap();
    let mut lines = BufReader::new(&c);
    for i in 0..200i64 {
        let request = if i % 3 == 0 {
            format!("ADD {i} {} -1\n", i * 2)
        } else if i % 3 == 1 {
            format!("ECHO line {i}\n")
        } else {
            "BOGUS\n".to_owned()
        };
        (&c).write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        lines.read_line(&mut reply).unwrap();
        let expect = match i % 3 {
            0 => format!("= {}\n", i * 3 - 1),
            1 => format!("line {i}\n"),
            _ => "ERR\n".to_owned(),
        };
        assert_eq!(reply, expect);
    }
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(finish(server), 200);
}

#[test]
fn the_backend_is_the_one_the_environment_asks_for() {
    // These suites run twice, once per backend: make sure the second run
    // really is on epoll.
    let want = std::env::var("GREEN_LOOP_BACKEND").unwrap_or_default();
    let got = format!("{:?}", green_core::loop_backend()).to_lowercase();
    if want == "epoll" {
        assert!(got.contains("epoll"), "{got}");
    }
}
