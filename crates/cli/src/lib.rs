//! The `netforecast` command: arguments parsed once into validated
//! [`settings::Settings`], logging set up, one `run`, one error line and the
//! exit code (0 success, 2 bad usage, 1 anything else; a closed standard output
//! ends quietly with 0).
//!
//! Two binaries share this library. `netforecast` does not link the model
//! package, so `extract` starts without libtorch's start-up cost; it hands the
//! commands that need a model to `netforecast-ml` by exec (same PID, same
//! arguments). `netforecast-ml` passes a [`Backend`] that loads and trains
//! models.

pub mod settings;

use clap::Parser;
use engine::forecast::{SequenceModel, WindowWidth};
use service::config::ProcessEnv;
use service::daemon::{Daemon, DaemonError, drop_privileges, sinks_for};
use service::extract::ExtractError;
use service::replay::{Replay, ReplayError};
use service::shutdown::Shutdown;
use service::sinks::prometheus::Metrics;
use service::source::{LiveConfig, LiveSource, SourceError, SystemClock};
use settings::{Cli, DaemonSettings, LogFormat, ReplaySettings, Settings, TrainCmd, UsageError};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A model, boxed.
pub type BoxedModel = Box<dyn SequenceModel + Send>;
/// An error from the model package, already worded for a person.
pub type BackendError = Box<dyn std::error::Error + Send + Sync>;

/// What the model package provides to the command line.
pub trait Backend {
    /// Load the model directory `dir` for windows `width` wide.
    fn load(&self, dir: &Path, width: WindowWidth) -> Result<BoxedModel, BackendError>;
    /// The shipped model's directory.
    fn default_model_dir(&self) -> PathBuf;
    /// `netforecast train`.
    fn train(&self, args: &TrainCmd) -> Result<(), BackendError>;
}

/// Errors of a command, for one line on standard error and an exit code.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line cannot run.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// `extract` failed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// `replay` failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    /// Capture could not start.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The model package failed (loading or training).
    #[error("{0}")]
    Backend(BackendError),
    /// `netforecast-ml` is not installed.
    #[error(
        "netforecast-ml (replay, train and the daemon) is not installed next to netforecast or on PATH; build it with `cargo build --release --workspace`"
    )]
    NoModelBinary,
    /// `netforecast-ml` could not be started.
    #[error("cannot run {path}: {detail}")]
    Exec {
        /// The binary.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
}

impl Error {
    /// 2 for bad usage, 1 for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::Extract(ExtractError::Usage(_))
            | Error::Daemon(DaemonError::Config(_) | DaemonError::User(_)) => 2,
            _ => 1,
        }
    }

    /// A write to a closed standard output (`netforecast extract ... | head`).
    pub fn is_broken_pipe(&self) -> bool {
        let mut e: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(x) = e {
            if let Some(io) = x.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::BrokenPipe
            {
                return true;
            }
            e = x.source();
        }
        false
    }
}

/// Set up `tracing`: `-v`/`-q` pick the level, `RUST_LOG` overrides; text with
/// timestamps unless standard error is a terminal, or JSON lines.
pub fn init_logging(verbose: u8, quiet: bool, format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text if std::io::stderr().is_terminal() => {
            builder.without_time().compact().try_init()
        }
        LogFormat::Text => builder.compact().try_init(),
    };
}

/// Runs the commands that need a model; `netforecast-ml` passes
/// [`run_with_backend`] with its backend. `netforecast` passes none, so none of
/// the model commands' code (the daemon's HTTP client, the plot) is linked into
/// it and `extract` stays small.
pub type ModelCommands<'a> = &'a dyn Fn(Settings, bool) -> Result<(), Error>;

/// The whole program: parse, run, report. `model` runs the commands that need
/// the model (`netforecast-ml`); `None` (`netforecast`) hands them over by exec.
pub fn main_with(model: Option<ModelCommands<'_>>) -> ExitCode {
    ExitCode::from(main_code(model))
}

/// [`main_with`] as the number the process exits with (0, 1, or 2 for usage).
pub fn main_code(model: Option<ModelCommands<'_>>) -> u8 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => return usage_exit(e),
    };
    init_logging(cli.verbose, cli.quiet, cli.log_format);
    let quiet = cli.quiet;
    let result = Settings::from_cli(cli, &ProcessEnv)
        .map_err(Error::from)
        .and_then(|s| match (s, model) {
            (Settings::Extract(x), _) => {
                x.run(&Shutdown::on_signals(Duration::from_secs(3)))?;
                Ok(())
            }
            (s, Some(run)) => run(s, quiet),
            (_, None) => Err(exec_model_binary()),
        });
    match result {
        Ok(()) => 0,
        Err(e) if e.is_broken_pipe() => 0,
        Err(e) => {
            eprintln!("netforecast: {e}");
            e.exit_code()
        }
    }
}

/// clap's help and version go out as clap prints them; a usage error becomes
/// one line that says what to do, exit 2.
fn usage_exit(e: clap::Error) -> u8 {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        || e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    {
        let _ = e.print();
        return if e.use_stderr() { 2 } else { 0 };
    }
    let text = e.render().to_string();
    let parts: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .map(|l| l.trim_start_matches("error: "))
        .collect();
    eprintln!("netforecast: {}; see netforecast --help", parts.join(" "));
    2
}

/// Run validated settings with the model package's `backend`.
pub fn run_with_backend(s: Settings, backend: &dyn Backend, quiet: bool) -> Result<(), Error> {
    match s {
        Settings::Extract(x) => {
            x.run(&Shutdown::on_signals(Duration::from_secs(3)))?;
            Ok(())
        }
        Settings::Replay(r) => replay(*r, backend, quiet),
        Settings::Daemon(d) => daemon(*d, backend, quiet),
        Settings::Train(t) => backend.train(&t).map_err(Error::Backend),
    }
}

fn replay(r: ReplaySettings, backend: &dyn Backend, quiet: bool) -> Result<(), Error> {
    let shutdown = Shutdown::on_signals(Duration::from_secs(5));
    for p in &r.inputs {
        if engine::pcapfile::CaptureFile::can_check_first(p) {
            service::source::FileSource::open(p, None)?;
        }
    }
    let dir = r.model.unwrap_or_else(|| backend.default_model_dir());
    let model = backend
        .load(&dir, r.engine.window)
        .map_err(Error::Backend)?;
    Replay {
        inputs: r.inputs,
        filter: r.filter,
        realtime: r.realtime,
        engine: r.engine,
        model,
        model_dir: dir.display().to_string(),
        out: r.out,
        report: r.report,
        plot: r.plot,
        html: r.html,
        events_truth: r.events_truth,
        events: r.events,
        print: !quiet,
        shutdown,
        extra_sinks: Vec::new(),
        model_only: r.model_only,
        batch: r.batch,
        band: r.band,
        classes: r.classes,
    }
    .run()?;
    Ok(())
}

fn daemon(d: DaemonSettings, backend: &dyn Backend, quiet: bool) -> Result<(), Error> {
    let cfg = d.config;
    // The writer may take shutdown_deadline_s to flush; a little more to exit.
    let shutdown = Shutdown::on_signals(Duration::from_secs(cfg.shutdown_deadline_s + 5));
    let metrics = Metrics::new();
    // The model first: a load error surfaces before capture starts.
    let dir = d.model.unwrap_or_else(|| backend.default_model_dir());
    let model = backend
        .load(&dir, d.engine.window)
        .map_err(Error::Backend)?;
    let version = model.version().to_owned();
    // A second copy for the API's /predict (the pipeline's runs on its own
    // thread); without it the endpoint answers 503 and the daemon still runs.
    let predict_model = if cfg.metrics_addr.is_empty() {
        None
    } else {
        match backend.load(&dir, d.engine.window) {
            Ok(m) => Some(Arc::new(std::sync::Mutex::new(m)) as service::web::SharedModel),
            Err(e) => {
                tracing::warn!("/api/v1/predict is off: {e}");
                None
            }
        }
    };
    // Capture: opened as root, then privileges may be dropped.
    let ifaces = cfg.ifaces();
    let mut sources: Vec<Box<dyn service::source::PacketSource>> = Vec::new();
    let mut grace_ns = 0;
    for iface in &ifaces {
        let mut live = LiveConfig::new(iface);
        live.filter = cfg.filter.clone();
        live.snaplen = cfg.snaplen;
        live.buffer_bytes = cfg.buffer_mib.saturating_mul(1 << 20);
        let source = LiveSource::open(&live).map_err(SourceError::from)?;
        grace_ns = grace_ns.max(source.grace_ns());
        sources.push(Box::new(source));
    }
    if let Some(u) = &cfg.user {
        drop_privileges(u).map_err(Error::from)?;
    }
    let (sinks, to) =
        sinks_for(&cfg, &version, &metrics, &shutdown, !quiet).map_err(Error::from)?;
    tracing::info!(
        "capturing on {} (model {version}); writing to {to}",
        ifaces.join(", ")
    );
    let summary = Daemon {
        sources,
        top_hosts: cfg.top_hosts,
        top_flows: cfg.top_flows,
        clock: Arc::new(SystemClock),
        grace_ns,
        engine: d.engine,
        model,
        sinks,
        metrics,
        metrics_addr: (!cfg.metrics_addr.is_empty()).then(|| cfg.metrics_addr.clone()),
        http_token: (!cfg.http_token.is_empty()).then(|| cfg.http_token.expose().to_owned()),
        predict_model,
        shutdown,
        flush_deadline: Duration::from_secs(cfg.shutdown_deadline_s),
        events: cfg.events,
        on_serving: None,
        notifier: Some(service::notify::Notifier::from_env()),
    }
    .run()?;
    eprintln!("{}", summary.line());
    Ok(())
}

/// `netforecast-ml` next to this binary, else on PATH.
fn model_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("NETFORECAST_ML") {
        return Some(PathBuf::from(p));
    }
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

/// Whether the libtorch `netforecast-ml` needs can be found where its library
/// path, the environment or the system would look; if not, say what to do
/// (the loader's own message would be an exit 127 with no hint).
fn libtorch_missing(ml: &Path) -> Option<Error> {
    const LIB: &str = "libtorch_cpu.so";
    let dir = ml.parent().unwrap_or(Path::new("."));
    let Some(runpath) = elf_runpath(ml) else {
        // Not an ELF file we can read: let the loader speak.
        return None;
    };
    let mut places: Vec<PathBuf> = runpath
        .split(':')
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(p.replace("$ORIGIN", &dir.to_string_lossy())))
        .collect();
    if let Some(v) = std::env::var_os("LD_LIBRARY_PATH") {
        places.extend(std::env::split_paths(&v));
    }
    places.extend(
        [
            "/usr/local/lib",
            "/usr/lib",
            "/usr/lib/x86_64-linux-gnu",
            "/lib",
        ]
        .iter()
        .map(PathBuf::from),
    );
    if places.iter().any(|p| p.join(LIB).exists()) {
        return None;
    }
    Some(Error::Exec {
        path: ml.to_owned(),
        detail: format!(
            "it needs libtorch ({LIB}), which is in none of its library path ({runpath}), LD_LIBRARY_PATH or the system's library directories; install with scripts/install.sh --prefix DIR, or run scripts/setup-libtorch.sh in the checkout it was built in"
        ),
    })
}

/// The RUNPATH (or RPATH) of an ELF64 little-endian executable. Reads the
/// headers, the dynamic section and one string, not the file (the model
/// binary is over 100 MB with its line tables: reading it whole cost every
/// model command about 0.1 s).
fn elf_runpath(path: &Path) -> Option<String> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).ok()?;
    let read = |off: u64, len: usize| -> Option<Vec<u8>> {
        let mut b = vec![0; len];
        file.read_exact_at(&mut b, off).ok()?;
        Some(b)
    };
    let u16_at = |b: &[u8], o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u64_at = |b: &[u8], o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    let head = read(0, 64)?;
    if head.get(..6)? != b"\x7fELF\x02\x01" {
        return None;
    }
    let (phoff, phentsize, phnum) = (
        u64_at(&head, 0x20)?,
        u16_at(&head, 0x36)? as usize,
        u16_at(&head, 0x38)? as usize,
    );
    if phentsize < 56 || phnum > 4096 {
        return None;
    }
    let ph = read(phoff, phentsize * phnum)?;
    let mut loads = Vec::new();
    let mut dynamic = None;
    for i in 0..phnum {
        let h = i * phentsize;
        let kind = u32::from_le_bytes(ph.get(h..h + 4)?.try_into().ok()?);
        let (off, vaddr, filesz) = (
            u64_at(&ph, h + 8)?,
            u64_at(&ph, h + 16)?,
            u64_at(&ph, h + 32)?,
        );
        match kind {
            1 => loads.push((vaddr, off, filesz)),
            2 => dynamic = Some((off, filesz as usize)),
            _ => {}
        }
    }
    let (doff, dsize) = dynamic?;
    if dsize > 1 << 20 {
        return None;
    }
    let dynsec = read(doff, dsize)?;
    let (mut strtab, mut run) = (None, None);
    for e in (0..dsize.saturating_sub(15)).step_by(16) {
        let (tag, val) = (u64_at(&dynsec, e)?, u64_at(&dynsec, e + 8)?);
        match tag {
            0 => break,
            5 => strtab = Some(val),
            15 if run.is_none() => run = Some(val),
            29 => run = Some(val),
            _ => {}
        }
    }
    let (strtab, run) = (strtab?, run?);
    let (vaddr, off, _) = loads
        .iter()
        .find(|(v, _, sz)| strtab >= *v && strtab < v + sz)?;
    // A library path is short; read a page and stop at its terminator.
    let start = strtab - vaddr + off + run;
    let mut text = vec![0; 4096];
    let n = file.read_at(&mut text, start).ok()?;
    let end = text[..n].iter().position(|c| *c == 0)?;
    Some(String::from_utf8_lossy(&text[..end]).into_owned())
}

/// Hand the command line to `netforecast-ml`; returns only on failure.
fn exec_model_binary() -> Error {
    use std::os::unix::process::CommandExt;
    let Some(ml) = model_binary() else {
        return Error::NoModelBinary;
    };
    if let Some(e) = libtorch_missing(&ml) {
        return e;
    }
    // exec keeps the PID, so signals and service managers see one process.
    let err = std::process::Command::new(&ml)
        .arg0("netforecast")
        .args(std::env::args_os().skip(1))
        .exec();
    Error::Exec {
        path: ml,
        detail: err.to_string(),
    }
}
