//! The daemon: the pipeline with a live source, the [`Policy::LIVE`] policy, the
//! daemon's sinks (InfluxDB, the rotating CSV, a status line) and the
//! Prometheus endpoint, until the shutdown signal.
//!
//! Everything is passed in ([`Daemon`]): the binary opens the capture (as root,
//! then may drop privileges), loads the model and installs the signal handlers;
//! a test passes a capture file driven by a manual clock, a trivial model and an
//! in-memory sink, and runs the same code without root or libtorch.

use crate::config::{ConfigError, DaemonConfig};
use crate::forecast::Scored;
use crate::live::{Live, LiveSink};
use crate::pipeline::{Pipeline, PipelineError, Policy, RunSummary};
use crate::shutdown::Shutdown;
use crate::sinks::csv::DaemonCsv;
use crate::sinks::influx::InfluxSink;
use crate::sinks::prometheus::Metrics;
use crate::sinks::{Sink, SinkError};
use crate::source::{Clock, KernelStats, PacketSource};
use crate::web::{ServeError, SharedModel, Web, serve};
use engine::forecast::SequenceModel;
use engine::pipeline::EngineConfig;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Errors of the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The configuration is wrong (a usage error).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// `--user` names no user, or switching failed (a usage error).
    #[error("{0}")]
    User(String),
    /// The metrics endpoint could not be served.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// A sink could not be set up.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

/// Everything a daemon run is given.
pub struct Daemon<M> {
    /// The live captures, one stream each, run at once (or, in tests,
    /// anything that behaves like them).
    pub sources: Vec<Box<dyn PacketSource>>,
    /// Wall time.
    pub clock: Arc<dyn Clock>,
    /// Delay after a window's end before it is closed, ns.
    pub grace_ns: i64,
    /// Engine settings.
    pub engine: EngineConfig,
    /// Streams of their own for the busiest hosts of each interface (0: none).
    pub top_hosts: usize,
    /// The same for the busiest TCP connections (0: none).
    pub top_flows: usize,
    /// The model.
    pub model: M,
    /// Where forecasts go ([`sinks_for`] builds the configured ones).
    pub sinks: Vec<Box<dyn Sink>>,
    /// Metrics, served at `metrics_addr`.
    pub metrics: Arc<Metrics>,
    /// The page, the REST API, `/metrics` and `/healthz` here; `None`: not served.
    pub metrics_addr: Option<String>,
    /// Requests to the HTTP endpoint must carry this token.
    pub http_token: Option<String>,
    /// A second copy of the model for `/api/v1/predict` (None: the endpoint
    /// answers 503).
    pub predict_model: Option<SharedModel>,
    /// Stops the run (SIGINT/SIGTERM in the binary).
    pub shutdown: Shutdown,
    /// Longest the sinks may take to flush at the end.
    pub flush_deadline: Duration,
    /// The event detector's thresholds.
    pub events: crate::events::EventConfig,
    /// Told the address the metrics endpoint bound (tests bind port 0).
    pub on_serving: Option<crossbeam_channel::Sender<String>>,
    /// systemd's notification socket (READY, WATCHDOG, STOPPING), if any.
    pub notifier: Option<crate::notify::Notifier>,
}

/// The daemon's end-of-run numbers.
#[derive(Clone, Debug, Default)]
pub struct DaemonSummary {
    /// Wall time, s.
    pub seconds: f64,
    /// The pipeline's numbers.
    pub run: RunSummary,
    /// Points handed to the InfluxDB writer.
    pub points_made: u64,
    /// Points written to InfluxDB.
    pub points_written: u64,
    /// Write attempts that were retried.
    pub retries: u64,
    /// Points dropped by the writer, by reason (buffer full, refused, unsent at
    /// shutdown, not encodable).
    pub points_dropped: [u64; 4],
    /// Points unsent at the end, kept in the disk buffer for the next run.
    pub points_held_on_disk: u64,
    /// Rows on disk in the predictions CSV.
    pub csv_rows: u64,
    /// Rows the predictions CSV lost.
    pub csv_errors: u64,
    /// The Kafka sink's points by result (`made`, `delivered`, ...), when it runs.
    pub kafka: Option<Vec<(&'static str, u64)>>,
}

impl<M: SequenceModel + Send + 'static> Daemon<M> {
    /// Run until the shutdown signal (or the source fails).
    pub fn run(self) -> Result<DaemonSummary, DaemonError> {
        let start = Instant::now();
        let live = Live::new();
        let mut sinks = self.sinks;
        let server = match &self.metrics_addr {
            Some(addr) => {
                sinks.push(Box::new(LiveSink::new(Arc::clone(&live))));
                let web = Arc::new(Web {
                    metrics: Arc::clone(&self.metrics),
                    live,
                    model: self.predict_model,
                    model_version: Some(self.model.version().to_owned()),
                    token: self.http_token,
                });
                let (h, bound) = serve(addr, web, self.shutdown.clone())?;
                if let Some(tx) = &self.on_serving {
                    let _ = tx.send(bound);
                }
                Some(h)
            }
            None => None,
        };
        let notifying = self.notifier.map(|n| {
            n.send("READY=1\nSTATUS=capturing");
            let (m, sd) = (Arc::clone(&self.metrics), self.shutdown.clone());
            std::thread::Builder::new()
                .name("notify".into())
                .spawn(move || notify_loop(&n, &m, &sd))
        });
        let pipeline = Pipeline {
            sources: self
                .sources
                .into_iter()
                .map(|s| Box::new(move || Ok(s)) as crate::pipeline::SourceOpener)
                .collect(),
            concurrent: true,
            top_hosts: self.top_hosts,
            top_flows: self.top_flows,
            engine: self.engine,
            clock: self.clock,
            grace_ns: self.grace_ns,
            model: self.model,
            sinks,
            metrics: Arc::clone(&self.metrics),
            shutdown: self.shutdown.clone(),
            policy: Policy::LIVE,
            flush_deadline: self.flush_deadline,
            online: Some(crate::online::OnlineConfig::from_env()),
            // Live windows arrive one per 50 ms per stream: each stream's
            // windows one per call (its forecasts as alone), every stream's of
            // a tick in the same call.
            batch: 1,
            events: self.events,
        };
        let result = pipeline.run();
        // Whatever ended the run, the endpoint and the notifier stop with it.
        self.shutdown.trigger();
        if let Some(Ok(h)) = notifying {
            let _ = h.join();
        }
        if let Some(s) = server {
            let _ = s.join();
        }
        let run = result?;
        let m = &self.metrics;
        Ok(DaemonSummary {
            seconds: start.elapsed().as_secs_f64(),
            run,
            points_made: m.points_made.get() as u64,
            points_held_on_disk: m.points_held_on_disk.get() as u64,
            points_written: m.points_written.get() as u64,
            retries: m.points_retried.get() as u64,
            points_dropped: ["buffer_full", "refused", "shutdown", "encode"]
                .map(|r| m.points_dropped.with_label_values(&[r]).get() as u64),
            csv_rows: m.csv_rows.get(),
            csv_errors: m.csv_errors.get(),
            kafka: m.kafka_enabled().then(|| {
                [
                    "made",
                    "delivered",
                    "failed",
                    "dropped_queue_full",
                    "dropped_shutdown",
                    "unencodable",
                ]
                .map(|r| (r, m.kafka_points.with_label_values(&[r]).get() as u64))
                .to_vec()
            }),
        })
    }
}

/// WATCHDOG=1 every half watchdog period while windows flow (a stuck capture
/// stops the pings, and systemd restarts the service); STOPPING=1 at shutdown.
fn notify_loop(n: &crate::notify::Notifier, m: &Metrics, shutdown: &Shutdown) {
    let mut last = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        if shutdown.is_set() {
            n.send("STOPPING=1");
            return;
        }
        if let Some(every) = n.watchdog_every
            && last.elapsed() >= every
        {
            last = Instant::now();
            if m.health(false).parts.get("capture").is_some_and(|p| p.ok) {
                n.send("WATCHDOG=1");
            }
        }
    }
}

impl DaemonSummary {
    /// The kernel's counters at the end.
    pub fn kernel(&self) -> KernelStats {
        self.run
            .captures
            .iter()
            .filter_map(|c| c.kernel)
            .next_back()
            .unwrap_or_default()
    }

    /// One line for standard error.
    pub fn line(&self) -> String {
        let counted: u64 = self.run.captures.iter().map(|c| c.counters.counted).sum();
        let windows: u64 = self
            .run
            .captures
            .iter()
            .map(|c| c.counters.window.windows)
            .sum();
        let k = self.kernel();
        format!(
            "netforecast: stopped after {:.1} s: {} packets counted, {} windows, {} forecasts{}, {} points written ({} retries, {} dropped: {} buffer full, {} refused, {} unsent at shutdown, {} unencodable, {} writer behind; {} held on disk; {} made){}, {} CSV rows ({} failed), kernel drops {}, windows dropped {}",
            self.seconds,
            counted,
            windows,
            self.run.forecasts,
            match self.run.forecasts_skipped {
                0 => String::new(),
                n => format!(" ({n} skipped: the model's share of each window was full)"),
            },
            self.points_written,
            self.retries,
            self.points_dropped.iter().sum::<u64>() + self.run.scored_dropped,
            self.points_dropped[0],
            self.points_dropped[1],
            self.points_dropped[2],
            self.points_dropped[3],
            self.run.scored_dropped,
            self.points_held_on_disk,
            self.points_made,
            match &self.kafka {
                None => String::new(),
                Some(k) => format!(
                    ", Kafka points {}",
                    k.iter()
                        .map(|(r, n)| format!("{r} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            self.csv_rows,
            self.csv_errors,
            k.dropped + k.if_dropped,
            self.run.windows_dropped
        )
    }
}

/// The sinks `cfg` asks for: InfluxDB when a URL is set, the rotating CSV when
/// a path is set or no database is, and the live status line on a terminal.
/// Also returns where forecasts go, for the start-up line.
pub fn sinks_for(
    cfg: &DaemonConfig,
    model_version: &str,
    metrics: &Arc<Metrics>,
    shutdown: &Shutdown,
    status_line: bool,
) -> Result<(Vec<Box<dyn Sink>>, String), DaemonError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    let mut to = Vec::new();
    if cfg.influx.enabled() {
        sinks.push(Box::new(
            InfluxSink::new(
                &cfg.influx,
                &cfg.host,
                cfg.ifaces().first().copied().unwrap_or_default(),
                model_version,
                Arc::clone(metrics),
            )
            .map_err(SinkError::from)?,
        ));
        to.push(cfg.influx.url.clone());
    }
    if cfg.kafka.enabled() {
        sinks.push(Box::new(
            crate::sinks::kafka::KafkaSink::new(
                &cfg.kafka,
                &cfg.host,
                cfg.ifaces().first().copied().unwrap_or_default(),
                model_version,
                Arc::clone(metrics),
            )
            .map_err(|e| SinkError::Kafka(e.to_string()))?,
        ));
        to.push(format!(
            "Kafka {} topic {}",
            cfg.kafka.brokers, cfg.kafka.topic
        ));
    }
    let csv = cfg
        .csv
        .clone()
        .or_else(|| (!cfg.influx.enabled()).then(|| PathBuf::from("netforecast-predictions.csv")));
    if let Some(p) = csv {
        sinks.push(Box::new(
            DaemonCsv::open(
                &p,
                cfg.csv_max_mib,
                cfg.csv_keep,
                cfg.ifaces().len() > 1,
                Arc::clone(metrics),
            )
            .map_err(SinkError::from)?
            .reopen_on_hangup(shutdown.clone()),
        ));
        to.push(p.display().to_string());
    }
    if !cfg.alertmanager_url.is_empty() {
        sinks.push(Box::new(
            crate::sinks::alertmanager::AlertmanagerSink::new(
                crate::sinks::alertmanager::AlertmanagerConfig {
                    url: cfg.alertmanager_url.clone(),
                    host: cfg.host.clone(),
                    resend: std::time::Duration::from_secs(30),
                    hold: std::time::Duration::from_secs(120),
                },
            )
            .map_err(|e| SinkError::Alertmanager(e.to_string()))?,
        ));
        to.push(format!("alerts to {}", cfg.alertmanager_url));
    }
    if status_line && std::io::stderr().is_terminal() {
        sinks.push(Box::new(StatusLine::default()));
    }
    Ok((sinks, to.join(" and ")))
}

/// A one-line live status on a terminal, redrawn every 5 windows.
#[derive(Default)]
pub struct StatusLine {
    n: u64,
    drawn: bool,
}

impl Sink for StatusLine {
    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        self.n += 1;
        if self.n.is_multiple_of(5) {
            self.drawn = true;
            eprint!(
                "\r{} actual {:7.2} Mbit/s  forecast {:>7}  P(below) {:>5}  windows {}   ",
                engine::csv::hms(s.row.start_ns),
                s.row.throughput_mbps,
                s.published_at_target
                    .map(|p| format!("{:.2}", p.throughput_mbps))
                    .unwrap_or_else(|| "-".into()),
                s.published
                    .map(|f| format!("{:.2}", f.congestion_prob))
                    .unwrap_or_else(|| "-".into()),
                self.n
            );
        }
        Ok(())
    }

    fn finish(&mut self, _deadline: Instant) -> Result<(), SinkError> {
        if self.drawn {
            eprintln!();
        }
        Ok(())
    }
}

/// Drop root: switch to `user`'s uid and gid (after the capture is open).
pub fn drop_privileges(user: &str) -> Result<(), DaemonError> {
    let name = std::ffi::CString::new(user)
        .map_err(|_| DaemonError::User(format!("bad user name {user:?}")))?;
    // SAFETY: getpwnam returns a pointer into static storage or null; we copy
    // the two integers out immediately, on this thread, before any other call.
    let (uid, gid) = unsafe {
        let pw = libc::getpwnam(name.as_ptr());
        if pw.is_null() {
            return Err(DaemonError::User(format!(
                "no user named {user:?}: create it or give another --user"
            )));
        }
        ((*pw).pw_uid, (*pw).pw_gid)
    };
    // SAFETY: plain libc calls with integer arguments; order matters (groups and
    // gid before uid, or the process could no longer change them).
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(gid) == 0
            && libc::setuid(uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(DaemonError::User(format!(
            "cannot switch to user {user:?}: {}; --user needs root",
            std::io::Error::last_os_error()
        )))
    }
}
