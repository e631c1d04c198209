//! `incoming()` through one multishot accept: every connection served, a
//! bounded buffer, nothing leaked when the iterator goes, both backends.

use std::io::{Read, Write};
use std::time::Duration;

use green_core::net::{TcpListener, TcpStream, UnixListener, UnixStream};

#[test]
fn incoming_serves_a_burst_of_clients_in_order_of_arrival() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    const CLIENTS: usize = 200;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            green_core::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(&(i as u32).to_le_bytes()).unwrap();
                let mut back = [0u8; 4];
                s.read_exact(&mut back).unwrap();
                u32::from_le_bytes(back)
            })
        })
        .collect();
    let mut handlers = Vec::new();
    for conn in listener.incoming().take(CLIENTS) {
        let mut conn = conn.unwrap();
        handlers.push(green_core::spawn(move || {
            let mut buf = [0u8; 4];
            conn.read_exact(&mut buf).unwrap();
            let v = u32::from_le_bytes(buf) * 2;
            conn.write_all(&v.to_le_bytes()).unwrap();
        }));
    }
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.get().unwrap(), i as u32 * 2);
    }
    for h in handlers {
        h.join();
    }
}

#[test]
fn connections_taken_by_a_dropped_iterator_go_to_the_next_accept() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = listener.incoming();
    let clients: Vec<_> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let first = incoming.next().unwrap().unwrap();
    // Meanwhile the ring may take more connections off the backlog.
    green_core::sleep(Duration::from_millis(20));
    drop(incoming);
    let mut peers: Vec<u16> = vec![first.peer_addr().unwrap().port()];
    for _ in 1..40 {
        let (conn, peer) = listener.accept().unwrap();
        assert_eq!(conn.peer_addr().unwrap(), peer);
        peers.push(peer.port());
    }
    peers.sort_unstable();
    let mut expected: Vec<u16> = clients
        .iter()
        .map(|c| c.local_addr().unwrap().port())
        .collect();
    expected.sort_unstable();
    assert_eq!(peers, expected, "every client accepted exactly once");
}

#[test]
fn dropping_the_listener_closes_what_the_ring_accepted_for_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut incoming = listener.incoming();
    let clients: Vec<_> = (0..40).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let first = incoming.next().unwrap().unwrap();
    green_core::sleep(Duration::from_millis(20));
    drop(incoming);
    drop(first);
    drop(listener);
    // A connection kept open anywhere would leave its client waiting.
    for c in &clients {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        match (&*c).read(&mut [0u8; 1]) {
            Ok(0) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("a client was left open: {other:?}"),
        }
    }
}

#[test]
fn a_kill_while_waiting_in_incoming_loses_no_connection() {
    let listener = std::rc::Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
    let addr = listener.local_addr().unwrap();
    let l2 = listener.clone();
    let waiter = green_core::spawn(move || {
        let mut it = l2.incoming();
        let _ = it.next();
        unreachable!("killed first");
    });
    green_core::sleep(Duration::from_millis(5));
    waiter.kill();
    let client = green_core::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"x").unwrap();
    });
    let mut conn = listener.incoming().next().unwrap().unwrap();
    let mut b = [0u8; 1];
    conn.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"x");
    client.join();
}

#[test]
fn unix_incoming_round_trips() {
    let dir = std::env::temp_dir().join(format!("green-incoming-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let listener = UnixListener::bind(&dir).unwrap();
    let p = dir.clone();
    let clients: Vec<_> = (0..20u8)
        .map(|i| {
            let p = p.clone();
            green_core::spawn(move || {
                let mut s = UnixStream::connect(&p).unwrap();
                s.write_all(&[i]).unwrap();
                let mut b = [0u8; 1];
                s.read_exact(&mut b).unwrap();
                b[0]
            })
        })
        .collect();
    for conn in listener.incoming().take(20) {
        let mut conn = conn.unwrap();
        green_core::spawn(move || {
            let mut b = [0u8; 1];
            conn.read_exact(&mut b).unwrap();
            conn.write_all(&[b[0] + 1]).unwrap();
        });
    }
    for (i, c) in clients.into_iter().enumerate() {
        assert_eq!(c.get().unwrap(), i as u8 + 1);
    }
    std::fs::remove_file(&dir).unwrap();
}

/// A thread that ends (no `green_core::run`) while a greenlet still holds
/// a listener parked in accept: the hub's teardown at thread exit drops the
/// listener after the accept-queue table may be gone. It must end cleanly
/// (this aborted the whole process once).
#[test]
fn a_thread_exiting_with_a_listener_parked_in_accept_ends_cleanly() {
    for use_incoming in [false, true] {
        let t = std::thread::spawn(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            green_core::spawn(move || {
                if use_incoming {
                    let _ = listener.incoming().next();
                } else {
                    let _ = listener.accept();
                }
            });
            green_core::sleep(Duration::from_millis(10));
        });
        assert!(t.join().is_ok());
    }
}

#[test]
fn dropping_a_listener_whose_incoming_was_waiting_frees_its_port_at_once() {
    // The ring's multishot accept holds the listening socket until its
    // cancel completes; the listener's drop finishes that cancel, so the
    // port is free when the drop returns (no loop turn in between).
    for _ in 0..20 {
        let listener = std::rc::Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = listener.local_addr().unwrap();
        let l2 = listener.clone();
        let acceptor = green_core::spawn(move || {
            let mut kept = Vec::new();
            for conn in l2.incoming() {
                kept.push(conn.unwrap());
            }
        });
        // One connection through the multishot accept, then it waits again.
        let client = TcpStream::connect(addr).unwrap();
        for _ in 0..3 {
            green_core::yield_now();
        }
        acceptor.kill();
        drop(listener);
        let again = TcpListener::bind(addr);
        assert!(again.is_ok(), "port still bound after the drop: {again:?}");
        drop(again);
        drop(client);
    }
}
