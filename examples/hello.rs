//! The first program to run: a few greenlets in plain sequential code.
//!
//! `cargo run --example hello` prints the greenlets' interleaving, then shows
//! a `Timeout` cutting a slow call short and a kill unwinding a greenlet.

use std::time::Duration;

use green_core::{sleep, spawn, Timeout};

fn main() {
    green_core::run(|| {
        // Three workers that each "wait for I/O" (sleep) between steps. They
        // share one OS thread; the hub runs whichever is ready.
        let workers: Vec<_> = (1..=3)
            .map(|id| {
                spawn(move || {
                    for step in 1..=3 {
                        println!("worker {id}: step {step}");
                        sleep(Duration::from_millis(10 * id));
                    }
                    id * 100
                })
            })
            .collect();

        // A Timeout unwinds the block it scopes when the deadline passes.
        match Timeout::run(Duration::from_millis(15), || sleep(Duration::from_secs(60))) {
            Ok(()) => println!("the slow call finished (unexpected)"),
            Err(timeout) => println!("main: {timeout}: the slow call was cut short"),
        }

        // Killing a greenlet unwinds it at its blocking point; destructors run.
        let doomed = spawn(|| {
            struct Noisy;
            impl Drop for Noisy {
                fn drop(&mut self) {
                    println!("doomed: cleaned up by its destructor");
                }
            }
            let _noisy = Noisy;
            sleep(Duration::from_secs(60));
        });
        sleep(Duration::from_millis(1));
        doomed.kill();
        println!(
            "doomed: dead = {}, successful = {}",
            doomed.dead(),
            doomed.successful()
        );

        for w in &workers {
            println!("{} returned {}", w.name(), w.get().unwrap());
        }
    });
}
