//! Graceful shutdown on Ctrl-C (SIGINT) or SIGTERM: a few worker greenlets
//! print ticks until a signal handler, running in its own greenlet, sets a
//! stop event; the main greenlet then kills the workers, prints a summary
//! and exits 0.
//!
//! ```text
//! cargo run --example signals              # stop it with Ctrl-C
//! cargo run --example signals -- --self-test
//! ```
//!
//! `--self-test` (or `GREEN_SIGNALS_SELF_TEST=1`) sends the process SIGINT
//! after a short while, with `kill`, as a terminal would: a process-directed
//! signal, which reaches the hub because this program has no other thread
//! (see `green_core::signal` on threads).

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use green_core::signal::signal;
use green_core::sync::Event;

const USAGE: &str = "usage: signals [--self-test]
  --self-test  send this process SIGINT after a short while (also GREEN_SIGNALS_SELF_TEST=1)";

fn main() -> std::io::Result<()> {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--self-test" => {}
            "--help" | "-h" => {
                println!("Graceful shutdown on SIGINT or SIGTERM.\n{USAGE}");
                return Ok(());
            }
            other => {
                eprintln!("signals: unknown argument `{other}`\n{USAGE}");
                std::process::exit(2);
            }
        }
    }
    let self_test = std::env::args().any(|a| a == "--self-test")
        || std::env::var_os("GREEN_SIGNALS_SELF_TEST").is_some_and(|v| v == "1");
    green_core::run(|| {
        let stop = Event::new();
        let caught = Rc::new(Cell::new(None));
        // One handler per signal; each delivery runs it in a new greenlet.
        let mut handlers = Vec::new();
        for (signum, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
            let (stop, caught) = (stop.clone(), Rc::clone(&caught));
            handlers.push(signal(signum, move || {
                println!("caught {name}: stopping");
                caught.set(Some(name));
                stop.set();
            })?);
        }
        let tick = if self_test {
            Duration::from_millis(20)
        } else {
            Duration::from_millis(500)
        };
        let ticks = Rc::new(Cell::new(0u64));
        let workers: Vec<_> = (1..=3u64)
            .map(|n| {
                let ticks = Rc::clone(&ticks);
                green_core::Builder::new()
                    .name(format!("worker-{n}"))
                    .spawn(move || loop {
                        ticks.set(ticks.get() + 1);
                        println!("worker {n}: tick");
                        green_core::sleep(tick * n as u32);
                    })
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        if self_test {
            green_core::spawn(|| {
                green_core::sleep(Duration::from_millis(150));
                let pid = std::process::id().to_string();
                // Blocks the hub for the few milliseconds `kill` takes.
                let sent = std::process::Command::new("kill")
                    .args(["-INT", &pid])
                    .status();
                if !sent.is_ok_and(|s| s.success()) {
                    eprintln!("self-test: could not run `kill -INT {pid}`");
                    std::process::exit(2);
                }
            });
        }
        let started = Instant::now();
        println!("running {} workers; press Ctrl-C to stop", workers.len());
        stop.wait();
        green_core::killall(&workers);
        for h in &handlers {
            h.cancel();
        }
        println!(
            "stopped by {} after {:.1?}: {} ticks from {} workers, all {}",
            caught.get().unwrap_or("?"),
            started.elapsed(),
            ticks.get(),
            workers.len(),
            if workers.iter().all(|w| w.dead()) {
                "dead"
            } else {
                "NOT dead"
            }
        );
        Ok(())
    })
}
