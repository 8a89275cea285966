//! Runs many chaos seeds and prints the figures: `chaos [COUNT] [--first N] [--seed S] [--steps N]`.
//! Needs `KUBEBUILDER_ASSETS` (scripts/control-plane-assets.sh prints it) and a built broker.

use std::time::Duration;

use brokkr_e2e::chaos::{Schedule, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag =
        |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok());
    let steps = flag("--steps").map_or(16, |n: u64| usize::try_from(n).unwrap_or(16));
    let seeds: Vec<u64> = match flag("--seed") {
        Some(seed) => vec![seed],
        None => {
            let count = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
            let first = flag("--first").unwrap_or(1);
            (first..first + count).collect()
        }
    };
    let (mut converged, mut restarts, mut requests, mut failed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for seed in &seeds {
        let schedule = Schedule::generate(*seed, steps);
        match run(&schedule).await {
            Ok(outcome) => {
                println!("seed {seed}: ok, converged in {} ms", outcome.converged_after.as_millis());
                converged.push(outcome.converged_after);
                restarts.push(outcome.watcher_restarts);
                requests.push(outcome.api_requests);
            }
            Err(broken) => {
                println!("seed {seed}: FAILED: {broken}\n{schedule}");
                failed.push(*seed);
            }
        }
    }
    converged.sort();
    let at = |q: f64| -> Duration {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index"
        )]
        let i = ((converged.len().saturating_sub(1)) as f64 * q).round() as usize;
        converged.get(i).copied().unwrap_or_default()
    };
    println!("\n{} seeds × {steps} steps: {} passed, {} failed {failed:?}", seeds.len(), converged.len(), failed.len());
    println!(
        "convergence after the faults: p50 {} ms, p99 {} ms, max {} ms",
        at(0.5).as_millis(),
        at(0.99).as_millis(),
        at(1.0).as_millis()
    );
    println!(
        "watcher restarts per run: max {}; API requests per broker per run: max {}, total {}",
        restarts.iter().max().unwrap_or(&0),
        requests.iter().max().unwrap_or(&0),
        requests.iter().sum::<usize>()
    );
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
