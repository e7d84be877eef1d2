//! Thin binary: parse arguments, run `extract` here, hand the commands that need
//! the model to `netforecast-ml` (which links libtorch), print one error line,
//! pick the exit code.

use clap::Parser;
use netforecast::cli::{Cli, Dispatch};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

/// `netforecast-ml` next to this binary, else on PATH.
fn ml_binary() -> Option<PathBuf> {
    let beside = std::env::current_exe()
        .ok()?
        .parent()?
        .join("netforecast-ml");
    if beside.is_file() {
        return Some(beside);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("netforecast-ml"))
        .find(|p| p.is_file())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match netforecast::cli::run(cli) {
        Ok(Dispatch::Done) => ExitCode::SUCCESS,
        Ok(Dispatch::NeedsModel) => {
            let Some(ml) = ml_binary() else {
                eprintln!(
                    "netforecast: netforecast-ml (replay, train and the daemon) is not installed next to netforecast or on PATH; build it with `cargo build --release --workspace`"
                );
                return ExitCode::from(1);
            };
            // exec keeps the PID, so signals and service managers see one process.
            let err = std::process::Command::new(&ml)
                .arg0("netforecast")
                .args(std::env::args_os().skip(1))
                .exec();
            eprintln!("netforecast: cannot run {}: {err}", ml.display());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("netforecast: {e}");
            ExitCode::from(1)
        }
    }
}
