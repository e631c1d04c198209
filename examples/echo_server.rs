//! A green echo server: one greenlet per connection, plain blocking-style
//! code, all on one thread.
//!
//! ```text
//! cargo run --release --example echo_server                 # 127.0.0.1:7000, forever
//! cargo run --release --example echo_server -- 127.0.0.1:0 10  # stop after 10 connections
//! ```
//!
//! Try it with `cargo run --release --example echo_client`, or `nc 127.0.0.1 7000`.

use std::io::{self, Read, Write};

use green_core::net::{TcpListener, TcpStream};
use green_core::spawn;

/// Echoes until the peer closes; the greenlet parks in `read` and `write_all`.
fn handle(mut stream: TcpStream) -> io::Result<u64> {
    let mut buf = [0u8; 4096];
    let mut echoed = 0;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Ok(echoed);
        }
        stream.write_all(&buf[..n])?;
        echoed += n as u64;
    }
}

const USAGE: &str = "usage: echo_server [ADDR] [CONNECTIONS]
  ADDR         where to listen (default 127.0.0.1:7000)
  CONNECTIONS  stop after serving this many connections (default: never)";

/// Says what is wrong with the command line, and exits.
fn usage_error(message: &str) -> ! {
    eprintln!("echo_server: {message}\n{USAGE}");
    std::process::exit(2)
}

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("An echo server: one greenlet per connection, on one thread.\n{USAGE}");
        return Ok(());
    }
    if let Some(flag) = args.iter().find(|a| a.starts_with('-')) {
        usage_error(&format!("unknown flag `{flag}`"));
    }
    if args.len() > 2 {
        usage_error("too many arguments");
    }
    let addr = args
        .first()
        .cloned()
        .unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let limit: Option<usize> = args.get(1).map(|s| match s.parse() {
        Ok(n) if n > 0 => n,
        _ => usage_error(&format!(
            "CONNECTIONS must be a whole number of at least 1, not `{s}`"
        )),
    });
    green_core::run(|| {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("listening on {}", listener.local_addr()?);
        let mut handlers = Vec::new();
        for (n, conn) in listener.incoming().enumerate() {
            if limit.is_some_and(|limit| n >= limit) {
                break;
            }
            match conn {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    handlers.push(spawn(move || handle(stream)));
                }
                // Out of descriptors, say: report it, give the handlers a
                // moment to close some, and keep serving.
                Err(e) => {
                    eprintln!("accept failed: {e}");
                    green_core::sleep(std::time::Duration::from_millis(10));
                }
            }
            if limit.is_some_and(|limit| n + 1 >= limit) {
                break;
            }
        }
        let mut total = 0;
        for h in handlers {
            h.join();
            if let Ok(Ok(n)) = h.take() {
                total += n;
            }
        }
        println!("served {} bytes", total);
        Ok(())
    })
}
