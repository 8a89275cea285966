//! The `brokkr-broker` command: `serve` runs the broker, `check-config FILE` validates a file offline,
//! `probe` asks a running broker whether it is alive (or ready), `settings-docs` regenerates the settings'
//! documentation.

use std::process::ExitCode;

use brokkr_broker::cli::{Cli, Command};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => match actix_web::rt::System::new().block_on(brokkr_broker::serve::run(args)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("brokkr-broker: {}", brokkr_broker::report::chain(&error));
                ExitCode::FAILURE
            }
        },
        Command::CheckConfig { file, configmap, config, env_file, namespace } => {
            let over = brokkr_broker::check::Over { config, env_file, namespace };
            brokkr_broker::check::run(&file, configmap.then_some(over))
        }
        Command::Probe { socket, ready } => brokkr_broker::probe::run(&socket, ready),
        Command::SettingsDocs { write, root } => brokkr_broker::settings_docs::run(&root, write),
    }
}
