//! A real synchronous third-party protocol library over green sockets:
//! tungstenite's WebSocket server and client, each in a greenlet of the
//! same thread, talking through green `TcpStream`s. It only knows
//! `Read + Write`; that both ends make progress on one thread shows the
//! green stream keeps std's blocking contract while parking instead.

use std::time::Duration;

use green_core::net::{TcpListener, TcpStream};
use green_core::{spawn, Greenlet};
use tungstenite::{Error, Message};

fn finish<T: 'static>(g: Greenlet<T>) -> T {
    g.join();
    match g.take() {
        Ok(v) => v,
        Err(e) => panic!("greenlet failed: {e}"),
    }
}

/// Echoes every data message with a prefix until the client closes.
fn serve(listener: TcpListener, clients: usize) -> usize {
    let handlers: Vec<_> = (0..clients)
        .map(|_| {
            let (conn, _) = listener.accept().expect("accept");
            spawn(move || {
                let mut ws = tungstenite::accept(conn).expect("server handshake");
                let mut echoed = 0;
                loop {
                    match ws.read() {
                        Ok(Message::Text(t)) => {
                            ws.send(Message::Text(format!("echo: {t}"))).unwrap();
                            echoed += 1;
                        }
                        Ok(Message::Binary(b)) => {
                            let mut back = b.to_vec();
                            back.reverse();
                            ws.send(Message::Binary(back)).unwrap();
                            echoed += 1;
                        }
                        Ok(Message::Close(_)) => {}
                        Ok(_) => {}
                        Err(Error::ConnectionClosed) => return echoed,
                        Err(e) => panic!("server: {e}"),
                    }
                }
            })
        })
        .collect();
    handlers.into_iter().map(finish).sum()
}

fn client(port: u16, id: usize, rounds: usize) -> usize {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let url = format!("ws://127.0.0.1:{port}/echo");
    let (mut ws, response) =
        tungstenite::client::client(url.as_str(), stream).expect("client handshake");
    assert_eq!(response.status().as_u16(), 101);
    for i in 0..rounds {
        let text = format!("client {id} message {i}");
        ws.send(Message::Text(text.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Text(t) => assert_eq!(t.as_str(), format!("echo: {text}")),
            other => panic!("unexpected {other:?}"),
        }
        // A binary message big enough to span many reads and writes.
        let blob: Vec<u8> = (0..100_000u32).map(|k| (k * 31 + i as u32) as u8).collect();
        ws.send(Message::Binary(blob.clone())).unwrap();
        match ws.read().unwrap() {
            Message::Binary(b) => {
                let mut expect = blob;
                expect.reverse();
                assert!(b.to_vec() == expect, "binary echo differs");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    ws.close(None).unwrap();
    // Read until the server's close reply ends the connection.
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(Error::ConnectionClosed) => break,
            Err(e) => panic!("client close: {e}"),
        }
    }
    2 * rounds
}

#[test]
fn websocket_server_and_client_on_one_thread() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = spawn(move || serve(listener, 1));
    let sent = client(port, 0, 20);
    assert_eq!(finish(server), sent);
}

#[test]
fn many_websocket_clients_at_once() {
    const CLIENTS: usize = 20;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = spawn(move || serve(listener, CLIENTS));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| spawn(move || client(port, id, 3)))
        .collect();
    let sent: usize = clients.into_iter().map(finish).sum();
    assert_eq!(finish(server), sent);
}
