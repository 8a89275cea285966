//! With the flag off, or outside Kubernetes without a named kubeconfig, nothing is registered and no API
//! request is made: not even the kubeconfig is read.

use std::path::PathBuf;

use brokkr_config::{ConfigLayers, ReloadableConfig, Settings};
use brokkr_reload::{Environment, Options, Plan, ReloadMetrics, Subsystem, WatcherState, plan, registration::connect};

fn start(settings: Settings, env: &Environment) -> Subsystem {
    let config = ReloadableConfig::new(settings.clone());
    let plan = plan(&settings, env);
    assert!(matches!(plan, Plan::Disabled { .. }), "{plan:?}");
    let system = actix_rt::System::new();
    let access = system
        .block_on(connect(&plan, env, &settings, &Options::default()))
        .expect("a disabled plan never fails to connect");
    assert!(access.is_none(), "no client is built");
    system.block_on(async {
        Subsystem::start(access, config, ConfigLayers::new(), ReloadMetrics::default(), &Options::default())
    })
}

#[test]
fn flag_off_registers_nothing_and_reads_no_kubeconfig() {
    let mut settings = Settings::default();
    settings.config_reload.enabled = false;
    // A kubeconfig that does not exist: reading it, let alone connecting, would fail.
    let env = Environment {
        kubeconfig_flag: Some(PathBuf::from("/nonexistent/kubeconfig")),
        kubernetes_service_host: Some("10.0.0.1".into()),
        ..Environment::default()
    };
    let subsystem = start(settings, &env);
    assert!(subsystem.config_actor.is_none());
    assert_eq!(subsystem.watcher.get(), (WatcherState::Disabled, 0));
    assert!(subsystem.is_ready());
}

#[test]
fn outside_kubernetes_without_a_kubeconfig_registers_nothing() {
    let subsystem = start(Settings::default(), &Environment::default());
    assert!(subsystem.config_actor.is_none());
}
