//! Limiting concurrency: a `Pool(10)` fetches 100 URLs, each request under
//! its own `Timeout`, and a summary is printed at the end.
//!
//! ```text
//! cargo run --release --example fetcher            # 100 URLs, 10 at a time, 300 ms each
//! cargo run --release --example fetcher -- 500 50  # 500 URLs, 50 at a time
//! ```
//!
//! The example starts its own HTTP server (a `StreamServer` on 127.0.0.1,
//! port chosen by the kernel) whose pages take from 1 to 50 ms to answer;
//! every 25th page takes 2 s, so its request's timeout fires. The fetching
//! code is plain blocking-style: connect, write, read to the end.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::net::TcpStream;
use green_pool::{Pool, StreamServer};

/// The per-request budget: connecting, sending and reading the whole page.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(300);

/// How one URL went.
enum Fetched {
    Page { status: u16, bytes: usize },
    TimedOut,
    Failed(io::Error),
}

const USAGE: &str = "usage: fetcher [URLS] [CONCURRENCY]
  URLS         pages to fetch from the example's own server (default 100)
  CONCURRENCY  the Pool's size: fetches at a time (default 10)";

/// Says what is wrong with the command line, and exits.
fn usage_error(message: &str) -> ! {
    eprintln!("fetcher: {message}\n{USAGE}");
    std::process::exit(2)
}

/// A whole number of at least 1 for the argument `what`.
fn count(what: &str, arg: &str) -> usize {
    match arg.parse() {
        Ok(n) if n > 0 => n,
        _ => usage_error(&format!(
            "{what} must be a whole number of at least 1, not `{arg}`"
        )),
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("Fetches pages through a Pool, each request under a Timeout.\n{USAGE}");
        return Ok(());
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        usage_error(&format!("unknown flag `{flag}`"));
    }
    if args.len() > 2 {
        usage_error("too many arguments");
    }
    let urls = args.first().map_or(100, |s| count("URLS", s));
    let concurrency = args.get(1).map_or(10, |s| count("CONCURRENCY", s));
    green_core::run(|| {
        let server = StreamServer::bind("127.0.0.1:0", serve_page)?;
        server.start()?;
        let base = format!("http://{}", server.local_addr());
        println!("fetching {urls} URLs from {base}, {concurrency} at a time");

        // Counts the requests in flight, to show the pool's cap at work.
        let in_flight = Rc::new(Cell::new(0usize));
        let most_in_flight = Rc::new(Cell::new(0usize));
        let (now, most) = (in_flight.clone(), most_in_flight.clone());
        let fetch_one = move |url: String| {
            now.set(now.get() + 1);
            most.set(most.get().max(now.get()));
            let outcome = match green_core::with_timeout(REQUEST_TIMEOUT, || fetch(&url)) {
                Ok(Ok((status, bytes))) => Fetched::Page { status, bytes },
                Ok(Err(error)) => Fetched::Failed(error),
                Err(_timeout) => Fetched::TimedOut,
            };
            now.set(now.get() - 1);
            (url, outcome)
        };

        let started = Instant::now();
        let pool = Pool::new(concurrency);
        let list: Vec<String> = (0..urls).map(|i| format!("{base}/page/{i}")).collect();
        // `imap_unordered` yields each result as soon as it is in, while at
        // most `concurrency` requests run.
        let (mut pages, mut bytes, mut timed_out, mut failed) = (0, 0, 0, 0);
        for result in pool.imap_unordered(fetch_one, list) {
            let (url, outcome) = result.expect("fetch_one does not panic");
            match outcome {
                Fetched::Page {
                    status: 200,
                    bytes: n,
                } => {
                    pages += 1;
                    bytes += n;
                }
                Fetched::Page { status, .. } => {
                    failed += 1;
                    println!("  {url}: HTTP {status}");
                }
                Fetched::TimedOut => {
                    timed_out += 1;
                    println!("  {url}: no answer within {REQUEST_TIMEOUT:?}");
                }
                Fetched::Failed(error) => {
                    failed += 1;
                    println!("  {url}: {error}");
                }
            }
        }
        let elapsed = started.elapsed();

        println!(
            "{pages} pages ({bytes} bytes), {timed_out} timed out, {failed} failed, \
             in {elapsed:.2?}; at most {} requests at once",
            most_in_flight.get()
        );
        // The slow pages' handlers are still sleeping: stop gives them no
        // grace here and kills them.
        server.stop(Duration::ZERO);
        Ok(())
    })
}

/// GETs `url` (`http://host:port/path`) on a fresh connection and returns
/// the status code and the body's length.
fn fetch(url: &str) -> io::Result<(u16, usize)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "only http:// URLs"))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let addr: SocketAddr = host
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let mut stream = TcpStream::connect(addr)?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))?;
    let body = text
        .find("\r\n\r\n")
        .map_or(0, |end| response.len() - end - 4);
    Ok((status, body))
}

/// The example's server: answers `GET /page/N` after a delay that depends
/// on N (every 25th page takes 2 s), with a small HTML body.
fn serve_page(mut stream: TcpStream, _peer: SocketAddr) -> io::Result<()> {
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(());
        }
        request.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&request);
    let page: Option<u64> = line
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/page/"))
        .and_then(|n| n.parse().ok());
    let (status, body) = match page {
        Some(n) => {
            let delay = if n % 25 == 24 { 2000 } else { 1 + n * 7 % 50 };
            green_core::sleep(Duration::from_millis(delay));
            (
                "200 OK",
                format!("<html><body>page {n}, after {delay} ms</body></html>\n"),
            )
        }
        None => ("404 Not Found", "no such page\n".to_owned()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
