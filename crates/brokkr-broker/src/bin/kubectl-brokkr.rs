//! `kubectl-brokkr`: the `kubectl brokkr` plugin; put it on `PATH` and run `kubectl brokkr status` (see
//! `brokkr_broker::plugin`).

use std::process::ExitCode;

use brokkr_broker::plugin::{EXIT_ERROR, PluginCli, run};
use clap::Parser;

fn main() -> ExitCode {
    // Not `parse`: clap exits 2 on a usage error, which `rollout-status` uses for a timeout.
    let cli = match PluginCli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime.block_on(run(cli)),
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
