//! `cargo xtask examples`, also a step of `cargo xtask test`: builds
//! `examples/` once (`cargo build --examples`), then runs each example's
//! binary under a driver that talks to it the way a newcomer would (a
//! telnet-like chat session, an echo client, an HTTP request) and checks
//! what it printed and how it exited, so that no example rots.
//!
//! Every driver is bounded: each example gets [`EXAMPLE_LIMIT`] in all, its
//! socket reads and writes time out at the same deadline, and a child still
//! running then is killed and its output shown with the failure. Each
//! example counts as one test in the closing `xtask test:` line; an example
//! whose source is missing (one that is still being written) is skipped with
//! the reason, and an example without a driver fails, naming the fix.
//!
//! std only, like the rest of xtask: the drivers speak the examples'
//! protocols (lines, HTTP/1.1) over `std::net` sockets.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::util::{bail, cargo_cmd, project_root, run_counted, Error, Result, TestCounts};

/// The time one example may take, its driver included. Generous: the
/// examples are debug builds on a shared machine, and most finish in well
/// under a second.
const EXAMPLE_LIMIT: Duration = Duration::from_secs(90);

/// How many of a failed example's output lines are shown.
const OUTPUT_TAIL: usize = 60;

/// A driver: runs the example binary at the given path and checks it.
type Driver = fn(&Path) -> Result<()>;

/// Every example with its driver, in the order they run.
const DRIVERS: &[(&str, Driver)] = &[
    ("hello", drive_hello),
    ("producer_consumer", drive_producer_consumer),
    ("echo_server", drive_echo),
    ("echo_client", drive_echo_client_self_hosted),
    ("fetcher", drive_fetcher),
    ("signals", drive_signals),
    ("chat", drive_chat),
    ("tls_echo", drive_tls_echo),
    ("http_hello", drive_http_hello),
];

/// The examples that take arguments: each answers `--help` with its usage
/// (exit 0) and refuses an unknown flag with the usage on stderr (exit 2),
/// which [`check_usage`] checks before the driver runs.
const TAKE_ARGUMENTS: &[&str] = &[
    "echo_server",
    "echo_client",
    "fetcher",
    "signals",
    "chat",
    "tls_echo",
    "http_hello",
];

/// Builds the examples and drives each; every example is one passed,
/// failed or skipped test in `counts`.
pub(crate) fn run_all(counts: &mut TestCounts) -> Result<()> {
    run_counted(
        "examples (build)",
        &mut cargo_cmd(["build", "--examples"]),
        counts,
    )?;
    let root = project_root();
    let binaries = crate::util::target_dir().join("debug").join("examples");
    let mut failed = Vec::new();
    for name in undriven_examples(&root) {
        eprintln!("\n==> example {name}: FAILED");
        eprintln!("examples/{name}.rs has no driver: add one to DRIVERS in xtask/src/examples.rs");
        counts.add_unreported(format!("example {name} has no driver"));
        failed.push(name);
    }
    for &(name, driver) in DRIVERS {
        eprintln!("\n==> example {name}");
        let source = root.join("examples").join(format!("{name}.rs"));
        if !source.exists() {
            eprintln!("skipped: examples/{name}.rs does not exist yet");
            counts.skipped += 1;
            continue;
        }
        let started = Instant::now();
        let binary = binaries.join(name);
        let checked = if TAKE_ARGUMENTS.contains(&name) {
            check_usage(&binary)
        } else {
            Ok(())
        };
        match checked.and_then(|()| driver(&binary)) {
            Ok(()) => {
                eprintln!("example {name}: ok in {:.1?}", started.elapsed());
                counts.passed += 1;
            }
            Err(e) => {
                eprintln!(
                    "example {name}: FAILED after {:.1?}\n{e}",
                    started.elapsed()
                );
                counts.add_unreported(format!("example {name}"));
                failed.push(name.to_owned());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "examples failed: {} (each one's output is above)",
            failed.join(", ")
        );
    }
    Ok(())
}

/// Examples in `examples/` that no entry of [`DRIVERS`] runs.
fn undriven_examples(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("examples")) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .filter(|name| !DRIVERS.iter().any(|(driven, _)| driven == name))
        .collect();
    names.sort();
    names
}

// ===== the drivers =====

/// A newcomer's first two commands: `--help` prints the usage and exits 0;
/// a flag the example does not know is refused with the usage, exit 2,
/// before anything runs.
fn check_usage(binary: &Path) -> Result<()> {
    Running::start(binary, &["--help"])?
        .finish()?
        .expect_lines(&["usage:"])?;
    let mut wrong = Running::start(binary, &["--no-such-flag"])?;
    let status = wrong.wait_exit()?;
    let output = wrong.output.lock().expect("output lock").clone();
    if status.code() != Some(2) {
        return Err(wrong.fail(&format!(
            "an unknown flag should exit 2 with the usage; it exited with {}",
            describe(Some(status))
        )));
    }
    if !output
        .iter()
        .any(|(from_stdout, line)| !from_stdout && line.contains("usage:"))
    {
        return Err(wrong.fail("an unknown flag should print the usage on stderr"));
    }
    Ok(())
}

/// `hello`: the greenlets' steps, the Timeout, the kill, the results.
fn drive_hello(binary: &Path) -> Result<()> {
    let run = Running::start(binary, &[])?;
    let out = run.finish()?;
    out.expect_lines(&[
        "worker 3: step 3",
        "the slow call was cut short",
        "doomed: cleaned up by its destructor",
        "doomed: dead = true",
        "returned 100",
        "returned 200",
        "returned 300",
    ])
    .map(drop)
}

/// `producer_consumer`: every job is done and the consumers' counts add up.
fn drive_producer_consumer(binary: &Path) -> Result<()> {
    let run = Running::start(binary, &[])?;
    let out = run.finish()?;
    out.expect_lines(&["main: all 10 jobs done"])?;
    let handled: u64 = out
        .stdout
        .iter()
        .filter_map(|l| {
            let rest = l.strip_prefix("consumer ")?;
            let (_, rest) = rest.split_once(" handled ")?;
            rest.strip_suffix(" jobs")?.parse::<u64>().ok()
        })
        .sum();
    if handled != 10 {
        return Err(out.fail(&format!(
            "the consumers say they handled {handled} jobs in all, not 10"
        )));
    }
    Ok(())
}

/// `echo_server`, driven by this driver's own socket and by the
/// `echo_client` example: the server stops by itself after the five
/// connections and reports the bytes it echoed.
fn drive_echo(binary: &Path) -> Result<()> {
    let mut server = Running::start(binary, &["127.0.0.1:0", "5"])?;
    let addr = server.listening_addr()?;
    let deadline = server.deadline;
    let hello = b"hello, echo\n";
    let exchanged = (|| -> io::Result<Vec<u8>> {
        let mut conn = connect(addr, deadline)?;
        conn.write_all(hello)?;
        let mut back = vec![0; hello.len()];
        conn.read_exact(&mut back)?;
        Ok(back)
    })();
    match exchanged {
        Ok(back) if back == hello => {}
        Ok(back) => {
            return Err(server.fail(&format!(
                "sent {:?}, got back {:?}",
                String::from_utf8_lossy(hello),
                String::from_utf8_lossy(&back)
            )))
        }
        Err(e) => return Err(server.fail(&format!("echo over a std socket: {e}"))),
    }
    let client_binary = binary.with_file_name("echo_client");
    let client = Running::start(&client_binary, &[&addr.to_string(), "4", "100"])?;
    let client = client.finish()?;
    client.expect_lines(&["4 clients, 400 round trips", "0 clients failed"])?;
    let server = server.finish()?;
    // 12 bytes from the driver, 4 clients x 100 trips x 64 bytes.
    server.expect_lines(&["served 25612 bytes"]).map(drop)
}

/// `echo_client --self-hosted`: its own server on an ephemeral port.
fn drive_echo_client_self_hosted(binary: &Path) -> Result<()> {
    let run = Running::start(binary, &["--self-hosted", "127.0.0.1:0", "8", "50"])?;
    let out = run.finish()?;
    out.expect_lines(&["8 clients, 400 round trips", "0 clients failed"])
        .map(drop)
}

/// `fetcher`: every URL is fetched or timed out, the slow pages (every
/// 25th) time out, none fails, and the pool's cap held.
fn drive_fetcher(binary: &Path) -> Result<()> {
    let run = Running::start(binary, &[])?;
    let out = run.finish()?;
    let summary = out.expect_lines(&[" pages ("])?;
    // "96 pages (5460 bytes), 4 timed out, 0 failed, in 1.20s; at most 10 requests at once"
    let number_before = |word: &str| -> Option<u64> {
        let at = summary.find(word)?;
        summary[..at].split_whitespace().last()?.parse().ok()
    };
    let number_after = |word: &str| -> Option<u64> {
        let at = summary.find(word)? + word.len();
        summary[at..].split_whitespace().next()?.parse().ok()
    };
    let figures = (
        number_before(" pages ("),
        number_before(" timed out"),
        number_before(" failed"),
        number_after("at most "),
    );
    let (Some(pages), Some(timed_out), Some(failed), Some(most)) = figures else {
        return Err(out.fail(&format!("cannot read the summary line {summary:?}")));
    };
    if pages + timed_out != 100 || timed_out < 4 || failed != 0 || most == 0 || most > 10 {
        return Err(out.fail(&format!(
            "expected 100 URLs fetched or timed out, the 4 slow pages among the \
             timeouts, none failed, and at most 10 at once; got {summary:?}"
        )));
    }
    Ok(())
}

/// `signals --self-test`: the process sends itself SIGINT and shuts down.
fn drive_signals(binary: &Path) -> Result<()> {
    let run = Running::start(binary, &["--self-test"])?;
    let out = run.finish()?;
    out.expect_lines(&["caught SIGINT: stopping", "stopped by SIGINT", "all dead"])
        .map(drop)
}

/// `tls_echo`: server and clients in one process, certificates verified.
fn drive_tls_echo(binary: &Path) -> Result<()> {
    let run = Running::start(binary, &[])?;
    let out = run.finish()?;
    let verified = out
        .stdout
        .iter()
        .filter(|l| l.contains("lines echoed over TLS") && l.contains("certificate verified"))
        .count();
    out.expect_lines(&[
        "server: echoed 255 bytes over 3 connections",
        "tls_echo: 3 clients x 5 lines echoed over TLS",
    ])?;
    if verified != 3 {
        return Err(out.fail(&format!(
            "{verified} clients reported a verified TLS session, not 3"
        )));
    }
    drive_tls_echo_out_of_descriptors(binary)
}

/// `tls_echo --server` with few descriptors: a crowd of connections that
/// exhausts them makes accepts fail for a while; once it leaves, the server
/// must still be there and answer a plaintext client with a TLS alert.
fn drive_tls_echo_out_of_descriptors(binary: &Path) -> Result<()> {
    const FD_LIMIT: usize = 48;
    let script = format!("ulimit -n {FD_LIMIT} && exec \"$0\" --server 127.0.0.1:0");
    let binary = binary.to_string_lossy();
    let mut server = Running::start(Path::new("/bin/sh"), &["-c", &script, &binary])?;
    let addr = server.listening_addr()?;
    let deadline = server.deadline;
    let crowd: Vec<TcpStream> = (0..2 * FD_LIMIT)
        .map_while(|_| connect(addr, deadline).ok())
        .collect();
    // Long enough for the server to accept what it can and fail the rest.
    std::thread::sleep(Duration::from_millis(300));
    drop(crowd);
    std::thread::sleep(Duration::from_millis(300));
    if let Ok(Some(status)) = server.child.try_wait() {
        return Err(server.fail(&format!(
            "the server exited ({}) when it ran out of descriptors; it should keep serving",
            describe(Some(status))
        )));
    }
    let answer = (|| -> io::Result<Vec<u8>> {
        let mut conn = connect(addr, deadline)?;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer)?;
        Ok(answer)
    })();
    // 21: a TLS alert record (the plaintext is not a TLS handshake).
    match answer {
        Ok(answer) if answer.first() == Some(&21) => {
            server.kill();
            Ok(())
        }
        other => Err(server.fail(&format!(
            "after running out of descriptors, a plaintext request got {other:?}, \
             not a TLS alert"
        ))),
    }
}

/// `http_hello`: two requests on one keep-alive connection, each answered
/// `200` with `Hello, World!`. Started with `--threads 2 --requests 2`, the
/// server stops by itself once both are answered and says how many it
/// answered.
fn drive_http_hello(binary: &Path) -> Result<()> {
    let mut server = Running::start(
        binary,
        &["--threads", "2", "--addr", "127.0.0.1:0", "--requests", "2"],
    )?;
    let addr = server.listening_addr()?;
    let deadline = server.deadline;
    let answers = (|| -> io::Result<Vec<(String, String)>> {
        let conn = connect(addr, deadline)?;
        let mut reader = BufReader::new(conn.try_clone()?);
        let mut writer = conn;
        let mut answers = Vec::new();
        for _ in 0..2 {
            writer.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")?;
            answers.push(read_http_response(&mut reader)?);
        }
        Ok(answers)
    })();
    let answers =
        answers.map_err(|e| server.fail(&format!("GET / twice on one connection: {e}")))?;
    for (status, body) in &answers {
        if !status.starts_with("HTTP/1.1 200") || body != "Hello, World!" {
            return Err(server.fail(&format!(
                "expected `HTTP/1.1 200` with body `Hello, World!`, got {status:?} with {body:?}"
            )));
        }
    }
    let out = server.finish()?;
    out.expect_lines(&["http_hello: answered 2 requests"])
        .map(drop)
}

/// `chat`: a room session as several telnet users would have it (nicknames,
/// messages, `/nick`, `/who`, `/quit`, join and leave notices), then the
/// slow-client policy: a client that stops reading is disconnected while a
/// flood goes on, and the others keep talking.
fn drive_chat(binary: &Path) -> Result<()> {
    let mut server = Running::start(binary, &["127.0.0.1:0", "--sessions", "5"])?;
    let addr = server.listening_addr()?;
    let deadline = server.deadline;
    if let Err(e) = chat_room(addr, deadline).and_then(|()| chat_slow_client(addr, deadline)) {
        return Err(server.fail(&e));
    }
    let out = server.finish()?;
    out.expect_lines(&["chat: 5 sessions", "1 clients disconnected as too slow"])?;
    // A bad flag value is a usage error, not a panic.
    let mut bad = Running::start(binary, &["--sessions", "many"])?;
    let status = bad.wait_exit()?;
    let usage = bad
        .output
        .lock()
        .expect("output lock")
        .iter()
        .any(|(_, line)| line.contains("usage: chat"));
    if status.code() != Some(2) || !usage {
        return Err(bad.fail(&format!(
            "`--sessions many` exited with {} (usage shown: {usage}); \
             want the usage and exit status 2",
            describe(Some(status))
        )));
    }
    Ok(())
}

/// The first part of [`drive_chat`]: alice and bob talk.
fn chat_room(addr: SocketAddr, deadline: Instant) -> std::result::Result<(), String> {
    let mut alice = ChatClient::join(addr, deadline, "alice")?;
    let mut bob = ChatClient::connect(addr, deadline, "bob")?;
    bob.expect("nickname?")?;
    bob.send("alice")?;
    bob.expect("alice is taken")?;
    bob.send("bob")?;
    bob.expect("*** hello bob! here: alice.")?;
    alice.expect("*** bob joined")?;
    alice.send("hi bob")?;
    bob.expect("<alice> hi bob")?;
    bob.send("/nick robert")?;
    bob.expect("*** you are now robert")?;
    alice.expect("*** bob is now robert")?;
    bob.send("/who")?;
    bob.expect("*** here: alice, robert")?;
    bob.send("/quit")?;
    bob.expect("*** bye robert")?;
    bob.expect_end()?;
    alice.expect("*** robert left")?;
    alice.send("/quit")?;
    alice.expect("*** bye alice")?;
    alice.expect_end()
}

/// Lines in one flood batch of [`chat_slow_client`]; below the server's
/// per-client bound (256), so a client that reads each batch before the
/// next is never near it.
const FLOOD_BATCH: usize = 100;

/// The most flood batches sent before the slow client must have been
/// disconnected (about 20 MB of text, far more than any socket buffers).
const FLOOD_BATCHES: usize = 200;

/// The second part of [`drive_chat`]: carol stops reading while dave sends
/// lines in batches and eve reads each batch; carol is disconnected, eve is
/// not, and the room goes on.
fn chat_slow_client(addr: SocketAddr, deadline: Instant) -> std::result::Result<(), String> {
    let mut eve = ChatClient::join(addr, deadline, "eve")?;
    let mut carol = ChatClient::join(addr, deadline, "carol")?;
    let mut dave = ChatClient::join(addr, deadline, "dave")?;
    eve.expect("*** carol joined")?;
    eve.expect("*** dave joined")?;
    let padding = "x".repeat(900);
    let mut kicked = false;
    for batch in 0..FLOOD_BATCHES {
        let lines: String = (0..FLOOD_BATCH)
            .map(|n| format!("flood {batch}.{n} {padding}\r\n"))
            .collect();
        dave.send_raw(lines.as_bytes())?;
        let last = format!("<dave> flood {batch}.{} ", FLOOD_BATCH - 1);
        let seen = eve.read_until(&last)?;
        if seen
            .iter()
            .any(|l| l.contains("*** carol was disconnected: too slow"))
        {
            kicked = true;
            break;
        }
    }
    if !kicked {
        return Err(format!(
            "carol never read and was not disconnected after {} lines",
            FLOOD_BATCH * FLOOD_BATCHES
        ));
    }
    dave.send("still there, eve?")?;
    eve.expect("<dave> still there, eve?")?;
    carol.expect_end()?;
    eve.send("/quit")?;
    eve.expect("*** bye eve")?;
    eve.expect_end()?;
    dave.expect("*** carol was disconnected: too slow")?;
    dave.expect("*** eve left")?;
    dave.send("/quit")?;
    dave.expect("*** bye dave")?;
    dave.expect_end()
}

// ===== a chat client on std sockets =====

/// One telnet-like chat user.
struct ChatClient {
    nick: String,
    conn: TcpStream,
    reader: BufReader<TcpStream>,
    deadline: Instant,
    /// The last lines read, for error messages.
    recent: Vec<String>,
}

impl ChatClient {
    /// Connects; the nickname prompt is not read yet.
    fn connect(
        addr: SocketAddr,
        deadline: Instant,
        nick: &str,
    ) -> std::result::Result<ChatClient, String> {
        let conn = connect(addr, deadline).map_err(|e| format!("{nick}: connect: {e}"))?;
        let reader = conn
            .try_clone()
            .map_err(|e| format!("{nick}: clone: {e}"))?;
        Ok(ChatClient {
            nick: nick.to_owned(),
            conn,
            reader: BufReader::new(reader),
            deadline,
            recent: Vec::new(),
        })
    }

    /// Connects and takes `nick` at the prompt.
    fn join(
        addr: SocketAddr,
        deadline: Instant,
        nick: &str,
    ) -> std::result::Result<ChatClient, String> {
        let mut client = ChatClient::connect(addr, deadline, nick)?;
        client.expect("nickname?")?;
        client.send(nick)?;
        client.expect(&format!("*** hello {nick}!"))?;
        Ok(client)
    }

    fn send(&mut self, line: &str) -> std::result::Result<(), String> {
        self.send_raw(format!("{line}\r\n").as_bytes())
    }

    fn send_raw(&mut self, bytes: &[u8]) -> std::result::Result<(), String> {
        self.conn
            .write_all(bytes)
            .map_err(|e| format!("{}: send: {e}", self.nick))
    }

    /// The next line, `None` at end of stream.
    fn next_line(&mut self) -> std::result::Result<Option<String>, String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) => Ok(None),
            Ok(_) => {
                let line = line.trim_end().to_owned();
                self.recent.push(line.clone());
                if self.recent.len() > 10 {
                    self.recent.remove(0);
                }
                Ok(Some(line))
            }
            Err(e) => Err(format!("{}: read: {e}{}", self.nick, self.recent_lines())),
        }
    }

    /// Reads until a line containing `want`; returns every line read.
    fn read_until(&mut self, want: &str) -> std::result::Result<Vec<String>, String> {
        let mut seen = Vec::new();
        loop {
            if Instant::now() > self.deadline {
                return Err(format!("{}: no line with {want:?} in time", self.nick));
            }
            match self.next_line()? {
                Some(line) => {
                    let found = line.contains(want);
                    seen.push(line);
                    if found {
                        return Ok(seen);
                    }
                }
                None => {
                    return Err(format!(
                        "{}: the server closed the connection before a line with {want:?}{}",
                        self.nick,
                        self.recent_lines()
                    ))
                }
            }
        }
    }

    fn expect(&mut self, want: &str) -> std::result::Result<(), String> {
        self.read_until(want).map(drop)
    }

    /// Reads to the end of the stream: the server closed this connection.
    fn expect_end(&mut self) -> std::result::Result<(), String> {
        let mut rest = Vec::new();
        self.reader.read_to_end(&mut rest).map(drop).map_err(|e| {
            format!(
                "{}: the server did not close the connection: {e}",
                self.nick
            )
        })
    }

    fn recent_lines(&self) -> String {
        if self.recent.is_empty() {
            String::new()
        } else {
            format!(" (last lines read: {:?})", self.recent)
        }
    }
}

// ===== helpers =====

/// A std connection whose reads and writes give up at `deadline`.
fn connect(addr: SocketAddr, deadline: Instant) -> io::Result<TcpStream> {
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let conn = TcpStream::connect_timeout(&addr, left)?;
    conn.set_read_timeout(Some(left))?;
    conn.set_write_timeout(Some(left))?;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Reads one HTTP/1.1 response with a `Content-Length` body: its status
/// line and its body.
fn read_http_response(reader: &mut impl BufRead) -> io::Result<(String, String)> {
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut length = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the connection closed inside the headers",
            ));
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("no Content-Length in the response to GET / ({status:?})"),
        )
    })?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    Ok((
        status.trim_end().to_owned(),
        String::from_utf8_lossy(&body).into_owned(),
    ))
}

// ===== a bounded child process =====

/// An example's process: its stdout lines arrive on a channel as they are
/// printed (and are echoed, indented, to the terminal); all its output is
/// kept for the failure message. Dropped while running, it is killed.
struct Running {
    name: String,
    child: Child,
    lines: Receiver<String>,
    /// Every line of stdout and stderr in arrival order, each marked `true`
    /// when it came from stdout.
    output: Arc<Mutex<Vec<(bool, String)>>>,
    readers: Vec<JoinHandle<()>>,
    deadline: Instant,
}

/// What an example printed, once it exited 0.
struct Finished {
    name: String,
    stdout: Vec<String>,
    /// Stdout and stderr together, as they came.
    output: Vec<String>,
}

impl Running {
    /// Starts `binary` with `args`; it has [`EXAMPLE_LIMIT`] from now.
    fn start(binary: &Path, args: &[&str]) -> Result<Running> {
        let name = binary.file_name().map_or_else(
            || binary.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        eprintln!("$ {name} {}", args.join(" "));
        let mut child = Command::new(binary)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error(format!(
                    "could not start {}: {e} (does `cargo build --examples` build it?)",
                    binary.display()
                ))
            })?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout was piped");
        let stderr = child.stderr.take().expect("stderr was piped");
        let readers = vec![
            echo_lines(stdout, &name, Arc::clone(&output), Some(tx)),
            echo_lines(stderr, &name, Arc::clone(&output), None),
        ];
        Ok(Running {
            name,
            child,
            lines,
            output,
            readers,
            deadline: Instant::now() + EXAMPLE_LIMIT,
        })
    }

    /// Waits for the `listening on ADDR` line and returns ADDR.
    fn listening_addr(&mut self) -> Result<SocketAddr> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let Some(rest) = line.split("listening on ").nth(1) else {
                        continue;
                    };
                    let addr = rest.split_whitespace().next().unwrap_or("");
                    return addr.parse().map_err(|e| {
                        self.fail(&format!("cannot read the address in {line:?}: {e}"))
                    });
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(self.fail(&format!(
                        "no `listening on ADDR` line within {EXAMPLE_LIMIT:?}"
                    )))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    return Err(self.fail(&format!(
                        "exited ({}) before printing `listening on ADDR`",
                        describe(status)
                    )));
                }
            }
        }
    }

    /// Waits for the process to exit on its own by the deadline (else kills
    /// it); fails unless it exited 0.
    fn finish(mut self) -> Result<Finished> {
        let status = self.wait_exit()?;
        if !status.success() {
            return Err(self.fail(&format!("exited with {}", describe(Some(status)))));
        }
        let output = std::mem::take(&mut *self.output.lock().expect("output lock"));
        let stdout = output
            .iter()
            .filter(|(from_stdout, _)| *from_stdout)
            .map(|(_, line)| line.clone())
            .collect();
        let output = output.into_iter().map(|(_, line)| line).collect();
        Ok(Finished {
            name: self.name.clone(),
            stdout,
            output,
        })
    }

    /// Waits for the process to exit on its own by the deadline (else kills
    /// it and fails) and for its output to be read whole.
    fn wait_exit(&mut self) -> Result<ExitStatus> {
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() >= self.deadline => {
                    self.kill();
                    return Err(
                        self.fail(&format!("still running after {EXAMPLE_LIMIT:?}: killed"))
                    );
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(self.fail(&format!("waiting for it: {e}"))),
            }
        };
        // The pipes close with the process: the readers end.
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Ok(status)
    }

    /// Kills the process (it serves until killed) and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// An error saying `what`, followed by the process's output so far.
    fn fail(&self, what: &str) -> Error {
        let output: Vec<String> = (self.output.lock().expect("output lock"))
            .iter()
            .map(|(_, line)| line.clone())
            .collect();
        failure(&self.name, what, &output)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

impl Finished {
    /// Checks that each of `wanted` is in some line of stdout; returns the
    /// line holding the first.
    fn expect_lines(&self, wanted: &[&str]) -> Result<String> {
        let mut first = None;
        for want in wanted {
            match self.stdout.iter().find(|l| l.contains(want)) {
                Some(line) => {
                    first.get_or_insert_with(|| line.clone());
                }
                None => return Err(self.fail(&format!("no line with {want:?} in its output"))),
            }
        }
        Ok(first.unwrap_or_default())
    }

    fn fail(&self, what: &str) -> Error {
        failure(&self.name, what, &self.output)
    }
}

/// Reads `pipe` line by line on its own thread: each line is echoed
/// (indented, after the example's name), kept in `output`, and sent on
/// `lines` if given (stdout's reader).
fn echo_lines(
    pipe: impl Read + Send + 'static,
    name: &str,
    output: Arc<Mutex<Vec<(bool, String)>>>,
    lines: Option<mpsc::Sender<String>>,
) -> JoinHandle<()> {
    let name = name.to_owned();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            eprintln!("    {name}| {line}");
            (output.lock().expect("output lock")).push((lines.is_some(), line.clone()));
            if let Some(lines) = &lines {
                let _ = lines.send(line);
            }
        }
    })
}

/// The message of a failed example: what went wrong, then the tail of what
/// it printed.
fn failure(name: &str, what: &str, output: &[String]) -> Error {
    let skip = output.len().saturating_sub(OUTPUT_TAIL);
    let mut message = format!("{name}: {what}");
    message.push_str(&format!(
        "\n--- the last {} lines {name} printed ---",
        output.len() - skip
    ));
    for line in &output[skip..] {
        message.push_str("\n    ");
        message.push_str(line);
    }
    Error(message)
}

/// An exit status in words (`exit status: 1`, `signal: 9 (SIGKILL)`).
fn describe(status: Option<ExitStatus>) -> String {
    status.map_or_else(|| "status unknown".to_owned(), |s| s.to_string())
}
