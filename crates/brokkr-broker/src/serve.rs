//! `serve`: wires configuration, logging, metrics, the hot-reload subsystem and the HTTP server together.

use actix_web::{App, HttpServer, middleware::from_fn, web};
use brokkr_config::{ConfigError, ConfigLayers, ReloadableConfig, layers::ENV_PREFIX};
use brokkr_reload::{Environment, ReloadMetrics, ReloadNow, Subsystem, plan};
use prometheus_client::registry::Registry;
use tracing::{info, warn};

use crate::{cli::ServeArgs, cors, error::BrokerError, http, logging};

/// Runs the broker until SIGTERM or Ctrl-C (graceful: in-flight requests finish). SIGHUP forces a reload.
pub async fn run(args: ServeArgs) -> Result<(), BrokerError> {
    let mut layers = ConfigLayers::new();
    if let Some(path) = &args.config {
        layers = layers.with_file(path)?;
    }
    let layers = layers.with_env(settings_from_env()?)?;
    let settings = layers.build(None)?.settings;
    let filter = logging::init(&settings.log)?;
    let config = ReloadableConfig::new(settings.clone());
    actix::spawn(logging::follow(&config, filter));
    info!(version = env!("CARGO_PKG_VERSION"), hash = %config.current().hash, "starting brokkr-broker");
    if settings.admin.token.is_empty() {
        warn!("admin.token is not set: the admin API is locked and answers 401");
    }

    let mut registry = Registry::default();
    let metrics = ReloadMetrics::register(&mut registry);
    metrics.record_startup(&config.current().hash);
    let env = Environment::from_process(args.kubeconfig.clone());
    let subsystem = Subsystem::start(plan(&settings, &env), &env, config.clone(), layers, metrics).await?;
    reload_on_sighup(subsystem.clone());

    let listen = settings.server.listen;
    let server_err = |source| BrokerError::Server { addr: listen, source };
    let (config, subsystem, registry) = (web::Data::new(config), web::Data::new(subsystem), web::Data::new(registry));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(config.clone())
            .app_data(subsystem.clone())
            .app_data(registry.clone())
            .wrap(from_fn(cors::middleware))
            .configure(http::routes)
    })
    .shutdown_timeout(10)
    .bind(listen)
    .map_err(server_err)?;
    for addr in server.addrs() {
        info!(%addr, "listening");
    }
    server.run().await.map_err(server_err)?;
    info!("stopped");
    Ok(())
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

/// SIGHUP re-reads the ConfigMap now, bypassing the debounce, like `POST /api/v1/admin/config/reload`.
fn reload_on_sighup(subsystem: Subsystem) {
    actix::spawn(async move {
        let mut hangups = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(signal) => signal,
            Err(error) => return warn!(%error, "SIGHUP reload unavailable"),
        };
        while hangups.recv().await.is_some() {
            let Some(actor) = &subsystem.config_actor else {
                info!("SIGHUP ignored: ConfigMap hot reload is disabled");
                continue;
            };
            match actor.send(ReloadNow).await {
                Ok(Ok(report)) => info!(outcome = report.outcome, generation = report.generation, "SIGHUP reload"),
                Ok(Err(error)) => warn!(error = %crate::error::chain(&error), "SIGHUP reload failed"),
                Err(error) => warn!(%error, "SIGHUP reload failed"),
            }
        }
    });
}
