//! `serve`: wires configuration, logging, metrics, the hot-reload subsystem and the HTTP server together.

use actix_web::{App, HttpServer, dev::Server, middleware::from_fn, web};
use std::sync::Arc;

use brokkr_config::{
    ConfigError, ConfigLayers, Place, ReloadableConfig, SecretsElsewhere, Settings, SourceRef, layers::ENV_PREFIX,
};
use brokkr_reload::{
    ConfigMapSource, Environment, Options, Plan, ReloadMetrics, Subsystem,
    file_source::FileSource,
    history::ReloadHistory,
    plan,
    registration::{ApiAccess, connect},
    reload_log::AUDIT_TARGET,
    rollout_metrics::RolloutMetrics,
    rollout_startup::StagedStart,
    startup::{STARTUP_READ_TIMEOUT, Startup, read_startup, startup_record},
};
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use crate::{
    admin_token::{AdminToken, TokenMetrics},
    admission::{ConfigMapReviewer, ReviewMetrics},
    cli::ServeArgs,
    cors,
    error::BrokerError,
    hold, http,
    listeners::{self, StartupFallback},
    logging, probe, shutdown, staging,
    tls::CertificateGauge,
    traffic::{self, TrafficMetrics},
    webhook,
};

/// The HTTP API's worker threads: fixed, not the node's CPU count, so that the connection bound below (per worker
/// in actix) and the memory it can take do not grow with the node.
pub const HTTP_WORKERS: usize = 2;

/// The most connections the HTTP API keeps open per worker; more wait in the listen backlog. A connection's read
/// buffer grows to 128 KiB while its request head is incomplete (actix-http's `MAX_BUFFER_SIZE`), beside an 8 KiB
/// write buffer and a few KiB of state: 2 workers × 64 × ~140 KiB ≈ 18 MiB at most, beside a ~25 MiB baseline.
/// Scrapes and admin calls need a handful. Any pod can fill these slots; no probe uses this port (see
/// [`crate::probe`]).
pub const HTTP_MAX_CONNECTIONS: usize = 64;

/// How long a client may take to send its request head (actix's default is 5 s): a slow client frees its slot
/// soon, and a scrape or admin call (which sends its head at once) waits less behind it.
pub const HTTP_HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs the broker until SIGTERM or Ctrl-C (readiness drops, then in-flight requests finish). SIGHUP reloads.
pub async fn run(args: ServeArgs) -> Result<(), BrokerError> {
    // First, before anything that can take time: an early SIGHUP must never kill the process.
    let hangups = shutdown::hangups();
    let mut layers = ConfigLayers::new();
    if let Some(path) = &args.config {
        layers = layers.with_file(path)?;
    }
    let layers = layers.with_env(settings_from_env()?)?;
    let boot = layers.build(None)?.settings;
    let mut registry = Registry::default();
    // The token read from admin.token_file is in no layer: the layers are told of it, so no document shows it.
    let elsewhere = SecretsElsewhere::default();
    let layers = layers.with_secrets_elsewhere(elsewhere.clone());
    let token = AdminToken::new(&boot.admin, elsewhere, TokenMetrics::register(&mut registry));
    let env = Environment::from_process(args.kubeconfig.clone());
    let file_source = file_source(&args, &boot, &env)?;
    let plan = match &file_source {
        Some(_) => Plan::Disabled { reason: FILE_SOURCE_ONLY },
        None => plan(&boot, &env),
    };
    let options = Options::default();
    let access = connect(&plan, &env, &boot, &options).await?;
    // Restart-only keys set in the ConfigMap take effect now, at start-up: read it once, within a bound. The
    // `--config` file followed by `--watch-config` was read as the file layer already.
    // With a staged rollout, the start-up read starts on the ConfigMap's text only where the rollout admits it.
    let staged_start = access.as_ref().filter(|_| boot.rollout.enabled).and_then(|access| {
        let uid = std::env::var("POD_UID").ok().filter(|uid| !uid.is_empty())?;
        let reload = &boot.config_reload;
        let (object, key) = (reload.configmap.clone(), reload.key.clone());
        Some(Arc::new(StagedStart::new(access.source.clone(), access.client.clone(), object, key, uid)))
    });
    let document_source: Option<Arc<dyn ConfigMapSource>> = match (&access, &file_source) {
        (Some(_), _) if staged_start.is_some() => staged_start.clone().map(|s| s as Arc<dyn ConfigMapSource>),
        (Some(access), _) => Some(access.source.clone()),
        (None, Some(file)) if args.configmap_file.is_some() => Some(file.clone()),
        _ => None,
    };
    let startup = match document_source {
        Some(source) => Some(read_startup(source, &layers, &boot, STARTUP_READ_TIMEOUT).await),
        None => None,
    };
    let (settings, source) = match &startup {
        Some(Startup::FromConfigMap { candidate, source }) => (candidate.settings.clone(), Some(source.clone())),
        _ => (boot.clone(), None),
    };
    // Bound before logging is set up, so that a bind error of the file's own settings is the one error printed.
    let (settings, listeners, fallback) = listeners::bind_or_fall_back(settings, &boot)?;
    // The probe socket first of the servers: it answers whatever the other ports go through, until the process ends
    // (readiness: not ready until the subsystem exists).
    let readiness = probe::Readiness::default();
    if let Some(path) = &args.probe_socket {
        actix::spawn(probe::serve(probe::bind(path)?, path, readiness.clone())?);
    }
    let filter = logging::init(&settings.log)?;
    let following = file_source.as_ref().map(|file| file.describe());
    log_start(&plan, access.as_ref(), startup.as_ref(), &settings, source.as_ref(), following);
    if let (Some(fallback), Some(source)) = (&fallback, &source) {
        report_fallback(fallback, access.as_ref(), source);
    }
    token.describe_start();
    let config = ReloadableConfig::starting(settings.clone(), source);
    record_startup(&options.history, &config, startup.as_ref());
    actix::spawn(logging::follow(&config, filter));
    actix::spawn(token.clone().follow(config.clone()));

    let metrics = ReloadMetrics::register_with_prefix(&mut registry, &options.metric_prefix);
    metrics.record_startup(&config.current().hash);
    let traffic = TrafficMetrics::register(&mut registry);
    traffic.follow(&config);
    let rollout_metrics = boot.rollout.enabled.then(|| RolloutMetrics::register(&mut registry));
    let webhook = match listeners.webhook {
        Some(listener) => {
            // The namespace the watch reads from; without a connection, the one the settings or the pod's name.
            let namespace = access.as_ref().map(|a| a.source.namespace()).or_else(|| {
                settings
                    .config_reload
                    .namespace
                    .clone()
                    .or(env.pod_namespace.clone())
                    .or(env.service_account_namespace.clone())
            });
            let reviews = ReviewMetrics::register(&mut registry);
            let reviewer = ConfigMapReviewer::new(layers.clone(), config.clone(), namespace, reviews);
            let gauge = CertificateGauge::register(&mut registry);
            Some(webhook::serve(listener, &settings.webhook, reviewer, gauge)?.0)
        }
        None => None,
    };
    let access = access.filter(|_| settings.config_reload.enabled);
    if let Some(pod) = access.as_ref().and_then(|a| a.pod.clone()).filter(|_| args.pod_status) {
        match args.pod_status_policy.clone().filter(|p| !p.is_empty()) {
            Some(policy) => {
                actix::spawn(pod.publish(policy, options.history.clone(), config.clone()));
            }
            None => error!(
                "--pod-status needs --pod-status-policy (BROKKR_POD_STATUS_POLICY), the ValidatingAdmissionPolicy that guards the Pod's annotations (the chart sets it); not writing them"
            ),
        }
    }
    let subsystem = match (file_source.filter(|_| settings.config_reload.enabled), &access) {
        (Some(file), _) => Subsystem::register(file, config.clone(), layers, metrics, None, &options),
        (None, Some(access)) if settings.rollout.enabled => {
            let measured = (traffic.clone(), rollout_metrics.clone().unwrap_or_default());
            // Only a text that was put in force: an invalid one the start-up read judged is not running.
            let in_force = matches!(startup, Some(Startup::FromConfigMap { .. }));
            let started_on = staged_start.as_ref().filter(|_| in_force).and_then(|s| s.started_on());
            staging::start(access, &args, &settings, (&config, &layers), metrics, &options, measured, started_on)?
        }
        (None, _) => Subsystem::start(access, config.clone(), layers, metrics, &options),
    };
    shutdown::reload_on_sighup(hangups, subsystem.clone());

    let listen = settings.server.listen;
    let server_err = |source| BrokerError::Server { addr: listen, source };
    let draining = web::Data::new(shutdown::Draining::default());
    readiness.set(subsystem.clone(), draining.clone());
    let (config, subsystem, registry) = (web::Data::new(config), web::Data::new(subsystem), web::Data::new(registry));
    let (fallback, token) = (web::Data::new(fallback), web::Data::new(token));
    let history = web::Data::new(options.history.clone());
    let traffic = web::Data::new(traffic);
    let app_draining = draining.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(config.clone())
            .app_data(subsystem.clone())
            .app_data(registry.clone())
            .app_data(app_draining.clone())
            .app_data(fallback.clone())
            .app_data(token.clone())
            .app_data(history.clone())
            .app_data(traffic.clone())
            .wrap(from_fn(cors::middleware))
            .wrap(from_fn(traffic::count))
            // No route reads a body; an unread chunked one must not hold the connection.
            .wrap(from_fn(hold::payload_until_answered))
            .configure(http::routes)
    })
    // Any pod can reach this port: bound its connections (actix's default is 25,600 per worker), and serve one
    // request per connection: actix times only the first request head of a connection, so a kept-alive one could
    // trickle its next head for ever and, 128 times over, shut out readiness and scrapes. Probes and scrapes open a
    // connection per request anyway (the kubelet's probes do).
    .workers(HTTP_WORKERS)
    .max_connections(HTTP_MAX_CONNECTIONS)
    .client_request_timeout(HTTP_HEAD_TIMEOUT)
    .keep_alive(actix_web::http::KeepAlive::Disabled)
    .disable_signals()
    .shutdown_timeout(shutdown::SHUTDOWN_TIMEOUT.as_secs())
    .listen(listeners.http)
    .map_err(server_err)?;
    for addr in server.addrs() {
        info!(%addr, "listening");
    }
    let server = server.run();
    let mut handles = vec![server.handle()];
    let webhook_handle = webhook.as_ref().map(Server::handle);
    let webhook = webhook.map(|webhook| {
        handles.push(webhook.handle());
        actix::spawn(webhook)
    });
    let draining = draining.into_inner();
    shutdown::drain_on_sigterm(handles, draining.clone(), args.drain_delay);
    let Some(mut webhook) = webhook else {
        server.await.map_err(server_err)?;
        info!("stopped");
        return Ok(());
    };
    // Both servers stop together on SIGTERM. Either one ending before that is told at once.
    let mut server = std::pin::pin!(server);
    tokio::select! {
        served = &mut server => {
            // However the HTTP server ended, the webhook ends with it (a no-op when SIGTERM stopped both).
            if let Some(handle) = webhook_handle {
                handle.stop(true).await;
            }
            report_webhook_end(webhook.await, true);
            served.map_err(server_err)?;
        }
        ended = &mut webhook => {
            report_webhook_end(ended, draining.is_draining());
            server.await.map_err(server_err)?;
        }
    }
    info!("stopped");
    Ok(())
}

/// Why the API is not used when a file is the source.
const FILE_SOURCE_ONLY: &str = "the configuration is followed in a file (--watch-config or --configmap-file)";

/// The file source `args` ask for, when hot reload is on: the ConfigMap's document in a mounted file (read as from
/// the namespace the settings or the pod give), the `--config` file polled (`--watch-config`), or, without an API
/// to read a ConfigMap from, the `--config` file read on SIGHUP and `POST …/reload` only, as Prometheus and Vector
/// do.
fn file_source(args: &ServeArgs, boot: &Settings, env: &Environment) -> Result<Option<Arc<FileSource>>, BrokerError> {
    if !boot.config_reload.enabled {
        return Ok(None);
    }
    let polled = Some(args.watch_interval);
    let (path, place, interval) = match (&args.configmap_file, &args.config) {
        (Some(path), _) => {
            let namespace = boot.config_reload.namespace.clone();
            let namespace = namespace.or(env.pod_namespace.clone()).or(env.service_account_namespace.clone());
            // Without it, a document could move `config_reload.namespace` unchecked, and the webhook with it.
            let namespace = namespace.ok_or(BrokerError::ConfigMapFileNamespace)?;
            (path.clone(), Place::ConfigMap { namespace: Some(namespace) }, polled)
        }
        (None, Some(path)) if args.watch_config => (path.clone(), Place::ConfigFile, polled),
        (None, Some(path)) if matches!(plan(boot, env), Plan::Disabled { .. }) => {
            (path.clone(), Place::ConfigFile, None)
        }
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(FileSource::new(path, place, interval))))
}

/// The history's first record (see [`startup_record`]), when start-up read the ConfigMap at all.
fn record_startup(history: &ReloadHistory, config: &ReloadableConfig, startup: Option<&Startup>) {
    if let Some(record) = startup.and_then(|startup| startup_record(startup, config)) {
        history.record(record, config.current().settings.config_reload.history);
    }
}

/// Logs how the webhook server ended; before shutdown began, any end is an error (reviews now fail).
fn report_webhook_end(ended: Result<std::io::Result<()>, tokio::task::JoinError>, shutting_down: bool) {
    match ended {
        Ok(Ok(())) if shutting_down => {}
        Ok(Ok(())) => error!("admission webhook server stopped; reviews fail until the broker restarts"),
        Ok(Err(error)) => error!(error = %crate::report::chain(&error), "admission webhook server failed"),
        Err(error) => error!(%error, "admission webhook server panicked"),
    }
}

/// Says, in the log and an Event on the ConfigMap, that restart-only values of the ConfigMap are not in force.
fn report_fallback(fallback: &StartupFallback, access: Option<&ApiAccess>, source: &SourceRef) {
    error!(
        target: AUDIT_TARGET,
        keys = ?fallback.keys,
        error = %fallback.error,
        "the ConfigMap's restart-only settings could not start; started with the file's and the environment's values for them"
    );
    if let Some(access) = access {
        let note = format!("started without the ConfigMap's {}: {}", fallback.keys.join(", "), fallback.error);
        access.events.warn(source, "StartupFallback", "Start", note);
    }
}

/// The start-up lines, written once logging is set up (it is set up from settings the ConfigMap may change).
fn log_start(
    plan: &Plan,
    access: Option<&ApiAccess>,
    startup: Option<&Startup>,
    settings: &Settings,
    source: Option<&SourceRef>,
    following: Option<String>,
) {
    info!(version = env!("CARGO_PKG_VERSION"), "starting brokkr-broker");
    match (plan, access) {
        _ if following.is_some() => {
            info!(source = following.unwrap_or_default(), "following the configuration's file; no API request is made");
        }
        (Plan::Disabled { reason }, _) => info!(reason, "ConfigMap hot reload is off; no watch is started"),
        (Plan::Enabled { .. }, Some(access)) => {
            info!(configmap = %access.source.describe(), connection = ?access.connection, "reading ConfigMap for hot reload");
        }
        (Plan::Enabled { .. }, None) => {}
    }
    match startup {
        Some(Startup::FromConfigMap { .. }) => info!(
            resource_version = source.and_then(|s| s.resource_version.as_deref()).unwrap_or_default(),
            "start-up configuration includes the ConfigMap"
        ),
        Some(Startup::Absent) => warn!("ConfigMap not found at start-up; starting on the file and the environment"),
        Some(Startup::Invalid { error, .. }) => error!(
            target: AUDIT_TARGET,
            reason = %crate::report::chain(error),
            "ConfigMap is invalid at start-up; starting on the file and the environment"
        ),
        Some(Startup::Unreadable(error)) => warn!(
            error = %crate::report::chain(error),
            "ConfigMap could not be read at start-up; starting on the file and the environment until the watch reads it"
        ),
        None => {}
    }
    if startup.is_some() && !settings.config_reload.enabled {
        info!("config_reload.enabled is false in the ConfigMap; no watch is started");
    }
}

/// The `BROKKR__*` variables; one that is not UTF-8 is an error, not a panic.
fn settings_from_env() -> Result<Vec<(String, String)>, ConfigError> {
    let mut vars = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)).map(str::to_owned) else {
            continue;
        };
        let value = value
            .into_string()
            .map_err(|_| ConfigError::Env { var: name.clone(), reason: "the value is not UTF-8".into() })?;
        vars.push((name, value));
    }
    Ok(vars)
}
