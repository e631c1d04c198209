//! The load generator of `benches/net.rs`: one std thread that drives the
//! echo server under test, the same code whatever runtime serves.
//!
//! Included by `benches/net.rs` (`#[path]` module). It is deliberately
//! plain: std sockets made non-blocking and one edge-triggered epoll set
//! through mio, no runtime of its own, so that every subject is loaded by
//! exactly the same syscalls (one `write` per request, one `epoll_wait` per
//! batch of ready replies, one `read` per reply).
//!
//! Requests and replies are [`MSG`] bytes. Each connection is in lockstep:
//! it has at most one request in flight, and sends the next only once the
//! whole reply to the previous one is back and checked. So at most 64 bytes
//! are ever queued in either direction of a connection, and a write never
//! blocks or comes back short.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

/// Size of a request and of its reply.
pub(crate) const MSG: usize = 64;

/// How long the client waits for any reply before it gives up: a server
/// that stops answering fails the bench instead of hanging it.
const STALL: Duration = Duration::from_secs(10);

/// One connection of the client.
struct Conn {
    stream: MioStream,
    /// The request in flight (its first byte numbers it).
    sent: [u8; MSG],
    /// The reply read so far.
    reply: [u8; MSG],
    got: usize,
    /// Requests this connection has sent.
    seq: u8,
}

impl Conn {
    /// Sends the next request.
    fn send(&mut self) {
        self.seq = self.seq.wrapping_add(1);
        self.sent[0] = self.seq;
        match self.stream.write(&self.sent) {
            Ok(MSG) => {}
            // Lockstep keeps at most one message in a socket buffer of
            // kilobytes, so anything else is a broken connection.
            other => panic!("echo client: a {MSG}-byte write did not go out whole: {other:?}"),
        }
    }

    /// Reads what has arrived of the reply; true when it is complete.
    fn receive(&mut self) -> bool {
        while self.got < MSG {
            match self.stream.read(&mut self.reply[self.got..]) {
                Ok(0) => panic!("echo client: the server closed a connection mid-run"),
                Ok(n) => self.got += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => panic!("echo client: read failed: {e}"),
            }
        }
        assert!(
            self.reply == self.sent,
            "echo client: the reply differs from the request"
        );
        self.got = 0;
        true
    }
}

/// `n` connections to an echo server, driven from the calling thread.
pub(crate) struct EchoClient {
    poll: Poll,
    events: Events,
    conns: Vec<Conn>,
    /// Requests answered over the client's life.
    answered: u64,
}

impl EchoClient {
    /// Opens `n` connections to `addr` (blocking connects, then switched to
    /// non-blocking and registered for readability).
    pub(crate) fn connect(addr: SocketAddr, n: usize) -> io::Result<EchoClient> {
        let poll = Poll::new()?;
        let mut conns = Vec::with_capacity(n);
        for i in 0..n {
            let stream = TcpStream::connect(addr)?;
            stream.set_nodelay(true)?;
            stream.set_nonblocking(true)?;
            let mut stream = MioStream::from_std(stream);
            poll.registry()
                .register(&mut stream, Token(i), Interest::READABLE)?;
            conns.push(Conn {
                stream,
                sent: [0x5a; MSG],
                reply: [0; MSG],
                got: 0,
                seq: 0,
            });
        }
        Ok(EchoClient {
            poll,
            events: Events::with_capacity(n.max(1)),
            conns,
            answered: 0,
        })
    }

    /// Requests answered so far, over every [`EchoClient::run`].
    pub(crate) fn answered(&self) -> u64 {
        self.answered
    }

    /// Makes `requests` request/reply round trips, spread over the
    /// connections: each starts with one request and sends its next as soon
    /// as its reply is in, until `requests` have been sent; returns when all
    /// are answered (every connection then idle).
    pub(crate) fn run(&mut self, requests: u64) {
        let mut sent = 0_u64;
        let mut answered = 0_u64;
        for conn in &mut self.conns {
            if sent == requests {
                break;
            }
            conn.send();
            sent += 1;
        }
        while answered < requests {
            match self.poll.poll(&mut self.events, Some(STALL)) {
                Ok(()) => {}
                // A signal (the runtimes' own threads start and stop around
                // this client) is not a stall: wait again.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => panic!("echo client: epoll_wait: {e}"),
            }
            assert!(
                !self.events.is_empty(),
                "echo client: no reply in {STALL:?}; the server is stuck"
            );
            for event in &self.events {
                let conn = &mut self.conns[event.token().0];
                if conn.receive() {
                    answered += 1;
                    if sent < requests {
                        conn.send();
                        sent += 1;
                    }
                }
            }
        }
        self.answered += answered;
    }
}

/// One short-lived connection: connect, one request/reply, then wait for the
/// server to close first (so that the server's side keeps the TIME_WAIT
/// state and the client's ephemeral ports are free again at once, which a
/// long run of connects needs), then close. Blocking std calls throughout.
pub(crate) fn connect_echo_close(addr: SocketAddr) {
    let mut stream = TcpStream::connect(addr).expect("echo client: connect");
    stream.set_nodelay(true).expect("echo client: TCP_NODELAY");
    stream
        .set_read_timeout(Some(STALL))
        .expect("echo client: read timeout");
    let request = [0xa5_u8; MSG];
    stream.write_all(&request).expect("echo client: write");
    let mut reply = [0_u8; MSG];
    stream
        .read_exact(&mut reply)
        .expect("echo client: read the reply");
    assert!(
        reply == request,
        "echo client: the reply differs from the request"
    );
    let mut end = [0_u8; 1];
    let n = stream
        .read(&mut end)
        .expect("echo client: wait for the server's close");
    assert_eq!(n, 0, "echo client: the server sent more than the reply");
}
