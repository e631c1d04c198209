//! Name resolution off the hub: `getaddrinfo` blocks, so it runs on a small
//! pool of resolver threads while the asking greenlet parks; the answer
//! comes back through the hub's `Remote` (an [`AsyncResult`]'s remote
//! setter), as gevent resolves on its threadpool.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::sync::{AsyncResult, RemoteSetter};

/// The outcome of one lookup.
type Lookup = io::Result<Vec<SocketAddr>>;

/// One request: a `host:port` string and where to deliver the answer.
struct Job {
    target: String,
    reply: RemoteSetter<Lookup, ()>,
}

/// How many resolver threads run at most: a slow DNS server then delays
/// at most this many lookups at once, and the process keeps its threads
/// few.
const RESOLVER_THREADS: usize = 2;

/// The resolver pool's queue and the process that started it: a child
/// made by `fork` has none of its parent's threads, so it starts its own.
static QUEUE: Mutex<Option<(u32, Sender<Job>)>> = Mutex::new(None);

/// Sends `job` to this process's resolver pool, starting it first if need be.
fn submit(job: Job) -> Result<(), ()> {
    let mut queue = QUEUE.lock().map_err(|_| ())?;
    let pid = std::process::id();
    if queue.as_ref().is_none_or(|(owner, _)| *owner != pid) {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for n in 0..RESOLVER_THREADS {
            let rx = Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("green-resolver-{n}"))
                .spawn(move || serve(&rx));
            started += usize::from(spawned.is_ok());
        }
        if started == 0 {
            return Err(());
        }
        *queue = Some((pid, tx));
    }
    let (_, tx) = queue.as_ref().ok_or(())?;
    tx.send(job).map_err(|_| ())
}

fn serve(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            }
        };
        let answer =
            std::net::ToSocketAddrs::to_socket_addrs(job.target.as_str()).map(Iterator::collect);
        // The asking hub may be gone (its thread ended): nobody to tell.
        let _ = job.reply.set(answer);
    }
}

/// Resolves `host:port` on the resolver threads while the running greenlet
/// parks.
///
/// # Kill safety
/// Interruptible; the lookup finishes on its thread and its answer is
/// dropped.
#[track_caller]
pub(crate) fn resolve_off_hub(target: String) -> Lookup {
    let result: AsyncResult<Lookup, ()> = AsyncResult::new();
    let job = Job {
        target,
        reply: result.remote_setter(),
    };
    if submit(job).is_err() {
        return Err(io::Error::other(
            "green-core: the resolver threads could not be started (thread limit?)",
        ));
    }
    loop {
        if let Some(outcome) = result.take() {
            return outcome.unwrap_or_else(|()| Err(io::Error::other("lookup failed")));
        }
        if !result.wait() && !result.ready() {
            return Err(io::Error::other(
                "green-core: name lookup abandoned while the hub tears down",
            ));
        }
    }
}

/// Parses `s` as a literal `ip:port` (no lookup needed).
fn parse_literal(s: &str) -> Option<SocketAddr> {
    s.parse().ok()
}

/// Green `ToSocketAddrs`: std's trait, for the same types, except that a
/// host name is resolved on a resolver thread while the greenlet parks
/// instead of blocking the hub. Literal addresses never leave the thread.
///
/// # Examples
/// ```
/// use green_core::net::ToSocketAddrs;
///
/// let addrs: Vec<_> = ("127.0.0.1", 80).to_socket_addrs()?.collect();
/// assert_eq!(addrs[0].port(), 80);
/// let local: Vec<_> = "localhost:8080".to_socket_addrs()?.collect();
/// assert!(local.iter().all(|a| a.ip().is_loopback()));
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait ToSocketAddrs {
    /// The addresses, in the resolver's order.
    type Iter: Iterator<Item = SocketAddr>;

    /// Resolves this into addresses, parking the greenlet for a lookup.
    ///
    /// # Errors
    /// A lookup failure, as std reports it.
    ///
    /// # Kill safety
    /// Interruptible.
    fn to_socket_addrs(&self) -> io::Result<Self::Iter>;
}

macro_rules! literal_impls {
    ($($ty:ty),*) => {$(
        impl ToSocketAddrs for $ty {
            type Iter = std::option::IntoIter<SocketAddr>;
            fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
                std::net::ToSocketAddrs::to_socket_addrs(self)
            }
        }
    )*};
}

literal_impls!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl ToSocketAddrs for str {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        if let Some(addr) = parse_literal(self) {
            return Ok(vec![addr].into_iter());
        }
        resolve_off_hub(self.to_owned()).map(Vec::into_iter)
    }
}

impl ToSocketAddrs for String {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        self.as_str().to_socket_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        let (host, port) = *self;
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)].into_iter());
        }
        resolve_off_hub(format!("{host}:{port}")).map(Vec::into_iter)
    }
}

impl ToSocketAddrs for (String, u16) {
    type Iter = std::vec::IntoIter<SocketAddr>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (self.0.as_str(), self.1).to_socket_addrs()
    }
}

impl<'a> ToSocketAddrs for &'a [SocketAddr] {
    type Iter = std::iter::Cloned<std::slice::Iter<'a, SocketAddr>>;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        Ok(self.iter().cloned())
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    type Iter = T::Iter;
    fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
        (**self).to_socket_addrs()
    }
}

/// Runs `f` on each resolved address until one succeeds; the last error
/// otherwise (std's rule for `connect` and `bind`).
pub(crate) fn each_addr<A: ToSocketAddrs + ?Sized, R>(
    addr: &A,
    mut f: impl FnMut(&SocketAddr) -> io::Result<R>,
) -> io::Result<R> {
    let mut last = None;
    for a in addr.to_socket_addrs()? {
        match f(&a) {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}
