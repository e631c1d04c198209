//! `green_core::fs`: files and pipes through the ring, on both backends.

use std::cell::Cell;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

use green_core::fs::{pipe, File};

fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("green-fs-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    dir
}

#[test]
fn write_at_then_read_at_round_trips_without_moving_the_position() {
    let path = temp_path("at");
    let f = File::create(&path).unwrap();
    f.write_all_at(b"world", 6).unwrap();
    f.write_all_at(b"hello ", 0).unwrap();
    let f = File::open(&path).unwrap();
    let mut buf = [0u8; 11];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"hello world");
    let mut tail = [0u8; 5];
    assert_eq!(f.read_at(&mut tail, 6).unwrap(), 5);
    assert_eq!(&tail, b"world");
    // Positional reads leave the position at 0: a plain read starts there.
    let mut all = String::new();
    (&f).read_to_string(&mut all).unwrap();
    assert_eq!(all, "hello world");
    let err = f.read_exact_at(&mut [0u8; 4], 9).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::UnexpectedEof);
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn read_write_and_seek_follow_the_file_position() {
    let path = temp_path("pos");
    let mut f = File::from_std(
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap(),
    );
    f.write_all(b"0123456789").unwrap();
    assert_eq!(f.stream_position().unwrap(), 10);
    f.seek(SeekFrom::Start(3)).unwrap();
    let mut three = [0u8; 3];
    f.read_exact(&mut three).unwrap();
    assert_eq!(&three, b"345");
    assert_eq!(f.stream_position().unwrap(), 6);
    assert_eq!(f.metadata().unwrap().len(), 10);
    f.set_len(4).unwrap();
    f.sync_all().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"0123");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn a_pipe_read_parks_only_its_greenlet() {
    let (mut r, w) = pipe().unwrap();
    let ticks = Rc::new(Cell::new(0));
    let t = ticks.clone();
    let ticker = green_core::spawn(move || {
        for _ in 0..5 {
            t.set(t.get() + 1);
            green_core::sleep(Duration::from_millis(1));
        }
    });
    let writer = green_core::spawn(move || {
        green_core::sleep(Duration::from_millis(10));
        let mut w = w;
        w.write_all(b"late").unwrap();
    });
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).unwrap();
    assert_eq!(buf, b"late");
    // The ticker ran while the main greenlet waited on the pipe.
    assert!(ticks.get() >= 1);
    writer.join();
    ticker.join();
}

#[test]
fn a_killed_pipe_reader_leaves_the_bytes_for_the_next_reader() {
    let (r, mut w) = pipe().unwrap();
    let r = Rc::new(r);
    let r2 = r.clone();
    let reader = green_core::spawn(move || {
        let mut buf = [0u8; 16];
        let _ = (&*r2).read(&mut buf);
        unreachable!("killed before any data");
    });
    green_core::sleep(Duration::from_millis(5));
    reader.kill();
    assert!(reader.dead());
    w.write_all(b"kept").unwrap();
    drop(w);
    let mut out = Vec::new();
    (&*r).read_to_end(&mut out).unwrap();
    assert_eq!(out, b"kept");
}

#[test]
fn a_timeout_around_a_pipe_read_fires_and_the_pipe_still_works() {
    let (r, mut w) = pipe().unwrap();
    let res = green_core::with_timeout(Duration::from_millis(10), || {
        let mut buf = [0u8; 4];
        (&r).read(&mut buf)
    });
    assert!(res.is_err(), "the read had nothing to return: {res:?}");
    w.write_all(b"abcd").unwrap();
    let mut buf = [0u8; 4];
    (&r).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abcd");
}

#[test]
fn a_large_pipe_transfer_arrives_whole_while_the_writer_blocks_on_a_full_pipe() {
    let (r, w) = pipe().unwrap();
    let data: Vec<u8> = (0..(1u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let expect = data.clone();
    let writer = green_core::spawn(move || {
        let mut w = w;
        w.write_all(&data).unwrap();
    });
    let mut got = Vec::new();
    (&r).read_to_end(&mut got).unwrap();
    assert_eq!(got.len(), expect.len());
    assert!(got == expect);
    writer.join();
}

#[test]
fn open_of_a_missing_file_is_not_found() {
    let err = File::open(temp_path("missing")).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
}
