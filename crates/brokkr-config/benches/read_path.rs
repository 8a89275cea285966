//! Read path of the settings in force: `ReloadableConfig` (ArcSwap) beside a Brokkr-style `RwLock<Settings>` that
//! clones the whole struct on every call, single-threaded and with two readers while a writer reloads continuously;
//! and the cost of one reload of the largest document the broker parses (256 KiB).
#![allow(missing_docs, reason = "criterion_group! generates an undocumented function")]

use std::{
    hint::black_box,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use brokkr_config::{
    ConfigLayers, ReloadableConfig, Settings,
    layers::{LayerText, MAX_DOCUMENT_BYTES},
};
use criterion::{Criterion, criterion_group, criterion_main};

fn layers_and_config() -> (ConfigLayers, ReloadableConfig) {
    let layers = ConfigLayers::new();
    let settings = layers.build(None).expect("defaults").settings;
    (layers, ReloadableConfig::new(settings))
}

/// Alternates two documents as fast as it can until `stop`: a writer that never rests.
fn reload_storm(layers: ConfigLayers, config: ReloadableConfig, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut reloads = 0;
        while !stop.load(Ordering::Relaxed) {
            let origin = if reloads % 2 == 0 { "https://a.example" } else { "https://b.example" };
            let text = format!("[cors]\nallowed_origins = [\"{origin}\"]");
            config.reload(layers.build(Some(&LayerText { origin: "bench".into(), text })), None);
            reloads += 1;
        }
        reloads
    })
}

/// Time per call of `read` on two threads at once, while a writer reloads continuously.
fn contended(iterations: u64, read: impl Fn() + Send + Sync + Clone + 'static) -> Duration {
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let read = read.clone();
            thread::spawn(move || {
                let started = Instant::now();
                for _ in 0..iterations {
                    read();
                }
                started.elapsed()
            })
        })
        .collect();
    let total: Duration = readers.into_iter().map(|r| r.join().expect("reader")).sum();
    total / 2
}

fn read_path(c: &mut Criterion) {
    let (layers, config) = layers_and_config();
    let locked = Arc::new(RwLock::new(config.current().settings.clone()));

    let mut group = c.benchmark_group("read, single-threaded");
    group.bench_function("ReloadableConfig::current()", |b| b.iter(|| black_box(config.current())));
    group.bench_function("current().settings.cors.clone() (CORS middleware)", |b| {
        b.iter(|| black_box(config.current().settings.cors.clone()))
    });
    group.bench_function("RwLock<Settings> read + clone (Brokkr-style accessor)", |b| {
        b.iter(|| black_box(locked.read().map(|s| s.clone()).ok()))
    });
    group.finish();

    let mut group = c.benchmark_group("read, 2 readers + a writer reloading continuously");
    let stop = Arc::new(AtomicBool::new(false));
    let writer = reload_storm(layers.clone(), config.clone(), stop.clone());
    let (arc_config, arc_locked) = (config.clone(), locked.clone());
    group.bench_function("ReloadableConfig::current()", |b| {
        let config = arc_config.clone();
        b.iter_custom(move |n| {
            let config = config.clone();
            contended(n, move || {
                black_box(config.current());
            })
        })
    });
    stop.store(true, Ordering::Relaxed);
    let reloads = writer.join().expect("writer");
    // The RwLock's writer takes the lock the way a Brokkr-style reload would; one writer at a time on 2 cores.
    let lock_writer_stop = Arc::new(AtomicBool::new(false));
    let lock_writer = {
        let (locked, stop) = (arc_locked.clone(), lock_writer_stop.clone());
        let next = layers.build(None).expect("defaults").settings;
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(mut guard) = locked.write() {
                    *guard = next.clone();
                }
            }
        })
    };
    group.bench_function("RwLock<Settings> read + clone (Brokkr-style accessor)", |b| {
        let locked = arc_locked.clone();
        b.iter_custom(move |n| {
            let locked = locked.clone();
            contended(n, move || {
                black_box(locked.read().map(|s: std::sync::RwLockReadGuard<'_, Settings>| s.clone()).ok());
            })
        })
    });
    group.finish();
    lock_writer_stop.store(true, Ordering::Relaxed);
    let _ = lock_writer.join();
    println!("the writer reloaded {reloads} times during the contended runs");
}

/// A reload of the largest document the broker parses (`MAX_DOCUMENT_BYTES`): build, validate, diff and swap,
/// alternating two documents so that every reload applies.
fn reload_cost(c: &mut Criterion) {
    let (layers, config) = layers_and_config();
    let document = |origin: &str| {
        let padding = "# padding\n".repeat((MAX_DOCUMENT_BYTES - 200) / 10);
        format!("{padding}[cors]\nallowed_origins = [\"{origin}\"]\n[log]\nlevel = \"info\"\n")
    };
    let (a, b) = (document("https://a.example"), document("https://b.example"));
    assert!(a.len() <= MAX_DOCUMENT_BYTES && a.len() > MAX_DOCUMENT_BYTES - 1024, "{} bytes", a.len());
    let mut flip = false;
    c.bench_function("reload of a 256 KiB broker.toml, the largest parsed (build, validate, diff, swap)", |bench| {
        bench.iter(|| {
            flip = !flip;
            let text = if flip { a.clone() } else { b.clone() };
            let outcome = config.reload(layers.build(Some(&LayerText { origin: "bench".into(), text })), None);
            black_box(outcome)
        })
    });
}

/// The most costly document to refuse: a large valid list beside more mistakes than an answer names, as any pod
/// that reaches the webhook port can send (the judgement reads each changed value alone once, then the rest).
fn refusal_cost(c: &mut Criterion) {
    let (layers, _) = layers_and_config();
    let origins = vec!["\"https://a.example\""; 11_000].join(", ");
    let mistakes: String = (0..40).map(|i| format!("z{i:02} = 1\n")).collect();
    let text = format!("[cors]\nallowed_origins = [{origins}]\n[log]\n{mistakes}");
    assert!(text.len() <= MAX_DOCUMENT_BYTES && text.len() > MAX_DOCUMENT_BYTES / 2, "{} bytes", text.len());
    c.bench_function("refusal of a 240 KiB document: 11,000 origins and 40 unknown keys", |bench| {
        bench.iter(|| black_box(layers.build(Some(&LayerText { origin: "bench".into(), text: text.clone() })).is_err()))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = read_path, reload_cost, refusal_cost
}
criterion_main!(benches);
