//! A chat room on `Queue`s: connect with `telnet` (or `nc`) from several
//! terminals, pick a nickname, and talk.
//!
//! ```text
//! cargo run --example chat                                 # 127.0.0.1:7001, until Ctrl-C
//! telnet 127.0.0.1 7001                                    # in two or more other terminals
//! cargo run --example chat -- 127.0.0.1:0 --sessions 5     # stop once 5 sessions have ended
//! ```
//!
//! In the room: the first line you send is your nickname; then every line
//! goes to everyone else. `/nick NAME` renames you, `/who` lists who is
//! here, `/quit` leaves. Joins, leaves and renames are announced.
//!
//! The shape, all on one thread:
//!
//! ```text
//!  client ──> reader greenlet ──┐                   ┌──> outbox ──> writer greenlet ──> client
//!  client ──> reader greenlet ──┼──> room queue ──> broadcaster ──> outbox ──> writer greenlet ──> client
//!  client ──> reader greenlet ──┘    (bounded)      └──> outbox ──> writer greenlet ──> client
//! ```
//!
//! Each connection has a reader greenlet (its session: it parses lines and
//! commands) and a writer greenlet that drains the connection's own outbox,
//! a bounded `Queue`, to the socket. Readers post to the one room queue; the
//! broadcaster copies each post into every other member's outbox with
//! `put_nowait`, so it never waits for any one client.
//!
//! **Slow clients are disconnected.** An outbox holds [`OUTBOX_LIMIT`]
//! lines. A client that stops reading first fills its socket buffers, then
//! its writer blocks, then its outbox fills; the next line for it finds the
//! outbox full, and the broadcaster disconnects it and tells the room.
//! The others never wait for it. Dropping lines instead would leave the
//! client connected to a conversation with silent holes in it;
//! disconnecting says what happened, and the client can come back. The
//! room queue is bounded too, so a client that sends faster than the room
//! can deliver is slowed down by TCP (its reader blocks on `put`) rather
//! than growing the server's memory.
//!
//! `--sessions N` is the bounded mode the tests drive (`cargo xtask
//! examples`): the server accepts N connections, waits for those sessions to
//! end, prints a summary and exits; the whole run is bounded by
//! [`BOUNDED_RUN_LIMIT`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::rc::Rc;
use std::time::Duration;

use green_core::net::{TcpListener, TcpStream};
use green_core::sync::{PutError, Queue};
use green_core::{spawn, Timeout};
use green_pool::Group;

/// Lines waiting for one client before it counts as too slow (see the
/// module docs). Four times the room queue's bound, so that a client that
/// reads at the room's pace is never near it: a writer sends everything
/// queued in one write each time it runs.
const OUTBOX_LIMIT: usize = 256;

/// Posts waiting for the broadcaster before readers block.
const ROOM_LIMIT: usize = 64;

/// The longest line a client may send, in bytes; a longer one ends its
/// session.
const MAX_LINE: usize = 1024;

/// The longest nickname, in characters.
const MAX_NICK: usize = 16;

/// How long a leaving client's writer may take to send what is still queued
/// for it (the goodbye included) before its connection is cut.
const WRITER_GRACE: Duration = Duration::from_secs(5);

/// The whole run's bound in `--sessions` mode, so a stuck test ends with a
/// message instead of hanging.
const BOUNDED_RUN_LIMIT: Duration = Duration::from_secs(120);

/// One line of text for the room, sent to every member but `from`. Lines
/// are shared (`Rc<str>`): one allocation whatever the room's size.
struct Post {
    from: Option<u64>,
    line: Rc<str>,
}

/// A member of the room: someone past the nickname prompt.
struct Member {
    nick: String,
    outbox: Queue<Rc<str>>,
    conn: Rc<TcpStream>,
}

/// What the greenlets share. One thread, so a `RefCell`; no borrow is held
/// across a call that can switch.
#[derive(Default)]
struct Room {
    members: BTreeMap<u64, Member>,
    delivered: Cell<u64>,
    too_slow: Cell<u64>,
}

type SharedRoom = Rc<RefCell<Room>>;

fn main() -> io::Result<()> {
    let mut addr = "127.0.0.1:7001".to_owned();
    let mut sessions: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--sessions" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) => sessions = Some(n),
                None => usage("--sessions takes a number of sessions"),
            },
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            flag if flag.starts_with("--") => usage(&format!("unknown flag {flag}")),
            _ => addr = arg,
        }
    }
    green_core::run(|| {
        let listener = TcpListener::bind(addr.as_str())?;
        println!("listening on {}", listener.local_addr()?);
        match sessions {
            None => serve(&listener, None),
            Some(n) => match Timeout::run(BOUNDED_RUN_LIMIT, || serve(&listener, Some(n))) {
                Ok(result) => result,
                Err(timeout) => {
                    eprintln!("chat: {timeout}: the {n} sessions did not all end in time");
                    std::process::exit(1);
                }
            },
        }
    })
}

const USAGE: &str = "usage: chat [ADDR] [--sessions N]  (ADDR defaults to 127.0.0.1:7001; \
--sessions N serves N connections, then prints a summary and exits)";

/// Says what was wrong with the command line, and how to use it; exits 2.
fn usage(what: &str) -> ! {
    eprintln!("chat: {what}; {USAGE}");
    std::process::exit(2);
}

/// Accepts connections (at most `limit`), then waits for their sessions to
/// end and prints a summary.
fn serve(listener: &TcpListener, limit: Option<usize>) -> io::Result<()> {
    let room = SharedRoom::default();
    let posts = Queue::bounded(ROOM_LIMIT);
    let broadcaster = spawn({
        let (room, posts) = (Rc::clone(&room), posts.clone());
        move || broadcast(&room, &posts)
    });
    // A group forgets each session as it ends, so a long-running server
    // keeps no handle per past connection.
    let sessions = Group::new();
    let mut accepted = 0;
    while limit.is_none_or(|limit| accepted < limit) {
        let (conn, peer) = match listener.accept() {
            Ok(accepted) => accepted,
            // Out of descriptors, say: give the sessions a moment to close some.
            Err(e) => {
                eprintln!("accept failed: {e}");
                green_core::sleep(Duration::from_millis(10));
                continue;
            }
        };
        accepted += 1;
        let id = accepted as u64;
        let (room, posts) = (Rc::clone(&room), posts.clone());
        sessions.spawn(move || {
            if let Err(e) = session(id, conn, peer, &room, &posts) {
                println!("{peer}: session ended: {e}");
            }
        });
    }
    sessions.join();
    posts.close();
    broadcaster.join();
    let room = room.borrow();
    println!(
        "chat: {accepted} sessions, {} lines delivered, {} clients disconnected as too slow",
        room.delivered.get(),
        room.too_slow.get()
    );
    Ok(())
}

/// The broadcaster: copies each post into every other member's outbox,
/// never blocking; a member whose outbox is full is disconnected.
fn broadcast(room: &SharedRoom, posts: &Queue<Post>) {
    for post in posts {
        // Disconnect notices are delivered like posts, after this one.
        let mut pending = VecDeque::from([post]);
        while let Some(post) = pending.pop_front() {
            let mut full = Vec::new();
            {
                let room = room.borrow();
                for (&id, member) in &room.members {
                    if post.from == Some(id) {
                        continue;
                    }
                    match member.outbox.put_nowait(Rc::clone(&post.line)) {
                        Ok(()) => room.delivered.set(room.delivered.get() + 1),
                        Err(PutError::Full(_)) => full.push(id),
                        // Closed: the member is leaving.
                        Err(PutError::Closed(_)) => {}
                    }
                }
            }
            for id in full {
                let Some(member) = room.borrow_mut().members.remove(&id) else {
                    continue;
                };
                println!("{}: disconnected, too slow", member.nick);
                let room = room.borrow();
                room.too_slow.set(room.too_slow.get() + 1);
                // Its reader sees end of file and its writer a failed write:
                // both greenlets end by themselves.
                member.outbox.close();
                let _ = member.conn.shutdown(Shutdown::Both);
                pending.push_back(Post {
                    from: None,
                    line: line(format_args!(
                        "*** {} was disconnected: too slow",
                        member.nick
                    )),
                });
            }
        }
    }
}

/// One client's session: the nickname prompt, then lines and commands until
/// `/quit`, end of file, or a disconnect by the broadcaster.
fn session(
    id: u64,
    conn: TcpStream,
    peer: SocketAddr,
    room: &SharedRoom,
    posts: &Queue<Post>,
) -> io::Result<()> {
    let _ = conn.set_nodelay(true);
    let conn = Rc::new(conn);
    let outbox = Queue::bounded(OUTBOX_LIMIT);
    let writer = spawn({
        let (conn, outbox) = (Rc::clone(&conn), outbox.clone());
        move || write_out(&conn, &outbox)
    });
    let tell = |text: std::fmt::Arguments<'_>| {
        // The client's own outbox: if it is full, the broadcaster is about
        // to disconnect this client anyway.
        let _ = outbox.put_nowait(line(text));
    };
    let post = |from: Option<u64>, text: std::fmt::Arguments<'_>| {
        // Blocks while the room queue is full; fails only once the server
        // is shutting down.
        let _ = posts.put(Post {
            from,
            line: line(text),
        });
    };
    let mut reader = BufReader::new(&*conn);
    let mut buf = Vec::new();
    let ended = (|| -> io::Result<&'static str> {
        tell(format_args!("welcome to green chat! your nickname?"));
        let mut nick = loop {
            let Some(text) = read_line(&mut reader, &mut buf)? else {
                return Ok("left before choosing a nickname");
            };
            match check_nick(room, &text) {
                Ok(()) => break text,
                Err(why) => tell(format_args!("{why}; your nickname?")),
            }
        };
        let here = nicks(room);
        room.borrow_mut().members.insert(
            id,
            Member {
                nick: nick.clone(),
                outbox: outbox.clone(),
                conn: Rc::clone(&conn),
            },
        );
        println!("{nick} joined from {peer}");
        tell(format_args!(
            "*** hello {nick}! here: {}. /nick NAME, /who, /quit",
            if here.is_empty() { "nobody yet" } else { &here }
        ));
        post(Some(id), format_args!("*** {nick} joined"));
        while let Some(text) = read_line(&mut reader, &mut buf)? {
            // Disconnected by the broadcaster: say nothing more.
            if !room.borrow().members.contains_key(&id) {
                return Ok("disconnected");
            }
            let (command, arg) = text.split_once(' ').unwrap_or((&text, ""));
            match command {
                "" => {}
                "/quit" => {
                    tell(format_args!("*** bye {nick}"));
                    return Ok("quit");
                }
                "/who" => tell(format_args!("*** here: {}", nicks(room))),
                "/nick" => match check_nick(room, arg.trim()) {
                    Ok(()) => {
                        let new = arg.trim().to_owned();
                        if let Some(member) = room.borrow_mut().members.get_mut(&id) {
                            member.nick.clone_from(&new);
                        }
                        println!("{nick} is now {new}");
                        post(Some(id), format_args!("*** {nick} is now {new}"));
                        tell(format_args!("*** you are now {new}"));
                        nick = new;
                    }
                    Err(why) => tell(format_args!("*** {why}")),
                },
                _ if command.starts_with('/') => tell(format_args!(
                    "*** unknown command {command}: try /nick NAME, /who or /quit"
                )),
                _ => post(Some(id), format_args!("<{nick}> {text}")),
            }
        }
        Ok("left")
    })();
    // Leaving: announce it unless the broadcaster already did, then let the
    // writer send what is queued (the goodbye) before the connection closes.
    let member = room.borrow_mut().members.remove(&id);
    if let Some(member) = &member {
        println!("{}: {}", member.nick, ended.as_ref().unwrap_or(&"left"));
        post(None, format_args!("*** {} left", member.nick));
    }
    outbox.close();
    if !writer.join_timeout(WRITER_GRACE) {
        let _ = conn.shutdown(Shutdown::Both);
        writer.join();
    }
    ended.map(drop)
}

/// The writer: sends the outbox's lines until it is closed and drained, or
/// the connection fails. Each time it runs it sends everything queued in
/// one write, so it keeps up with the room however many lines a burst
/// brings.
fn write_out(conn: &TcpStream, outbox: &Queue<Rc<str>>) {
    let mut batch = Vec::new();
    for first in outbox {
        batch.clear();
        batch.extend_from_slice(first.as_bytes());
        while let Ok(next) = outbox.get_nowait() {
            batch.extend_from_slice(next.as_bytes());
        }
        if (&*conn).write_all(&batch).is_err() {
            // The client is gone or was cut off: end the session's reader too.
            let _ = conn.shutdown(Shutdown::Both);
            return;
        }
    }
    // Everything queued was sent: the client sees end of file.
    let _ = conn.shutdown(Shutdown::Write);
}

/// Reads one line, without its line ending and control characters (telnet
/// sends `\r\n`; a control character would reach other people's terminals).
/// `None` at end of file; an error for a line longer than [`MAX_LINE`].
fn read_line(reader: &mut BufReader<&TcpStream>, buf: &mut Vec<u8>) -> io::Result<Option<String>> {
    buf.clear();
    let n = reader
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)?;
    if n == 0 {
        return Ok(None);
    }
    if n > MAX_LINE && buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a line longer than {MAX_LINE} bytes"),
        ));
    }
    let text = String::from_utf8_lossy(buf);
    Ok(Some(
        text.trim_end()
            .chars()
            .filter(|c| !c.is_control())
            .collect(),
    ))
}

/// Whether `nick` may be taken: a short word, not in use.
fn check_nick(room: &SharedRoom, nick: &str) -> Result<(), String> {
    if nick.is_empty()
        || nick.chars().count() > MAX_NICK
        || !nick
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "a nickname is 1 to {MAX_NICK} letters, digits, - or _"
        ));
    }
    if room.borrow().members.values().any(|m| m.nick == nick) {
        return Err(format!("{nick} is taken"));
    }
    Ok(())
}

/// The members' nicknames, comma-separated.
fn nicks(room: &SharedRoom) -> String {
    let room = room.borrow();
    let nicks: Vec<&str> = room.members.values().map(|m| m.nick.as_str()).collect();
    nicks.join(", ")
}

/// A line as sent to clients: the text and telnet's `\r\n`.
fn line(text: std::fmt::Arguments<'_>) -> Rc<str> {
    format!("{text}\r\n").into()
}
