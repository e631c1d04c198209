//! A TLS echo server and its clients: rustls over a green `TcpStream`.
//!
//! ```text
//! cargo run --example tls_echo                           # server and 3 clients in one process
//! cargo run --example tls_echo -- --server 127.0.0.1:7443  # the server alone, until Ctrl-C
//! ```
//!
//! rustls is a synchronous TLS library: its `StreamOwned` wraps any
//! `Read + Write` transport. A green `TcpStream` is one, so the TLS code is
//! written as it would be over a std socket, and each greenlet parks in the
//! socket reads and writes underneath rustls while the others run. Nothing
//! here is TLS-specific to green: any such library works the same way.
//!
//! The certificate is self-signed for `localhost` and made at start with
//! rcgen (no key is kept anywhere); the clients trust exactly that
//! certificate and verify the server's name, as a real client would. With
//! `--server`, the certificate is written to a file so that another client
//! can trust it too:
//!
//! ```text
//! openssl s_client -connect 127.0.0.1:7443 -servername localhost -CAfile <the file it names>
//! ```
//!
//! The default run is bounded: the server accepts one connection per client,
//! and the whole run has a time limit.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use green_core::net::{TcpListener, TcpStream};
use green_core::{spawn, Timeout};
use rustls::pki_types::{PrivatePkcs8KeyDer, ServerName};
use rustls::StreamOwned;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

/// Clients in the default, self-contained run.
const CLIENTS: usize = 3;

/// Lines each client sends and reads back.
const LINES: usize = 5;

/// The bound on the self-contained run.
const RUN_LIMIT: Duration = Duration::from_secs(60);

const USAGE: &str = "usage: tls_echo [--server [ADDR]]  (no flag: a server and three \
clients in one process; --server: the server alone, on ADDR or 127.0.0.1:7443)";

/// The name the certificate is for, and the one clients check.
const SERVER_NAME: &str = "localhost";

fn main() -> io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let server_only = match args.as_slice() {
        [] => None,
        [flag] if flag == "--server" => Some("127.0.0.1:7443".to_owned()),
        [flag, addr] if flag == "--server" => Some(addr.clone()),
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return Ok(());
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    // ring is the crypto provider: it builds with a C compiler alone.
    // rustls deprecates it because it has no post-quantum key exchange; the
    // provider that has one, aws-lc-rs, needs cmake to build.
    #[allow(deprecated)] // ring over aws-lc-rs, for the reason above.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certified = rcgen::generate_simple_self_signed(vec![SERVER_NAME.to_owned()])
        .map_err(io::Error::other)?;
    let cert = certified.cert.der().clone();
    let key = PrivatePkcs8KeyDer::from(certified.signing_key.serialize_der());
    let server_config = Arc::new(
        ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key.into())
            .map_err(io::Error::other)?,
    );

    green_core::run(|| {
        let listener = TcpListener::bind(server_only.as_deref().unwrap_or("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        println!("listening on {addr} (TLS, a certificate for {SERVER_NAME} made at start)");
        if server_only.is_some() {
            let path = std::env::temp_dir().join(format!("green-tls-echo-{}.pem", addr.port()));
            std::fs::write(&path, certified.cert.pem())?;
            println!("the certificate is in {}", path.display());
            serve(&listener, server_config, None)?;
            return Ok(());
        }

        let mut roots = RootCertStore::empty();
        roots.add(cert).map_err(io::Error::other)?;
        let client_config = Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(io::Error::other)?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let outcome = Timeout::run(RUN_LIMIT, || {
            let server = spawn(move || serve(&listener, server_config, Some(CLIENTS)));
            let clients: Vec<_> = (1..=CLIENTS)
                .map(|id| {
                    let config = Arc::clone(&client_config);
                    spawn(move || client(id, addr, config))
                })
                .collect();
            let mut failed = 0;
            for (id, client) in (1..=CLIENTS).zip(&clients) {
                client.join();
                match client.take().map_err(io::Error::other).and_then(|r| r) {
                    Ok(summary) => println!("client {id}: {summary}"),
                    Err(e) => {
                        failed += 1;
                        println!("client {id} failed: {e}");
                    }
                }
            }
            server.join();
            match server.take().map_err(io::Error::other).and_then(|r| r) {
                Ok(bytes) => println!("server: echoed {bytes} bytes over {CLIENTS} connections"),
                Err(e) => {
                    failed += 1;
                    println!("server failed: {e}");
                }
            }
            failed
        });
        match outcome {
            Ok(0) => {
                println!("tls_echo: {CLIENTS} clients x {LINES} lines echoed over TLS");
                Ok(())
            }
            Ok(failed) => {
                eprintln!("tls_echo: {failed} of the server and its clients failed");
                std::process::exit(1);
            }
            Err(timeout) => {
                eprintln!("tls_echo: {timeout}: the run did not finish in time");
                std::process::exit(1);
            }
        }
    })
}

/// Accepts connections (at most `limit`) and echoes each in its own
/// greenlet; returns the bytes echoed once every connection has ended.
fn serve(
    listener: &TcpListener,
    config: Arc<ServerConfig>,
    limit: Option<usize>,
) -> io::Result<u64> {
    let mut handlers = Vec::new();
    while limit.is_none_or(|limit| handlers.len() < limit) {
        let (tcp, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Out of descriptors, say: a crowd of clients must not end the
            // server; give the connections a moment to close some.
            Err(e) => {
                println!("server: accept failed: {e}");
                green_core::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let config = Arc::clone(&config);
        let handler = spawn(move || {
            let echoed = echo(config, tcp);
            if let Err(e) = &echoed {
                println!("server: {peer}: {e}");
            }
            echoed
        });
        // A long-running server keeps no handle per past connection.
        if limit.is_some() {
            handlers.push(handler);
        }
    }
    let mut total = 0;
    for handler in handlers {
        handler.join();
        total += handler.take().map_err(io::Error::other)??;
    }
    Ok(total)
}

/// One server connection: the handshake happens inside the first read;
/// then whatever arrives is written back, until the client's close_notify.
fn echo(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<u64> {
    let conn = ServerConnection::new(config).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    let mut buf = [0u8; 4096];
    let mut echoed = 0;
    loop {
        let n = tls.read(&mut buf)?;
        if n == 0 {
            break;
        }
        tls.write_all(&buf[..n])?;
        tls.flush()?;
        echoed += n as u64;
    }
    // TLS's own end of stream, in answer to the client's.
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(echoed)
}

/// One client: connects, checks the server's certificate and name, sends
/// [`LINES`] lines and reads each back; returns what it saw of the session.
fn client(id: usize, addr: SocketAddr, config: Arc<ClientConfig>) -> io::Result<String> {
    let tcp = TcpStream::connect(addr)?;
    let name = ServerName::try_from(SERVER_NAME).map_err(io::Error::other)?;
    let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    for n in 1..=LINES {
        let sent = format!("client {id}, line {n}\n");
        tls.write_all(sent.as_bytes())?;
        let mut back = vec![0u8; sent.len()];
        tls.read_exact(&mut back)?;
        if back != sent.as_bytes() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "sent {sent:?}, got back {:?}",
                    String::from_utf8_lossy(&back)
                ),
            ));
        }
    }
    let version = tls.conn.protocol_version().map(|v| format!("{v:?}"));
    let suite = (tls.conn.negotiated_cipher_suite()).map(|s| format!("{:?}", s.suite()));
    // TLS's own end of stream (close_notify) tells the server we are done;
    // it answers with its own: a clean end of stream, not a cut connection.
    tls.conn.send_close_notify();
    tls.flush()?;
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)?;
    Ok(format!(
        "{LINES} lines echoed over {} with {}, {SERVER_NAME}'s certificate verified",
        version.as_deref().unwrap_or("?"),
        suite.as_deref().unwrap_or("?")
    ))
}
