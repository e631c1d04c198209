//! [`ThreadPool`]: blocking work that cannot be green (CPU-bound code, a C
//! library, a `std` call with no green twin) run on OS threads, and waited
//! for greenly (gevent's `gevent.threadpool.ThreadPool`).
//!
//! The design, the outcomes and the differences from gevent are in
//! [`ThreadPool`]'s docs.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};

use green_core::sync::{AsyncResult, RemoteSetter};

/// Why a [`ThreadPool`] job has no value.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TaskError {
    /// The job panicked; the panic's message. The worker that ran it
    /// carries on with the next job.
    Panicked(String),
    /// The job was submitted after the pool began shutting down; it was
    /// not run.
    ShutDown,
    /// No worker thread could be started for the job (the OS refused a new
    /// thread and the pool had none); the message is the OS error. The job
    /// was not run.
    ThreadStart(String),
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(message) => {
                write!(f, "the ThreadPool job panicked: {message}")
            }
            TaskError::ShutDown => f.write_str(
                "the ThreadPool is shut down: the job was not run \
                 (submit jobs before calling shutdown or dropping the pool)",
            ),
            TaskError::ThreadStart(error) => write!(
                f,
                "the ThreadPool could not start a worker thread ({error}): the job was not run"
            ),
        }
    }
}

impl std::error::Error for TaskError {}

impl From<TaskError> for io::Error {
    fn from(error: TaskError) -> io::Error {
        let kind = match error {
            TaskError::Panicked(_) => io::ErrorKind::Other,
            TaskError::ShutDown => io::ErrorKind::BrokenPipe,
            TaskError::ThreadStart(_) => io::ErrorKind::WouldBlock,
        };
        io::Error::new(kind, error)
    }
}

/// One queued job: runs the closure, calls its argument (the worker's
/// "finished" count) and delivers the outcome.
type Job = Box<dyn FnOnce(&dyn Fn()) + Send>;

/// Completes a greenlet's wait from a pool thread.
type Wake = RemoteSetter<(), Infallible>;

/// Greenlets waiting in `join` or `shutdown`: an id each (to take a
/// waiter back out, see [`Registered`]) and its wake-up.
type Waiters = Vec<(u64, Wake)>;

/// What the workers and the submitters share, under one mutex.
struct State {
    /// Jobs not yet taken by a worker, oldest first.
    queue: VecDeque<Job>,
    /// Jobs a worker is running now.
    running: usize,
    /// Jobs run whose outcome a worker is sending: no longer in `len()`
    /// (whoever has the outcome must not see its job counted), still
    /// waited for by `join()` (whose wake-up must come after the outcome).
    delivering: usize,
    /// The most worker threads the pool starts.
    maxsize: usize,
    /// Worker threads alive (started and not yet leaving).
    threads: usize,
    /// Workers that will look at the queue without being told again: those
    /// asleep on the condvar plus those started and not yet looking.
    available: usize,
    /// No new jobs; workers leave once the queue is empty.
    shutdown: bool,
    /// The handles of the workers started, for the reaper to join (those of
    /// workers that left early are joined when a new one starts).
    handles: Vec<JoinHandle<()>>,
    /// A reaper took `handles`; `shutdown()` callers wait on it.
    reaping: bool,
    /// The reaper joined every worker.
    all_joined: bool,
    /// The reaper could not be started: the last worker to leave sets
    /// `all_joined`.
    reaper_failed: bool,
    /// Greenlets in `join()`, woken when no job is outstanding.
    idle_waiters: Waiters,
    /// Greenlets in `shutdown()`, woken when every worker is joined.
    exit_waiters: Waiters,
    /// The id of the next waiter.
    next_waiter: u64,
}

impl State {
    /// The jobs queued or running (`len()`).
    fn unfinished(&self) -> usize {
        self.queue.len() + self.running
    }

    /// The jobs `join()` waits for: also those whose outcome is on its way.
    fn outstanding(&self) -> usize {
        self.unfinished() + self.delivering
    }

    fn waiters(&mut self, list: WaitList) -> &mut Waiters {
        match list {
            WaitList::Idle => &mut self.idle_waiters,
            WaitList::Exit => &mut self.exit_waiters,
        }
    }

    /// Adds a waiter to `list`; the returned guard takes it out again.
    fn register<'a>(&mut self, shared: &'a Shared, list: WaitList, wake: Wake) -> Registered<'a> {
        let id = self.next_waiter;
        self.next_waiter += 1;
        self.waiters(list).push((id, wake));
        Registered { shared, list, id }
    }
}

/// The list a greenlet in `join` or `shutdown` waits in.
#[derive(Clone, Copy)]
enum WaitList {
    Idle,
    Exit,
}

/// A greenlet's place in a wait list, given up when its wait ends. After a
/// wake-up the entry is already gone; after a kill or `Timeout` it is still
/// there, and its wake-up handle must not stay: a live handle keeps its hub's
/// loop alive (no `LoopExit`) until the pool, maybe much later, woke it, and
/// a greenlet timing out of `join` in a loop would pile handles up.
struct Registered<'a> {
    shared: &'a Shared,
    list: WaitList,
    id: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        let left = {
            let mut st = self.shared.lock();
            let waiters = st.waiters(self.list);
            let at = waiters.iter().position(|(id, _)| *id == self.id);
            at.map(|at| waiters.swap_remove(at))
        };
        // Dropped outside the lock: dropping a handle messages its hub.
        drop(left);
    }
}

struct Shared {
    state: Mutex<State>,
    /// Idle workers sleep here; a new job, a lowered `maxsize` or shutdown
    /// wakes them.
    work: Condvar,
    /// Tells this pool's workers apart from other threads (see `apply`).
    id: usize,
}

impl Shared {
    /// The state; a poisoned lock is taken anyway, because no code holding
    /// it can panic half-way through an update (jobs run outside it).
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

static NEXT_POOL_ID: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// The id of the pool whose worker this thread is; 0 for other threads.
    static WORKER_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// A pool of OS threads for blocking work, waited for greenly (gevent's
/// `ThreadPool`).
///
/// A greenlet hands a closure to [`ThreadPool::spawn`] and gets an
/// [`AsyncResult`] back; a worker thread runs the closure and completes the
/// result through its [`RemoteSetter`](green_core::sync::RemoteSetter),
/// which wakes the greenlet's hub. [`ThreadPool::apply`] does both and
/// returns the outcome; [`ThreadPool::map`] runs one job per item.
///
/// # How it works, and why the hub never blocks on it
///
/// Jobs wait in one unbounded FIFO queue behind a `std::sync::Mutex`, and
/// idle workers sleep on a `Condvar`. The hub's thread only ever takes that
/// mutex for a few instructions (push a job, read a count): no job runs
/// under it, so a hub waits on it no longer than a worker takes to pop a
/// job. Submitting never waits for a free worker, and nothing on the hub's
/// thread ever joins a thread or sleeps on the condvar:
///
/// * [`ThreadPool::join`] and [`ThreadPool::shutdown`] wait greenly, on an
///   [`AsyncResult`] that a worker (for `join`) or a reaper thread (for
///   `shutdown`) completes from afar.
/// * Worker threads are started lazily, one when a job is queued and no
///   worker is idle, up to `maxsize`; they live until the pool shuts down
///   (or `maxsize` is lowered below their number).
/// * Shutting down closes the queue to new jobs and wakes every worker; the
///   workers run the jobs still queued, then exit, and a short-lived
///   *reaper* thread joins them all. `shutdown()` waits greenly for the
///   reaper; dropping the pool does not wait (see Dropping the pool, below).
///
/// # Outcomes
///
/// A job's outcome is a `Result<T, TaskError>`: its value, or
/// [`TaskError::Panicked`] with the panic's message (the worker catches the
/// panic and goes on to the next job), or [`TaskError::ShutDown`] for a job
/// submitted after shutdown began. A result nobody waits for any more (its
/// greenlet was killed) is dropped on its hub's thread when it arrives; the
/// worker is not held up by it.
///
/// # Differences from gevent
///
/// * `maxsize` 0 is refused with `InvalidInput`, by [`ThreadPool::new`] and
///   [`ThreadPool::set_maxsize`]. gevent accepts it as a paused pool whose
///   jobs wait until `maxsize` is raised; here such a wait would never end
///   (a pending cross-thread result keeps its hub alive, so not even
///   `LoopExit` would come).
/// * [`ThreadPool::spawn`] never blocks: the queue is unbounded. gevent's
///   `spawn` waits greenly once `maxsize + 1` jobs are outstanding; bound
///   the submitters with a [`Semaphore`](green_core::sync::Semaphore) for
///   that back-pressure.
/// * The pool is `Send + Sync`: greenlets of any hub thread may submit to
///   one pool (share it with an `Arc`), and each result wakes the hub that
///   asked for it. gevent's pool belongs to one hub and raises
///   `InvalidThreadUseError` elsewhere.
/// * There is no `size` setter (gevent's pre-starts or stops threads):
///   [`ThreadPool::size`] reports the live workers, which grow on demand;
///   lowering `maxsize` retires the surplus as they finish their jobs. There
///   is no idle timeout, `imap` or `apply_async`; `map` returns the values in
///   order, or the first error in order.
/// * [`ThreadPool::join`] waits for every outstanding job, as gevent's does;
///   gevent's `kill` is [`ThreadPool::shutdown`], which also joins the
///   threads, and the pool cannot be restarted afterwards.
/// * [`ThreadPool::apply`] called from one of this pool's own workers runs
///   the closure at once on that worker, as gevent's does (waiting for
///   another worker could deadlock a full pool); `spawn` from a worker
///   queues as usual.
///
/// The pool is `Send + Sync`; share it between hub threads with an `Arc`.
///
/// # Dropping the pool
///
/// Dropping it shuts it down without waiting: no job is accepted any
/// more, the jobs already queued still run (their results are delivered as
/// usual), and the workers exit once the queue is empty. A reaper thread
/// joins them, so dropping never blocks the hub, even while a job runs for
/// a long time; the workers may therefore outlive the pool by that long.
/// Call [`ThreadPool::shutdown`] first to wait (greenly) until they are
/// joined.
///
/// # Examples
/// ```
/// use green_pool::ThreadPool;
///
/// let pool = ThreadPool::new(4)?;
/// // A greenlet waits greenly while a worker thread does the blocking work.
/// let sum = pool.apply(|| (1..=100u64).sum::<u64>());
/// assert_eq!(sum, Ok(5050));
///
/// let pending = pool.spawn(|| std::fs::metadata("/").is_ok());
/// assert_eq!(pending.get(), Ok(true));
///
/// // A panic comes back as an error; the worker survives it.
/// let failed = pool.apply(|| -> u32 { panic!("bad input") });
/// assert_eq!(failed, Err(green_pool::TaskError::Panicked("bad input".into())));
///
/// pool.shutdown(); // waits greenly until the workers are joined
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct ThreadPool {
    shared: Arc<Shared>,
}

impl ThreadPool {
    /// A pool that runs at most `maxsize` jobs at once, on as many worker
    /// threads, started as jobs need them.
    ///
    /// # Errors
    /// `InvalidInput` if `maxsize` is 0 (a pool without threads would never
    /// run a job).
    pub fn new(maxsize: usize) -> io::Result<ThreadPool> {
        check_maxsize("ThreadPool::new", maxsize)?;
        Ok(ThreadPool {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    queue: VecDeque::new(),
                    running: 0,
                    delivering: 0,
                    maxsize,
                    threads: 0,
                    available: 0,
                    shutdown: false,
                    handles: Vec::new(),
                    reaping: false,
                    all_joined: false,
                    reaper_failed: false,
                    idle_waiters: Vec::new(),
                    exit_waiters: Vec::new(),
                    next_waiter: 0,
                }),
                work: Condvar::new(),
                id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            }),
        })
    }

    /// The most worker threads the pool runs at once.
    pub fn maxsize(&self) -> usize {
        self.shared.lock().maxsize
    }

    /// Changes the most worker threads. Raising it starts the threads that
    /// queued jobs need now; lowering it retires the surplus workers, each
    /// after the job it is running (none is interrupted).
    ///
    /// # Errors
    /// `InvalidInput` if `maxsize` is 0.
    pub fn set_maxsize(&self, maxsize: usize) -> io::Result<()> {
        check_maxsize("ThreadPool::set_maxsize", maxsize)?;
        let mut st = self.shared.lock();
        let lowered = maxsize < st.maxsize;
        st.maxsize = maxsize;
        if lowered {
            // Idle workers check the new bound when woken.
            self.shared.work.notify_all();
        } else {
            // A failure to start a thread leaves the jobs to the workers
            // already there (there is at least one, or no job is queued).
            let _ = start_workers(&self.shared, &mut st);
        }
        Ok(())
    }

    /// The worker threads alive now (gevent's `size`): 0 until the first
    /// job, at most [`maxsize`](ThreadPool::maxsize) once retired workers
    /// have left.
    pub fn size(&self) -> usize {
        self.shared.lock().threads
    }

    /// The jobs queued or running (gevent's `len(pool)`). A job stops
    /// counting just before its outcome is sent, so a greenlet holding the
    /// outcome never finds its job counted.
    pub fn len(&self) -> usize {
        self.shared.lock().unfinished()
    }

    /// Whether no job is queued or running.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Queues `f` to run on a worker thread and returns its result at once;
    /// a greenlet waits for it with [`AsyncResult::get`] (or `take`, for a
    /// value that is not `Clone`), or with [`green_core::wait`].
    ///
    /// The result belongs to the calling thread's hub (created if needed)
    /// and must be waited for there. After [`shutdown`](ThreadPool::shutdown)
    /// began (or the pool was dropped) it is already complete with
    /// [`TaskError::ShutDown`]. `spawn` never blocks and never switches.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::ThreadPool::new(2)?;
    /// let results: Vec<_> = (0..4u64).map(|i| pool.spawn(move || i * i)).collect();
    /// let squares: Vec<u64> = results.iter().map(|r| r.get().unwrap()).collect();
    /// assert_eq!(squares, [0, 1, 4, 9]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn spawn<T, F>(&self, f: F) -> AsyncResult<T, TaskError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let result = AsyncResult::new();
        if self.shared.lock().shutdown {
            result.set_exception(TaskError::ShutDown);
            return result;
        }
        // Registered before taking the lock, to keep the critical section
        // short.
        let setter = result.remote_setter();
        let job: Job = Box::new(move |finished: &dyn Fn()| {
            let outcome = run_job(f);
            // Before the send: whoever receives the outcome must find the
            // job no longer counted by `len()`.
            finished();
            // A hub that is gone takes nobody's wait with it: the outcome
            // is dropped here, and a value whose `Drop` panics must not end
            // the worker (the pool would count a dead thread).
            // The final send unregisters the result as well: one message
            // to the hub per job, where a send and a drop make two.
            let _ = panic::catch_unwind(AssertUnwindSafe(move || drop(setter.send_final(outcome))));
        });
        let mut st = self.shared.lock();
        if st.shutdown {
            drop(st);
            result.set_exception(TaskError::ShutDown);
            return result;
        }
        st.queue.push_back(job);
        match start_workers(&self.shared, &mut st) {
            Err(error) if st.threads == 0 => {
                // Nobody will ever take the job: take it back (dropping its
                // setter) and say why.
                let job = st.queue.pop_back();
                drop(st);
                drop(job);
                result.set_exception(TaskError::ThreadStart(error.to_string()));
            }
            _ => {
                // Only a worker asleep on the condvar needs telling (one
                // running a job or just started looks at the queue anyway),
                // and it is told after the lock is released, so that it does
                // not wake up only to block on the mutex this thread holds.
                let asleep = st.available > 0;
                drop(st);
                if asleep {
                    self.shared.work.notify_one();
                }
            }
        }
        result
    }

    /// Runs `f` on a worker thread and waits greenly for its outcome.
    ///
    /// Called from one of this pool's own workers (a job that applies
    /// another), it runs `f` at once on that thread instead, as gevent does:
    /// waiting for another worker could wait forever in a full pool.
    ///
    /// # Errors
    /// [`TaskError::Panicked`] if `f` panicked, [`TaskError::ShutDown`] if
    /// the pool is shut down, [`TaskError::ThreadStart`] if no thread could
    /// run it.
    ///
    /// # Panics
    /// If the hub gives up on the wait while tearing down.
    ///
    /// # Kill safety
    /// Interruptible. A kill or `Timeout` unwinds the caller at once; the
    /// job still runs to its end on its worker (a thread cannot be
    /// interrupted), which then takes the next job; its outcome is dropped
    /// on the caller's hub thread when it arrives. Run inline on a worker,
    /// `f` is the caller's own code: a kill or `Timeout` unwinds through
    /// it (it is not reported as [`TaskError::Panicked`]).
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::ThreadPool::new(1)?;
    /// let text = pool.apply(|| String::from("made on a worker thread"));
    /// assert_eq!(text.unwrap(), "made on a worker thread");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn apply<T, F>(&self, f: F) -> Result<T, TaskError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if WORKER_OF.with(|w| w.get()) == self.shared.id {
            // `f` runs in the calling greenlet: a kill or `Timeout` of that
            // greenlet must unwind through it as through any blocking call,
            // not come back as the job's panic (which would swallow it).
            return green_core::catch_unwind(f)
                .map_err(|payload| TaskError::Panicked(green_core::panic_message(&*payload)));
        }
        let result = self.spawn(f);
        wait_outcome(&result, "ThreadPool::apply")
    }

    /// Runs `f` on every item, spread over the workers, and waits greenly
    /// for all of them; the values in the items' order, or the first error
    /// in that order (gevent's `map`, which raises the first exception).
    /// Every item's job is queued before the first wait, and all of them
    /// run even when one fails.
    ///
    /// # Errors
    /// As [`ThreadPool::apply`], for the first item in order that failed.
    ///
    /// # Panics
    /// If the hub gives up on a wait while tearing down.
    ///
    /// # Kill safety
    /// Interruptible, as [`ThreadPool::apply`]: the jobs already queued
    /// still run, and their outcomes are dropped on arrival.
    ///
    /// # Examples
    /// ```
    /// let pool = green_pool::ThreadPool::new(3)?;
    /// let squares = pool.map(|x: u32| x * x, 0..10);
    /// assert_eq!(squares.unwrap(), (0..10).map(|x| x * x).collect::<Vec<_>>());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn map<I, F, T>(&self, f: F, items: I) -> Result<Vec<T>, TaskError>
    where
        I: IntoIterator,
        I::Item: Send + 'static,
        F: Fn(I::Item) -> T + Send + Sync + 'static,
        T: Send + 'static,
    {
        let f = Arc::new(f);
        let results: Vec<AsyncResult<T, TaskError>> = items
            .into_iter()
            .map(|item| {
                let f = Arc::clone(&f);
                self.spawn(move || f(item))
            })
            .collect();
        let mut values = Vec::with_capacity(results.len());
        let mut first_error = None;
        for result in &results {
            match wait_outcome(result, "ThreadPool::map") {
                Ok(value) => values.push(value),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            None => Ok(values),
            Some(error) => Err(error),
        }
    }

    /// Waits greenly until no job is queued or running (gevent's `join`).
    /// The pool stays open: jobs submitted meanwhile are waited for too.
    ///
    /// When it had to wait, the outcomes of this hub's jobs have all
    /// arrived by the time it returns. On a pool already idle it returns
    /// at once without switching, as gevent's does: an outcome its worker
    /// sent just before may still be on its way, and arrives at this
    /// hub's next switch (wait on the job's result to be sure of it).
    ///
    /// # Panics
    /// If the hub gives up on the wait while tearing down.
    ///
    /// # Kill safety
    /// Interruptible; the jobs are not affected, and the greenlet's place
    /// in the wait is given up (nothing is left to keep its hub alive).
    ///
    /// # Examples
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    ///
    /// let pool = green_pool::ThreadPool::new(2)?;
    /// let done = Arc::new(AtomicUsize::new(0));
    /// for _ in 0..10 {
    ///     let done = Arc::clone(&done);
    ///     pool.spawn(move || done.fetch_add(1, Ordering::SeqCst));
    /// }
    /// pool.join();
    /// assert_eq!(done.load(Ordering::SeqCst), 10);
    /// assert!(pool.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    #[track_caller]
    pub fn join(&self) {
        if WORKER_OF.with(|w| w.get()) == self.shared.id {
            panic!(
                "ThreadPool::join called from one of the pool's own workers: it would wait \
                 for its own job forever; join from a greenlet outside the pool"
            );
        }
        if self.shared.lock().outstanding() == 0 {
            return;
        }
        let done: AsyncResult<(), Infallible> = AsyncResult::new();
        let wake = done.remote_setter();
        let _registered = {
            let mut st = self.shared.lock();
            if st.outstanding() == 0 {
                return;
            }
            st.register(&self.shared, WaitList::Idle, wake)
        };
        // Each outcome is sent before its job leaves `delivering`, so it
        // arrives before this wake-up (one FIFO per hub): every result is in.
        let _ = wait_outcome(&done, "ThreadPool::join");
    }

    /// Shuts the pool down and waits greenly until every worker thread is
    /// joined (gevent's `kill`). Jobs submitted afterwards fail with
    /// [`TaskError::ShutDown`]; the jobs already queued still run first,
    /// and their results are delivered. Calling it again (from any
    /// greenlet or thread) waits for the same end.
    ///
    /// The hub is not blocked: a reaper thread joins the workers and then
    /// wakes the waiting greenlet. Called from one of this pool's own
    /// workers, it starts the shutdown and returns without waiting (that
    /// worker leaves once its job returns).
    ///
    /// # Panics
    /// If the hub gives up on the wait while tearing down.
    ///
    /// # Kill safety
    /// Interruptible: the shutdown, once begun, goes on without the caller,
    /// and the reaper still joins the workers; the greenlet's place in the
    /// wait is given up (nothing is left to keep its hub alive).
    #[track_caller]
    pub fn shutdown(&self) {
        let own_worker = WORKER_OF.with(|w| w.get()) == self.shared.id;
        let done: AsyncResult<(), Infallible> = AsyncResult::new();
        let mut setter = (!own_worker).then(|| done.remote_setter());
        let registered = {
            let mut st = self.shared.lock();
            begin_shutdown(&self.shared, &mut st);
            if st.all_joined {
                None
            } else {
                setter
                    .take()
                    .map(|wake| st.register(&self.shared, WaitList::Exit, wake))
            }
        };
        if registered.is_none() {
            // Joined already, or called from a worker.
            return;
        }
        let _ = wait_outcome(&done, "ThreadPool::shutdown");
    }
}

impl Drop for ThreadPool {
    /// Shuts the pool down without waiting: see the type's docs.
    fn drop(&mut self) {
        let mut st = self.shared.lock();
        begin_shutdown(&self.shared, &mut st);
    }
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.shared.lock();
        f.debug_struct("ThreadPool")
            .field("maxsize", &st.maxsize)
            .field("size", &st.threads)
            .field("queued", &st.queue.len())
            .field("running", &st.running)
            .field("shutdown", &st.shutdown)
            .finish()
    }
}

fn check_maxsize(what: &str, maxsize: usize) -> io::Result<()> {
    if maxsize == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{what}: maxsize is 0, and a pool without threads would never run a job \
                 (gevent's paused pool); pass at least 1"
            ),
        ));
    }
    Ok(())
}

/// Runs a job's closure on its worker, catching its panic (and any unwind:
/// on a worker's own thread no caller is waiting to be unwound, and a
/// `Timeout` the job left behind must not end the worker).
fn run_job<T>(f: impl FnOnce() -> T) -> Result<T, TaskError> {
    // The closure is consumed whatever happens; nothing of it is observed
    // after a panic, so unwind safety is not at stake.
    panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| TaskError::Panicked(green_core::panic_message(&*payload)))
}

/// Waits greenly for `result` and takes its outcome.
#[track_caller]
fn wait_outcome<T: 'static, E: 'static>(result: &AsyncResult<T, E>, what: &str) -> Result<T, E> {
    loop {
        if let Some(outcome) = result.take() {
            return outcome;
        }
        if !result.wait() && !result.ready() {
            panic!("{what}: the hub gave up the wait while tearing down");
        }
    }
}

/// Starts workers while queued jobs outnumber the workers that will look
/// at the queue, up to `maxsize`.
fn start_workers(shared: &Arc<Shared>, st: &mut State) -> io::Result<()> {
    if st.shutdown {
        return Ok(());
    }
    while st.queue.len() > st.available && st.threads < st.maxsize {
        // Workers that left early (a lowered maxsize) have returned from
        // their function: joining them takes no time worth mentioning.
        let (done, alive): (Vec<_>, Vec<_>) =
            st.handles.drain(..).partition(JoinHandle::is_finished);
        st.handles = alive;
        for handle in done {
            let _ = handle.join();
        }
        let worker = Arc::clone(shared);
        let handle = thread::Builder::new()
            .name(format!("green-pool-{}", shared.id))
            .spawn(move || work(&worker))?;
        st.handles.push(handle);
        st.threads += 1;
        st.available += 1;
    }
    Ok(())
}

/// A worker thread: takes jobs until the pool shuts down and its queue is
/// empty, or the pool has more workers than `maxsize`.
fn work(shared: &Shared) {
    WORKER_OF.with(|w| w.set(shared.id));
    let mut st = shared.lock();
    // Counted as available by whoever started this thread.
    st.available -= 1;
    loop {
        if st.threads > st.maxsize {
            break;
        }
        if let Some(job) = st.queue.pop_front() {
            st.running += 1;
            drop(st);
            // Panics are caught inside: the worker survives them.
            job(&|| {
                let mut st = shared.lock();
                st.running -= 1;
                st.delivering += 1;
            });
            st = shared.lock();
            st.delivering -= 1;
            if st.outstanding() == 0 && !st.idle_waiters.is_empty() {
                let waiters = std::mem::take(&mut st.idle_waiters);
                drop(st);
                wake_all(waiters);
                st = shared.lock();
            }
            continue;
        }
        if st.shutdown {
            break;
        }
        st.available += 1;
        st = shared.work.wait(st).unwrap_or_else(PoisonError::into_inner);
        st.available -= 1;
    }
    st.threads -= 1;
    if !st.queue.is_empty() {
        // A wake-up meant for a job may have reached this leaving worker:
        // pass it on.
        shared.work.notify_one();
    }
    if st.reaper_failed && st.threads == 0 {
        st.all_joined = true;
        let waiters = std::mem::take(&mut st.exit_waiters);
        drop(st);
        wake_all(waiters);
    }
}

fn wake_all(waiters: Waiters) {
    for (_, waiter) in waiters {
        // A waiter whose hub is gone has nobody left to wake. The final send
        // gives up the handle in the same message.
        let _ = waiter.send_final(Ok(()));
    }
}

/// Closes the pool to new jobs, wakes every worker, and has a reaper
/// thread join them (once).
fn begin_shutdown(shared: &Arc<Shared>, st: &mut State) {
    st.shutdown = true;
    shared.work.notify_all();
    if st.reaping {
        return;
    }
    st.reaping = true;
    let handles = std::mem::take(&mut st.handles);
    if handles.is_empty() {
        st.all_joined = true;
        return;
    }
    let reaper_shared = Arc::clone(shared);
    let reaper = thread::Builder::new()
        .name(format!("green-pool-{}-reaper", shared.id))
        .spawn(move || {
            for handle in handles {
                // A worker catches its jobs' panics: it returns normally.
                let _ = handle.join();
            }
            let waiters = {
                let mut st = reaper_shared.lock();
                st.all_joined = true;
                std::mem::take(&mut st.exit_waiters)
            };
            wake_all(waiters);
        });
    if reaper.is_err() {
        // No thread to join the workers: they are detached (the handles
        // went with the failed closure) and the last one to leave wakes
        // the `shutdown()` callers instead.
        st.reaper_failed = true;
        if st.threads == 0 {
            st.all_joined = true;
        }
    }
}
