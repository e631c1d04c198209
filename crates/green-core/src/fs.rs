//! Files and other descriptors through the ring: reads and writes park the
//! greenlet instead of blocking the thread.
//!
//! * [`File`] wraps a [`std::fs::File`]: `read_at`/`write_at` and the
//!   `Read`/`Write` traits go through io_uring (on the epoll backend a
//!   regular file is read and written directly, as epoll cannot wait on
//!   one). Opening, `metadata`, `set_len` and `sync_all` are std's calls:
//!   they block the thread briefly, as gevent's do.
//! * [`GreenFd`] wraps any descriptor you own (a pipe, a tty, a character
//!   device, a socket of a kind `net` lacks): reads and writes park the
//!   greenlet until the fd is ready. [`pipe`] makes a green pipe.
//!
//! # Examples
//! ```
//! use std::io::{Read, Write};
//!
//! let (mut reader, mut writer) = green_core::fs::pipe()?;
//! let producer = green_core::spawn(move || writer.write_all(b"through the ring"));
//! let mut text = String::new();
//! reader.read_to_string(&mut text)?; // parks until the writer is dropped
//! assert_eq!(text, "through the ring");
//! producer.join();
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;

use crate::io::{run, Direction};

/// Reads into `buf` at `offset` (`None`: the fd's current position).
#[track_caller]
fn read_fd(fd: BorrowedFd<'_>, buf: &mut [u8], offset: Option<u64>) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    run(fd, Direction::Read, None, |lp, w| {
        lp.read_borrowed(fd, buf, offset, w)
    })
}

/// Writes `buf` at `offset` (`None`: the fd's current position).
#[track_caller]
fn write_fd(fd: BorrowedFd<'_>, buf: &[u8], offset: Option<u64>) -> io::Result<usize> {
    if buf.is_empty() {
        return Ok(0);
    }
    run(fd, Direction::Write, None, |lp, w| {
        lp.write_borrowed(fd, buf, offset, w)
    })
}

/// A file whose reads and writes go through the hub's ring.
///
/// # Kill safety (every read and write)
/// A kill or `Timeout` waits for the op's completion before unwinding. A
/// read or write that completed is reported and the kill raised at the
/// next blocking call; otherwise nothing was transferred. A plain
/// `read`/`write` moves the file position only by what was transferred.
pub struct File {
    inner: std::fs::File,
}

impl File {
    /// Opens `path` for reading (std's `File::open`).
    ///
    /// # Errors
    /// `NotFound`, `PermissionDenied`, ...
    pub fn open<P: AsRef<Path>>(path: P) -> io::Result<File> {
        std::fs::File::open(path).map(File::from_std)
    }

    /// Creates or truncates `path` for writing (std's `File::create`).
    ///
    /// # Errors
    /// `PermissionDenied`, ...
    pub fn create<P: AsRef<Path>>(path: P) -> io::Result<File> {
        std::fs::File::create(path).map(File::from_std)
    }

    /// Reads at `offset` without moving the file position.
    ///
    /// # Errors
    /// `pread`'s.
    ///
    /// # Kill safety
    /// As the type's.
    #[track_caller]
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        read_fd(self.as_fd(), buf, Some(offset))
    }

    /// Writes at `offset` without moving the file position.
    ///
    /// # Errors
    /// `pwrite`'s.
    ///
    /// # Kill safety
    /// As the type's.
    #[track_caller]
    pub fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        write_fd(self.as_fd(), buf, Some(offset))
    }

    /// Fills `buf` from `offset`, or fails with `UnexpectedEof`.
    ///
    /// # Errors
    /// `UnexpectedEof` past the end; `pread`'s.
    ///
    /// # Kill safety
    /// As the type's; a kill may leave `buf` partly filled.
    #[track_caller]
    pub fn read_exact_at(&self, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.read_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "failed to fill whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &mut buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes all of `buf` from `offset`.
    ///
    /// # Errors
    /// `WriteZero` if the file takes nothing; `pwrite`'s.
    ///
    /// # Kill safety
    /// As the type's; a kill may leave a prefix of `buf` written.
    #[track_caller]
    pub fn write_all_at(&self, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
        while !buf.is_empty() {
            match self.write_at(buf, offset) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write whole buffer",
                    ))
                }
                Ok(n) => {
                    buf = &buf[n..];
                    offset += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// std's `metadata` (a blocking `statx`).
    ///
    /// # Errors
    /// `fstat`'s.
    pub fn metadata(&self) -> io::Result<std::fs::Metadata> {
        self.inner.metadata()
    }

    /// std's `set_len`.
    ///
    /// # Errors
    /// `ftruncate`'s.
    pub fn set_len(&self, size: u64) -> io::Result<()> {
        self.inner.set_len(size)
    }

    /// std's `sync_all` (a blocking `fsync`).
    ///
    /// # Errors
    /// `fsync`'s.
    pub fn sync_all(&self) -> io::Result<()> {
        self.inner.sync_all()
    }

    /// Wraps a std file (opened with any options).
    pub fn from_std(file: std::fs::File) -> File {
        File { inner: file }
    }

    /// The std file.
    pub fn into_std(self) -> std::fs::File {
        self.inner
    }
}

impl Read for &File {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_fd(self.as_fd(), buf, None)
    }
}

impl Write for &File {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_fd(self.as_fd(), buf, None)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for &File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&self.inner).seek(pos)
    }
}

impl Read for File {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for File {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Seek for File {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        (&*self).seek(pos)
    }
}

impl AsRawFd for File {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for File {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

impl IntoRawFd for File {
    fn into_raw_fd(self) -> RawFd {
        self.inner.into_raw_fd()
    }
}

impl From<std::fs::File> for File {
    fn from(file: std::fs::File) -> File {
        File::from_std(file)
    }
}

impl fmt::Debug for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("File")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}

/// Any descriptor you own, with reads and writes that park the greenlet
/// until it is ready: a pipe end, a tty, a character device. Build one
/// with `From<OwnedFd>` (`OwnedFd::from(child_stdout)`, or
/// the unsafe `OwnedFd::from_raw_fd(fd)` for a raw one you own).
///
/// # Kill safety (every read and write)
/// As [`File`]'s.
pub struct GreenFd {
    fd: OwnedFd,
}

impl GreenFd {
    /// The descriptor, borrowed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// The descriptor, given back.
    pub fn into_owned(self) -> OwnedFd {
        self.fd
    }
}

/// A green pipe: `(read end, write end)`, close-on-exec. Reading returns
/// end-of-file once every write end is dropped.
///
/// # Errors
/// `pipe2`'s, e.g. `EMFILE`.
pub fn pipe() -> io::Result<(GreenFd, GreenFd)> {
    let (r, w) = green_loop::fd::pipe()?;
    Ok((GreenFd::from(r), GreenFd::from(w)))
}

impl Read for &GreenFd {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_fd(self.fd(), buf, None)
    }
}

impl Write for &GreenFd {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_fd(self.fd(), buf, None)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for GreenFd {
    #[track_caller]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for GreenFd {
    #[track_caller]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl From<OwnedFd> for GreenFd {
    fn from(fd: OwnedFd) -> GreenFd {
        GreenFd { fd }
    }
}

impl From<GreenFd> for OwnedFd {
    fn from(g: GreenFd) -> OwnedFd {
        g.fd
    }
}

impl AsRawFd for GreenFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for GreenFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl IntoRawFd for GreenFd {
    fn into_raw_fd(self) -> RawFd {
        self.fd.into_raw_fd()
    }
}

impl fmt::Debug for GreenFd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GreenFd")
            .field("fd", &self.as_raw_fd())
            .finish()
    }
}
