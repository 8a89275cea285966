//! Live CORS cost on the request path: wrk against our middleware, `actix-cors` configured alike, and no CORS.

mod wrk;

use std::{
    io::{self, Read, Write},
    net::{SocketAddr, TcpStream},
    process::{Command, ExitCode},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc,
    },
    thread,
    time::{Duration, Instant, SystemTime},
};

use actix_cors::Cors;
use actix_web::{
    App, HttpResponse, HttpServer,
    dev::Server,
    http::header::{AUTHORIZATION, CONTENT_TYPE},
    middleware::from_fn,
    web,
};
use brokkr_broker::cors;
use brokkr_config::{ConfigLayers, ReloadableConfig, layers::LayerText};
use wrk::{Sample, wrk, wrk_command, wrk_version};

const USAGE: &str = "usage: cors_throughput [SECONDS=10] [CONNECTIONS=32] [ROUNDS=4, a multiple of 4] (progress on stderr, report on stdout)";
const ORIGIN: &str = "https://app.example.com";
const LOOPBACK: &str = "127.0.0.1:0";
/// The document's `max_age = "10m"`, which `actix-cors` takes in seconds.
const MAX_AGE: Duration = Duration::from_secs(600);
const WARM_UP_SECS: u64 = 2;
const RELOAD_EVERY: Duration = Duration::from_millis(100);

/// What one wrk run measures; the storm variant is the live server while a reload is applied every 100 ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    Live,
    ActixCors,
    Plain,
    LiveStorm,
}

impl Variant {
    /// Every variant once, in report order.
    const ROUND: [Self; 4] = [Self::Live, Self::ActixCors, Self::Plain, Self::LiveStorm];
    /// Running orders, one per round, cycled: a Williams square, so over 4 rounds each variant runs once in each
    /// position and follows each other variant exactly once. Drift within a round (heat, a neighbour's load) and
    /// the after-effects of a run (the storm's reloads, a run's connections closing) then fall on every variant alike.
    const ORDERS: [[Self; 4]; 4] = [
        [Self::Live, Self::ActixCors, Self::Plain, Self::LiveStorm],
        [Self::ActixCors, Self::LiveStorm, Self::Live, Self::Plain],
        [Self::Plain, Self::Live, Self::LiveStorm, Self::ActixCors],
        [Self::LiveStorm, Self::Plain, Self::ActixCors, Self::Live],
    ];
    const SERVERS: [Self; 3] = [Self::Live, Self::ActixCors, Self::Plain];

    fn label(self) -> &'static str {
        match self {
            Self::Live => "brokkr live",
            Self::ActixCors => "actix-cors static",
            Self::Plain => "no CORS",
            Self::LiveStorm => "brokkr live, reload storm (1 per 100 ms)",
        }
    }

    /// Index of the server it loads, in `SERVERS` order.
    fn server(self) -> usize {
        match self {
            Self::Live | Self::LiveStorm => 0,
            Self::ActixCors => 1,
            Self::Plain => 2,
        }
    }
}

fn main() -> ExitCode {
    let wrk_version = match wrk_version() {
        Ok(version) => version,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            eprintln!("install wrk (apt-get install wrk)");
            return ExitCode::from(2);
        }
        Err(error) => {
            eprintln!("cors_throughput: cannot run wrk: {error}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(error) = run(&wrk_version) {
        eprintln!("cors_throughput: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// Pins every thread of this process to CPU 0 with util-linux `taskset` (threads started later inherit it).
fn pin_self_to_cpu0() {
    let pid = std::process::id().to_string();
    match Command::new("taskset").args(["-a", "-cp", "0", &pid]).output() {
        Ok(output) if output.status.success() => eprintln!("servers pinned to CPU 0, wrk to CPU 1"),
        _ => eprintln!("taskset failed: servers and wrk share the cores freely"),
    }
}

fn run(wrk_version: &str) -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let seconds = positive(args.next(), 10, 600, "SECONDS")?;
    let connections = positive(args.next(), 32, 10_000, "CONNECTIONS")?;
    let rounds = usize::try_from(positive(args.next(), 4, 100, "ROUNDS")?).map_err(|e| e.to_string())?;
    if args.next().is_some() {
        return Err(USAGE.to_owned());
    }
    if rounds % Variant::ORDERS.len() != 0 {
        eprintln!("warning: {rounds} rounds is not a multiple of 4, so the running orders are not balanced");
    }
    let layers = ConfigLayers::new();
    let candidate = layers.build(Some(&document("10m"))).map_err(|e| format!("benchmark document rejected: {e}"))?;
    let config = ReloadableConfig::new(candidate.settings);
    // Servers (this process, CPU 0) and wrk (CPU 1) on separate cores, so they do not trade places mid-run.
    pin_self_to_cpu0();
    let ports = start_servers(config.clone())?;
    check_configuration(&ports)?;

    let total = Variant::SERVERS.len() as u64 * WARM_UP_SECS + (rounds * Variant::ROUND.len()) as u64 * seconds;
    eprintln!("warm-up, then {rounds} rounds of {} runs of {seconds} s: about {total} s", Variant::ROUND.len());
    for variant in Variant::SERVERS {
        wrk(ports[variant.server()], WARM_UP_SECS, connections)?;
    }
    let (mut samples, mut storm_reloads) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for variant in Variant::ORDERS[(round - 1) % Variant::ORDERS.len()] {
            eprintln!("round {round}/{rounds}: {}", variant.label());
            let storm = (variant == Variant::LiveStorm).then(|| ReloadStorm::start(layers.clone(), config.clone()));
            let sample = wrk(ports[variant.server()], seconds, connections);
            if let Some(storm) = storm {
                storm_reloads.push(storm.stop()?);
            }
            samples.push((variant, sample?));
        }
    }
    report(&samples, &storm_reloads, seconds, connections, wrk_version);
    Ok(())
}

/// `arg` as a whole number in `1..=max`, or `default` when absent.
fn positive(arg: Option<String>, default: u64, max: u64, name: &str) -> Result<u64, String> {
    let Some(text) = arg else { return Ok(default) };
    let number = text.parse::<u64>().ok().filter(|n| (1..=max).contains(n));
    number.ok_or_else(|| format!("{name} must be a whole number from 1 to {max}, not {text:?}; {USAGE}"))
}

/// The live server's ConfigMap document: the one origin `actix-cors` allows too.
fn document(max_age: &str) -> LayerText {
    let text = format!("[cors]\nallowed_origins = [\"{ORIGIN}\"]\nmax_age = \"{max_age}\"\n");
    LayerText { origin: "cors_throughput document".into(), text }
}

async fn bench() -> HttpResponse {
    HttpResponse::Ok().body("ok")
}

/// Starts the servers on an actix System in a thread of their own; returns their ports, in `SERVERS` order.
fn start_servers(config: ReloadableConfig) -> Result<[u16; 3], String> {
    let (tx, rx) = mpsc::channel();
    let system = move || {
        actix_rt::System::new().block_on(async move {
            match bind_servers(config) {
                Ok((ports, servers)) => {
                    // The receiver may be gone already; the servers then end with the process.
                    let _ = tx.send(Ok(ports));
                    for stopped in futures::future::join_all(servers).await {
                        if let Err(error) = stopped {
                            eprintln!("a benchmark server stopped: {error}");
                        }
                    }
                }
                Err(error) => {
                    let _ = tx.send(Err(error));
                }
            }
        });
    };
    thread::Builder::new().name("servers".into()).spawn(system).map_err(|e| format!("no server thread: {e}"))?;
    rx.recv_timeout(Duration::from_secs(10)).map_err(|e| format!("the servers did not start: {e}"))?
}

/// Binds, with one worker each: our middleware reading the live config per request (as `serve.rs` wires it),
/// `actix-cors` configured the same, and the bare route.
fn bind_servers(config: ReloadableConfig) -> Result<([u16; 3], [Server; 3]), String> {
    let bind_err = |e: io::Error| format!("cannot bind {LOOPBACK}: {e}");
    let config = web::Data::new(config);
    let live = HttpServer::new(move || {
        App::new().app_data(config.clone()).wrap(from_fn(cors::middleware)).route("/bench", web::get().to(bench))
    })
    .workers(1)
    .disable_signals()
    .bind(LOOPBACK)
    .map_err(bind_err)?;
    let actix_cors = HttpServer::new(|| {
        let cors = Cors::default()
            .allowed_origin(ORIGIN)
            .allowed_methods(["GET", "POST", "OPTIONS"])
            .allowed_headers([AUTHORIZATION, CONTENT_TYPE])
            .max_age(usize::try_from(MAX_AGE.as_secs()).expect("600 fits in usize"));
        App::new().wrap(cors).route("/bench", web::get().to(bench))
    })
    .workers(1)
    .disable_signals()
    .bind(LOOPBACK)
    .map_err(bind_err)?;
    let plain = HttpServer::new(|| App::new().route("/bench", web::get().to(bench)))
        .workers(1)
        .disable_signals()
        .bind(LOOPBACK)
        .map_err(bind_err)?;
    let port = |addrs: Vec<SocketAddr>| addrs.first().map(SocketAddr::port).ok_or("a server bound no address");
    let ports = [port(live.addrs())?, port(actix_cors.addrs())?, port(plain.addrs())?];
    Ok((ports, [live.run(), actix_cors.run(), plain.run()]))
}

/// Fails unless the two CORS servers allow the origin, on a simple GET and on a preflight with the same max age,
/// and the bare route sends no CORS header: the comparison is between equal configurations.
fn check_configuration(ports: &[u16; 3]) -> Result<(), String> {
    let max_age = MAX_AGE.as_secs().to_string();
    for variant in Variant::SERVERS {
        let port = ports[variant.server()];
        let cors_on = variant != Variant::Plain;
        let (status, headers) = request(port, "GET", "")?;
        let allowed = header(&headers, "access-control-allow-origin");
        if !status.starts_with("HTTP/1.1 200") || allowed != cors_on.then_some(ORIGIN) {
            let label = variant.label();
            return Err(format!("{label}: GET /bench answered {status:?}, Access-Control-Allow-Origin {allowed:?}"));
        }
        if cors_on {
            let (status, headers) = request(port, "OPTIONS", "Access-Control-Request-Method: GET\r\n")?;
            let allowed = header(&headers, "access-control-allow-origin");
            let age = header(&headers, "access-control-max-age");
            if allowed != Some(ORIGIN) || age != Some(max_age.as_str()) {
                let label = variant.label();
                return Err(format!("{label}: preflight answered {status:?}, origin {allowed:?}, max age {age:?}"));
            }
        }
    }
    Ok(())
}

/// The status line and headers (names lower-cased) of one request for `/bench` with our `Origin`.
fn request(port: u16, method: &str, extra_headers: &str) -> Result<(String, Vec<(String, String)>), String> {
    let failed = |e: io::Error| format!("{method} http://127.0.0.1:{port}/bench failed: {e}");
    let mut stream = TcpStream::connect(("127.0.0.1", port)).map_err(failed)?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(failed)?;
    let head = format!("{method} /bench HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: {ORIGIN}\r\n{extra_headers}");
    stream.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes()).map_err(failed)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(failed)?;
    let answer = String::from_utf8_lossy(&answer);
    let mut lines = answer.split("\r\n\r\n").next().unwrap_or_default().lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines.filter_map(|line| line.split_once(':'));
    Ok((status, headers.map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned())).collect()))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, value)| value.as_str())
}

/// Applies a new document every 100 ms from a thread of its own, as the ConfigActor would, until stopped.
struct ReloadStorm {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Result<u64, String>>,
}

impl ReloadStorm {
    fn start(layers: ConfigLayers, config: ReloadableConfig) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let handle = thread::spawn(move || {
            let (mut applied, mut next): (u64, Instant) = (0, Instant::now() + RELOAD_EVERY);
            loop {
                thread::sleep(next.saturating_duration_since(Instant::now()));
                next += RELOAD_EVERY;
                if stopped.load(Ordering::Relaxed) {
                    // Leave the document the other variants run with in force (not counted as a storm reload).
                    if config.current().settings.cors.max_age != MAX_AGE {
                        let outcome = config.reload(layers.build(Some(&document("10m"))), None);
                        if outcome.label() != brokkr_config::Outcome::Applied {
                            return Err(format!("restoring the benchmark document failed: {outcome:?}"));
                        }
                    }
                    return Ok(applied);
                }
                // Whichever value is not in force, so that every reload applies.
                let max_age = if config.current().settings.cors.max_age == MAX_AGE { "11m" } else { "10m" };
                let outcome = config.reload(layers.build(Some(&document(max_age))), None);
                if outcome.label() != brokkr_config::Outcome::Applied {
                    return Err(format!("storm reload {} was not applied: {outcome:?}", applied + 1));
                }
                applied += 1;
            }
        });
        Self { stop, handle }
    }

    /// Stops the storm and returns how many reloads it applied.
    fn stop(self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().map_err(|_| "the reload storm thread panicked".to_owned())?
    }
}

/// The middle value, or the mean of the two middle values of an even count; NaN for none.
fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

/// The runs of `variant`, in the order they ran.
fn runs(samples: &[(Variant, Sample)], variant: Variant) -> impl Iterator<Item = Sample> + '_ {
    samples.iter().filter(move |(v, _)| *v == variant).map(|(_, sample)| *sample)
}

fn report(samples: &[(Variant, Sample)], storm_reloads: &[u64], seconds: u64, connections: u64, wrk_version: &str) {
    let rounds = storm_reloads.len();
    let median_rps = |variant| median(runs(samples, variant).map(|s| s.requests_per_sec).collect());
    let baseline = median_rps(Variant::ActixCors);
    println!("## Live CORS cost on the request path (issue 9, item 2)\n");
    println!("| variant | requests/s (median of {rounds}) | p99 ms (median) | vs actix-cors | rounds: req/s (p99) |");
    println!("| --- | ---: | ---: | ---: | --- |");
    for variant in Variant::ROUND {
        let (rps, p99) = (median_rps(variant), median(runs(samples, variant).map(|s| s.p99_ms).collect()));
        let versus = match variant {
            Variant::ActixCors => "—".to_owned(),
            _ => format!("{:+.1} %", (rps - baseline) / baseline * 100.0),
        };
        let rounds: Vec<_> =
            runs(samples, variant).map(|s| format!("{:.0} ({:.3})", s.requests_per_sec, s.p99_ms)).collect();
        println!("| {} | {rps:.0} | {p99:.3} | {versus} | {} |", variant.label(), rounds.join(", "));
    }
    let expected = Duration::from_secs(seconds).as_millis() / RELOAD_EVERY.as_millis();
    println!("\nTarget: brokkr live within 3 % of actix-cors in requests/s, also during the reload storm.\n");
    println!("- reloads applied in each storm run: {storm_reloads:?} (1 per 100 ms: {expected} expected)");
    println!("- machine: {} cores (nproc); date: {}", nproc(), humantime::format_rfc3339_seconds(SystemTime::now()));
    println!("- load: `{}` ({wrk_version})", wrk_command("PORT", seconds, connections));
    println!(
        "- one release build and process; one actix worker per server; servers loaded one at a time, {WARM_UP_SECS} s \
         warm-up each, then {rounds} rounds of live, actix-cors, no CORS, live + storm in a Williams-square order; servers on CPU 0, wrk on CPU 1; loopback only"
    );
}

fn nproc() -> String {
    let output = Command::new("nproc").arg("--all").output().ok();
    let cores = output.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned()).filter(|n| !n.is_empty());
    cores.or_else(|| thread::available_parallelism().ok().map(|n| n.to_string())).unwrap_or_else(|| "?".into())
}
