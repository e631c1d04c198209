//! A minimal HTTP/1.1 server on green's threads: `green_pool::serve_threads`
//! runs one hub per OS thread, each with its own `SO_REUSEPORT` listener,
//! and a greenlet per connection answers every request with
//! `Hello, World!`.
//!
//! ```text
//! cargo run --release --example http_hello                      # 127.0.0.1:8080, one thread, until killed
//! cargo run --release --example http_hello -- --threads 2       # two hubs on two threads
//! cargo run --release --example http_hello -- --addr 127.0.0.1:0 --requests 1000   # stop after 1000 answers
//! cargo run --release --example http_hello -- --duration 10     # stop after 10 s
//! ```
//!
//! Try it with `curl -v http://127.0.0.1:8080/` or
//! `wrk -t1 -c64 -d5s http://127.0.0.1:8080/`; `cargo bench --bench http`
//! measures it beside hyper on tokio and gevent's `pywsgi`.
//!
//! The connection loop is blocking-style code: read, answer every complete
//! request the read brought (pipelined requests are answered together, in
//! one write), repeat. It parses as much of HTTP/1.x as a correct server
//! must for an endpoint without a body of its own:
//!
//! * the request line (`METHOD SP target SP HTTP/1.x`) and the header lines,
//!   CRLF-terminated; anything else is answered `400 Bad Request` and the
//!   connection closed (as are a missing `Host` in HTTP/1.1, a repeated
//!   `Host`, and a malformed or conflicting `Content-Length`);
//! * keep-alive: HTTP/1.1 keeps the connection unless the request says
//!   `Connection: close`; HTTP/1.0 closes it unless it says
//!   `Connection: keep-alive`;
//! * a request head longer than [`MAX_HEAD`] bytes is answered
//!   `431 Request Header Fields Too Large`; a `Transfer-Encoding` (which the
//!   server does not decode) `501 Not Implemented`; another HTTP major
//!   version `505`; all of them close the connection;
//! * `GET` and `HEAD` (for any path) are answered `200 OK`, other methods
//!   `405 Method Not Allowed`; a request's `Content-Length` body is read
//!   and dropped, so the next request is found after it.
//!
//! In the steady state a request allocates nothing: each connection owns
//! one read buffer and one reply buffer, reused for every request, and the
//! `Date` header is formatted once per second.

use std::convert::Infallible;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use green_core::net::TcpStream;
use green_core::sync::{AsyncResult, RemoteSetter};
use green_pool::{serve_threads, ServerOptions, ServerThreads};

/// The longest request head (request line and headers) a connection
/// accepts; it is also the size of each connection's read buffer.
pub(crate) const MAX_HEAD: usize = 8 * 1024;

/// The body of every `200 OK`.
pub(crate) const BODY: &[u8] = b"Hello, World!";

/// How long a closing connection waits for the peer to finish sending
/// (see [`close_gracefully`]).
const LINGER: Duration = Duration::from_secs(2);

/// How many bytes a closing connection reads and drops at most while it
/// waits for the peer's end.
const LINGER_BYTES: usize = 64 * 1024;

/// The grace period a bounded run gives the open connections at its end.
const STOP_GRACE: Duration = Duration::from_millis(200);

const USAGE: &str = "usage: http_hello [--addr HOST:PORT] [--threads N] [--requests N] \
                     [--duration SECONDS]";

fn main() {
    if asks_for_help(std::env::args().skip(1)) {
        println!("{HELP}\n{USAGE}");
        return;
    }
    let config = match Config::parse(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("http_hello: {message}\n{USAGE}");
            std::process::exit(2);
        }
    };
    let outcome = green_core::run(|| {
        run(&config, |addr| {
            println!(
                "http_hello listening on {addr} (http://{addr}/), {} thread(s)",
                config.threads
            );
        })
    });
    match outcome {
        Ok(Some(answered)) => println!("http_hello: answered {answered} requests"),
        Ok(None) => println!("http_hello: stopped"),
        Err(error) => {
            eprintln!("http_hello: {error}");
            std::process::exit(1);
        }
    }
}

// ===== the command line and the run =====

/// What `--help` prints above [`USAGE`].
const HELP: &str = "http_hello: a keep-alive HTTP/1.1 server answering every GET with \
                    \"Hello, World!\", one hub per --threads (default 1), on 127.0.0.1:8080 \
                    unless --addr says otherwise; it runs until killed, until it has answered --requests \
                    requests, or for --duration seconds.";

/// Whether the arguments ask for the help text (`--help` or `-h` anywhere).
pub(crate) fn asks_for_help(args: impl IntoIterator<Item = String>) -> bool {
    args.into_iter().any(|arg| arg == "--help" || arg == "-h")
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    pub(crate) addr: String,
    pub(crate) threads: usize,
    /// Stop once this many requests were answered.
    pub(crate) requests: Option<u64>,
    /// Stop after this long.
    pub(crate) duration: Option<Duration>,
}

impl Config {
    /// The configuration for `args` (the program's arguments without its
    /// name), or a sentence saying what is wrong with them.
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Config, String> {
        let mut config = Config {
            addr: "127.0.0.1:8080".to_owned(),
            threads: 1,
            requests: None,
            duration: None,
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
            match flag.as_str() {
                "--addr" => config.addr = value()?,
                "--threads" => {
                    config.threads = match value()?.parse() {
                        Ok(n) if n > 0 => n,
                        _ => return Err("--threads takes a whole number of at least 1".into()),
                    }
                }
                "--requests" => {
                    config.requests = match value()?.parse() {
                        Ok(n) if n > 0 => Some(n),
                        _ => return Err("--requests takes a whole number of at least 1".into()),
                    }
                }
                "--duration" => {
                    config.duration = match value()?.parse::<f64>() {
                        Ok(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
                        _ => return Err("--duration takes a positive number of seconds".into()),
                    }
                }
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        Ok(config)
    }
}

/// Counts the requests answered by every thread of a run bounded by
/// `--requests`, and tells the main greenlet when the count is reached.
pub(crate) struct Budget {
    limit: u64,
    answered: AtomicU64,
    reached: Mutex<Option<RemoteSetter<(), Infallible>>>,
}

impl Budget {
    fn spend(&self, answered: u64) {
        let before = self.answered.fetch_add(answered, Ordering::Relaxed);
        if before < self.limit && before + answered >= self.limit {
            let setter = self
                .reached
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(setter) = setter {
                // The main hub is gone only when the run is over anyway.
                let _ = setter.set(());
            }
        }
    }
}

/// Starts the servers: `threads` hubs on `addr`, each answering its
/// connections with [`serve_connection`]. Answers are counted only when a
/// `budget` is given.
pub(crate) fn serve(
    addr: &str,
    threads: usize,
    budget: Option<Arc<Budget>>,
) -> io::Result<ServerThreads> {
    serve_threads(addr, threads, ServerOptions::new(), move |stream, _peer| {
        serve_connection(stream, budget.as_deref())
    })
}

/// Serves as `config` says, calling `listening` with the address once every
/// thread listens, until the run's bound (none: until the threads end).
/// Returns how many requests were answered when `--requests` counted them.
///
/// Called from a greenlet: it waits greenly.
pub(crate) fn run(config: &Config, listening: impl FnOnce(SocketAddr)) -> io::Result<Option<u64>> {
    let reached: AsyncResult<(), Infallible> = AsyncResult::new();
    let budget = config.requests.map(|limit| {
        Arc::new(Budget {
            limit,
            answered: AtomicU64::new(0),
            reached: Mutex::new(Some(reached.remote_setter())),
        })
    });
    let servers = serve(&config.addr, config.threads, budget.clone())?;
    listening(servers.local_addr());
    let outcomes = match (config.requests, config.duration) {
        (None, None) => servers.join(),
        (Some(_), None) => {
            reached.wait();
            servers.stop(STOP_GRACE)
        }
        (Some(_), Some(duration)) => {
            reached.wait_timeout(duration);
            servers.stop(STOP_GRACE)
        }
        (None, Some(duration)) => {
            green_core::sleep(duration);
            servers.stop(STOP_GRACE)
        }
    };
    for outcome in outcomes {
        if let Err(why) = outcome {
            return Err(io::Error::other(format!("a server thread failed: {why}")));
        }
    }
    Ok(budget.map(|b| b.answered.load(Ordering::Relaxed)))
}

// ===== one connection =====

/// Serves one connection until the peer closes it, a request asks to close
/// it, or the peer sends what is not HTTP/1.x.
pub(crate) fn serve_connection(mut stream: TcpStream, budget: Option<&Budget>) -> io::Result<()> {
    // Each batch of replies is one write that the peer waits for.
    stream.set_nodelay(true)?;
    let mut conn = Connection::new();
    loop {
        let read = stream.read(conn.unfilled())?;
        if read == 0 {
            // The peer is done (a request it cut short is dropped).
            return Ok(());
        }
        let batch = conn.received(read);
        if !conn.replies().is_empty() {
            stream.write_all(conn.replies())?;
        }
        if let Some(budget) = budget {
            if batch.answered > 0 {
                budget.spend(batch.answered);
            }
        }
        if batch.close {
            close_gracefully(&stream, conn.scratch());
            return Ok(());
        }
    }
}

/// Ends a connection the server closes first without losing the last
/// replies: closing a socket that still has unread bytes makes the kernel
/// send a reset, which can destroy replies the peer has not read yet. So
/// the server only shuts its sending side (the peer sees the end after the
/// replies), then reads and drops what the peer still sends until the peer
/// closes too, for at most [`LINGER`] and [`LINGER_BYTES`].
fn close_gracefully(stream: &TcpStream, scratch: &mut [u8]) {
    // Errors mean the peer is gone already: nothing more to protect.
    if stream.shutdown(Shutdown::Write).is_err() || stream.set_read_timeout(Some(LINGER)).is_err() {
        return;
    }
    let mut dropped = 0;
    let mut reader = stream;
    while dropped < LINGER_BYTES {
        match reader.read(scratch) {
            Ok(0) | Err(_) => return,
            Ok(n) => dropped += n,
        }
    }
}

/// What one read led to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Batch {
    /// Requests answered (error replies not counted).
    pub(crate) answered: u64,
    /// The connection ends after the replies.
    pub(crate) close: bool,
}

/// The protocol side of one connection, without the socket: the bytes
/// received and not yet parsed, and the replies to send. [`serve_connection`]
/// reads into [`unfilled`](Connection::unfilled), calls
/// [`received`](Connection::received) and writes
/// [`replies`](Connection::replies).
pub(crate) struct Connection {
    /// Received bytes; `buf[start..end]` are not parsed yet.
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    /// Bytes of the last request's body still to be dropped.
    body_left: u64,
    /// The replies to the last batch.
    replies: Vec<u8>,
    date: HttpDate,
}

impl Default for Connection {
    fn default() -> Self {
        Connection::new()
    }
}

impl Connection {
    pub(crate) fn new() -> Connection {
        Connection {
            buf: vec![0; MAX_HEAD].into_boxed_slice(),
            start: 0,
            end: 0,
            body_left: 0,
            replies: Vec::with_capacity(1024),
            date: HttpDate::new(),
        }
    }

    /// Where the next read goes; never empty (a full buffer of one
    /// unfinished head is answered 431 and closes the connection).
    pub(crate) fn unfilled(&mut self) -> &mut [u8] {
        &mut self.buf[self.end..]
    }

    /// The whole read buffer, for a connection that is closing and
    /// parses no more.
    pub(crate) fn scratch(&mut self) -> &mut [u8] {
        self.start = 0;
        self.end = 0;
        &mut self.buf
    }

    /// The replies to the last batch, to be sent in one write.
    pub(crate) fn replies(&self) -> &[u8] {
        &self.replies
    }

    /// Takes `read` new bytes (just read into [`unfilled`]) and answers
    /// every request they complete.
    ///
    /// [`unfilled`]: Connection::unfilled
    pub(crate) fn received(&mut self, read: usize) -> Batch {
        debug_assert!(read <= self.buf.len() - self.end);
        self.end += read;
        self.replies.clear();
        self.date.refresh();
        let mut batch = Batch {
            answered: 0,
            close: false,
        };
        loop {
            if self.body_left > 0 {
                let available = (self.end - self.start) as u64;
                let dropped = self.body_left.min(available);
                self.start += dropped as usize;
                self.body_left -= dropped;
                if self.body_left > 0 {
                    break;
                }
            }
            if self.start == self.end {
                break;
            }
            match parse_head(&self.buf[self.start..self.end]) {
                Ok(Some(head)) => {
                    self.start += head.len;
                    self.body_left = head.content_length;
                    self.answer(&head);
                    batch.answered += 1;
                    if !head.keep_alive {
                        batch.close = true;
                        break;
                    }
                }
                Ok(None) => {
                    if self.end - self.start == self.buf.len() {
                        self.refuse(Status::HeadTooLarge);
                        batch.close = true;
                    }
                    break;
                }
                Err(status) => {
                    self.refuse(status);
                    batch.close = true;
                    break;
                }
            }
        }
        // What is left is the start of a request: move it to the front, so
        // the buffer always has room for the rest of a head of MAX_HEAD.
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        batch
    }

    /// Appends the reply to a well-formed request.
    fn answer(&mut self, head: &Head) {
        let out = &mut self.replies;
        match head.method {
            Method::Get | Method::Head => {
                out.extend_from_slice(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: ",
                );
            }
            Method::Other => {
                out.extend_from_slice(
                    b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD\r\nContent-Length: 0\r\nDate: ",
                );
            }
        }
        out.extend_from_slice(self.date.text());
        if !head.keep_alive {
            out.extend_from_slice(b"\r\nConnection: close");
        } else if head.http10 {
            out.extend_from_slice(b"\r\nConnection: keep-alive");
        }
        out.extend_from_slice(b"\r\n\r\n");
        if head.method == Method::Get {
            out.extend_from_slice(BODY);
        }
    }

    /// Appends the reply to a request the server refuses (the connection
    /// closes after it).
    fn refuse(&mut self, status: Status) {
        let out = &mut self.replies;
        out.extend_from_slice(status.line());
        out.extend_from_slice(b"\r\nContent-Length: 0\r\nConnection: close\r\nDate: ");
        out.extend_from_slice(self.date.text());
        out.extend_from_slice(b"\r\n\r\n");
    }
}

// ===== parsing =====

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Status {
    BadRequest,
    HeadTooLarge,
    NotImplemented,
    VersionNotSupported,
}

impl Status {
    fn line(self) -> &'static [u8] {
        match self {
            Status::BadRequest => b"HTTP/1.1 400 Bad Request",
            Status::HeadTooLarge => b"HTTP/1.1 431 Request Header Fields Too Large",
            Status::NotImplemented => b"HTTP/1.1 501 Not Implemented",
            Status::VersionNotSupported => b"HTTP/1.1 505 HTTP Version Not Supported",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Other,
}

/// A parsed request head: what the reply depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Head {
    /// Bytes of the head, up to and with its empty line.
    pub(crate) len: usize,
    pub(crate) method: Method,
    pub(crate) http10: bool,
    pub(crate) keep_alive: bool,
    /// The body's length (0 without a `Content-Length`).
    pub(crate) content_length: u64,
}

/// Parses the request head at the start of `data`: `Ok(None)` while it is
/// incomplete, the status to refuse it with when it is not HTTP/1.x.
pub(crate) fn parse_head(data: &[u8]) -> Result<Option<Head>, Status> {
    // Empty lines before a request line are ignored (RFC 9112 §2.2).
    let mut pos = 0;
    while data[pos..].starts_with(b"\r\n") {
        pos += 2;
    }
    let Some((line, next)) = next_line(data, pos)? else {
        // Garbage is refused as soon as its first bytes show it, rather
        // than after the peer has filled the buffer.
        return match plausible_request_line(&data[pos..]) {
            true => Ok(None),
            false => Err(Status::BadRequest),
        };
    };
    pos = next;
    let (method, http10) = request_line(line)?;

    let mut host = false;
    let mut content_length = None;
    let mut close = false;
    let mut keep_alive = false;
    loop {
        let Some((line, next)) = next_line(data, pos)? else {
            return Ok(None);
        };
        pos = next;
        if line.is_empty() {
            break;
        }
        let (name, value) = header(line)?;
        if name.eq_ignore_ascii_case(b"host") {
            if host {
                return Err(Status::BadRequest);
            }
            host = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            let length = decimal(value).ok_or(Status::BadRequest)?;
            if content_length.is_some_and(|known| known != length) {
                return Err(Status::BadRequest);
            }
            content_length = Some(length);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Err(Status::NotImplemented);
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',') {
                let option = trim(option);
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // HTTP/1.1 requests must name their host (RFC 9112 §3.2).
    if !http10 && !host {
        return Err(Status::BadRequest);
    }
    Ok(Some(Head {
        len: pos,
        method,
        http10,
        keep_alive: !close && (!http10 || keep_alive),
        content_length: content_length.unwrap_or(0),
    }))
}

/// The line starting at `from` without its CRLF, and where the next one
/// starts; `None` if it is not complete; an error for a bare LF.
fn next_line(data: &[u8], from: usize) -> Result<Option<(&[u8], usize)>, Status> {
    let Some(lf) = data[from..].iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let lf = from + lf;
    if lf == from || data[lf - 1] != b'\r' {
        return Err(Status::BadRequest);
    }
    Ok(Some((&data[from..lf - 1], lf + 1)))
}

/// Whether an unfinished request line can still become a valid one: its
/// method so far is a token.
fn plausible_request_line(partial: &[u8]) -> bool {
    // A lone CR may start an ignored empty line.
    if partial == b"\r" {
        return true;
    }
    let method_end = partial
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(partial.len());
    partial[..method_end].iter().all(|&b| is_token(b))
}

/// `METHOD SP target SP HTTP/1.x`: the method and whether it is HTTP/1.0.
fn request_line(line: &[u8]) -> Result<(Method, bool), Status> {
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(Status::BadRequest);
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
        return Err(Status::BadRequest);
    }
    if target.is_empty() || !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(Status::BadRequest);
    }
    let http10 = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(Status::VersionNotSupported);
        }
        _ => return Err(Status::BadRequest),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    Ok((method, http10))
}

/// `name: value`: the name and the value without the spaces around it.
fn header(line: &[u8]) -> Result<(&[u8], &[u8]), Status> {
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or(Status::BadRequest)?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    // No space before the colon, and no folded line (a line that starts
    // with a space): both are refused (RFC 9112 §5.1, §5.2).
    if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
        return Err(Status::BadRequest);
    }
    if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
        return Err(Status::BadRequest);
    }
    Ok((name, trim(value)))
}

/// A token character of RFC 9110 §5.6.2 (methods and header names).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// A `Content-Length`: decimal digits only, within `u64`.
fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0_u64, |n, &b| {
        if !b.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

// ===== the Date header =====

/// The `Date` header's value (`Sun, 06 Nov 1994 08:49:37 GMT`), formatted
/// again only when the second changes.
pub(crate) struct HttpDate {
    second: u64,
    text: [u8; 29],
}

impl HttpDate {
    fn new() -> HttpDate {
        let mut date = HttpDate {
            second: u64::MAX,
            text: [b' '; 29],
        };
        date.refresh();
        date
    }

    fn text(&self) -> &[u8] {
        &self.text
    }

    /// Brings the text to the current second.
    fn refresh(&mut self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if now != self.second {
            self.second = now;
            self.text = format_http_date(now);
        }
    }
}

/// The IMF-fixdate of RFC 9110 §5.6.7 for `unix_seconds`.
pub(crate) fn format_http_date(unix_seconds: u64) -> [u8; 29] {
    const WEEKDAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86_400;
    let in_day = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    text[..3].copy_from_slice(WEEKDAYS[(days % 7) as usize]);
    let two = |n: u64| [b'0' + (n / 10) as u8, b'0' + (n % 10) as u8];
    text[5..7].copy_from_slice(&two(day));
    text[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    text[12..14].copy_from_slice(&two(year / 100 % 100));
    text[14..16].copy_from_slice(&two(year % 100));
    text[17..19].copy_from_slice(&two(in_day / 3600));
    text[20..22].copy_from_slice(&two(in_day / 60 % 60));
    text[23..25].copy_from_slice(&two(in_day % 60));
    text
}

/// The (year, month 1-12, day 1-31) of the proleptic Gregorian calendar
/// `days` after 1970-01-01: the days are counted in 400-year eras from
/// 0000-03-01, so that the leap day ends each year.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    // 719_468 days from 0000-03-01 to 1970-01-01; an era is 146_097 days.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}
