//! `serve`: wires configuration, logging, metrics, the hot-reload subsystem and the HTTP server together.

use actix_web::{App, HttpServer, middleware::from_fn, web};
use brokkr_config::{ConfigError, ConfigLayers, ReloadableConfig, Settings, SourceRef, layers::ENV_PREFIX};
use brokkr_reload::{
    ConfigMapSource, Environment, Plan, ReloadMetrics, Subsystem, plan,
    registration::{ApiAccess, connect},
    reload_log::AUDIT_TARGET,
    startup::{STARTUP_READ_TIMEOUT, Startup, read_startup},
};
use prometheus_client::registry::Registry;
use tracing::{error, info, warn};

use crate::{
    admission::{ConfigMapReviewer, ReviewMetrics},
    cli::ServeArgs,
    cors,
    error::BrokerError,
    http, logging, shutdown, webhook,
};

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
    let env = Environment::from_process(args.kubeconfig.clone());
    let plan = plan(&boot, &env);
    let access = connect(&plan, &env, &boot).await?;
    // Restart-only keys set in the ConfigMap take effect now, at start-up: read it once, within a bound.
    let startup = match &access {
        Some(access) => Some(read_startup(access.source.clone(), &layers, &boot, STARTUP_READ_TIMEOUT).await),
        None => None,
    };
    let (settings, source) = match &startup {
        Some(Startup::FromConfigMap { candidate, source }) => (candidate.settings.clone(), Some(source.clone())),
        _ => (boot, None),
    };
    let filter = logging::init(&settings.log)?;
    log_start(&plan, access.as_ref(), startup.as_ref(), &settings, source.as_ref());
    let config = ReloadableConfig::starting(settings.clone(), source);
    actix::spawn(logging::follow(&config, filter));

    let mut registry = Registry::default();
    let metrics = ReloadMetrics::register(&mut registry);
    metrics.record_startup(&config.current().hash);
    let webhook = if settings.webhook.enabled {
        // The namespace the watch reads from; without a connection, the one the settings or the pod's name.
        let namespace = access.as_ref().map(|a| a.source.namespace()).or_else(|| {
            settings
                .config_reload
                .namespace
                .clone()
                .or(env.pod_namespace.clone())
                .or(env.service_account_namespace.clone())
        });
        let reviewer =
            ConfigMapReviewer::new(layers.clone(), config.clone(), namespace, ReviewMetrics::register(&mut registry));
        Some(webhook::server(&settings.webhook, reviewer)?.0)
    } else {
        None
    };
    let access = access.filter(|_| settings.config_reload.enabled);
    let subsystem = Subsystem::start(access, config.clone(), layers, metrics);
    shutdown::reload_on_sighup(hangups, subsystem.clone());

    let listen = settings.server.listen;
    let server_err = |source| BrokerError::Server { addr: listen, source };
    let draining = web::Data::new(shutdown::Draining::default());
    let (config, subsystem, registry) = (web::Data::new(config), web::Data::new(subsystem), web::Data::new(registry));
    let app_draining = draining.clone();
    let server = HttpServer::new(move || {
        App::new()
            .app_data(config.clone())
            .app_data(subsystem.clone())
            .app_data(registry.clone())
            .app_data(app_draining.clone())
            .wrap(from_fn(cors::middleware))
            .configure(http::routes)
    })
    .disable_signals()
    .shutdown_timeout(shutdown::SHUTDOWN_TIMEOUT.as_secs())
    .bind(listen)
    .map_err(server_err)?;
    for addr in server.addrs() {
        info!(%addr, "listening");
    }
    let server = server.run();
    let mut handles = vec![server.handle()];
    let webhook = webhook.map(|webhook| {
        handles.push(webhook.handle());
        actix::spawn(webhook)
    });
    shutdown::drain_on_sigterm(handles, draining.into_inner(), args.drain_delay);
    server.await.map_err(server_err)?;
    // Both servers stop together on SIGTERM; wait for the webhook's reviews in flight too.
    if let Some(webhook) = webhook {
        match webhook.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => error!(error = %crate::error::chain(&error), "admission webhook server failed"),
            Err(error) => error!(%error, "admission webhook server panicked"),
        }
    }
    info!("stopped");
    Ok(())
}

/// The start-up lines, written once logging is set up (it is set up from settings the ConfigMap may change).
fn log_start(
    plan: &Plan,
    access: Option<&ApiAccess>,
    startup: Option<&Startup>,
    settings: &Settings,
    source: Option<&SourceRef>,
) {
    info!(version = env!("CARGO_PKG_VERSION"), "starting brokkr-broker");
    match (plan, access) {
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
        Some(Startup::Invalid(error)) => error!(
            target: AUDIT_TARGET,
            reason = %crate::error::chain(error),
            "ConfigMap is invalid at start-up; starting on the file and the environment"
        ),
        Some(Startup::Unreadable(error)) => warn!(
            error = %crate::error::chain(error),
            "ConfigMap could not be read at start-up; starting on the file and the environment until the watch reads it"
        ),
        None => {}
    }
    if startup.is_some() && !settings.config_reload.enabled {
        info!("config_reload.enabled is false in the ConfigMap; no watch is started");
    }
    if settings.admin.token.is_empty() {
        warn!("admin.token is not set: the admin API is locked and answers 401");
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
