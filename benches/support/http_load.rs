//! The load generator `benches/http.rs` falls back to when `wrk` cannot be
//! had: what `wrk -t1 -cN -dD --latency` does, from one std thread of the
//! bench.
//!
//! `connections` keep-alive connections, each in lockstep: it sends
//! `GET / HTTP/1.1` with a `Host`, waits for the whole reply (its head and
//! its `Content-Length` body), checks that it is a `200`, records the
//! latency, and sends the next request at once. Until the duration is
//! over; replies that come after it are not counted. Std sockets made
//! non-blocking under one edge-triggered epoll set through mio, as in
//! `support/echo_client.rs`: one `write` per request, one `epoll_wait` per
//! batch of ready replies.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

/// How long the generator waits for any reply before it gives up.
const STALL: Duration = Duration::from_secs(10);

/// What a run measured.
#[derive(Debug, Clone)]
pub(crate) struct LoadReport {
    /// Replies completed within the duration, per second.
    pub(crate) requests_per_second: f64,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    /// Requests given up as too slow (wrk's timeout; this generator has
    /// none short of a stall, which fails the run).
    pub(crate) timeouts: u64,
}

struct Conn {
    stream: MioStream,
    sent_at: Instant,
    received: Vec<u8>,
}

/// Loads the HTTP server at `addr` for `duration` over `connections`
/// keep-alive connections; an error says what went wrong (a refused
/// connection, a reply that is not `200`, a stall).
pub(crate) fn run(
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
) -> Result<LoadReport, String> {
    let request = format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes();
    let mut poll = Poll::new().map_err(|e| format!("epoll_create: {e}"))?;
    let mut conns = Vec::with_capacity(connections);
    for i in 0..connections {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
        stream
            .set_nodelay(true)
            .and_then(|()| stream.set_nonblocking(true))
            .map_err(|e| format!("socket options: {e}"))?;
        let mut stream = MioStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)
            .map_err(|e| format!("epoll_ctl: {e}"))?;
        conns.push(Conn {
            stream,
            sent_at: Instant::now(),
            received: Vec::with_capacity(512),
        });
    }
    let mut events = Events::with_capacity(connections.max(1));
    // Latencies in ns; a few million fit in tens of MB.
    let mut latencies: Vec<u64> = Vec::with_capacity(1 << 20);

    let start = Instant::now();
    let deadline = start + duration;
    for conn in &mut conns {
        send(conn, &request)?;
    }
    let mut in_flight = conns.len();
    while in_flight > 0 {
        match poll.poll(&mut events, Some(STALL)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(format!("epoll_wait: {e}")),
        }
        if events.is_empty() {
            return Err(format!("no reply in {STALL:?}: the server is stuck"));
        }
        for event in &events {
            let conn = &mut conns[event.token().0];
            if !receive(conn)? {
                continue;
            }
            let now = Instant::now();
            if now > deadline {
                in_flight -= 1;
                continue;
            }
            latencies.push((now - conn.sent_at).as_nanos() as u64);
            send(conn, &request)?;
        }
    }
    if latencies.is_empty() {
        return Err("no reply within the duration".into());
    }
    latencies.sort_unstable();
    let percentile = |p: f64| {
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        Duration::from_nanos(latencies[rank - 1])
    };
    Ok(LoadReport {
        requests_per_second: latencies.len() as f64 / duration.as_secs_f64(),
        p50: percentile(0.50),
        p99: percentile(0.99),
        timeouts: 0,
    })
}

fn send(conn: &mut Conn, request: &[u8]) -> Result<(), String> {
    conn.sent_at = Instant::now();
    match conn.stream.write(request) {
        Ok(n) if n == request.len() => Ok(()),
        // Lockstep keeps at most one small request in a socket buffer.
        other => Err(format!("a request did not go out whole: {other:?}")),
    }
}

/// Reads what has arrived; true when a whole reply is in (it is then
/// checked and dropped).
fn receive(conn: &mut Conn) -> Result<bool, String> {
    let mut chunk = [0_u8; 4096];
    loop {
        match conn.stream.read(&mut chunk) {
            Ok(0) => return Err("the server closed a keep-alive connection".into()),
            Ok(n) => conn.received.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
    let Some(head_end) = conn.received.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(false);
    };
    let head = String::from_utf8_lossy(&conn.received[..head_end]);
    if !head.starts_with("HTTP/1.1 200 ") && !head.starts_with("HTTP/1.0 200 ") {
        let status = head.lines().next().unwrap_or_default();
        return Err(format!("a reply that is not 200: {status:?}"));
    }
    let length: usize = head
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.trim().parse().ok())
        .ok_or("a reply without a Content-Length")?;
    let whole = head_end + 4 + length;
    if conn.received.len() < whole {
        return Ok(false);
    }
    if conn.received.len() > whole {
        return Err("bytes after the reply to the one request in flight".into());
    }
    conn.received.clear();
    Ok(true)
}
