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
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The nine window features (FEATURES.md) of capture files or a live interface, as CSV.
    Extract(ExtractArgs),
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

/// Run the parsed command.
pub fn run(cli: Cli) -> Result<(), AppError> {
    match cli.command {
        Command::Extract(a) => {
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
    }
}
