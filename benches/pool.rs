//! green-pool: a size-limited `Pool`'s `map` and a `ThreadPool` round trip,
//! each beside tokio's nearest equivalent (and may's for the map).
//!
//! | bench | subject | what one operation is |
//! | --- | --- | --- |
//! | `pool/map_100k` | `green` | `Pool::new(100).map(\|x\| x + 1, 0..100_000)` from the main greenlet: a member greenlet per item, at most 100 alive, results in input order |
//! | `pool/map_100k` | `tokio` | the same inside `block_on` of a current-thread runtime: a `JoinSet` task per item, each holding an owned permit of a `Semaphore(100)` taken before it is spawned; results put back in input order |
//! | `pool/map_100k` | `may` | the same from a coroutine on one may worker: a coroutine per item, spawned after a `Semphore(100)` wait and posting it when done; joined in input order |
//! | `pool/threadpool_roundtrip` | `green` | `ThreadPool::apply(\|\| 1)` from the main greenlet: the job queued, run on a worker thread, its result sent back to the hub, the greenlet woken |
//! | `pool/threadpool_roundtrip` | `tokio` | `spawn_blocking(\|\| 1).await` inside `block_on` of a current-thread runtime |
//!
//! The map is reported in seconds per whole map of 100 000 items (spawning,
//! running and collecting them, the result vector dropped), the round trip
//! in ns. Every map subject runs on one thread; tokio runs a current-thread
//! runtime, may one worker (`support/may_peer.rs`).
//!
//! The round trip wakes a sleeping worker thread and then the sleeping
//! caller's thread: on the shared two-core virtual machine the benches run on
//! each such wake-up costs from a few to tens of microseconds depending on
//! how idle the cores are, so its min-max spread is wide; compare medians
//! taken in the same run. Both subjects reuse one warm worker thread, since
//! the jobs come one at a time.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/may_peer.rs"]
mod may_peer;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use harness::Harness;

const MAP: &str = "pool/map_100k";
const THREADPOOL_ROUNDTRIP: &str = "pool/threadpool_roundtrip";

/// Items per map.
const ITEMS: u64 = 100_000;
/// The pool's size: tasks in flight at once.
const POOL_SIZE: usize = 100;
/// The `ThreadPool`'s `maxsize` (one job at a time only ever starts one).
const THREADS: usize = 4;

fn main() {
    let h = Harness::from_env();
    if h.enabled(MAP) {
        green_map(&h);
        tokio_map(&h);
        let may_h = h.clone();
        may_peer::run_on_one_worker("map_100k driver", move || may_map(&may_h));
    }
    if h.enabled(THREADPOOL_ROUNDTRIP) {
        green_threadpool_roundtrip(&h);
        tokio_threadpool_roundtrip(&h);
    }
}

fn current_thread_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio current-thread runtime")
}

/// Panics unless `out` is `x + 1` for every `x` of `0..ITEMS`, in order: a
/// subject that dropped or reordered results would be timing something else.
fn check_map(out: &[u64]) {
    assert_eq!(out.len() as u64, ITEMS, "one result per item");
    assert!(
        out.iter().zip(1..).all(|(&got, want)| got == want),
        "results in input order"
    );
}

// ---------------------------------------------------------------------------
// pool/map_100k

fn green_map(h: &Harness) {
    green_core::run(|| {
        let pool = green_pool::Pool::new(POOL_SIZE);
        check_map(&pool.map(|x: u64| x + 1, 0..ITEMS).expect("green map"));
        h.bench(MAP, "green")
            .unit("ms")
            .note(
                "Pool::new(100).map(|x| x + 1, 0..100_000) from the main greenlet: a member \
                 greenlet per item, at most 100 alive; ms per map",
            )
            .iter(|| {
                let out = pool.map(|x: u64| black_box(x) + 1, 0..ITEMS);
                black_box(out.expect("green map"))
            });
    });
}

/// The tokio map: a task per item in a `JoinSet`, gated by a semaphore.
async fn tokio_map_once(sem: &Arc<tokio::sync::Semaphore>) -> Vec<u64> {
    let mut set = tokio::task::JoinSet::new();
    for x in 0..ITEMS {
        let permit = Arc::clone(sem)
            .acquire_owned()
            .await
            .expect("semaphore open");
        set.spawn(async move {
            let _permit = permit;
            (x, black_box(x) + 1)
        });
    }
    // The set yields in completion order: put each result at its place.
    let mut out = vec![0_u64; ITEMS as usize];
    while let Some(joined) = set.join_next().await {
        let (x, y) = joined.expect("tokio map task");
        out[x as usize] = y;
    }
    out
}

fn tokio_map(h: &Harness) {
    let rt = current_thread_runtime();
    let sem = Arc::new(tokio::sync::Semaphore::new(POOL_SIZE));
    check_map(&rt.block_on(tokio_map_once(&sem)));
    h.bench(MAP, "tokio")
        .unit("ms")
        .note(
            "current_thread runtime: a JoinSet task per item, each spawned holding an owned \
             permit of a Semaphore(100); results put in input order; ms per map",
        )
        .iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    black_box(tokio_map_once(&sem).await);
                }
                start.elapsed()
            })
        });
}

/// The may map, run by a coroutine on may's one worker.
fn may_map_once(sem: &Arc<may::sync::Semphore>) -> Vec<u64> {
    let tasks: Vec<_> = (0..ITEMS)
        .map(|x| {
            sem.wait();
            let sem = Arc::clone(sem);
            // SAFETY: as for the driver in `may_peer` (one worker, so no
            // migration; no thread-locals); the task adds two integers, far
            // within its 32 KiB stack.
            unsafe {
                may::coroutine::spawn(move || {
                    let y = black_box(x) + 1;
                    sem.post();
                    y
                })
            }
        })
        .collect();
    tasks
        .into_iter()
        .map(|task| task.join().expect("may map coroutine"))
        .collect()
}

fn may_map(h: &Harness) {
    let sem = Arc::new(may::sync::Semphore::new(POOL_SIZE));
    check_map(&may_map_once(&sem));
    h.bench(MAP, "may")
        .unit("ms")
        .note(
            "one worker: a coroutine per item, spawned after a Semphore(100) wait that it \
             posts when done; joined in input order; ms per map",
        )
        .iter(|| black_box(may_map_once(&sem)));
}

// ---------------------------------------------------------------------------
// pool/threadpool_roundtrip

fn green_threadpool_roundtrip(h: &Harness) {
    green_core::run(|| {
        let pool = green_pool::ThreadPool::new(THREADS).expect("green ThreadPool");
        h.bench(THREADPOOL_ROUNDTRIP, "green")
            .note(
                "ThreadPool::new(4).apply(|| 1) from the main greenlet, one job at a time (one \
                 warm worker); ns per round trip",
            )
            .iter(|| {
                pool.apply(|| black_box(1_u32))
                    .expect("green ThreadPool job")
            });
        pool.shutdown();
    });
}

fn tokio_threadpool_roundtrip(h: &Harness) {
    let rt = current_thread_runtime();
    h.bench(THREADPOOL_ROUNDTRIP, "tokio")
        .note(
            "current_thread runtime: spawn_blocking(|| 1).await inside block_on, one job at a \
             time (one warm blocking thread); ns per round trip",
        )
        .iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let v = tokio::task::spawn_blocking(|| black_box(1_u32))
                        .await
                        .expect("tokio blocking task");
                    black_box(v);
                }
                start.elapsed()
            })
        });
}
