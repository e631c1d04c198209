//! Hostile review of issue 12 (green I/O: net, fs, process, signal, os)
//! through the public API only: kills and `Timeout`s at every blocking
//! point, destructors that do I/O while unwinding, teardown with ops in
//! flight, bad sizes and limits, and byte-exact data integrity when reads
//! and writes race kills.
//!
//! Every scenario runs on its own thread under [`support::within`], so a
//! hang fails the test instead of stalling the suite. Scenarios that count
//! descriptors, fork, or lower `RLIMIT_NOFILE` run in a child process of
//! this binary (`GREEN_CORE_REVIEW12_CHILD`), where no other test's thread
//! opens or closes descriptors meanwhile. Run under both backends
//! (`GREEN_LOOP_BACKEND=epoll`, inherited by the child processes).

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use green_core::net::{
    Shutdown, TcpListener, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use green_core::process::{Command, Stdio};
use green_core::{sleep, spawn, with_timeout, yield_now, Timeout};
use support::{catch, stdout_value, within, CHILD_LIMIT, MS};

const CHILD_ENV: &str = "GREEN_CORE_REVIEW12_CHILD";
const LIMIT: Duration = Duration::from_secs(60);

/// Runs `f` inside `green_core::run` on a fresh thread; fails on a hang.
fn scenario(f: impl FnOnce() + Send + 'static) {
    within(LIMIT, move || green_core::run(f));
}

/// A small deterministic PRNG (xorshift), so races vary but reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Byte `i` of every test stream: a pattern with period 251 (prime), so a
/// lost or duplicated run of bytes shows as a mismatch.
fn pattern_byte(i: usize) -> u8 {
    (i % 251) as u8
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(pattern_byte).collect()
}

fn check_pattern(got: &[u8], expect_len: usize) {
    assert_eq!(
        got.len(),
        expect_len,
        "byte count (lost or duplicated bytes)"
    );
    if let Some(i) = (0..got.len()).find(|&i| got[i] != pattern_byte(i)) {
        panic!(
            "stream corrupt at byte {i}: {} != {} (bytes lost or duplicated)",
            got[i],
            pattern_byte(i)
        );
    }
}

fn tcp_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    (c, s)
}

/// Yields a random number of times (0..n), sometimes sleeps 0: a spread of
/// points at which a kill lands.
fn jitter(rng: &mut Rng, n: u64) {
    match rng.below(4) {
        0 => sleep(Duration::ZERO),
        _ => {
            for _ in 0..rng.below(n) {
                yield_now();
            }
        }
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

// ===== data integrity: reads and writes racing kills and timeouts =====

/// Readers on clones of one socket are killed (or timed out) at random
/// points; every byte they were handed is recorded before their next
/// blocking call. The recorded stream must be exactly what was sent (IO2:
/// a read that won the race returns its bytes; the kill waits).
fn read_race(use_timeouts: bool, seed: u64) {
    scenario(move || {
        const TOTAL: usize = 300_000;
        let (c, s) = tcp_pair();
        let writer = spawn(move || {
            let data = pattern(TOTAL);
            let mut rng = Rng(seed ^ 0xabcdef);
            let mut off = 0;
            while off < TOTAL {
                let n = (1 + rng.below(4000) as usize).min(TOTAL - off);
                (&c).write_all(&data[off..off + n]).unwrap();
                off += n;
                if rng.below(3) == 0 {
                    sleep(Duration::ZERO);
                }
            }
            c.shutdown(Shutdown::Write).unwrap();
        });
        let got = Rc::new(RefCell::new(Vec::with_capacity(TOTAL)));
        let mut rng = Rng(seed);
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            assert!(rounds < 200_000, "never reached EOF");
            let s2 = s.try_clone().unwrap();
            let g2 = Rc::clone(&got);
            let limit = Duration::from_micros(rng.below(1500));
            let reader = spawn(move || -> bool {
                let mut guarded = [0xA5u8; 1024 + 64];
                let mut body = || loop {
                    // Canaries: 32 bytes either side of the borrowed slice.
                    let n = (&s2).read(&mut guarded[32..32 + 1024]).unwrap();
                    assert!(guarded[..32].iter().all(|&b| b == 0xA5), "front canary");
                    assert!(guarded[1056..].iter().all(|&b| b == 0xA5), "back canary");
                    if n == 0 {
                        return true;
                    }
                    g2.borrow_mut().extend_from_slice(&guarded[32..32 + n]);
                };
                if use_timeouts {
                    with_timeout(limit, body).unwrap_or(false)
                } else {
                    body()
                }
            });
            jitter(&mut rng, 6);
            if !use_timeouts {
                reader.kill();
            } else {
                reader.join();
            }
            if let Ok(true) = reader.take() {
                break;
            }
        }
        writer.join();
        assert!(writer.successful());
        check_pattern(&got.borrow(), TOTAL);
    });
}

#[test]
fn tcp_reads_racing_kills_lose_and_duplicate_nothing() {
    read_race(false, 0x1234_5678);
}

#[test]
fn tcp_reads_racing_timeouts_lose_and_duplicate_nothing() {
    read_race(true, 0x8765_4321);
}

/// Writers killed (or timed out) at random points against a slow reader:
/// the count a write reports is exactly what reached the peer, so the next
/// writer goes on from there and the stream stays exact.
fn write_race(use_timeouts: bool, seed: u64) {
    scenario(move || {
        const TOTAL: usize = 2_000_000;
        let (c, s) = tcp_pair();
        let received = Rc::new(RefCell::new(Vec::with_capacity(TOTAL)));
        let r2 = Rc::clone(&received);
        let reader = spawn(move || {
            let mut buf = vec![0u8; 7000];
            let mut rng = Rng(seed ^ 77);
            loop {
                let n = (&s).read(&mut buf[..1 + rng.below(6999) as usize]).unwrap();
                if n == 0 {
                    break;
                }
                r2.borrow_mut().extend_from_slice(&buf[..n]);
                if rng.below(4) == 0 {
                    sleep(Duration::ZERO);
                }
            }
        });
        let data = Rc::new(pattern(TOTAL));
        let sent = Rc::new(Cell::new(0usize));
        let mut rng = Rng(seed);
        let mut rounds = 0u32;
        while sent.get() < TOTAL {
            rounds += 1;
            assert!(rounds < 200_000, "writers make no progress");
            let c2 = c.try_clone().unwrap();
            let (d, s2) = (Rc::clone(&data), Rc::clone(&sent));
            let chunk = 1 + rng.below(600_000) as usize;
            let limit = Duration::from_micros(rng.below(2000));
            let writer = spawn(move || {
                let body = || {
                    while s2.get() < TOTAL {
                        let off = s2.get();
                        let end = (off + chunk).min(TOTAL);
                        let n = (&c2).write(&d[off..end]).unwrap();
                        assert!(n > 0 && n <= end - off);
                        s2.set(off + n);
                    }
                };
                if use_timeouts {
                    let _ = with_timeout(limit, body);
                } else {
                    body();
                }
            });
            jitter(&mut rng, 8);
            if use_timeouts {
                writer.join();
            } else {
                writer.kill();
            }
            assert!(writer.dead());
        }
        c.shutdown(Shutdown::Write).unwrap();
        reader.join();
        assert!(reader.successful());
        check_pattern(&received.borrow(), TOTAL);
    });
}

#[test]
fn tcp_writes_racing_kills_report_exact_counts() {
    write_race(false, 0x5eed_0001);
}

#[test]
fn tcp_writes_racing_timeouts_report_exact_counts() {
    write_race(true, 0x5eed_0002);
}

/// A `write_all` of a buffer far bigger than the socket buffers, killed
/// part way: nothing past what the kernel took is sent later, and the
/// connection stays usable for the rest.
#[test]
fn write_all_of_a_big_buffer_killed_midway_then_resumed() {
    scenario(|| {
        const BIG: usize = 16 << 20;
        let (c, s) = tcp_pair();
        let c2 = c.try_clone().unwrap();
        let writer = spawn(move || {
            let data = pattern(BIG);
            (&c2).write_all(&data).unwrap();
            unreachable!("the peer does not read: write_all cannot finish");
        });
        sleep(30 * MS);
        writer.kill();
        assert!(writer.dead());
        // Whatever reached the socket is a prefix of the pattern.
        c.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        (&s).read_to_end(&mut got).unwrap();
        assert!(!got.is_empty() && got.len() < BIG);
        check_pattern(&got, got.len());
    });
}

/// The socket's own read timeout racing data: every byte is seen once.
#[test]
fn socket_read_timeout_racing_data_loses_nothing() {
    scenario(|| {
        const TOTAL: usize = 100_000;
        let (c, s) = tcp_pair();
        s.set_read_timeout(Some(Duration::from_micros(300)))
            .unwrap();
        let writer = spawn(move || {
            let data = pattern(TOTAL);
            let mut rng = Rng(99);
            let mut off = 0;
            while off < TOTAL {
                let n = (1 + rng.below(3000) as usize).min(TOTAL - off);
                (&c).write_all(&data[off..off + n]).unwrap();
                off += n;
                if rng.below(2) == 0 {
                    sleep(Duration::from_micros(rng.below(600)));
                }
            }
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        let mut timeouts = 0;
        while got.len() < TOTAL {
            match (&s).read(&mut buf) {
                Ok(0) => panic!("EOF before the end"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => timeouts += 1,
                Err(e) => panic!("{e}"),
            }
        }
        writer.join();
        check_pattern(&got, TOTAL);
        let _ = timeouts;
    });
}

/// Pipe reads racing kills, and a pipe writer killed mid-`write` of a
/// buffer bigger than the pipe: exact counts both ways.
#[test]
fn pipe_reads_and_writes_racing_kills_are_exact() {
    scenario(|| {
        const TOTAL: usize = 400_000;
        let (r, w) = green_core::fs::pipe().unwrap();
        let (r, w) = (Rc::new(r), Rc::new(w));
        let sent = Rc::new(Cell::new(0usize));
        let got = Rc::new(RefCell::new(Vec::new()));
        let data = Rc::new(pattern(TOTAL));
        let mut rng = Rng(4242);
        let mut writer: Option<green_core::Greenlet<()>> = None;
        let mut reader: Option<green_core::Greenlet<bool>> = None;
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            assert!(rounds < 300_000, "no progress");
            if writer.as_ref().is_none_or(|g| g.dead()) && sent.get() < TOTAL {
                let (w, d, s) = (Rc::clone(&w), Rc::clone(&data), Rc::clone(&sent));
                let chunk = 1 + rng.below(200_000) as usize;
                writer = Some(spawn(move || {
                    while s.get() < TOTAL {
                        let off = s.get();
                        let n = (&*w).write(&d[off..(off + chunk).min(TOTAL)]).unwrap();
                        s.set(off + n);
                    }
                }));
            }
            if reader.as_ref().is_none_or(|g| g.dead()) {
                if let Some(done) = reader.take() {
                    if let Ok(true) = done.take() {
                        break;
                    }
                }
                let (r, g) = (Rc::clone(&r), Rc::clone(&got));
                reader = Some(spawn(move || {
                    let mut buf = [0u8; 5000];
                    while g.borrow().len() < TOTAL {
                        let n = (&*r).read(&mut buf).unwrap();
                        assert!(n > 0);
                        g.borrow_mut().extend_from_slice(&buf[..n]);
                    }
                    true
                }));
            }
            jitter(&mut rng, 5);
            match rng.below(3) {
                0 => writer.as_ref().unwrap().kill(),
                1 => reader.as_ref().unwrap().kill(),
                _ => {}
            }
        }
        check_pattern(&got.borrow(), TOTAL);
        assert_eq!(sent.get(), TOTAL);
    });
}

/// Numbered datagrams received by greenlets that are killed or timed out
/// at random: each one is received exactly once.
#[test]
fn udp_recv_racing_kills_and_timeouts_receives_each_datagram_once() {
    scenario(|| {
        const N: u32 = 3000;
        let rx = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let seen = Rc::new(RefCell::new(vec![0u8; N as usize]));
        let count = Rc::new(Cell::new(0u32));
        let mut rng = Rng(777);
        let mut next = 0u32;
        let mut rounds = 0u32;
        while count.get() < N {
            rounds += 1;
            assert!(rounds < 300_000, "datagrams lost: {} of {N}", count.get());
            // Keep at most 32 in flight so the receive buffer never drops.
            while next < N && next - count.get() < 32 {
                tx.send_to(&next.to_le_bytes(), to).unwrap();
                next += 1;
            }
            let (rx2, s2, c2) = (Rc::clone(&rx), Rc::clone(&seen), Rc::clone(&count));
            let limit = Duration::from_micros(rng.below(800));
            let timed = rng.below(2) == 0;
            let g = spawn(move || {
                let body = || loop {
                    let mut buf = [0u8; 8];
                    let (n, _) = rx2.recv_from(&mut buf).unwrap();
                    assert_eq!(n, 4);
                    let i = u32::from_le_bytes(buf[..4].try_into().unwrap());
                    s2.borrow_mut()[i as usize] += 1;
                    c2.set(c2.get() + 1);
                };
                if timed {
                    let _ = with_timeout(limit, body);
                } else {
                    body()
                }
            });
            jitter(&mut rng, 5);
            g.kill();
        }
        let seen = seen.borrow();
        assert!(
            seen.iter().all(|&c| c == 1),
            "a datagram seen twice or never"
        );
    });
}

#[test]
fn unix_datagram_recv_from_killed_and_timed_out_loses_nothing() {
    scenario(|| {
        let dir = tempdir();
        let path = dir.join("rx.sock");
        let rx = Rc::new(UnixDatagram::bind(&path).unwrap());
        let tx = UnixDatagram::unbound().unwrap();
        // A Timeout and a socket timeout first.
        let r = with_timeout(10 * MS, || rx.recv_from(&mut [0u8; 8]));
        assert!(r.is_err());
        rx.set_read_timeout(Some(10 * MS)).unwrap();
        let e = rx.recv_from(&mut [0u8; 8]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        rx.set_read_timeout(None).unwrap();
        // Then kills racing sends.
        const N: u32 = 500;
        let count = Rc::new(Cell::new(0u32));
        let seen = Rc::new(RefCell::new(vec![0u8; N as usize]));
        let mut rng = Rng(31337);
        let take_one = |rx: &UnixDatagram| {
            let mut buf = [0u8; 4];
            let (n, _) = with_timeout(Duration::from_secs(5), || rx.recv_from(&mut buf))
                .expect("a datagram was lost")
                .unwrap();
            assert_eq!(n, 4);
            seen.borrow_mut()[u32::from_le_bytes(buf) as usize] += 1;
            count.set(count.get() + 1);
        };
        for i in 0..N {
            // The queue holds net.unix.max_dgram_qlen (10 by default)
            // datagrams; beyond that a send would wait for a reader.
            while i - count.get() >= 8 {
                take_one(&rx);
            }
            tx.send_to(&i.to_le_bytes(), &path).unwrap();
            let (rx2, s2, c2) = (Rc::clone(&rx), Rc::clone(&seen), Rc::clone(&count));
            let g = spawn(move || loop {
                let mut buf = [0u8; 4];
                let (n, _) = rx2.recv_from(&mut buf).unwrap();
                assert_eq!(n, 4);
                s2.borrow_mut()[u32::from_le_bytes(buf) as usize] += 1;
                c2.set(c2.get() + 1);
            });
            jitter(&mut rng, 3);
            g.kill();
        }
        while count.get() < N {
            take_one(&rx);
        }
        assert!(seen.borrow().iter().all(|&c| c == 1));
        drop(rx);
        std::fs::remove_dir_all(dir).unwrap();
    });
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "green-review12-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ===== kills and timeouts at each blocking point =====

#[test]
fn read_exact_killed_then_the_stream_still_works() {
    scenario(|| {
        let (c, s) = tcp_pair();
        let s2 = s.try_clone().unwrap();
        let g = spawn(move || {
            let mut buf = [0u8; 10];
            let _ = (&s2).read_exact(&mut buf);
            unreachable!();
        });
        (&c).write_all(b"abc").unwrap();
        sleep(10 * MS);
        g.kill();
        assert!(g.dead());
        // The 3 bytes went to the killed read_exact (std's contract: partial
        // data of a failed read_exact is unspecified); later bytes arrive.
        (&c).write_all(b"0123456789").unwrap();
        let mut buf = [0u8; 10];
        (&s).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"0123456789");
    });
}

#[test]
fn accept_killed_or_timed_out_loses_no_connection() {
    scenario(|| {
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = l.local_addr().unwrap();
        let mut rng = Rng(5);
        for round in 0..60 {
            let accepted = Rc::new(RefCell::new(Vec::new()));
            let (l2, a2) = (Rc::clone(&l), Rc::clone(&accepted));
            let timed = round % 2 == 1;
            let g = spawn(move || {
                let body = || loop {
                    let (s, _) = l2.accept().unwrap();
                    a2.borrow_mut().push(s);
                };
                if timed {
                    let _ = with_timeout(Duration::from_micros(200), body);
                } else {
                    body();
                }
            });
            let client = spawn(move || TcpStream::connect(addr).unwrap());
            jitter(&mut rng, 4);
            g.kill();
            client.join();
            let client = client.take().unwrap();
            let client_port = client.local_addr().unwrap().port();
            let mine = accepted
                .borrow()
                .iter()
                .any(|s| s.peer_addr().unwrap().port() == client_port);
            if !mine {
                // Not taken by the killed acceptor: the next accept gets it.
                let (s, _) = with_timeout(Duration::from_secs(5), || l.accept())
                    .expect("round {round}: the connection was lost")
                    .unwrap();
                assert_eq!(s.peer_addr().unwrap().port(), client_port);
            }
        }
    });
}

/// `incoming()` killed mid-iteration: connections the kernel already
/// accepted for it are handed to the next `accept` (A3).
#[test]
fn incoming_killed_loses_no_connection() {
    scenario(|| {
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = l.local_addr().unwrap();
        let clients: Vec<_> = (0..5).map(|_| TcpStream::connect(addr).unwrap()).collect();
        let taken = Rc::new(RefCell::new(Vec::new()));
        let (l2, t2) = (Rc::clone(&l), Rc::clone(&taken));
        let g = spawn(move || {
            for conn in l2.incoming() {
                t2.borrow_mut().push(conn.unwrap());
                sleep(Duration::from_secs(3600));
            }
        });
        support::wait_for("the first connection", || taken.borrow().len() == 1);
        g.kill();
        let mut ports: Vec<u16> = taken
            .borrow()
            .iter()
            .map(|s| s.peer_addr().unwrap().port())
            .collect();
        for _ in 1..5 {
            let (s, _) = with_timeout(Duration::from_secs(5), || l.accept())
                .expect("a connection was lost with the killed iterator")
                .unwrap();
            ports.push(s.peer_addr().unwrap().port());
        }
        ports.sort_unstable();
        let mut want: Vec<u16> = clients
            .iter()
            .map(|c| c.local_addr().unwrap().port())
            .collect();
        want.sort_unstable();
        assert_eq!(ports, want);
    });
}

/// `incoming().next()` under a Timeout, repeatedly, with connections
/// arriving meanwhile: each connection comes out exactly once.
#[test]
fn incoming_next_under_timeouts_yields_each_connection_once() {
    scenario(|| {
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = l.local_addr().unwrap();
        const N: usize = 40;
        let connector = spawn(move || {
            let mut v = Vec::new();
            for _ in 0..N {
                v.push(TcpStream::connect(addr).unwrap());
                sleep(Duration::from_micros(300));
            }
            v
        });
        let mut got = Vec::new();
        let mut rounds = 0;
        while got.len() < N {
            rounds += 1;
            assert!(rounds < 100_000);
            let mut it = l.incoming();
            if let Ok(Some(conn)) = with_timeout(Duration::from_micros(500), || it.next()) {
                got.push(conn.unwrap().peer_addr().unwrap().port());
            }
        }
        connector.join();
        let clients = connector.take().unwrap();
        let mut want: Vec<u16> = clients
            .iter()
            .map(|c| c.local_addr().unwrap().port())
            .collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want);
    });
}

/// A listener whose accept queue is full (backlog 0, nobody accepts):
/// `connect` really blocks (the SYN is dropped), so a kill, a `Timeout` and
/// `connect_timeout` each interrupt a connect in flight.
#[test]
fn connect_to_a_full_backlog_is_interruptible() {
    scenario(|| {
        let l = listener_with_backlog(0);
        let addr = l.local_addr().unwrap();
        // Fill the accept queue until a connect blocks.
        let mut fillers = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => fillers.push(s),
                Err(e) => {
                    assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
                    break;
                }
            }
            assert!(fillers.len() < 64, "the backlog never filled");
        }
        let e = TcpStream::connect_timeout(&addr, 50 * MS).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let r = with_timeout(50 * MS, || TcpStream::connect(addr));
        assert!(r.is_err(), "the Timeout interrupts the connect");
        let g = spawn(move || TcpStream::connect(addr));
        sleep(30 * MS);
        assert!(!g.dead(), "the connect blocks");
        g.kill();
        assert!(g.dead());
        assert!(g.exception().unwrap().is_exit());
        // Nested: an inner Timeout longer than the outer one.
        let outer = Timeout::run(40 * MS, || {
            let inner = Timeout::run(Duration::from_secs(30), || TcpStream::connect(addr));
            panic!("the inner scope returned {:?}", inner.is_ok());
        });
        assert_eq!(outer.unwrap_err().duration(), Some(40 * MS));
        // The listener still works.
        let (s, _) = l.accept().unwrap();
        drop(s);
    });
}

fn listener_with_backlog(backlog: i32) -> TcpListener {
    // SAFETY: plain socket syscalls on an fd this function owns; the
    // sockaddr is a local, fully initialised struct whose size is passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0);
        let owned = OwnedFd::from_raw_fd(fd);
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = u32::from_be_bytes([127, 0, 0, 1]).to_be();
        let rc = libc::bind(
            fd,
            (&sa as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0);
        assert_eq!(libc::listen(fd, backlog), 0);
        TcpListener::from(owned)
    }
}

#[test]
fn fs_pipe_read_and_write_kill_and_timeout() {
    scenario(|| {
        let (r, w) = green_core::fs::pipe().unwrap();
        let r = Rc::new(r);
        let r2 = Rc::clone(&r);
        let g = spawn(move || {
            let _ = (&*r2).read(&mut [0u8; 16]);
            unreachable!()
        });
        sleep(5 * MS);
        g.kill();
        assert!(g.dead());
        assert!(with_timeout(10 * MS, || (&*r).read(&mut [0u8; 16])).is_err());
        // A writer blocked on a full pipe.
        let w = Rc::new(w);
        let w2 = Rc::clone(&w);
        let total = Rc::new(Cell::new(0usize));
        let t2 = Rc::clone(&total);
        let g = spawn(move || loop {
            let n = (&*w2).write(&[7u8; 65536]).unwrap();
            t2.set(t2.get() + n);
        });
        sleep(20 * MS);
        g.kill();
        assert!(g.dead());
        let r3 = with_timeout(10 * MS, || (&*w).write(&[7u8; 65536]));
        assert!(
            r3.is_err(),
            "the pipe is full: the write blocks until the Timeout"
        );
        drop(w);
        let mut all = Vec::new();
        (&*r).read_to_end(&mut all).unwrap();
        assert_eq!(
            all.len(),
            total.get(),
            "what the writes reported is what arrived"
        );
    });
}

#[test]
fn process_waits_killed_and_timed_out() {
    scenario(|| {
        let child = Command::new("/bin/sh")
            .args(["-c", "exec sleep 30"])
            .spawn()
            .unwrap();
        let child = Rc::new(RefCell::new(child));
        // wait_timeout, plain and inside a shorter Timeout.
        assert!(child.borrow_mut().wait_timeout(20 * MS).unwrap().is_none());
        assert!(child
            .borrow_mut()
            .wait_timeout(Duration::ZERO)
            .unwrap()
            .is_none());
        let r = with_timeout(20 * MS, || {
            child.borrow_mut().wait_timeout(Duration::from_secs(30))
        });
        assert!(r.is_err());
        let r = with_timeout(20 * MS, || child.borrow_mut().wait());
        assert!(r.is_err());
        // A wait killed from another greenlet.
        let c2 = Rc::clone(&child);
        let g = spawn(move || {
            let _ = c2.borrow_mut().wait();
            unreachable!()
        });
        sleep(10 * MS);
        g.kill();
        assert!(g.dead());
        // Still waitable after all that.
        child.borrow_mut().kill().unwrap();
        let status = child.borrow_mut().wait().unwrap();
        assert!(!status.success());
        // wait_with_output killed: the stdout reader goes with it.
        let child = Command::new("/bin/sh")
            .args(["-c", "echo start; echo err >&2; exec sleep 30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let g = spawn(move || child.wait_with_output());
        sleep(30 * MS);
        g.kill();
        assert!(g.dead());
        // A child's stdout read killed.
        let mut child = Command::new("/bin/sh")
            .args(["-c", "exec sleep 30"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = child.stdout.take().unwrap();
        let g = spawn(move || {
            let _ = out.read(&mut [0u8; 64]);
            unreachable!()
        });
        sleep(10 * MS);
        g.kill();
        assert!(g.dead());
        child.kill().unwrap();
        child.wait().unwrap();
        // SAFETY: kill(2) with a pid we spawned (and whose Child was dropped
        // unreaped, so the pid is still ours); no memory involved.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
}

/// `wait_with_output` killed while the child has filled its stdout pipe:
/// the helper reader is killed too (nothing left parked on the pipe).
#[test]
fn wait_with_output_killed_leaves_no_reader_behind() {
    scenario(|| {
        let child = Command::new("/bin/sh")
            .args(["-c", "yes | head -c 10000000; exec sleep 30"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let g = spawn(move || child.wait_with_output().map(|o| o.stdout.len()));
        sleep(50 * MS);
        g.kill();
        assert!(g.dead());
        // Nothing else of ours runs: a hub with no greenlets waits no more.
        green_core::joinall::<green_core::Greenlet<()>>(&[]);
        // SAFETY: see process_waits_killed_and_timed_out.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
}

/// A kill landing while the target is already cancelling its op for a
/// Timeout; `kill_nowait` twice, then `kill`; `killall` over greenlets in
/// different ops.
#[test]
fn kill_while_the_target_is_cancelling() {
    scenario(|| {
        let (c, s) = tcp_pair();
        let s = Rc::new(s);
        for i in 0..60u64 {
            let s2 = Rc::clone(&s);
            let t = spawn(move || {
                let r = with_timeout(Duration::from_micros(50 * (i % 7)), || {
                    (&*s2).read(&mut [0u8; 8])
                });
                // The Timeout fired (or a kill ends us here, at the next
                // blocking point).
                let _ = r;
                sleep(Duration::from_secs(3600));
            });
            for _ in 0..(i % 5) {
                yield_now();
            }
            t.kill_nowait();
            t.kill_nowait();
            t.kill();
            assert!(t.dead());
        }
        // The socket is intact: nothing was read by all those readers.
        (&c).write_all(b"intact").unwrap();
        let mut buf = [0u8; 6];
        (&*s).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"intact");

        // killall over greenlets parked in six different ops.
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let u = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
        let (pr, _pw) = green_core::fs::pipe().unwrap();
        let pr = Rc::new(pr);
        let mut gs = Vec::new();
        {
            let s = Rc::clone(&s);
            gs.push(spawn(move || drop((&*s).read(&mut [0u8; 8]))));
        }
        {
            let l = Rc::clone(&l);
            gs.push(spawn(move || drop(l.accept())));
        }
        {
            let l = Rc::clone(&l);
            gs.push(spawn(move || drop(l.incoming().next())));
        }
        {
            let u = Rc::clone(&u);
            gs.push(spawn(move || drop(u.recv_from(&mut [0u8; 8]))));
        }
        {
            let pr = Rc::clone(&pr);
            gs.push(spawn(move || drop((&*pr).read(&mut [0u8; 8]))));
        }
        let mut child = Command::new("/bin/sh")
            .args(["-c", "exec sleep 30"])
            .spawn()
            .unwrap();
        let pid = child.id();
        gs.push(spawn(move || drop(child.wait())));
        sleep(20 * MS);
        assert!(gs.iter().all(|g| !g.dead()), "all parked");
        green_core::killall(&gs);
        assert!(gs.iter().all(|g| g.dead()));
        assert!(gs.iter().all(|g| g.exception().unwrap().is_exit()));
        // SAFETY: see process_waits_killed_and_timed_out.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
}

// ===== destructors and panics =====

/// A destructor that does socket I/O runs while its greenlet unwinds from a
/// kill: its write and read work (the kill is not raised again in there).
#[test]
fn drop_doing_socket_io_while_unwinding_from_a_kill() {
    scenario(|| {
        let (c, s) = tcp_pair();
        let done = Rc::new(Cell::new(false));
        let d2 = Rc::clone(&done);
        let g = spawn(move || {
            struct Bye(TcpStream, Rc<Cell<bool>>);
            impl Drop for Bye {
                fn drop(&mut self) {
                    (&self.0).write_all(b"bye").unwrap();
                    let mut ack = [0u8; 3];
                    (&self.0).read_exact(&mut ack).unwrap();
                    assert_eq!(&ack, b"ack");
                    self.1.set(true);
                }
            }
            let bye = Bye(s, d2);
            let mut buf = [0u8; 8];
            let _ = (&bye.0).read(&mut buf);
            unreachable!("killed while reading");
        });
        sleep(5 * MS);
        g.kill_nowait();
        let mut buf = [0u8; 3];
        (&c).read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"bye");
        (&c).write_all(b"ack").unwrap();
        g.join();
        assert!(done.get(), "the destructor finished its I/O");
        assert!(g.exception().unwrap().is_exit());
    });
}

/// A greenlet panics (an ordinary panic) while another reads the same
/// socket: the reader is unaffected.
#[test]
fn panic_in_one_greenlet_while_another_reads_the_same_socket() {
    scenario(|| {
        green_core::silence_failures();
        let (c, s) = tcp_pair();
        let s = Rc::new(s);
        let s2 = Rc::clone(&s);
        let reader = spawn(move || {
            let mut buf = [0u8; 5];
            (&*s2).read_exact(&mut buf).unwrap();
            buf
        });
        let s3 = Rc::clone(&s);
        let bad = spawn(move || {
            let _ = with_timeout(5 * MS, || s3.peek(&mut [0u8; 1]));
            panic!("handler bug");
        });
        bad.join();
        assert!(!bad.successful());
        (&c).write_all(b"hello").unwrap();
        assert_eq!(&reader.get().unwrap(), b"hello");
    });
}

/// The TcpStream is dropped while another greenlet is parked reading a
/// `try_clone` of it: the clone's read goes on and gets the data.
#[test]
fn dropping_a_stream_while_a_clone_is_parked_reading() {
    scenario(|| {
        let (c, s) = tcp_pair();
        let s2 = s.try_clone().unwrap();
        let reader = spawn(move || {
            let mut buf = [0u8; 4];
            (&s2).read_exact(&mut buf).unwrap();
            buf
        });
        sleep(5 * MS);
        drop(s);
        sleep(5 * MS);
        (&c).write_all(b"data").unwrap();
        assert_eq!(&reader.get().unwrap(), b"data");
        // Listener: accept parked on a clone while the original goes.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let l2 = l.try_clone().unwrap();
        let acc = spawn(move || l2.accept().map(|(s, _)| s.peer_addr().unwrap()));
        let l3 = l.try_clone().unwrap();
        let inc = spawn(move || {
            l3.incoming()
                .next()
                .unwrap()
                .map(|s| s.peer_addr().unwrap())
        });
        sleep(5 * MS);
        drop(l);
        let a = TcpStream::connect(addr).unwrap();
        let b = TcpStream::connect(addr).unwrap();
        acc.join();
        inc.join();
        let mut got = vec![acc.take().unwrap().unwrap(), inc.take().unwrap().unwrap()];
        got.sort();
        let mut want = vec![a.local_addr().unwrap(), b.local_addr().unwrap()];
        want.sort();
        assert_eq!(got, want);
    });
}

// ===== teardown mid-flight =====

/// `green_core::run` returns (and a bare thread exits) with greenlets
/// parked in every kind of op: no hang, their destructors run.
#[test]
fn teardown_with_ops_in_flight_does_not_hang() {
    for bare_thread in [false, true] {
        let body = move || {
            let drops = support::DropCounter::new();
            let (c, s) = tcp_pair();
            let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let u = Rc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let (pr, pw) = green_core::fs::pipe().unwrap();
            let (ud, _ud2) = UnixDatagram::pair().unwrap();
            let mut child = Command::new("/bin/sh")
                .args(["-c", "exec sleep 30"])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let cout = child.stdout.take().unwrap();
            let pid = child.id();
            let s = Rc::new(s);
            macro_rules! parked {
                ($($body:tt)*) => {{
                    let t = drops.token();
                    drop(spawn(move || { let _t = t; $($body)* }));
                }};
            }
            {
                let s = Rc::clone(&s);
                parked!(drop((&*s).read(&mut [0u8; 8])));
            }
            {
                let l = Rc::clone(&l);
                parked!(drop(l.accept()));
            }
            {
                let l = Rc::clone(&l);
                parked!(drop(l.incoming().next()));
            }
            {
                let u = Rc::clone(&u);
                parked!(drop(u.recv_from(&mut [0u8; 8])));
            }
            parked!(drop((&pr).read(&mut [0u8; 8])));
            parked!(drop((&pw).write(&vec![0u8; 1 << 20])));
            parked!(drop(ud.recv(&mut [0u8; 8])));
            parked!({
                let mut cout = cout;
                drop(cout.read(&mut [0u8; 8]))
            });
            parked!(drop(child.wait()));
            parked!({
                // A big write on a stream whose peer never reads.
                drop((&c).write_all(&vec![1u8; 32 << 20]))
            });
            sleep(30 * MS);
            (drops, pid)
        };
        let (drops, pid) = if bare_thread {
            within(LIMIT, move || {
                let (d, pid) = body();
                (d.drops(), pid)
            })
        } else {
            within(LIMIT, move || {
                let (d, pid) = green_core::run(body);
                (d.drops(), pid)
            })
        };
        // SAFETY: see process_waits_killed_and_timed_out.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        if !bare_thread {
            assert_eq!(
                drops, 10,
                "every parked greenlet was unwound by run's teardown"
            );
        }
    }
}

// ===== bad sizes and limits =====

#[test]
fn zero_length_and_many_iovec_requests() {
    scenario(|| {
        let (c, s) = tcp_pair();
        // Zero-length reads and writes return at once, on an idle socket.
        assert_eq!((&s).read(&mut []).unwrap(), 0);
        assert_eq!(s.peek(&mut []).unwrap(), 0);
        assert_eq!((&c).write(&[]).unwrap(), 0);
        let mut empties: Vec<IoSliceMut<'_>> = Vec::new();
        let mut bufs = [[0u8; 0]; 1024];
        for b in bufs.iter_mut() {
            empties.push(IoSliceMut::new(b));
        }
        assert_eq!((&s).read_vectored(&mut empties).unwrap(), 0);
        let slices: Vec<IoSlice<'_>> = (0..1024).map(|_| IoSlice::new(&[])).collect();
        assert_eq!((&c).write_vectored(&slices).unwrap(), 0);
        // 1024 one-byte iovecs (IOV_MAX): all written, all read back.
        let bytes: Vec<u8> = pattern(1024);
        let slices: Vec<IoSlice<'_>> = bytes.chunks(1).map(IoSlice::new).collect();
        let n = (&c).write_vectored(&slices).unwrap();
        assert_eq!(n, 1024);
        let mut back = vec![[0u8; 1]; 1024];
        let mut got = 0;
        while got < 1024 {
            let mut iov: Vec<IoSliceMut<'_>> =
                back[got..].iter_mut().map(|b| IoSliceMut::new(b)).collect();
            got += (&s).read_vectored(&mut iov).unwrap();
        }
        let flat: Vec<u8> = back.iter().map(|b| b[0]).collect();
        check_pattern(&flat, 1024);
        // 1025 iovecs: more than IOV_MAX is a clear error, not a hang.
        let one = [1u8];
        let slices: Vec<IoSlice<'_>> = (0..1025).map(|_| IoSlice::new(&one)).collect();
        let e = with_timeout(Duration::from_secs(5), || (&c).write_vectored(&slices))
            .expect("1025 iovecs hang")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE), "{e}");
        // UDP: an empty buffer takes (and truncates) one datagram.
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.send_to(b"xyz", u.local_addr().unwrap()).unwrap();
        let (n, from) = u.recv_from(&mut []).unwrap();
        assert_eq!((n, from), (0, tx.local_addr().unwrap()));
        assert_eq!(tx.send_to(&[], u.local_addr().unwrap()).unwrap(), 0);
        let (n, _) = u.recv_from(&mut [0u8; 4]).unwrap();
        assert_eq!(n, 0, "the empty datagram");
        // A UDP datagram bigger than the limit is a clear error.
        let huge = vec![0u8; 70_000];
        let e = tx.send_to(&huge, u.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMSGSIZE));
    });
}

#[test]
fn timeouts_zero_and_huge() {
    scenario(|| {
        let (c, s) = tcp_pair();
        for t in [&c, &s] {
            let e = t.set_read_timeout(Some(Duration::ZERO)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
            let e = t.set_write_timeout(Some(Duration::ZERO)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        }
        assert_eq!(s.read_timeout().unwrap(), None);
        // The largest timeouts: no overflow, a read still parks and a Timeout
        // still interrupts it.
        s.set_read_timeout(Some(Duration::MAX)).unwrap();
        assert!(s.read_timeout().unwrap().unwrap() >= Duration::from_secs(1 << 30));
        assert!(with_timeout(10 * MS, || (&s).read(&mut [0u8; 4])).is_err());
        s.set_read_timeout(Some(Duration::from_nanos(1))).unwrap();
        let e = (&s).read(&mut [0u8; 4]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        (&c).write_all(b"ok").unwrap();
        sleep(5 * MS);
        s.set_read_timeout(Some(Duration::from_nanos(1))).unwrap();
        // Data already there beats even a 1 ns timeout.
        let mut buf = [0u8; 2];
        let mut n = 0;
        for _ in 0..1000 {
            match (&s).read(&mut buf) {
                Ok(k) => {
                    n = k;
                    break;
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
        }
        assert_eq!(&buf[..n], b"ok");
        let addr = c.local_addr().unwrap();
        let e = TcpStream::connect_timeout(&addr, Duration::ZERO).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        let e = TcpStream::connect_timeout(&addr, Duration::from_nanos(1));
        // Either connected at once (it is loopback) or timed out: no panic.
        if let Err(e) = e {
            assert!(
                matches!(
                    e.kind(),
                    io::ErrorKind::TimedOut | io::ErrorKind::ConnectionRefused
                ),
                "{e}"
            );
        }
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        assert_eq!(
            u.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(
            a.set_read_timeout(Some(Duration::ZERO)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    });
}

#[test]
fn bad_addresses_paths_and_numbers_are_clear_errors() {
    scenario(|| {
        // Unix path too long, and with a NUL.
        let long = format!("/tmp/{}", "x".repeat(200));
        for e in [
            UnixListener::bind(&long).unwrap_err(),
            UnixStream::connect(&long).unwrap_err(),
            UnixDatagram::bind(&long).unwrap_err(),
            UnixDatagram::unbound()
                .unwrap()
                .send_to(b"x", &long)
                .unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        for e in [
            UnixListener::bind("/tmp/a\0b").unwrap_err(),
            UnixStream::connect("/tmp/a\0b").unwrap_err(),
            UnixDatagram::bind("/tmp/a\0b").unwrap_err(),
        ] {
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        }
        // A port in use.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = TcpListener::bind(l.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let e = UdpSocket::bind(u.local_addr().unwrap()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        // A unix path in use.
        let dir = tempdir();
        let p = dir.join("s");
        let _ul = UnixListener::bind(&p).unwrap();
        assert_eq!(
            UnixListener::bind(&p).unwrap_err().kind(),
            io::ErrorKind::AddrInUse
        );
        std::fs::remove_dir_all(&dir).unwrap();
        // Signal numbers.
        for n in [0, -1, 999, 65, i32::MIN, libc::SIGKILL, libc::SIGSTOP] {
            let e = green_core::signal::signal(n, || {}).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{n}: {e}");
        }
        // A missing program: NotFound, naming it.
        let e = Command::new("/nonexistent/green-review-12")
            .spawn()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("green-review-12"), "{e}");
        let e = Command::new("no-such-program-green-review-12")
            .output()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        let e = Command::new("/bin/sh")
            .current_dir("/nonexistent-dir-12")
            .status()
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("nonexistent-dir-12"), "{e}");
    });
}

// ===== listener state that outlives the listener =====

/// A listener is moved to another thread after its `incoming()` took more
/// connections off the backlog than were handed out, and is dropped there.
/// A new listener that reuses its descriptor number on the first thread
/// must not be handed the old listener's connections.
/// In a child process of its own: a test running beside it on another
/// thread would take the descriptor number first.
#[test]
fn a_listener_dropped_on_another_thread_leaves_no_queue_for_its_fd() {
    run_scenario("fd_reuse");
}

fn child_fd_reuse() {
    green_core::run(|| {
        let old = TcpListener::bind("127.0.0.1:0").unwrap();
        let old_addr = old.local_addr().unwrap();
        let old_fd = old.as_raw_fd();
        let clients: Vec<_> = (0..4)
            .map(|_| TcpStream::connect(old_addr).unwrap())
            .collect();
        sleep(10 * MS);
        let first = old.incoming().next().unwrap().unwrap();
        drop(first);
        // Hand the listener to a plain thread, which drops it.
        std::thread::spawn(move || drop(old)).join().unwrap();
        // A new listener; make it take the old descriptor number.
        let mut spare = Vec::new();
        let new = loop {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            if l.as_raw_fd() == old_fd {
                break l;
            }
            assert!(
                l.as_raw_fd() < old_fd + 64,
                "descriptor {old_fd} never reused"
            );
            spare.push(l);
        };
        let new_addr = new.local_addr().unwrap();
        let r = with_timeout(50 * MS, || new.accept());
        if let Ok(Ok((s, _))) = r {
            panic!(
                "the new listener on {new_addr} accepted a connection made to the old one \
                 ({}), which was dropped on another thread",
                s.local_addr().unwrap()
            );
        }
        drop(clients);
    });
}

// ===== child-process scenarios: descriptor counts, fork, RLIMIT_NOFILE =====

fn run_scenario(mode: &str) -> String {
    let out = support::run_child(CHILD_ENV, mode, CHILD_LIMIT);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "scenario {mode}: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
    let v = stdout_value(&out, "RESULT");
    assert_eq!(v, "ok", "stdout: {stdout}\nstderr: {stderr}");
    v
}

#[test]
fn teardown_leaks_no_descriptor() {
    run_scenario("teardown_fds");
}

#[test]
fn fork_with_ops_in_flight() {
    run_scenario("fork_in_flight");
}

#[test]
fn descriptor_exhaustion_is_a_clear_error_and_recoverable() {
    run_scenario("emfile");
}

#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    match mode.as_str() {
        "teardown_fds" => child_teardown_fds(),
        "fork_in_flight" => child_fork_in_flight(),
        "emfile" => child_emfile(),
        "fd_reuse" => child_fd_reuse(),
        other => panic!("unknown scenario {other}"),
    }
    println!("RESULT ok");
}

fn child_teardown_fds() {
    let before = open_fds();
    for _ in 0..3 {
        std::thread::spawn(|| {
            green_core::run(|| {
                let (c, s) = tcp_pair();
                let l = TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = l.local_addr().unwrap();
                // Connections the multishot accept took but nobody asked for.
                let _cs: Vec<_> = (0..6).map(|_| TcpStream::connect(addr).unwrap()).collect();
                let l = Rc::new(l);
                let l2 = Rc::clone(&l);
                drop(spawn(move || {
                    let mut it = l2.incoming();
                    let _first = it.next();
                    sleep(Duration::from_secs(3600));
                }));
                let s2 = s.try_clone().unwrap();
                drop(spawn(move || drop((&s2).read(&mut [0u8; 4]))));
                let (pr, _pw) = green_core::fs::pipe().unwrap();
                drop(spawn(move || drop((&pr).read(&mut [0u8; 4]))));
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                drop(spawn(move || drop(u.recv_from(&mut [0u8; 4]))));
                let child = Command::new("/bin/sh")
                    .args(["-c", "exit 0"])
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap();
                drop(spawn(move || drop(child.wait_with_output())));
                sleep(20 * MS);
                drop(c);
            });
        })
        .join()
        .unwrap();
    }
    // A bare thread's exit too.
    std::thread::spawn(|| {
        let (_c, s) = tcp_pair();
        drop(spawn(move || drop((&s).read(&mut [0u8; 4]))));
        sleep(5 * MS);
    })
    .join()
    .unwrap();
    let after = open_fds();
    assert_eq!(
        before, after,
        "descriptors leaked by teardown with ops in flight"
    );
}

fn child_fork_in_flight() {
    use green_core::os::{fork, wait_child, ForkResult};
    green_core::run(|| {
        let (c, s) = UnixStream::pair().unwrap();
        let got = Rc::new(RefCell::new(Vec::new()));
        let g2 = Rc::clone(&got);
        let s = Rc::new(s);
        let s2 = Rc::clone(&s);
        let reader = spawn(move || {
            let mut buf = [0u8; 64];
            loop {
                let n = (&*s2).read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                g2.borrow_mut().extend_from_slice(&buf[..n]);
            }
        });
        let (pr, _pw) = green_core::fs::pipe().unwrap();
        let pipe_reader = spawn(move || {
            let mut buf = [0u8; 8];
            (&pr).read(&mut buf)
        });
        sleep(10 * MS);
        match fork().unwrap() {
            ForkResult::Child => {
                // The parent's readers are gone here; the child has its own
                // loop and writes into the inherited socket.
                let code = {
                    let ok = catch(|| {
                        assert!(reader.dead());
                        assert!(pipe_reader.dead());
                        (&c).write_all(b"from child;").unwrap();
                        let (a, b) = UnixStream::pair().unwrap();
                        (&a).write_all(b"x").unwrap();
                        let mut one = [0u8; 1];
                        (&b).read_exact(&mut one).unwrap();
                        let r = with_timeout(5 * MS, || (&b).read(&mut one));
                        assert!(r.is_err());
                    });
                    i32::from(ok.is_err())
                };
                // SAFETY: _exit ends the child at once, skipping the parent's
                // atexit handlers and the test harness.
                unsafe { libc::_exit(code) };
            }
            ForkResult::Parent { child } => {
                let exit = wait_child(child).unwrap();
                assert_eq!(
                    exit,
                    green_core::os::ChildExit::Exited(0),
                    "the child failed"
                );
                (&c).write_all(b"from parent").unwrap();
                drop(c);
                reader.join();
                assert!(reader.successful());
                assert_eq!(&got.borrow()[..], b"from child;from parent");
                assert!(
                    !pipe_reader.dead(),
                    "the parent's pipe read is still parked"
                );
                pipe_reader.kill();
            }
        }
    });
}

fn child_emfile() {
    let limit = libc::rlimit {
        rlim_cur: 64,
        rlim_max: 64,
    };
    // SAFETY: setrlimit reads the struct it is given; this process is a
    // child scenario of its own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    green_core::run(|| {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let ul_dir = tempdir();
        // Use up the descriptors.
        let mut hog = Vec::new();
        loop {
            match std::fs::File::open("/dev/null") {
                Ok(f) => hog.push(f),
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(libc::EMFILE));
                    break;
                }
            }
        }
        // Each constructor: a clear error, not a hang or a panic.
        let e = TcpStream::connect(addr).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
        assert_eq!(
            UdpSocket::bind("127.0.0.1:0").unwrap_err().raw_os_error(),
            Some(libc::EMFILE)
        );
        assert!(UnixStream::pair().is_err());
        assert!(green_core::fs::pipe().is_err());
        // No descriptor for the pidfd: the wait falls back to polling.
        assert!(Command::new("/bin/true").status().unwrap().success());
        let e = Command::new("/bin/true")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_err();
        // The message names the cause; the errno itself is not kept
        // (`raw_os_error()` is None, unlike std's spawn error).
        assert!(e.to_string().contains("Too many open files"), "{e}");
        // A connection waiting while descriptors are out: accept reports
        // EMFILE and the listener stays usable.
        drop(hog.pop());
        let client = TcpStream::connect(addr).unwrap();
        let e = with_timeout(Duration::from_secs(5), || l.accept())
            .expect("accept with EMFILE hangs")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
        let e = with_timeout(Duration::from_secs(5), || l.incoming().next().unwrap())
            .expect("incoming with EMFILE hangs")
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
        drop(hog.pop());
        let (s, _) = with_timeout(Duration::from_secs(5), || l.accept())
            .expect("accept after EMFILE hangs")
            .unwrap();
        assert_eq!(s.peer_addr().unwrap(), client.local_addr().unwrap());
        drop(hog);
        // Back to normal.
        let c2 = TcpStream::connect(addr).unwrap();
        let mut it = l.incoming();
        let s2 = it.next().unwrap().unwrap();
        assert_eq!(s2.peer_addr().unwrap(), c2.local_addr().unwrap());
        std::fs::remove_dir_all(ul_dir).unwrap();
    });
}

/// A tty (a pty's master), which io_uring may hand to a worker thread that
/// blocks in `read`: a Timeout and a kill still end the read (the cancel
/// interrupts the worker: `EINTR`, which must not restart the op).
#[test]
fn tty_read_is_interruptible() {
    scenario(|| {
        // SAFETY: posix_openpt/grantpt/unlockpt take no pointers; the fd
        // returned is owned here.
        let master = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            assert!(fd >= 0, "posix_openpt: {}", io::Error::last_os_error());
            assert_eq!(libc::grantpt(fd), 0);
            assert_eq!(libc::unlockpt(fd), 0);
            OwnedFd::from_raw_fd(fd)
        };
        let tty = Rc::new(green_core::fs::GreenFd::from(master));
        let r = with_timeout(20 * MS, || (&*tty).read(&mut [0u8; 16]));
        assert!(r.is_err(), "the Timeout ends the tty read");
        let t2 = Rc::clone(&tty);
        let g = spawn(move || drop((&*t2).read(&mut [0u8; 16])));
        sleep(10 * MS);
        g.kill();
        assert!(g.dead());
    });
}
