//! Seeded chaos in CI: a few fixed seeds of writes interleaved with faults; after the faults stop the final valid
//! version is in force within the bound, no invalid version was ever in force, the process never exited and no
//! secret came out. `cargo run --release -p brokkr-e2e --bin chaos -- 200` runs many more.

use brokkr_e2e::chaos::{Schedule, run};

/// Fixed seeds, so CI is reproducible; each schedule has 16 steps.
const SEEDS: [u64; 3] = [1, 2, 3];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_seeds_keep_every_promise() {
    for seed in SEEDS {
        let schedule = Schedule::generate(seed, 16);
        match run(&schedule).await {
            Ok(outcome) => println!(
                "e2e chaos seed {seed}: converged {} ms after the faults, {} watcher restarts, {} API requests",
                outcome.converged_after.as_millis(),
                outcome.watcher_restarts,
                outcome.api_requests
            ),
            Err(broken) => {
                panic!("{broken}\nreplay with: cargo run -p brokkr-e2e --bin chaos -- --seed {seed}\n{schedule}")
            }
        }
    }
}
