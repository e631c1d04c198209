//! Producers and consumers around a `JoinableQueue`.
//!
//! `cargo run --example producer_consumer` prints two producers queueing
//! jobs and three consumers working through them; the main greenlet waits
//! until every job is marked done, then closes the queue. A `Timeout` bounds
//! the whole run, so a mistake shows up as a message instead of a hang.

use std::time::Duration;

use green_core::sync::JoinableQueue;
use green_core::{sleep, spawn, Timeout};

const PRODUCERS: u32 = 2;
const JOBS_PER_PRODUCER: u32 = 5;
const CONSUMERS: u32 = 3;

fn main() {
    green_core::run(|| {
        let outcome = Timeout::run(Duration::from_secs(1), || {
            // Bounded: a producer blocks while four jobs are waiting, so
            // producers cannot run far ahead of the consumers.
            let jobs = JoinableQueue::bounded(4);

            let consumers: Vec<_> = (1..=CONSUMERS)
                .map(|id| {
                    let jobs = jobs.clone();
                    spawn(move || {
                        let mut handled = 0;
                        // Ends once the queue is closed and drained.
                        for job in &jobs {
                            sleep(Duration::from_millis(2)); // stands in for real work
                            println!("consumer {id}: finished job {job}");
                            // One task_done per job taken lets `join` below return.
                            jobs.task_done().expect("one task_done per job taken");
                            handled += 1;
                        }
                        handled
                    })
                })
                .collect();

            let producers: Vec<_> = (1..=PRODUCERS)
                .map(|id| {
                    let jobs = jobs.clone();
                    spawn(move || {
                        for n in 1..=JOBS_PER_PRODUCER {
                            let job = id * 100 + n;
                            jobs.put(job)
                                .expect("the queue is open while producers run");
                            println!("producer {id}: queued job {job}");
                        }
                    })
                })
                .collect();

            for producer in &producers {
                producer.join();
            }
            // Every job is queued; wait until each one is marked done.
            jobs.join();
            println!("main: all {} jobs done", PRODUCERS * JOBS_PER_PRODUCER);

            // Closing ends the consumers' loops.
            jobs.close();
            for (id, consumer) in (1..=CONSUMERS).zip(&consumers) {
                println!("consumer {id} handled {} jobs", consumer.get().unwrap());
            }
        });
        if let Err(timeout) = outcome {
            println!("main: {timeout}: the jobs did not finish in time");
        }
    });
}
