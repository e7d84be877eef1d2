//! Command line (INTERFACE.md "Commands"). Parsing only; `app` does the work.

use crate::app::{self, AppError, Source};
use crate::flow::FlowConfig;
use crate::live::LiveConfig;
use crate::pipeline::EngineConfig;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "netforecast",
    version,
    about = "Watch TCP traffic, cut it into 50 ms windows, forecast the next window's throughput."
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// With no command: the daemon (same as `netforecast run`).
    #[command(flatten)]
    pub run: RunCmd,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunCmd {
    /// Interface to capture on.
    #[arg(long, short = 'i')]
    pub iface: Option<String>,
    /// TOML configuration file (see scripts/netforecast.toml.example).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model directory (MODEL.md); default: the shipped model_files/.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Window width in milliseconds (must match the model).
    #[arg(long)]
    pub window_ms: Option<u32>,
    /// BPF capture filter (default `tcp`).
    #[arg(long)]
    pub filter: Option<String>,
    /// Prometheus endpoint address (default 127.0.0.1:9898; empty disables).
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Predictions CSV (default when no database is configured:
    /// ./netforecast-predictions.csv), rotated by size.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Switch to this user once the capture is open (needs root).
    #[arg(long)]
    pub user: Option<String>,
    /// Print nothing but errors and the final summary.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: live capture, a forecast every window, InfluxDB and/or CSV,
    /// until SIGINT or SIGTERM. The InfluxDB settings come from the config file
    /// and the environment (INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_TOKEN
    /// or INFLUX_TOKEN_FILE, INFLUX_VERSION, INFLUX_DB), never from arguments.
    Run(RunCmd),
    /// The nine window features (FEATURES.md) of capture files or a live interface, as CSV.
    Extract(ExtractArgs),
    /// The forecasting pipeline fed from capture files: predictions, metrics against
    /// naive baselines, the phase-shift plot.
    Replay(ReplayCmd),
    /// Train a model (the LSTM, or `--arch linear|gbt`) on features CSVs (one capture
    /// each) and write a model directory.
    Train(TrainCmd),
}

#[derive(Args, Debug, Clone)]
pub struct ReplayCmd {
    /// Capture files (pcap or pcapng, plain or gzip), each a separate capture.
    #[arg(value_name = "PCAP", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model directory (MODEL.md); default: the shipped model_files/.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Predictions CSV (`-` for standard output).
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Report JSON with the model's and the baselines' metrics.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// PNG of actual vs forecast throughput, congestion probability below.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Pace the replay by the packet timestamps instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    #[command(flatten)]
    pub shared: Shared,
}

#[derive(Args, Debug, Clone)]
pub struct TrainCmd {
    /// Features CSVs written by `netforecast extract`, one capture each.
    #[arg(value_name = "FEATURES.csv", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Model directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Window width the features were extracted with, ms.
    #[arg(long, default_value_t = 50)]
    pub window_ms: u32,
    /// Congestion threshold, Mbit/s (stored with the model).
    #[arg(long, default_value_t = 20.0)]
    pub threshold_mbps: f64,
    /// `lstm`; `linear` (a linear map of the window in place of the LSTM); or
    /// `gbt` (gradient-boosted oblivious trees on window statistics).
    #[arg(long, default_value = "lstm")]
    pub arch: String,
    #[arg(long, default_value_t = 64)]
    pub hidden: i64,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    #[arg(long, default_value_t = 2)]
    pub layers: i64,
    #[arg(long, default_value_t = 80)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation MAE.
    #[arg(long, default_value_t = 12)]
    pub patience: usize,
    /// Most trees for `--arch gbt` (early stopping usually ends sooner).
    #[arg(long, default_value_t = 3000)]
    pub trees: usize,
    /// Depth of each tree for `--arch gbt`.
    #[arg(long, default_value_t = 6)]
    pub depth: usize,
    /// Learning rate (shrinkage) for `--arch gbt`.
    #[arg(long, default_value_t = 0.05)]
    pub gbt_lr: f64,
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    #[arg(long, default_value_t = 3e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Share of captures held out for validation (ignored with --val).
    #[arg(long, default_value_t = 0.2)]
    pub val_frac: f64,
    /// Captures to validate on (features CSVs among the inputs), by path or name.
    #[arg(long, value_name = "FEATURES.csv")]
    pub val: Vec<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct Shared {
    /// Window width in milliseconds.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    pub window_ms: u32,
    /// BPF capture filter. Live default: `tcp`. Files: none unless given (plain
    /// `tcp` would miss VLAN-tagged frames, which are counted).
    #[arg(long)]
    pub filter: Option<String>,
    /// Most flows tracked at once; the longest idle is evicted beyond it.
    #[arg(long, default_value_t = FlowConfig::default().max_flows)]
    pub max_flows: usize,
    /// Seconds without a packet after which a flow is forgotten.
    #[arg(long, default_value_t = 300)]
    pub flow_idle_timeout_s: u32,
    /// Gaps longer than this many seconds are not filled with silent windows; the
    /// window grid restarts after them.
    #[arg(long, default_value_t = 600)]
    pub max_silent_gap_s: u32,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
}

impl Shared {
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            window_ns: self.window_ms as i64 * 1_000_000,
            max_silent_gap_ns: self.max_silent_gap_s as i64 * 1_000_000_000,
            flow: FlowConfig {
                max_flows: self.max_flows.max(1),
                idle_timeout_ns: self.flow_idle_timeout_s as i64 * 1_000_000_000,
                ..FlowConfig::default()
            },
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ExtractArgs {
    /// Capture files (pcap or pcapng, plain or gzip), processed one after another
    /// as separate captures.
    #[arg(
        value_name = "PCAP",
        required_unless_present = "iface",
        conflicts_with = "iface"
    )]
    pub inputs: Vec<PathBuf>,
    /// Capture live on this interface instead; one row per window as it closes,
    /// until SIGINT or SIGTERM.
    #[arg(long, short = 'i')]
    pub iface: Option<String>,
    /// Output CSV; `-` is standard output.
    #[arg(long, short = 'o', default_value = "-")]
    pub out: PathBuf,
    /// Also write one row per counted packet (frame number, time, ACK RTT, bytes
    /// in flight) to this CSV, to check a capture against tshark.
    #[arg(long, value_name = "CSV")]
    pub packets_out: Option<PathBuf>,
    /// Write the summary (counters per capture) as JSON to this file.
    #[arg(long, value_name = "JSON")]
    pub summary_json: Option<PathBuf>,
    /// Live: bytes kept per packet.
    #[arg(long, default_value_t = 256)]
    pub snaplen: i32,
    /// Live: kernel capture buffer in MiB.
    #[arg(long, default_value_t = 64)]
    pub buffer_mib: i32,
    #[command(flatten)]
    pub shared: Shared,
}

/// What the libtorch-free `netforecast` binary does with a command line.
pub enum Dispatch {
    /// The command ran here.
    Done,
    /// The command needs the model (replay, train, the daemon): `netforecast-ml`
    /// runs it, so this binary does not load libtorch for `extract`.
    NeedsModel,
}

/// Run the parsed command if it needs no model.
pub fn run(cli: Cli) -> Result<Dispatch, AppError> {
    match cli.command {
        Some(Command::Extract(a)) => {
            run_extract(a)?;
            Ok(Dispatch::Done)
        }
        _ => Ok(Dispatch::NeedsModel),
    }
}

/// `netforecast extract`.
pub fn run_extract(a: ExtractArgs) -> Result<(), AppError> {
    let source = match &a.iface {
        Some(iface) => {
            let mut l = LiveConfig::new(iface);
            l.snaplen = a.snaplen;
            l.buffer_bytes = a.buffer_mib.saturating_mul(1 << 20);
            Source::Live(l)
        }
        None => Source::Files(a.inputs.clone()),
    };
    app::extract(
        source,
        &a.out,
        a.packets_out.as_deref(),
        a.summary_json.as_deref(),
        a.shared.engine_config(),
        a.shared.filter.as_deref(),
        a.shared.quiet,
    )?;
    Ok(())
}
