//! `examples/http_hello.rs`: its parser, and its server over real sockets
//! driven by std clients (keep-alive, pipelining, HTTP/1.0,
//! `Connection: close`, refused requests), and its bounded run.
//!
//! The example is compiled into this test as a module, so what is tested is
//! the code `cargo run --example http_hello` runs.

// The example's `main` and its command-line parsing are used by the example
// binary, not by every test here.
#[allow(dead_code)]
#[path = "../examples/http_hello.rs"]
mod http_hello;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use http_hello::{
    asks_for_help, format_http_date, parse_head, serve, Config, Connection, Head, Method, Status,
    BODY, MAX_HEAD,
};

/// How long a client waits for a reply before the test fails (generous: the
/// machine may be loaded).
const PATIENCE: Duration = Duration::from_secs(20);

// ===== the command line =====

#[test]
fn help_is_answered_wherever_it_is_asked() {
    let args = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert!(asks_for_help(args(&["--help"])));
    assert!(asks_for_help(args(&["--threads", "2", "-h"])));
    assert!(!asks_for_help(args(&["--threads", "2"])));
    // Without the check, `--help` is an unknown argument.
    assert!(Config::parse(args(&["--help"])).is_err());
}

// ===== the parser =====

#[test]
fn parses_a_minimal_get() {
    let request = b"GET /any/path?q=1 HTTP/1.1\r\nHost: example\r\n\r\n";
    assert_eq!(
        parse_head(request),
        Ok(Some(Head {
            len: request.len(),
            method: Method::Get,
            http10: false,
            keep_alive: true,
            content_length: 0,
        }))
    );
}

#[test]
fn an_unfinished_head_asks_for_more() {
    let request = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n";
    for cut in 0..request.len() {
        assert_eq!(parse_head(&request[..cut]), Ok(None), "cut at {cut}");
    }
}

#[test]
fn keep_alive_follows_the_version_and_the_connection_header() {
    let keep = |request: &[u8]| parse_head(request).unwrap().unwrap().keep_alive;
    assert!(keep(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert!(!keep(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ));
    assert!(!keep(
        b"GET / HTTP/1.1\r\nHost: h\r\nconnection: Upgrade, CLOSE\r\n\r\n"
    ));
    assert!(!keep(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(keep(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
    assert!(!keep(
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    ));
}

#[test]
fn refuses_what_is_not_http_1() {
    let cases: &[(&[u8], Status)] = &[
        (b"GARBAGE\r\n\r\n", Status::BadRequest),
        (b"\x16\x03\x01\x02\x00", Status::BadRequest), // a TLS hello, refused before any LF
        (b"GET /\r\n\r\n", Status::BadRequest),
        (b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", Status::BadRequest),
        (b"GET / HTTP/1.1\nHost: h\n\n", Status::BadRequest),
        (b"GET / HTTP/1.1\r\n\r\n", Status::BadRequest), // no Host
        (
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            Status::BadRequest,
        ),
        (b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", Status::BadRequest),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
            Status::BadRequest,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: x\r\n\r\n",
            Status::BadRequest,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            Status::BadRequest,
        ),
        (
            b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
            Status::VersionNotSupported,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
            Status::NotImplemented,
        ),
    ];
    for (request, status) in cases {
        assert_eq!(
            parse_head(request),
            Err(*status),
            "{:?}",
            String::from_utf8_lossy(request)
        );
    }
}

#[test]
fn one_read_of_pipelined_requests_gives_one_batch_of_replies() {
    let mut conn = Connection::new();
    let request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut bytes = request.repeat(5);
    bytes.extend_from_slice(&request[..10]); // the start of a sixth
    conn.unfilled()[..bytes.len()].copy_from_slice(&bytes);
    let batch = conn.received(bytes.len());
    assert_eq!(batch.answered, 5);
    assert!(!batch.close);
    let replies = parse_replies(conn.replies(), &[false; 5]);
    assert!(replies
        .iter()
        .all(|r| r.status == 200 && r.body == BODY && r.header("connection").is_none()));

    // The rest of the sixth completes it.
    let rest = &request[10..];
    conn.unfilled()[..rest.len()].copy_from_slice(rest);
    assert_eq!(conn.received(rest.len()).answered, 1);
    assert_eq!(parse_replies(conn.replies(), &[false]).len(), 1);
}

#[test]
fn a_body_is_skipped_even_across_reads() {
    let mut conn = Connection::new();
    let first = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n01234";
    conn.unfilled()[..first.len()].copy_from_slice(first);
    assert_eq!(conn.received(first.len()).answered, 1);
    let replies = parse_replies(conn.replies(), &[false]);
    assert_eq!(replies[0].status, 405);
    assert_eq!(replies[0].header("allow"), Some("GET, HEAD"));

    let second = b"56789GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    conn.unfilled()[..second.len()].copy_from_slice(second);
    assert_eq!(conn.received(second.len()).answered, 1);
    assert_eq!(parse_replies(conn.replies(), &[false])[0].status, 200);
}

#[test]
fn formats_the_date_header() {
    let date = |seconds| String::from_utf8(format_http_date(seconds).to_vec()).unwrap();
    assert_eq!(date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    // RFC 9110's example.
    assert_eq!(date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    // A leap day, the last second of a leap year, and a century that is
    // not a leap year.
    assert_eq!(date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(date(978_307_199), "Sun, 31 Dec 2000 23:59:59 GMT");
    assert_eq!(date(4_107_542_400), "Mon, 01 Mar 2100 00:00:00 GMT");
}

#[test]
fn parses_the_command_line() {
    let parse = |args: &[&str]| Config::parse(args.iter().map(|s| s.to_string()));
    let config = parse(&[
        "--addr",
        "127.0.0.1:0",
        "--threads",
        "3",
        "--requests",
        "7",
        "--duration",
        "1.5",
    ])
    .unwrap();
    assert_eq!(config.addr, "127.0.0.1:0");
    assert_eq!(config.threads, 3);
    assert_eq!(config.requests, Some(7));
    assert_eq!(config.duration, Some(Duration::from_millis(1500)));
    assert_eq!(parse(&[]).unwrap().threads, 1);
    assert!(parse(&["--threads", "0"])
        .unwrap_err()
        .contains("--threads"));
    assert!(parse(&["--requests"])
        .unwrap_err()
        .contains("needs a value"));
    assert!(parse(&["--bogus"]).unwrap_err().contains("--bogus"));
}

// ===== the server over sockets =====

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    with_server(2, |addr| {
        let mut client = Client::connect(addr);
        for _ in 0..3 {
            client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
            let reply = client.reply(false);
            assert_eq!(reply.status, 200);
            assert_eq!(reply.body, BODY);
            assert_eq!(reply.header("content-length"), Some("13"));
            assert!(reply.header("date").is_some_and(|d| d.ends_with(" GMT")));
        }
        client.send(b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n");
        let reply = client.reply(true);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-length"), Some("13"));
        assert!(reply.body.is_empty());
        // Still open: one more round trip.
        client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(client.reply(false).status, 200);
    });
}

#[test]
fn pipelined_requests_are_all_answered_in_order() {
    with_server(1, |addr| {
        let mut client = Client::connect(addr);
        let mut burst = Vec::new();
        for i in 0..50 {
            let method: &[u8] = if i % 5 == 4 { b"HEAD" } else { b"GET" };
            burst.extend_from_slice(method);
            burst.extend_from_slice(b" / HTTP/1.1\r\nHost: h\r\n\r\n");
        }
        client.send(&burst);
        for i in 0..50 {
            let head = i % 5 == 4;
            let reply = client.reply(head);
            assert_eq!(reply.status, 200, "reply {i}");
            assert_eq!(reply.body.is_empty(), head, "reply {i}");
        }
        // The same burst trickled in small pieces.
        for piece in burst.chunks(7) {
            client.send(piece);
        }
        for i in 0..50 {
            assert_eq!(client.reply(i % 5 == 4).status, 200, "reply {i}");
        }
    });
}

#[test]
fn http_1_0_closes_unless_asked_to_keep_alive() {
    with_server(1, |addr| {
        let mut client = Client::connect(addr);
        client.send(b"GET / HTTP/1.0\r\n\r\n");
        let reply = client.reply(false);
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("connection"), Some("close"));
        client.expect_end();

        let mut client = Client::connect(addr);
        for _ in 0..2 {
            client.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
            let reply = client.reply(false);
            assert_eq!(reply.status, 200);
            assert_eq!(reply.header("connection"), Some("keep-alive"));
        }
    });
}

#[test]
fn connection_close_ends_after_its_reply() {
    with_server(1, |addr| {
        let mut client = Client::connect(addr);
        // The request after the closing one is never answered.
        client.send(
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\
              GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n\
              GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        );
        assert_eq!(client.reply(false).header("connection"), None);
        let last = client.reply(false);
        assert_eq!(last.status, 200);
        assert_eq!(last.header("connection"), Some("close"));
        client.expect_end();
    });
}

#[test]
fn garbage_is_answered_400_and_closed() {
    with_server(1, |addr| {
        let mut client = Client::connect(addr);
        client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGARBAGE\r\n\r\n");
        assert_eq!(client.reply(false).status, 200);
        let refused = client.reply(false);
        assert_eq!(refused.status, 400);
        assert_eq!(refused.header("connection"), Some("close"));
        client.expect_end();

        // Binary garbage without any line end is refused at once.
        let mut client = Client::connect(addr);
        client.send(b"\x16\x03\x01\x00\xa5\x01\x00\x00");
        assert_eq!(client.reply(false).status, 400);
        client.expect_end();

        let mut client = Client::connect(addr);
        client.send(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(client.reply(false).status, 400, "no Host");
        client.expect_end();
    });
}

#[test]
fn an_oversized_head_is_answered_431() {
    with_server(1, |addr| {
        let mut client = Client::connect(addr);
        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Filler: ".to_vec();
        request.resize(MAX_HEAD + 100, b'a');
        // The server refuses once its buffer is full; the rest of what was
        // sent is read and dropped while it closes, so the reply survives.
        client.send(&request);
        assert_eq!(client.reply(false).status, 431);
        client.expect_end();

        // A head just under the limit is served.
        let mut client = Client::connect(addr);
        let mut request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Filler: ".to_vec();
        request.resize(MAX_HEAD - 4, b'a');
        request.extend_from_slice(b"\r\n\r\n");
        client.send(&request);
        assert_eq!(client.reply(false).status, 200);
    });
}

#[test]
fn other_methods_and_versions_are_refused_by_name() {
    with_server(1, |addr| {
        let mut client = Client::connect(addr);
        client.send(b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello");
        let reply = client.reply(false);
        assert_eq!(reply.status, 405);
        // The body was skipped: the connection goes on.
        client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(client.reply(false).status, 200);

        client.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(client.reply(false).status, 501);
        client.expect_end();

        let mut client = Client::connect(addr);
        client.send(b"GET / HTTP/3.0\r\nHost: h\r\n\r\n");
        assert_eq!(client.reply(false).status, 505);
        client.expect_end();
    });
}

#[test]
fn a_bounded_run_ends_by_itself_after_its_requests() {
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let config = Config {
            addr: "127.0.0.1:0".to_owned(),
            threads: 2,
            requests: Some(4),
            // Only a backstop: the requests end the run long before.
            duration: Some(Duration::from_secs(120)),
        };
        green_core::run(|| http_hello::run(&config, |addr| tx.send(addr).unwrap()))
    });
    let addr = rx.recv_timeout(PATIENCE).expect("the server listens");
    for _ in 0..2 {
        let mut client = Client::connect(addr);
        client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
        assert_eq!(client.reply(false).status, 200);
        assert_eq!(client.reply(false).status, 200);
    }
    let answered = server.join().expect("the server thread").expect("the run");
    assert_eq!(answered, Some(4));
}

// ===== helpers =====

/// Runs `body` against servers on `threads` threads, then stops them and
/// checks that no thread failed.
fn with_server(threads: usize, body: impl FnOnce(SocketAddr)) {
    let servers = serve("127.0.0.1:0", threads, None).expect("the servers start");
    body(servers.local_addr());
    for outcome in servers.stop(Duration::from_secs(1)) {
        outcome.expect("a server thread ended in error");
    }
}

/// A blocking std client that reads replies one by one.
struct Client {
    stream: TcpStream,
    received: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            received: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next reply; `head` when it answers a HEAD (no body follows).
    fn reply(&mut self, head: bool) -> Reply {
        loop {
            if let Some((reply, len)) = parse_reply(&self.received, head) {
                self.received.drain(..len);
                return reply;
            }
            let mut chunk = [0; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .expect("a reply before the timeout");
            assert!(
                n > 0,
                "the server closed before a whole reply; got {:?}",
                String::from_utf8_lossy(&self.received)
            );
            self.received.extend_from_slice(&chunk[..n]);
        }
    }

    /// Checks that the server closed the connection with nothing more to
    /// say (an orderly end, not a reset).
    fn expect_end(mut self) {
        let mut rest = Vec::new();
        self.stream
            .read_to_end(&mut rest)
            .expect("an orderly end, not a reset or a timeout");
        self.received.extend_from_slice(&rest);
        assert!(
            self.received.is_empty(),
            "bytes after the last reply: {:?}",
            String::from_utf8_lossy(&self.received)
        );
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A whole reply at the start of `data` and its length, or `None` if it is
/// not all there; panics on a malformed one.
fn parse_reply(data: &[u8], head: bool) -> Option<(Reply, usize)> {
    let end = data.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let text = std::str::from_utf8(&data[..end - 4]).expect("an ASCII head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    assert!(status_line.starts_with("HTTP/1.1 "), "{status_line:?}");
    let status = status_line[9..12].parse().expect("a status code");
    let headers: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').expect("a header line");
            (name.to_owned(), value.trim().to_owned())
        })
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse().expect("a Content-Length"))
        .expect("every reply has a Content-Length");
    let body_len = if head { 0 } else { length };
    if data.len() < end + body_len {
        return None;
    }
    let body = data[end..end + body_len].to_vec();
    Some((
        Reply {
            status,
            headers,
            body,
        },
        end + body_len,
    ))
}

/// Every reply in `data`, which must hold exactly one per entry of `heads`.
fn parse_replies(data: &[u8], heads: &[bool]) -> Vec<Reply> {
    let mut replies = Vec::new();
    let mut at = 0;
    for &head in heads {
        let (reply, len) = parse_reply(&data[at..], head).expect("a whole reply");
        replies.push(reply);
        at += len;
    }
    assert_eq!(at, data.len(), "more replies than expected");
    replies
}
