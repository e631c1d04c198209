//! Many greenlets doing a seeded random mix of everything green-core offers
//! (yields, sleeps, nested and zero timeouts, started timeouts dropped before
//! or after a block, spawns that are joined, dropped, killed, killed under a
//! deadline or joined under a timeout), holding guards whose destructors
//! block (a sleep, a yield, a join, a `Timeout::run` of their own) or panic
//! (caught inside the destructor, or escaping it on a normal scope exit),
//! while other greenlets sit parked in the middle of their unwind. Each round
//! is torn down at the end of its `run` wherever it is, or joined, or ends
//! with the main greenlet itself panicking mid-run.
//!
//! What must hold whatever the mix: nothing escapes `run` but the main
//! greenlet's own panic, nothing hangs, the thread is not left panicking,
//! every greenlet's destructors run exactly once by the time `run` returns,
//! every greenlet dies successfully unless a guard's panic escaped it (and
//! then it fails with exactly that panic), and no `Timeout::run`,
//! `kill_timeout` or `join_timeout` returns later than [`LATE_BOUND`] past
//! its deadline, even while other greenlets are parked mid-unwind.
//!
//! The sequence is deterministic for a seed (`GREEN_STRESS_SEED`, decimal
//! or `0x` hex; `GREEN_STRESS_ROUNDS` for the number of rounds); only which
//! timer fires first varies with the machine's speed, and the invariants do
//! not depend on it. A failure names the seed and the round.

#[allow(unreachable_pub)] // The shared fixtures are `pub` for every test binary.
mod support;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::{run, sleep, spawn, yield_now, Greenlet, Timeout};
use support::{catch, panic_message, within, DropCounter, DropToken, OnDrop, MS};

/// Rounds of `run` by default, each with [`GREENLETS`] top-level greenlets.
const ROUNDS: u64 = 40;
const DEFAULT_SEED: u64 = 0x9e37_79b9_7f4a_7c15;
const GREENLETS: usize = 20;
/// How deep greenlets spawn greenlets.
const MAX_DEPTH: u32 = 3;
/// How late past its deadline a `Timeout::run`, `kill_timeout` or
/// `join_timeout` may return: generous (valgrind, a loaded machine), and
/// still well below [`LONG`], so a timeout held back until its body ends is
/// caught.
const LATE_BOUND: Duration = Duration::from_secs(2);
/// The body of a timeout that must fire: far longer than any round.
const LONG: Duration = Duration::from_secs(5);
/// The body of a timeout in a greenlet that may also be killed meanwhile:
/// [`LONG`] with the full mix (`full_mix`), else short enough that a
/// timeout swallowed by a kill held back mid-unwind (see
/// [`a_timeout_in_a_destructor_fires_though_a_second_kill_is_pending`])
/// only costs a few milliseconds.
fn long_body() -> Duration {
    if full_mix() {
        LONG
    } else {
        Duration::from_millis(20)
    }
}

/// Whether the mix includes what once broke the library (see the
/// reproductions at the end): panics caught by hand (which leave a greenlet
/// miscounted as unwinding while another is parked mid-unwind) and long
/// timed bodies (which a swallowed `Timeout` would wait out). On unless
/// `GREEN_STRESS_SAFE_MIX=1`, which leaves them out to tell a regression
/// there from one elsewhere.
fn full_mix() -> bool {
    thread_local! {
        static ON: bool = std::env::var_os("GREEN_STRESS_SAFE_MIX").is_none_or(|v| v != "1");
    }
    ON.with(|on| *on)
}

/// Greenlets parked mid-unwind until their round ends, at most, per round.
const MAX_PARKERS: usize = 3;

/// The panic a guard raises on a normal scope exit.
const DELIBERATE: &str = "mixed_stress: a guard panics on a normal exit";
/// The panic a guard raises and catches inside its own destructor.
const CONTAINED: &str = "mixed_stress: a panic caught inside a destructor";
/// The main greenlet's own panic, in the rounds where it panics mid-run.
const MAIN_PANIC: &str = "mixed_stress: the main greenlet panics mid-run";

/// A greenlet of the round, with whether a deliberate panic escaped it.
type SpawnedGreenlet = (Greenlet<()>, Rc<Cell<bool>>);

thread_local! {
    static STATE: Cell<u64> = const { Cell::new(DEFAULT_SEED) };
    /// Drop tokens handed out (each must be dropped exactly once) in the
    /// current round.
    static TOKENS: Cell<usize> = const { Cell::new(0) };
    /// Every greenlet of the round, with whether a deliberate panic escaped
    /// its body (set at its root).
    static SPAWNED: RefCell<Vec<SpawnedGreenlet>> = const { RefCell::new(Vec::new()) };
    /// Set when the round ends: parked greenlets may finish their unwind.
    static RELEASE: Cell<bool> = const { Cell::new(false) };
    static PARKERS: Cell<usize> = const { Cell::new(0) };
    /// The latest any deadline was kept in this round, and by what.
    static LATEST: Cell<(Duration, &'static str)> = const { Cell::new((Duration::ZERO, "")) };
}

/// A xorshift step: a number below `n`.
fn below(n: u64) -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        x % n
    })
}

/// The generator's state for `round` of `seed` (splitmix64; never zero).
fn round_state(seed: u64, round: u64) -> u64 {
    let mut z = seed ^ round.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

fn micros(max: u64) -> Duration {
    Duration::from_micros(below(max))
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

fn token(counter: &DropCounter) -> DropToken {
    TOKENS.with(|n| n.set(n.get() + 1));
    counter.token()
}

/// Records how late something with a deadline `d`, started at `start`,
/// returned.
fn record(what: &'static str, start: Instant, d: Duration) {
    let late = start.elapsed().saturating_sub(d);
    LATEST.with(|l| {
        if late > l.get().0 {
            l.set((late, what));
        }
    });
}

/// `Timeout::run`, recording how late it returned.
fn timed<T>(what: &'static str, d: Duration, f: impl FnOnce() -> T) -> Result<T, Timeout> {
    let start = Instant::now();
    let r = Timeout::run(d, f);
    record(what, start, d);
    r
}

/// The deliberate panics are expected by the thousand: keep them off
/// stderr. Installed before this binary's first hub, so that the hub's own
/// hook chains to this one and still sees every panic (U1).
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = panic_message(info.payload());
            if msg != DELIBERATE && msg != CONTAINED && msg != MAIN_PANIC {
                previous(info);
            }
        }));
    });
}

/// What a guard's destructor does, once: every variant blocks at most once,
/// so even a destructor that teardown resumes with its blocking call giving
/// up (U4) still finishes.
#[derive(Clone, Copy, Debug)]
enum Block {
    Nothing,
    Sleep(Duration),
    Yield,
    /// Spawns a short-lived greenlet and joins it.
    JoinShortLived(Duration),
    /// `Timeout::run(d, || sleep(long_body()))`: it must fire, even mid-unwind.
    TimeoutInDrop(Duration),
    /// Panics and catches it inside the destructor.
    ContainedPanic,
}

fn random_block() -> Block {
    match below(7) {
        0 => Block::Nothing,
        1 | 2 => Block::Sleep(micros(3000)),
        3 => Block::Yield,
        4 => Block::JoinShortLived(micros(1500)),
        5 => Block::TimeoutInDrop(micros(1500)),
        // A panic caught by user code miscounts the greenlet's unwinds
        // while another one is parked mid-unwind (see the reproductions).
        _ if full_mix() => Block::ContainedPanic,
        _ => Block::Yield,
    }
}

/// A local whose destructor blocks as told, and panics if [`Guard::finish`]
/// armed it (only ever on a normal scope exit: a panic leaving a destructor
/// during an unwind would abort).
struct Guard {
    block: Block,
    panic_on_drop: bool,
    counter: DropCounter,
    _token: DropToken,
}

impl Guard {
    fn new(counter: &DropCounter) -> Guard {
        Guard {
            block: random_block(),
            panic_on_drop: false,
            counter: counter.clone(),
            _token: token(counter),
        }
    }

    /// Ends the guard's scope normally, its destructor panicking with
    /// [`DELIBERATE`] after it blocked (unless a kill or timeout unwinds
    /// out of the block first).
    fn finish(mut self) {
        self.panic_on_drop = true;
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        match self.block {
            Block::Nothing => {}
            Block::Sleep(d) => sleep(d),
            Block::Yield => yield_now(),
            Block::JoinShortLived(d) => {
                let (g, _) = spawn_tracked(&self.counter, move |_| sleep(d));
                g.join();
            }
            Block::TimeoutInDrop(d) => {
                let _ = timed("a Timeout::run in a destructor", d, || sleep(long_body()));
            }
            Block::ContainedPanic => {
                let r = catch(|| std::panic::panic_any(CONTAINED));
                assert!(r.is_err());
            }
        }
        if self.panic_on_drop {
            std::panic::panic_any(DELIBERATE);
        }
    }
}

/// Spawns a greenlet holding a token, recorded in [`SPAWNED`] with the flag
/// its root sets if a [`DELIBERATE`] panic escaped `body`.
fn spawn_tracked(
    counter: &DropCounter,
    body: impl FnOnce(&DropCounter) + 'static,
) -> (Greenlet<()>, Rc<Cell<bool>>) {
    let counter = counter.clone();
    let token = token(&counter);
    let escaped = Rc::new(Cell::new(false));
    let e = Rc::clone(&escaped);
    let g = spawn(move || {
        let _token = token;
        if let Err(payload) = catch(|| body(&counter)) {
            if panic_message(&*payload) == DELIBERATE {
                e.set(true);
            }
            std::panic::resume_unwind(payload);
        }
    });
    SPAWNED.with(|s| s.borrow_mut().push((g.clone(), Rc::clone(&escaped))));
    (g, escaped)
}

/// Spawns a child that runs [`work`].
fn spawn_child(counter: &DropCounter, depth: u32) -> Greenlet<()> {
    spawn_tracked(counter, move |c| work(c, depth + 1)).0
}

/// Spawns a greenlet and kills it once it sleeps; its destructor then stays
/// parked mid-unwind (polling in short sleeps) until the round ends.
fn parker(counter: &DropCounter) {
    let (g, _) = spawn_tracked(counter, |c| {
        let _token = token(c);
        let _guard = OnDrop(|| {
            let start = Instant::now();
            while !RELEASE.with(Cell::get) && start.elapsed() < LONG {
                sleep(Duration::from_micros(500 + below(2000)));
            }
        });
        sleep(LONG);
    });
    PARKERS.with(|n| n.set(n.get() + 1));
    yield_now();
    g.kill_nowait();
}

fn work(counter: &DropCounter, depth: u32) {
    let may_spawn = depth < MAX_DEPTH;
    // Guards live until the end of the body, or until finished early: every
    // kill or timeout below unwinds through them.
    let mut guards: Vec<Guard> = Vec::new();
    for _ in 0..3 + below(8) {
        match below(16) {
            0 => yield_now(),
            1 => sleep(micros(1500)),
            2 => {
                let _ = timed("Timeout::run around a guard", micros(800), || {
                    let _guard = Guard::new(counter);
                    yield_now();
                    sleep(if below(2) == 0 {
                        micros(1500)
                    } else {
                        long_body()
                    });
                });
            }
            3 => {
                let _ = Timeout::run(Duration::ZERO, || {
                    let _ = Timeout::run(Duration::ZERO, yield_now);
                    yield_now();
                });
            }
            4 if may_spawn => {
                let g = spawn_child(counter, depth);
                if below(2) == 0 {
                    g.join();
                }
            }
            5 if may_spawn => {
                let g = spawn_child(counter, depth);
                yield_now();
                g.kill();
                assert!(g.dead(), "a blocking kill returns once it is dead");
            }
            6 => {
                let t = Timeout::start_new(micros(500));
                // Catching it by hand miscounts (see the reproductions).
                if full_mix() && below(2) == 0 {
                    if let Err(payload) = catch(yield_now) {
                        if !t.is(&*payload) {
                            std::panic::resume_unwind(payload);
                        }
                    }
                }
                drop(t);
            }
            7 if may_spawn => {
                let g = spawn_child(counter, depth);
                let _ = timed("Timeout::run around a join", micros(700), || g.join());
            }
            8 | 9 => guards.push(Guard::new(counter)),
            10 => {
                // A guard ends its scope normally and panics: caught here,
                // or (rarely) failing the whole greenlet.
                if let Some(g) = guards.pop() {
                    if !full_mix() || below(4) == 0 {
                        g.finish();
                    } else if let Err(payload) = catch(|| g.finish()) {
                        if panic_message(&*payload) != DELIBERATE {
                            std::panic::resume_unwind(payload);
                        }
                    }
                }
            }
            11 if may_spawn => {
                let g = spawn_child(counter, depth);
                yield_now();
                let d = micros(2000);
                let start = Instant::now();
                let _ = g.kill_timeout(d);
                record("kill_timeout", start, d);
            }
            12 if may_spawn => {
                let g = spawn_child(counter, depth);
                let d = micros(1000);
                let start = Instant::now();
                let _ = g.join_timeout(d);
                record("join_timeout", start, d);
            }
            13 if PARKERS.with(Cell::get) < MAX_PARKERS => parker(counter),
            14 => {
                let _ = timed("Timeout::run of a long sleep", micros(1000), || {
                    sleep(long_body());
                });
            }
            _ if !full_mix() => {
                let _ = timed("Timeout::run of a short sleep", micros(300), || {
                    sleep(micros(600));
                });
            }
            _ => {
                let t = Timeout::start_new(micros(300));
                if let Err(payload) = catch(|| sleep(micros(600))) {
                    // Only our own timeout may be swallowed here.
                    if !t.is(&*payload) {
                        std::panic::resume_unwind(payload);
                    }
                }
            }
        }
    }
    drop(guards);
}

/// How a round ends.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// `run` returns mid-flight: teardown unwinds everything.
    Teardown,
    /// The main greenlet joins every top-level greenlet.
    Join,
    /// The main greenlet kills some greenlets, then panics; destructors of
    /// its own block and kill while it unwinds.
    MainPanics,
}

/// One round; returns what went wrong, if anything.
fn round(seed: u64, round: u64) -> Result<(), String> {
    STATE.with(|s| s.set(round_state(seed, round)));
    TOKENS.with(|n| n.set(0));
    PARKERS.with(|n| n.set(0));
    RELEASE.with(|r| r.set(false));
    LATEST.with(|l| l.set((Duration::ZERO, "")));
    SPAWNED.with(|s| s.borrow_mut().clear());
    let ending = match round % 4 {
        0 => Ending::Teardown,
        1 | 2 => Ending::Join,
        _ => Ending::MainPanics,
    };
    // Now and then teardown itself meets a greenlet parked mid-unwind in a
    // single long blocking call: it resumes it once with the call giving up
    // (U4), after its grace period (so this costs a second).
    let stuck = ending != Ending::Join && round % 16 == 8;
    let stuck_done = Rc::new(Cell::new(None));
    let counter = DropCounter::new();
    let mut failures = Vec::new();

    let outcome = catch(|| {
        run(|| {
            // Declared first, dropped last: parkers may finish once the
            // round's own work (and the main greenlet's unwind) is over.
            let _release = OnDrop(|| RELEASE.with(|r| r.set(true)));
            if stuck {
                let done = Rc::clone(&stuck_done);
                let (g, _) = spawn_tracked(&counter, move |_| {
                    let _guard = OnDrop(move || {
                        let start = Instant::now();
                        sleep(LONG);
                        done.set(Some(start.elapsed()));
                    });
                    sleep(LONG);
                });
                yield_now();
                g.kill_nowait();
            }
            let top: Vec<Greenlet<()>> = (0..GREENLETS).map(|_| spawn_child(&counter, 0)).collect();
            match ending {
                Ending::Teardown => sleep(Duration::from_micros(500 + below(1500))),
                Ending::Join => {
                    for g in &top {
                        g.join();
                        assert!(g.dead(), "join returns once it is dead");
                    }
                }
                Ending::MainPanics => {
                    sleep(micros(1500));
                    for g in &top {
                        if below(3) == 0 {
                            g.kill_nowait();
                        }
                    }
                    let victim = top[below(top.len() as u64) as usize].clone();
                    let _kill = OnDrop(move || {
                        let d = micros(2000);
                        let start = Instant::now();
                        let _ = victim.kill_timeout(d);
                        record("kill_timeout in the main greenlet's destructor", start, d);
                    });
                    let _guard = Guard::new(&counter);
                    let _timeout = OnDrop(|| {
                        let _ = timed(
                            "Timeout::run in the main greenlet's destructor",
                            micros(1000),
                            || sleep(LONG),
                        );
                    });
                    yield_now();
                    std::panic::panic_any(MAIN_PANIC);
                }
            }
        })
    });

    match (ending, outcome) {
        (Ending::MainPanics, Err(p)) if panic_message(&*p) == MAIN_PANIC => {}
        (Ending::MainPanics, Ok(())) => failures.push("the main greenlet's panic vanished".into()),
        (_, Err(p)) => failures.push(format!("run panicked: {}", panic_message(&*p))),
        (_, Ok(())) => {}
    }
    if std::thread::panicking() {
        failures.push("the thread is left panicking".into());
    }
    let tokens = TOKENS.with(Cell::get);
    if counter.drops() != tokens {
        failures.push(format!(
            "{} of {tokens} destructors ran (each must run exactly once)",
            counter.drops()
        ));
    }
    let (late, what) = LATEST.with(Cell::get);
    if late > LATE_BOUND {
        failures.push(format!("{what} returned {late:?} past its deadline"));
    }
    if stuck {
        match stuck_done.get() {
            None => failures.push("teardown never finished the stuck destructor".into()),
            Some(took) if took >= LONG => failures.push(format!(
                "the stuck destructor's sleep ran its full {took:?}: teardown did not give it up"
            )),
            Some(_) => {}
        }
    }
    let spawned = SPAWNED.with(|s| std::mem::take(&mut *s.borrow_mut()));
    for (i, (g, escaped)) in spawned.iter().enumerate() {
        let what = match (g.dead(), g.successful(), escaped.get()) {
            (false, _, _) => "is still alive after run returned",
            (true, true, false) => continue,
            (true, true, true) => "succeeded although a guard's panic escaped it",
            (true, false, true) => {
                let msg = g.exception().map(|e| e.message().to_string());
                if msg.as_deref().is_some_and(|m| m.contains(DELIBERATE)) {
                    continue;
                }
                "failed with something else than the guard's panic that escaped it"
            }
            (true, false, false) => "failed, though no guard's panic escaped it",
        };
        failures.push(format!(
            "greenlet #{i} {what}: {:?}",
            g.exception().map(|e| e.message().to_string())
        ));
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{ending:?} round, {} greenlets, {tokens} tokens: {}",
            spawned.len(),
            failures.join("; ")
        ))
    }
}

#[test]
fn every_greenlet_of_a_random_mix_is_unwound_exactly_once() {
    quiet_deliberate_panics();
    let seed = env_u64("GREEN_STRESS_SEED").unwrap_or(DEFAULT_SEED);
    let rounds = env_u64("GREEN_STRESS_ROUNDS").unwrap_or(ROUNDS);
    let limit = Duration::from_secs(120 + 2 * rounds);
    within(limit, move || {
        for r in 0..rounds {
            // Name the seed even if the round panics outright.
            let _name = OnDrop(move || {
                if std::thread::panicking() {
                    eprintln!("mixed_stress: failed in round {r} of GREEN_STRESS_SEED={seed:#x}");
                }
            });
            if let Err(e) = round(seed, r) {
                panic!("GREEN_STRESS_SEED={seed:#x}, round {r}: {e}");
            }
        }
    });
}

// ===== reproductions of library bugs the mix found =====
//
// Each failed before its fix; the one limitation that remains is ignored
// with its reason (documented in docs/design/kill-and-timeout.md).

/// A greenlet killed, parked in a destructor inside `Timeout::run(50 ms,
/// || sleep(3 s))`, then killed again: the second kill cannot be raised
/// while it unwinds (U3), and must not swallow the timeout, which can.
///
/// Found by the mix: `fire_timeout` drops a `Timeout` when a kill is
/// already pending, and a kill arriving after the timeout fired replaces
/// it, though the kill stays held back for as long as the greenlet unwinds.
/// Teardown kills every live greenlet, so any destructor running a
/// `Timeout::run` at teardown waits out its whole body (here past the
/// grace period, and a destructor that then blocks again is leaked).
#[test]
fn a_timeout_in_a_destructor_fires_though_a_second_kill_is_pending() {
    quiet_deliberate_panics();
    let (seen, kill_took) = within(Duration::from_secs(20), || {
        run(|| {
            let seen = Rc::new(Cell::new(None));
            let s = Rc::clone(&seen);
            let a = spawn(move || {
                let _guard = OnDrop(|| {
                    let start = Instant::now();
                    let r = Timeout::run(50 * MS, || sleep(Duration::from_secs(3)));
                    s.set(Some((r.is_err(), start.elapsed())));
                });
                sleep(LONG);
            });
            yield_now();
            a.kill_nowait();
            yield_now(); // It unwinds and parks in its destructor's sleep.
            assert!(!a.dead());
            let start = Instant::now();
            a.kill(); // Pending until its unwind ends.
            (seen.get(), start.elapsed())
        })
    });
    let (timed_out, took) = seen.expect("the destructor completed");
    assert!(
        timed_out && took < Duration::from_secs(1),
        "the destructor's 50 ms timeout: fired {timed_out}, after {took:?} (second kill returned after {kill_took:?})"
    );
}

/// The same at teardown: the destructor's `Timeout::run` fires, the
/// destructor goes on to block once more, and still runs to its end (no
/// leak, no full grace period).
#[test]
fn teardown_does_not_swallow_a_timeout_in_a_destructor_of_a_killed_greenlet() {
    quiet_deliberate_panics();
    let (done, took) = within(Duration::from_secs(20), || {
        let done = Rc::new(Cell::new(false));
        let d = Rc::clone(&done);
        let start = Instant::now();
        run(move || {
            let a = spawn(move || {
                let _guard = OnDrop(move || {
                    let _ = Timeout::run(50 * MS, || sleep(Duration::from_secs(3)));
                    sleep(MS);
                    d.set(true);
                });
                sleep(LONG);
            });
            yield_now();
            a.kill_nowait();
            yield_now(); // It parks mid-unwind; teardown kills it again.
        });
        (done.get(), start.elapsed())
    });
    assert!(
        done && took < Duration::from_secs(1),
        "destructor finished: {done}; run took {took:?}"
    );
}

/// A greenlet that caught its own `Timeout` (`Timeout::start_new` and
/// `Timeout::is`, gevent's `except Timeout as t: if t is not timeout:
/// raise`) while another greenlet is parked mid-unwind is taken for an
/// unwinding one (U1 counts the raise, nothing counts the user's catch), so
/// a kill is held back for as long as the other greenlet stays parked.
/// `docs/design/kill-and-timeout.md` lists it among what the per-greenlet
/// count cannot see; `Timeout::run` is the form the hub does see.
#[test]
#[ignore = "documented limitation (kill-and-timeout.md): a Timeout caught by hand, not by Timeout::run, while another greenlet is parked mid-unwind, leaves its greenlet counted as unwinding"]
fn kill_of_a_greenlet_that_caught_its_own_timeout_while_another_is_parked_mid_unwind() {
    quiet_deliberate_panics();
    let (died, took) = within(Duration::from_secs(20), || {
        run(|| {
            let release = Rc::new(Cell::new(false));
            let r = Rc::clone(&release);
            let parked = spawn(move || {
                let _guard = OnDrop(move || {
                    let start = Instant::now();
                    while !r.get() && start.elapsed() < LONG {
                        sleep(2 * MS);
                    }
                });
                sleep(LONG);
            });
            yield_now();
            parked.kill_nowait();
            yield_now(); // It parks mid-unwind until released.
            let b = spawn(|| {
                let t = Timeout::start_new(MS);
                if let Err(payload) = catch(|| sleep(Duration::from_secs(1))) {
                    assert!(t.is(&*payload));
                }
                drop(t);
                sleep(Duration::from_secs(3));
            });
            sleep(20 * MS); // b caught its timeout and sleeps 3 s.
            let start = Instant::now();
            let died = b.kill_timeout(Duration::from_millis(500));
            let took = start.elapsed();
            release.set(true);
            parked.join();
            b.join();
            (died, took)
        })
    });
    assert!(
        died,
        "kill_timeout(500 ms) returned after {took:?} with its target alive"
    );
}

const CHILD_ENV: &str = "GREEN_STRESS_CHILD";

/// Not a test of its own: the body the child processes run.
#[test]
#[ignore = "child body"]
fn child() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    quiet_deliberate_panics();
    match mode.as_str() {
        "timeout_started_while_miscounted" => {
            run(|| {
                let release = Rc::new(Cell::new(false));
                let r = Rc::clone(&release);
                let parked = spawn(move || {
                    let _guard = OnDrop(move || {
                        while !r.get() {
                            sleep(MS);
                        }
                    });
                    sleep(LONG);
                });
                yield_now();
                parked.kill_nowait();
                yield_now(); // It parks mid-unwind until released.
                let w = spawn(|| {
                    // Caught by user code while `parked` is parked mid-unwind:
                    // from here w is counted as unwinding (U1).
                    let _ = catch(|| std::panic::panic_any(CONTAINED));
                    // So this scope's timeout records depth 1.
                    let _ = Timeout::run(100 * MS, || {
                        let _guard = OnDrop(|| sleep(300 * MS));
                        sleep(LONG);
                    });
                });
                yield_now(); // w starts its timeout and sleeps.
                release.set(true);
                parked.join(); // Nothing unwinds any more: w's count is corrected.
                               // The kill is raised; w's guard parks while it unwinds; the
                               // timeout fires there, at the depth it recorded, and is raised
                               // into the destructor: a panic escaping a destructor during an
                               // unwind aborts.
                w.kill_nowait();
                w.join();
            });
            println!("SURVIVED");
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// A `Timeout` scope started while its greenlet was miscounted as unwinding
/// (a panic caught by user code while another greenlet was parked
/// mid-unwind) records depth 1; once the count is corrected, a kill unwinds
/// the greenlet, its destructor parks, and the timeout is raised into that
/// destructor mid-unwind: the process aborts ("panic in a destructor during
/// cleanup"). Found by the mix (`Timeout::run` around a guard, in a greenlet
/// that had caught a `Timeout` of its own by hand). U3 promises a `Timeout`
/// is raised only where its scope is sure to catch it.
#[test]
fn a_timeout_started_while_miscounted_is_never_raised_into_a_destructor_mid_unwind() {
    let out = support::run_child(
        CHILD_ENV,
        "timeout_started_while_miscounted",
        support::CHILD_LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("SURVIVED"),
        "child died: {:?}\nstdout: {stdout}\nstderr: {stderr}",
        out.status
    );
}
