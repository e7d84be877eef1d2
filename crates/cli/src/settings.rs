//! The command line (INTERFACE.md "Commands"): clap's definitions, and the one
//! place raw arguments become validated settings ([`Settings::from_cli`]).
//! Nothing downstream re-parses or re-checks them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use engine::flow::FlowConfig;
use engine::forecast::WindowWidth;
use engine::pipeline::EngineConfig;
use service::config::{DaemonConfig, Env};
use service::extract::{Extract, Input};
use service::source::LiveConfig;
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
    /// More detail on standard error (-v: debug, -vv: trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Print nothing but errors (and the daemon's final summary).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Diagnostics as text (timestamps when not on a terminal) or JSON lines.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How diagnostics are written.
#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Args, Debug, Clone, Default)]
pub struct RunCmd {
    /// Interface to capture on; repeat it (or separate with commas) for
    /// several, each its own capture and stream.
    #[arg(long, short = 'i', value_name = "IF")]
    pub iface: Vec<String>,
    /// TOML configuration file (see deploy/netforecast.toml.example).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Model directory (MODEL.md); default: the shipped model_files/.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Window width in milliseconds (must match the model).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    pub window_ms: Option<u32>,
    #[command(flatten)]
    pub flows: FlowArgs,
    /// BPF capture filter (default `tcp`).
    #[arg(long)]
    pub filter: Option<String>,
    /// HTTP address of the live page, the REST API and /metrics (default
    /// 127.0.0.1:9898; empty disables). Another host's address needs a token
    /// (NETFORECAST_HTTP_TOKEN or NETFORECAST_HTTP_TOKEN_FILE) or --insecure-http.
    #[arg(long)]
    pub metrics_addr: Option<String>,
    /// Serve a non-localhost --metrics-addr without a token.
    #[arg(long)]
    pub insecure_http: bool,
    /// Predictions CSV (default when no database is configured:
    /// ./netforecast-predictions.csv), rotated by size.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Streams of their own for the K busiest hosts of each interface (0:
    /// none; default 32).
    #[arg(long, value_name = "K")]
    pub top_hosts: Option<usize>,
    /// Streams of their own for the K busiest TCP connections of each
    /// interface (0: none; default 32).
    #[arg(long, value_name = "K")]
    pub top_flows: Option<usize>,
    /// Switch to this user once the capture is open (needs root).
    #[arg(long)]
    pub user: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The daemon: live capture, a forecast every window, InfluxDB and/or CSV,
    /// until SIGINT or SIGTERM. The InfluxDB settings come from the config file
    /// and the environment (INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_TOKEN
    /// or INFLUX_TOKEN_FILE, INFLUX_VERSION, INFLUX_DB, INFLUX_FIELDS), never from
    /// arguments; Kafka's from KAFKA_BROKERS, KAFKA_TOPIC, KAFKA_FORMAT and
    /// KAFKA_FIELDS or the file's [kafka].
    Run(RunCmd),
    /// The nine window features (FEATURES.md) of capture files or a live interface, as CSV.
    Extract(ExtractArgs),
    /// The forecasting pipeline fed from capture files: predictions, metrics against
    /// naive baselines, the phase-shift plot.
    Replay(ReplayCmd),
    /// Train a model (the LSTM, or `--arch lstm-gbt|linear|gbt`) on features CSVs (one capture
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
    /// A self-contained interactive HTML report (the live page's charts, the
    /// events, per-capture metrics and calibration), readable offline.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Score the events against the rate schedule each capture was made with
    /// (NAME.schedule.csv beside NAME.pcap[.gz], or `--events-truth=FILE`
    /// for one capture): capacity-drop recall, precision and delay,
    /// congestion lead time and false alerts, in the printed summary and the
    /// report.
    // The file needs `=`: with a space, `--events-truth a.pcap b.pcap` took
    // the first capture for a schedule and scored nothing.
    #[arg(long, num_args = 0..=1, require_equals = true, value_name = "SCHEDULE")]
    pub events_truth: Option<Option<PathBuf>>,
    /// The event detector's thresholds: a TOML file with the keys of the
    /// daemon's [events] table (README "Alerts").
    #[arg(long, value_name = "FILE")]
    pub events_config: Option<PathBuf>,
    /// Pace the replay by the packet timestamps instead of as fast as possible.
    #[arg(long)]
    pub realtime: bool,
    /// Publish the model's own forecast, without the online combination and
    /// recalibration (the report scores both either way).
    #[arg(long)]
    pub model_only: bool,
    /// Up to N queued windows per model call, for a model without native
    /// trees: 1 (the default) gives exactly the daemon's forecasts; with more
    /// they agree to float rounding, not bit for bit (TorchScript's vectorised
    /// kernels follow the batch shape). Batch-invariant models, the shipped
    /// one among them (its trees walked natively), always batch and give the
    /// same bits either way.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub batch: u32,
    /// Add `lower_mbps,upper_mbps` to the predictions CSV: the band around each
    /// published forecast (about its 10th and 90th percentile, from the
    /// stream's recent errors; empty until there are enough).
    #[arg(long)]
    pub band: bool,
    /// A corpus manifest (CSV with `name` and `class` columns): the report adds
    /// scores per traffic class; a capture belongs to the row whose name is its
    /// file name without extensions.
    #[arg(long, value_name = "MANIFEST.csv")]
    pub classes: Option<PathBuf>,
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
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=3_600_000))]
    pub window_ms: u32,
    /// Congestion threshold, Mbit/s (stored with the model).
    #[arg(long, default_value_t = 20.0)]
    pub threshold_mbps: f64,
    /// `lstm`; `lstm-gbt` (the LSTM with the trees inside one module: their
    /// forecast is one of its candidates, their statistics extra inputs);
    /// `linear` (a linear map of the window in place of the LSTM); or `gbt`
    /// (gradient-boosted oblivious trees on window statistics).
    #[arg(long, default_value = "lstm", value_parser = ["lstm", "lstm-gbt", "linear", "gbt"])]
    pub arch: String,
    /// LSTM hidden units (default 64; `lstm-gbt` 32).
    #[arg(long)]
    pub hidden: Option<i64>,
    /// AdamW weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// LSTM layers (default 2; `lstm-gbt` has 1).
    #[arg(long)]
    pub layers: Option<i64>,
    /// Windows per LSTM step: the LSTM reads the 15 windows as 15 / N steps of
    /// N windows each (1, 3, 5 or 15; fewer steps infer faster; default 1,
    /// `lstm-gbt` 5).
    #[arg(long)]
    pub lstm_stride: Option<i64>,
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
    #[command(flatten)]
    pub flows: FlowArgs,
}

/// Flow-table and grid limits, shared by every command that runs the engine.
#[derive(Args, Debug, Clone)]
pub struct FlowArgs {
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
}

impl Default for FlowArgs {
    fn default() -> Self {
        FlowArgs {
            max_flows: FlowConfig::default().max_flows,
            flow_idle_timeout_s: 300,
            max_silent_gap_s: 600,
        }
    }
}

impl FlowArgs {
    /// The engine's settings for windows `window` wide.
    pub fn engine_config(&self, window: WindowWidth) -> EngineConfig {
        EngineConfig {
            window,
            max_silent_gap_ns: self.max_silent_gap_s as i64 * 1_000_000_000,
            flow: FlowConfig {
                max_flows: self.max_flows.max(1),
                idle_timeout_ns: self.flow_idle_timeout_s as i64 * 1_000_000_000,
                ..FlowConfig::default()
            },
        }
    }
}

impl Shared {
    /// The engine's settings.
    pub fn engine_config(&self) -> EngineConfig {
        self.flows.engine_config(width(self.window_ms))
    }
}

/// clap has checked the range already.
fn width(ms: u32) -> WindowWidth {
    WindowWidth::from_ms(ms).unwrap_or_default()
}

/// What the command line asks for, checked.
#[derive(Debug)]
pub enum Settings {
    /// The daemon, with its configuration merged (file, environment, flags).
    Daemon(Box<DaemonSettings>),
    /// `extract`.
    Extract(Extract),
    /// `replay`.
    Replay(Box<ReplaySettings>),
    /// `train` (the model package turns these into its own configuration).
    Train(TrainCmd),
}

/// The daemon's settings.
#[derive(Debug)]
pub struct DaemonSettings {
    /// File, environment and flags, merged and validated.
    pub config: DaemonConfig,
    /// Engine settings (window width from the config, flow limits from flags).
    pub engine: EngineConfig,
    /// Model directory (None: the shipped one).
    pub model: Option<PathBuf>,
}

/// `replay`'s settings.
#[derive(Debug)]
pub struct ReplaySettings {
    /// Capture files.
    pub inputs: Vec<PathBuf>,
    /// Model directory (None: the shipped one).
    pub model: Option<PathBuf>,
    /// Predictions CSV.
    pub out: Option<PathBuf>,
    /// Report JSON.
    pub report: Option<PathBuf>,
    /// Plot PNG.
    pub plot: Option<PathBuf>,
    /// HTML report.
    pub html: Option<PathBuf>,
    /// Events against schedules.
    pub events_truth: Option<Option<PathBuf>>,
    /// Event thresholds.
    pub events: service::events::EventConfig,
    /// Pace by the timestamps.
    pub realtime: bool,
    /// Publish the raw model.
    pub model_only: bool,
    /// Most windows per model call.
    pub batch: usize,
    /// Band columns in the predictions CSV.
    pub band: bool,
    /// Corpus manifest naming each capture's class.
    pub classes: Option<PathBuf>,
    /// Engine settings.
    pub engine: EngineConfig,
    /// BPF filter.
    pub filter: Option<String>,
}

/// A command line that parses but cannot run (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl RunCmd {
    /// The daemon's configuration: the file, then the environment, then these flags.
    fn into_settings(self, env: &dyn Env) -> Result<DaemonSettings, UsageError> {
        let mut cfg = DaemonConfig::load(self.config.as_deref(), env)
            .map_err(|e| UsageError(e.to_string()))?;
        if !self.iface.is_empty() {
            cfg.iface = self.iface.join(",");
        }
        if let Some(v) = self.window_ms {
            cfg.window_ms = v;
        }
        if let Some(v) = self.filter {
            cfg.filter = v;
        }
        if let Some(v) = self.metrics_addr {
            cfg.metrics_addr = v;
        }
        cfg.insecure_http |= self.insecure_http;
        if let Some(v) = self.csv {
            cfg.csv = Some(v);
        }
        if let Some(v) = self.top_hosts {
            cfg.top_hosts = v;
        }
        if let Some(v) = self.top_flows {
            cfg.top_flows = v;
        }
        if let Some(v) = self.user {
            cfg.user = Some(v);
        }
        if let Some(v) = self.model {
            cfg.model = Some(v);
        }
        cfg.validate().map_err(|e| UsageError(e.to_string()))?;
        let w = WindowWidth::from_ms(cfg.window_ms).ok_or_else(|| {
            UsageError(format!(
                "window_ms is {}; use 1 to {}",
                cfg.window_ms,
                WindowWidth::MAX_MS
            ))
        })?;
        Ok(DaemonSettings {
            engine: self.flows.engine_config(w),
            model: cfg.model.clone(),
            config: cfg,
        })
    }
}

impl Settings {
    /// Check the parsed command line and merge the daemon's configuration.
    pub fn from_cli(cli: Cli, env: &dyn Env) -> Result<Settings, UsageError> {
        let print = !cli.quiet;
        Ok(match cli.command {
            None => Settings::Daemon(Box::new(cli.run.into_settings(env)?)),
            Some(Command::Run(r)) => Settings::Daemon(Box::new(r.into_settings(env)?)),
            Some(Command::Extract(a)) => {
                let input = match &a.iface {
                    Some(iface) => {
                        let mut l = LiveConfig::new(iface);
                        l.snaplen = a.snaplen;
                        l.buffer_bytes = a.buffer_mib.saturating_mul(1 << 20);
                        Input::Live(l)
                    }
                    None => Input::Files(a.inputs.clone()),
                };
                Settings::Extract(Extract {
                    input,
                    out: a.out,
                    packets_out: a.packets_out,
                    summary_json: a.summary_json,
                    engine: a.shared.engine_config(),
                    filter: a.shared.filter,
                    print,
                })
            }
            Some(Command::Replay(r)) => Settings::Replay(Box::new(ReplaySettings {
                events_truth: match r.events_truth {
                    Some(Some(_)) if r.inputs.len() > 1 => {
                        return Err(UsageError(
                            "--events-truth=FILE scores one capture; give one, or --events-truth alone to read NAME.schedule.csv beside each".into(),
                        ));
                    }
                    t => t,
                },
                engine: r.shared.engine_config(),
                inputs: r.inputs,
                model: r.model,
                out: r.out,
                report: r.report,
                plot: r.plot,
                html: r.html,
                events: match &r.events_config {
                    Some(p) => service::events::EventConfig::from_file(p).map_err(UsageError)?,
                    None => Default::default(),
                },
                realtime: r.realtime,
                model_only: r.model_only,
                batch: r.batch as usize,
                band: r.band,
                classes: r.classes,
                filter: r.shared.filter,
            })),
            Some(Command::Train(t)) => Settings::Train(t),
        })
    }

    /// Whether this command needs the model package (libtorch).
    pub fn needs_model(&self) -> bool {
        !matches!(self, Settings::Extract(_))
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
