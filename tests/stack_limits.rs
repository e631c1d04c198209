//! Spawning past `vm.max_map_count` fails with an error that names the limit
//! and its fix, through green-core's public `Builder` (DESIGN.md §5); and
//! unguarded greenlets go past it. Alone in its binary: it exhausts mappings.

use std::time::Duration;

use green_core::{sleep, Builder};

#[test]
fn guarded_spawns_past_the_map_limit_fail_clearly_and_unguarded_ones_do_not() {
    let limit = green_ctx::read_max_map_count().unwrap_or(0);
    if limit == 0 || limit > 100_000 {
        println!("skipped: vm.max_map_count is {limit}; the test needs the default-sized limit");
        return;
    }
    green_core::run(|| {
        let mut alive = Vec::new();
        let error = loop {
            let spawned = Builder::new()
                .stack_size(16 * 1024)
                .spawn(|| sleep(Duration::from_secs(3600)));
            match spawned {
                Ok(g) => alive.push(g),
                Err(e) => break e,
            }
            assert!(
                alive.len() <= limit,
                "no error after {} greenlets",
                alive.len()
            );
        };
        let message = error.to_string();
        assert!(message.contains("vm.max_map_count"), "{message}");
        assert!(message.contains("sysctl"), "{message}");
        assert!(
            alive.len() > 1000,
            "only {} greenlets before the limit",
            alive.len()
        );
        // Nothing was lost: the greenlets spawned so far still run.
        green_core::yield_now();
        assert!(alive.iter().all(|g| g.is_alive()));
        // Unguarded stacks come from a few large mappings: past the limit.
        let extra: Vec<_> = (0..2000)
            .map(|_| {
                Builder::new()
                    .unguarded(true)
                    .stack_size(16 * 1024)
                    .spawn(|| sleep(Duration::from_secs(3600)))
                    .expect("unguarded stacks need no mapping each")
            })
            .collect();
        green_core::yield_now();
        assert!(extra.iter().all(|g| g.is_alive()));
        // Teardown at the end of `run` unwinds all of them.
    });
}
