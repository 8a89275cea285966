//! Benchmark harness: edit→applied latency of the broker binary against a real local API server.
//! Prints min/p50/p95/max over N edits for a given debounce. Usage: `reload_latency [EDITS] [DEBOUNCE]`.

use std::time::{Duration, Instant};

use brokkr_e2e::Cluster;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let edits: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let debounce = args.next().unwrap_or_else(|| "100ms".into());
    let document = |i: u32| format!("[config_reload]\ndebounce = \"{debounce}\"\n[cors]\nmax_age = \"{i}s\"");

    let cluster = Cluster::with_config("bench", &document(0)).await;
    let broker = cluster.start_broker(&[]).await;
    // The ConfigMap is read at start-up: generation 0 already holds document 0.
    assert_eq!(broker.status().await["generation"], 0);

    let mut samples = Vec::new();
    for i in 1..=edits {
        let edited = Instant::now();
        cluster.apply_config(&document(i)).await;
        let generation = u64::from(i);
        loop {
            if broker.status().await["generation"].as_u64() >= Some(generation) {
                break;
            }
            assert!(edited.elapsed() < Duration::from_secs(30), "edit {i} not applied in 30 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        samples.push(edited.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    println!(
        "edit->applied over {edits} edits, debounce {debounce}: min {:.0} ms, p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
        at(0.0),
        at(0.5),
        at(0.95),
        at(1.0)
    );
}
