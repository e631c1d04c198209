"""gevent and eventlet as peers of green's benches, under the same names.

Run by `cargo xtask bench` (xtask/src/peers/python.rs) in a venv with
pinned gevent and eventlet:

    python bench.py --lib gevent|eventlet [--quick] [--filter F] [--out FILE]

Each bench measures the operation of the Rust bench of the same name (the
doc table at the top of each `benches/*.rs`), with the library's own API:

| bench | what one operation is |
| --- | --- |
| `core/spawn_join` | `spawn(f)` then join with the value moved out (gevent `get()`, eventlet `wait()`), from the main greenlet; ns |
| `core/yield_10k` | one `sleep(0)` of one of 10 000 greenlets yielding in turn; ns per yield |
| `sync/event_pingpong` | one one-way hand-off between two greenlets through two events (gevent `set`/`wait`/`clear`, eventlet `send`/`wait`/`reset`); ns |
| `sync/queue_pingpong` | one one-way trip of an integer between two greenlets through two unbounded `Queue`s (`put`, `get`); ns |
| `core/timeout_scope` | `with_timeout(10, f)` where `f` blocks once (`sleep(0)`) and returns a constant; ns |
| `core/timeout_scope_nonblocking` | `with_timeout(10, f)` where `f` returns a constant without blocking; ns |
| `pool/map_100k` | one whole `Pool(100).map(x + 1, range(100000))` (eventlet `GreenPool(100).imap`, listed), results in order; ms per map |
| `core/idle_rss` | growth of (RSS + page tables) from before 100 000 greenlets are spawned to when all sleep an hour, / 100 000, in a fresh process; bytes |
| `core/sleep_lateness` | 1 000 greenlets each calling `sleep(0.001)` in a loop; per wake, the time it resumed minus (the time just before the call + 1 ms); median, min and max over every wake, us (p99 in the note) |

The echo benches are not here: their load comes from the Rust client of
`benches/net.rs`, against `echo_server.py`.

Timing follows `benches/support/harness.rs`: a routine runs `iters`
iterations and returns the time they took (setup outside it); the
iteration count is doubled until a run fills half a sample, then samples of
that size run after a warm-up, and the figure is the median, min and max of
the per-operation time over the samples. One difference: a case whose single
iteration takes long (a whole `Pool.map` of 100 000 items takes about a
second in Python) would need minutes for the harness's 50 samples, so
samples stop once a time budget is spent, never below a minimum count; the
note then says how many were taken.

Every result is appended to `--out` as one JSON line, the protocol of
`benches/support/json.rs`: `{"bench","subject","median","min","max","unit",
"note"}`, or `{"bench","subject","skipped"}` for a row that cannot run.
"""

import argparse
import gc
import json
import os
import subprocess
import sys
import time
import warnings

# Every bench this program runs, in order (the xtask lists the same names
# for the skip lines it writes when the venv cannot be made).
BENCHES = [
    "core/spawn_join",
    "core/yield_10k",
    "sync/event_pingpong",
    "sync/queue_pingpong",
    "core/timeout_scope",
    "core/timeout_scope_nonblocking",
    "pool/map_100k",
    "core/idle_rss",
    "core/sleep_lateness",
]

# Yielders alive at once in core/yield_10k.
LIVE = 10_000
# Items per map, and the pool's size, in pool/map_100k (benches/pool.rs).
ITEMS = 100_000
POOL_SIZE = 100
# Sleepers in core/idle_rss (benches/idle_rss.rs), and how long they sleep.
IDLE = 100_000
LONG = 3600.0
# Far beyond any sample, so the timeout never fires (benches/timeout.rs).
DEADLINE = 10.0
# core/sleep_lateness (benches/sleep_lateness.rs): sleepers, the sleep each
# one repeats, and the first rounds left out of the figures.
SLEEPERS = 1_000
NAP = 0.001
WARM_UP_ROUNDS = 2


class Plan:
    """How long to warm up, how long a sample is, and how many to take."""

    def __init__(self, quick):
        if quick:
            # The harness's quick plan; the budget keeps the quick run of
            # every Python bench within seconds.
            self.warm_up, self.sample, self.samples = 0.020, 0.002, 10
            self.budget, self.min_samples = 0.5, 2
        else:
            self.warm_up, self.sample, self.samples = 0.200, 0.010, 50
            self.budget, self.min_samples = 10.0, 10


class Bench:
    """The settings of one run, and where results go."""

    def __init__(self, args):
        self.lib = args.lib
        self.quick = args.quick
        self.filter = args.filter or None
        self.out = args.out
        self.plan = Plan(args.quick)
        # The benches that reported a figure or a skip, for the final check.
        self.reported = set()
        # The harness's GREEN_BENCH_PROGRESS: the tag of progress lines.
        self.progress_tag = os.environ.get("GREEN_BENCH_PROGRESS") or None

    def show(self, bench, step):
        """Says on stderr which bench runs and how far it is, as the harness
        does when `cargo xtask bench` asks (`[TAG] bench subject: step`)."""
        if self.progress_tag:
            print(f"[{self.progress_tag}] {bench} {self.lib}: {step}", file=sys.stderr, flush=True)

    def enabled(self, bench):
        return self.filter is None or self.filter in bench

    def emit(self, bench, unit, median, lo, hi, note):
        print(
            f"{bench:<32} {self.lib:<12} median {fmt_num(median):>10} {unit:<6} "
            f"(min {fmt_num(lo)}, max {fmt_num(hi)})  [{note}]",
            flush=True,
        )
        self.reported.add(bench)
        self.append(
            {
                "bench": bench,
                "subject": self.lib,
                "median": median,
                "min": lo,
                "max": hi,
                "unit": unit,
                "note": note,
            }
        )

    def skip(self, bench, reason):
        print(f"{bench:<32} {self.lib:<12} skipped: {reason}", flush=True)
        self.reported.add(bench)
        self.append({"bench": bench, "subject": self.lib, "skipped": reason})

    def append(self, record):
        if self.out:
            with open(self.out, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, separators=(",", ":")) + "\n")

    def timed(self, bench, routine, note, ops_per_iter=1, unit="ns"):
        """Times `routine(iters) -> ns` in samples, as the harness does;
        returns the median in `unit` (None when filtered out). `note` is a
        string or a function of the median."""
        if not self.enabled(bench):
            return None
        plan = self.plan
        self.show(bench, "warm-up")
        warm_start = time.perf_counter()
        iters = 1
        while True:
            took = routine(iters)
            if took >= plan.sample * 1e9 / 2 or iters >= 1 << 40:
                per = max(took, 1) / iters
                iters = max(1, int(plan.sample * 1e9 / per))
                break
            iters *= 2
        while time.perf_counter() - warm_start < plan.warm_up:
            routine(iters)
        per_op = []
        started = time.perf_counter()
        for k in range(plan.samples):
            self.show(bench, f"sample {k + 1}/{plan.samples}")
            per_op.append(routine(iters) / (iters * ops_per_iter))
            spent = time.perf_counter() - started
            if spent > plan.budget and len(per_op) >= plan.min_samples:
                break
        scale = {"ns": 1.0, "us": 1e-3, "ms": 1e-6, "s": 1e-9}[unit]
        median, lo, hi = (v * scale for v in stats(per_op))
        text = note(median) if callable(note) else note
        if len(per_op) < plan.samples:
            text += (
                f"; {len(per_op)} samples of {iters} iteration(s) (of {plan.samples}: "
                f"a {plan.budget:g} s budget per case)"
            )
        self.emit(bench, unit, median, lo, hi, text)
        return median


def stats(samples):
    """Median, min and max, as `Stats::of` computes them."""
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 == 1 else (s[n // 2 - 1] + s[n // 2]) / 2
    return median, s[0], s[-1]


def fmt_num(v):
    """The figure as `fmt_num` of benches/support/json.rs prints it."""
    a = abs(v)
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def resident():
    """(VmRSS, VmPTE) of this process in bytes, from /proc/self/status."""
    fields = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmPTE"):
                fields[key] = int(value.split()[0]) * 1024
    return fields.get("VmRSS", 0), fields.get("VmPTE", 0)


# ---------------------------------------------------------------------------
# The libraries, behind one small interface


class Gevent:
    name = "gevent"

    def __init__(self):
        import gevent
        import gevent.event
        import gevent.pool
        import gevent.queue

        self.version = f"gevent {gevent.__version__}"
        self.gevent = gevent
        self.sleep = gevent.sleep
        self.spawn = gevent.spawn
        self.Queue = gevent.queue.Queue
        self.with_timeout = gevent.with_timeout
        self._event = gevent.event.Event
        self._pool = gevent.pool.Pool

    def spawn_join(self, f):
        return self.spawn(f).get()

    def join(self, g):
        g.join()

    def join_value(self, g):
        return g.get()

    def events(self):
        """(set, wait_and_clear) pairs over two events."""
        ping, pong = self._event(), self._event()

        def wait_clear(e):
            e.wait()
            e.clear()

        return ping, pong, lambda e: e.set(), wait_clear

    def pool(self, size):
        return self._pool(size)

    def pool_map(self, pool, f, items):
        return pool.map(f, items)

    def start_hub(self):
        self.gevent.get_hub()

    def loop_note(self):
        return f"{self.version}, {type(self.gevent.get_hub().loop).__module__} loop"


class Eventlet:
    name = "eventlet"

    def __init__(self):
        with warnings.catch_warnings():
            # 0.41 warns on import that it is in maintenance mode.
            warnings.simplefilter("ignore")
            import eventlet
            import eventlet.event
            import eventlet.hubs
            import eventlet.queue
            import eventlet.timeout

        self.version = f"eventlet {eventlet.__version__}"
        self.eventlet = eventlet
        self.hubs = eventlet.hubs
        self.sleep = eventlet.sleep
        self.spawn = eventlet.spawn
        self.Queue = eventlet.queue.Queue
        self.with_timeout = eventlet.timeout.with_timeout
        self._event = eventlet.event.Event

    def spawn_join(self, f):
        return self.spawn(f).wait()

    def join(self, g):
        g.wait()

    def join_value(self, g):
        return g.wait()

    def events(self):
        # eventlet's Event is one-shot: `send` once, then `reset` before
        # the next `send`, which is what gevent's set / clear pair does.
        ping, pong = self._event(), self._event()

        def wait_reset(e):
            e.wait()
            e.reset()

        return ping, pong, lambda e: e.send(), wait_reset

    def pool(self, size):
        return self.eventlet.GreenPool(size)

    def pool_map(self, pool, f, items):
        # GreenPool has no map; imap is the same in input order.
        return list(pool.imap(f, items))

    def start_hub(self):
        self.hubs.get_hub()

    def loop_note(self):
        return f"{self.version}, {type(self.hubs.get_hub()).__module__} hub"


LIBS = {"gevent": Gevent, "eventlet": Eventlet}


# ---------------------------------------------------------------------------
# The benches


def spawn_join(b, lib):
    def one():
        return 1

    def routine(iters):
        spawn_join = lib.spawn_join
        start = time.perf_counter_ns()
        for _ in range(iters):
            spawn_join(one)
        return time.perf_counter_ns() - start

    join = "get()" if lib.name == "gevent" else "wait()"
    b.timed(
        "core/spawn_join",
        routine,
        f"{lib.loop_note()}; spawn(f) + {join} (join, value returned) of a greenlet "
        "returning a constant, from the main greenlet",
    )


class Counter:
    __slots__ = ("n", "stop")

    def __init__(self):
        self.n = 0
        self.stop = False


def yield_10k(b, lib):
    bench = "core/yield_10k"
    if not b.enabled(bench):
        return
    sleep = lib.sleep
    turns = Counter()

    def yielder():
        while not turns.stop:
            sleep(0)
            turns.n += 1

    b.show(bench, f"spawning {LIVE} yielders")
    yielders = [lib.spawn(yielder) for _ in range(LIVE)]
    # Each yielder runs up to its first yield before the clock starts.
    sleep(0)
    main_yields = [0, 0]  # yields of the timing greenlet, rounds

    def routine(iters):
        target = turns.n + iters * LIVE
        start = time.perf_counter_ns()
        while turns.n < target:
            sleep(0)
            main_yields[0] += 1
        took = time.perf_counter_ns() - start
        main_yields[1] += iters
        return took

    b.timed(
        bench,
        routine,
        lambda _: (
            f"{lib.loop_note()}; 10 000 greenlets yielding in turn with sleep(0); ns per "
            f"yield; the timing greenlet yielded {main_yields[0] / main_yields[1]:.2f} "
            "times per round"
        ),
        ops_per_iter=LIVE,
    )
    turns.stop = True
    for g in yielders:
        lib.join(g)


def event_pingpong(b, lib):
    bench = "sync/event_pingpong"
    if not b.enabled(bench):
        return
    ping, pong, fire, wait = lib.events()
    flags = Counter()

    def partner():
        while True:
            wait(ping)
            if flags.stop:
                break
            fire(pong)

    g = lib.spawn(partner)

    def routine(iters):
        start = time.perf_counter_ns()
        for _ in range(iters):
            fire(ping)
            wait(pong)
        return time.perf_counter_ns() - start

    calls = "set / wait / clear" if lib.name == "gevent" else "send / wait / reset"
    b.timed(
        bench,
        routine,
        f"{lib.loop_note()}; main greenlet and one partner, two Events; a round is "
        f"{calls} each way; ns per one-way hand-off",
        ops_per_iter=2,
    )
    flags.stop = True
    fire(ping)
    lib.join(g)


def queue_pingpong(b, lib):
    bench = "sync/queue_pingpong"
    if not b.enabled(bench):
        return
    to_partner, to_main = lib.Queue(), lib.Queue()

    def partner():
        while True:
            n = to_partner.get()
            if n is None:
                break
            to_main.put(n + 1)

    g = lib.spawn(partner)
    state = [0]

    def routine(iters):
        put, get = to_partner.put, to_main.get
        n = state[0]
        start = time.perf_counter_ns()
        for _ in range(iters):
            put(n)
            n = get()
        took = time.perf_counter_ns() - start
        state[0] = n
        return took

    b.timed(
        bench,
        routine,
        f"{lib.loop_note()}; main greenlet and one partner, two unbounded queue.Queues; a "
        "round is put / get each way; ns per one-way trip",
        ops_per_iter=2,
    )
    to_partner.put(None)
    lib.join(g)


def bare_yield_ns(b, lib):
    """Median ns of one bare sleep(0) of the main greenlet, for the note of
    core/timeout_scope (as benches/timeout.rs measures its yield_now)."""
    batches, per_batch = (5, 2_000) if b.quick else (21, 20_000)
    sleep = lib.sleep
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(per_batch):
            sleep(0)
        samples.append((time.perf_counter_ns() - start) / per_batch)
    return stats(samples)[0]


def timeout_scope(b, lib):
    blocking = b.enabled("core/timeout_scope")
    nonblocking = b.enabled("core/timeout_scope_nonblocking")
    sleep, with_timeout = lib.sleep, lib.with_timeout

    def blocks_once():
        sleep(0)
        return 1

    def returns():
        return 1

    def scope(body):
        def routine(iters):
            start = time.perf_counter_ns()
            for _ in range(iters):
                with_timeout(DEADLINE, body)
            return time.perf_counter_ns() - start

        return routine

    # Both libraries put the timer in the loop when the scope starts, blocking
    # or not (unlike green, which arms it only when the body blocks).
    armed = "the scope arms the loop timer as it starts"
    if blocking:
        bare = bare_yield_ns(b, lib)
        b.timed(
            "core/timeout_scope",
            scope(blocks_once),
            lambda median: (
                f"{lib.loop_note()}; with_timeout(10, f), f = sleep(0) then a constant, main "
                f"greenlet; {armed}; bare sleep(0) in this run: median {bare:.1f} ns, so the "
                f"scope adds ~{median - bare:.1f} ns"
            ),
        )
    if nonblocking:
        b.timed(
            "core/timeout_scope_nonblocking",
            scope(returns),
            f"{lib.loop_note()}; with_timeout(10, f), f returns a constant, main greenlet; "
            f"never blocks, but {armed}",
        )


def pool_map(b, lib):
    bench = "pool/map_100k"
    if not b.enabled(bench):
        return
    pool = lib.pool(POOL_SIZE)
    items = range(ITEMS)

    def inc(x):
        return x + 1

    last = []

    def routine(iters):
        start = time.perf_counter_ns()
        for _ in range(iters):
            out = lib.pool_map(pool, inc, items)
        took = time.perf_counter_ns() - start
        last[:] = [out]
        return took

    call = (
        "gevent.pool.Pool(100).map(f, range(100000))"
        if lib.name == "gevent"
        else "list(eventlet.GreenPool(100).imap(f, range(100000)))"
    )
    b.timed(
        bench,
        routine,
        f"{lib.loop_note()}; {call}, f = x + 1, from the main greenlet: a greenlet per item, "
        "at most 100 alive, results in input order; ms per map",
        unit="ms",
    )
    # A map that dropped or reordered results would have timed something else.
    if last and last[0] != list(range(1, ITEMS + 1)):
        raise AssertionError(f"{lib.name}: the map's results are not x + 1 in input order")


def idle_rss(b, lib):
    """Runs the case in a fresh process, as benches/idle_rss.rs does: no
    memory freed by an earlier case is reused."""
    bench = "core/idle_rss"
    if not b.enabled(bench):
        return
    b.show(bench, f"{IDLE} sleepers in a fresh process")
    cmd = [sys.executable, os.path.abspath(__file__), "--lib", lib.name, "--idle-rss-child"]
    if b.out:
        cmd += ["--out", b.out]
    if b.quick:
        cmd.append("--quick")
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        b.skip(bench, f"the child process failed with exit status {done.returncode}")
    else:
        # The child appended the line itself.
        b.reported.add(bench)


def idle_rss_child(b, lib):
    sleep = lib.sleep
    lib.start_hub()
    # Whatever a first spawn and sleep set up lazily is not per greenlet.
    lib.spawn_join(lambda: sleep(0))
    gc.collect()
    before_rss, before_pte = resident()
    asleep = Counter()

    def sleeper():
        asleep.n += 1
        sleep(LONG)

    sleepers = [lib.spawn(sleeper) for _ in range(IDLE)]
    # Spawned greenlets start in order, before this one resumes.
    sleep(0)
    if asleep.n != IDLE:
        raise AssertionError(f"{asleep.n} of {IDLE} sleepers started")
    rss, pte = resident()
    grown_rss, grown_pte = max(0, rss - before_rss), max(0, pte - before_pte)
    mib = 1024 * 1024
    per = (grown_rss + grown_pte) / IDLE
    b.emit(
        "core/idle_rss",
        "bytes",
        per,
        per,
        per,
        f"{lib.loop_note()}; {IDLE} greenlets in sleep(1 h), handles kept; per greenlet = "
        f"(RSS + page tables) / {IDLE}; RSS +{grown_rss / mib:.1f} MiB, page tables (VmPTE) "
        f"+{grown_pte / mib:.1f} MiB; fresh process",
    )
    del sleepers
    # Tearing down 100 000 sleepers measures nothing: leave at once.
    sys.stdout.flush()
    os._exit(0)


def sleep_lateness(b, lib):
    """As benches/sleep_lateness.rs: every sleeper runs its rounds, the first
    ones left out while the sleepers' start times settle."""
    bench = "core/sleep_lateness"
    if not b.enabled(bench):
        return
    sleep = lib.sleep
    clock = time.perf_counter
    rounds = 50 if b.quick else 500
    b.show(bench, f"{SLEEPERS} sleepers x {rounds} rounds")

    def sleeper():
        late = []
        for round_ in range(WARM_UP_ROUNDS + rounds):
            due = clock() + NAP
            sleep(NAP)
            woke = clock()
            if round_ >= WARM_UP_ROUNDS:
                late.append(woke - due)
        return late

    sleepers = [lib.spawn(sleeper) for _ in range(SLEEPERS)]
    samples = []
    for g in sleepers:
        samples.extend(x * 1e6 for x in lib.join_value(g))
    samples.sort()
    n = len(samples)
    median, lo, hi = stats(samples)
    p99 = samples[min(n - 1, n * 99 // 100)]
    b.emit(
        bench,
        "us",
        median,
        lo,
        hi,
        f"{lib.loop_note()}; {SLEEPERS} sleepers x {rounds} rounds of sleep(0.001) ({n} wakes); "
        f"lateness = wake time - (time just before the call + 1 ms), both from perf_counter; "
        f"p99 {p99:.0f} us, min {lo:.0f} us, max {hi:.0f} us",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", choices=sorted(LIBS), required=True)
    parser.add_argument("--quick", action="store_true", help="fewer, shorter samples")
    parser.add_argument("--filter", help="run only the benches whose name contains it")
    parser.add_argument("--out", help="append one JSON line per result to this file")
    parser.add_argument("--idle-rss-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    b = Bench(args)
    lib = LIBS[args.lib]()
    if args.idle_rss_child:
        idle_rss_child(b, lib)
        return
    spawn_join(b, lib)
    yield_10k(b, lib)
    event_pingpong(b, lib)
    queue_pingpong(b, lib)
    timeout_scope(b, lib)
    pool_map(b, lib)
    idle_rss(b, lib)
    sleep_lateness(b, lib)
    # A bench the filter let through must have said something: a row that
    # silently went missing would read as never measured.
    missing = [bench for bench in BENCHES if b.enabled(bench) and bench not in b.reported]
    if missing:
        sys.exit(f"bench.py --lib {lib.name}: no result for {', '.join(missing)}")


if __name__ == "__main__":
    main()
