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

fn main() -> io::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:7000".to_owned());
    let limit: Option<usize> = args.next().map(|s| s.parse().expect("a connection count"));
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
