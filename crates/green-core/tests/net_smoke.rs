//! A first smoke test of green sockets: kill mid-read, timeouts, errors.

use green_core::net::{TcpListener, TcpStream};
use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn kill_mid_read_then_reuse() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let c = TcpStream::connect(addr).unwrap();
    let (s, _) = l.accept().unwrap();
    let s2 = s.try_clone().unwrap();
    let g = green_core::spawn(move || {
        let mut buf = [0u8; 64];
        let _ = (&s2).read(&mut buf);
        unreachable!("killed");
    });
    green_core::sleep(Duration::from_millis(5));
    g.kill();
    assert!(g.dead());
    (&c).write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    (&s).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
}

#[test]
fn read_timeout_is_wouldblock() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
    let mut buf = [0u8; 4];
    let e = (&c).read(&mut buf).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
}

#[test]
fn timeout_scope_mid_read() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let r = green_core::with_timeout(Duration::from_millis(10), || {
        let mut buf = [0u8; 4];
        (&c).read(&mut buf)
    });
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn refused() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    let e = TcpStream::connect(addr).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn write_to_closed_peer_is_broken_pipe() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (s, _) = l.accept().unwrap();
    drop(s);
    let mut last = Ok(0);
    for _ in 0..100 {
        last = (&c).write(&[0u8; 1024]);
        if last.is_err() {
            break;
        }
        green_core::sleep(Duration::from_millis(1));
    }
    let k = last.unwrap_err().kind();
    assert!(
        matches!(
            k,
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "{k:?}"
    );
}
