//! A green echo client: many connections, each a greenlet that writes a
//! message and reads it back, then a summary.
//!
//! ```text
//! cargo run --release --example echo_client                          # 100 clients x 1000 round trips
//! cargo run --release --example echo_client -- 127.0.0.1:7000 64 10000
//! cargo run --release --example echo_client -- --self-hosted         # starts its own echo server
//! ```

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use green_core::net::{TcpListener, TcpStream};
use green_core::{spawn, Timeout};

const MESSAGE: &[u8; 64] = b"the quick brown fox jumps over the lazy dog, 64 bytes per trip!!";

fn client(addr: std::net::SocketAddr, trips: u32) -> io::Result<u32> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    let mut back = [0u8; 64];
    for _ in 0..trips {
        stream.write_all(MESSAGE)?;
        stream.read_exact(&mut back)?;
        if &back != MESSAGE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "echo mismatch"));
        }
    }
    Ok(trips)
}

/// An echo server in this thread, for `--self-hosted`.
fn serve(listener: TcpListener, connections: usize) {
    for _ in 0..connections {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        spawn(move || {
            let _ = s.set_nodelay(true);
            let mut buf = [0u8; 4096];
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 || s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
}

const USAGE: &str = "usage: echo_client [--self-hosted] [ADDR] [CLIENTS] [TRIPS]
  --self-hosted  start an echo server in this thread and load it (ADDR unused)
  ADDR           the echo server (default 127.0.0.1:7000)
  CLIENTS        connections, one greenlet each (default 100)
  TRIPS          64-byte round trips per connection (default 1000)";

/// Says what is wrong with the command line, and exits.
fn usage_error(message: &str) -> ! {
    eprintln!("echo_client: {message}\n{USAGE}");
    std::process::exit(2)
}

/// A whole number of at least 1 for the argument `what`.
fn count<T: std::str::FromStr + PartialOrd + From<u8>>(what: &str, arg: &str) -> T {
    match arg.parse::<T>() {
        Ok(n) if n >= T::from(1) => n,
        _ => usage_error(&format!(
            "{what} must be a whole number of at least 1, not `{arg}`"
        )),
    }
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("Many echo clients, each a greenlet doing round trips.\n{USAGE}");
        return Ok(());
    }
    let mut self_hosted = false;
    let mut rest = Vec::new();
    for arg in &args {
        match arg.as_str() {
            "--self-hosted" => self_hosted = true,
            flag if flag.starts_with('-') => usage_error(&format!("unknown flag `{flag}`")),
            _ => rest.push(arg.as_str()),
        }
    }
    if rest.len() > 3 {
        usage_error("too many arguments");
    }
    let addr = rest.first().map_or("127.0.0.1:7000", |a| a).to_owned();
    let clients: usize = rest.get(1).map_or(100, |s| count("CLIENTS", s));
    let trips: u32 = rest.get(2).map_or(1000, |s| count("TRIPS", s));
    green_core::run(|| {
        let addr = if self_hosted {
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let addr = listener.local_addr()?;
            spawn(move || serve(listener, clients));
            addr
        } else {
            use green_core::net::ToSocketAddrs;
            addr.as_str().to_socket_addrs()?.next().expect("an address")
        };
        let started = Instant::now();
        // A whole-run bound, so a dead server shows as a message, not a hang.
        let done = Timeout::run(Duration::from_secs(60), || {
            let greenlets: Vec<_> = (0..clients)
                .map(|_| spawn(move || client(addr, trips)))
                .collect();
            greenlets
                .into_iter()
                .map(|g| {
                    g.join();
                    g.take()
                })
                .collect::<Vec<_>>()
        });
        let Ok(results) = done else {
            eprintln!("gave up after 60 s");
            std::process::exit(1);
        };
        let elapsed = started.elapsed();
        let ok: u64 = results
            .iter()
            .filter_map(|r| r.as_ref().ok()?.as_ref().ok())
            .map(|&n| u64::from(n))
            .sum();
        let failed = results.iter().filter(|r| !matches!(r, Ok(Ok(_)))).count();
        println!(
            "{clients} clients, {ok} round trips in {:.2?}: {:.0} req/s, {failed} clients failed",
            elapsed,
            ok as f64 / elapsed.as_secs_f64()
        );
        if failed > 0 {
            std::process::exit(1);
        }
        Ok(())
    })
}
