//! `netforecast-ml`: the commands that need the model (replay, train, the
//! daemon). `netforecast` hands them over by exec; run directly it accepts the
//! same command line as `netforecast`.

use clap::Parser;
use netforecast::cli::{Cli, Command, RunCmd};
use netforecast_ml::MlError;
use std::process::ExitCode;

fn run_daemon(r: RunCmd) -> Result<(), MlError> {
    let mut cfg = netforecast_ml::config::DaemonConfig::load(
        r.config.as_deref(),
        &netforecast_ml::config::ProcessEnv,
    )
    .map_err(|e| MlError::Usage(e.to_string()))?;
    if let Some(v) = r.iface {
        cfg.iface = v;
    }
    if let Some(v) = r.model {
        cfg.model = Some(v);
    }
    if let Some(v) = r.window_ms {
        cfg.window_ms = v;
    }
    if let Some(v) = r.filter {
        cfg.filter = v;
    }
    if let Some(v) = r.metrics_addr {
        cfg.metrics_addr = v;
    }
    if let Some(v) = r.csv {
        cfg.csv = Some(v);
    }
    if let Some(v) = r.user {
        cfg.user = Some(v);
    }
    let s = netforecast_ml::daemon::run(cfg, r.quiet)?;
    eprintln!("{}", s.line());
    Ok(())
}

fn run(cli: Cli) -> Result<(), MlError> {
    match cli.command {
        None => run_daemon(cli.run),
        Some(Command::Run(r)) => run_daemon(r),
        Some(Command::Extract(a)) => Ok(netforecast::cli::run_extract(a)?),
        Some(Command::Replay(r)) => {
            let args = netforecast_ml::replay::ReplayArgs {
                inputs: r.inputs.clone(),
                model: r
                    .model
                    .clone()
                    .unwrap_or_else(netforecast_ml::model::default_model_dir),
                out: r.out.clone(),
                report: r.report.clone(),
                plot: r.plot.clone(),
                realtime: r.realtime,
                window_ms: r.shared.window_ms,
                quiet: r.shared.quiet,
            };
            netforecast_ml::replay::replay(
                &args,
                r.shared.engine_config(),
                r.shared.filter.as_deref(),
            )?;
            Ok(())
        }
        Some(Command::Train(t)) => {
            let cfg = netforecast_ml::train::TrainConfig {
                inputs: t.inputs.clone(),
                out: t.out.clone(),
                window_ms: t.window_ms,
                threshold_mbps: t.threshold_mbps,
                arch: t.arch.clone(),
                hidden: t.hidden,
                layers: t.layers,
                weight_decay: t.weight_decay,
                epochs: t.epochs,
                patience: t.patience,
                trees: t.trees.max(1),
                depth: t.depth.clamp(1, 10),
                gbt_lr: t.gbt_lr,
                batch: t.batch.max(1),
                lr: t.lr,
                seed: t.seed,
                val_frac: t.val_frac,
                val: t.val.clone(),
                command: std::iter::once("netforecast".to_string())
                    .chain(std::env::args().skip(1))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            netforecast_ml::train::train(&cfg)?;
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netforecast: {e}");
            ExitCode::from(1)
        }
    }
}
