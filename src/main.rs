//! Thin binary: parse arguments, run, print one error line, pick the exit code.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = netforecast::cli::Cli::parse();
    match netforecast::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netforecast: {e}");
            ExitCode::from(1)
        }
    }
}
