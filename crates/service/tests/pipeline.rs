//! The whole daemon in-process, no root and no libtorch: a committed capture
//! played as if live against a manual clock, the persistence model, an
//! in-memory sink and the daemon's CSV; and the same capture through `replay`'s
//! code, which must give the same windows and forecasts.

use engine::forecast::{Persistence, WindowWidth};
use engine::pcapfile::CaptureFile;
use engine::pipeline::EngineConfig;
use service::daemon::Daemon;
use service::forecast::Scored;
use service::replay::Replay;
use service::shutdown::Shutdown;
use service::sinks::Sink;
use service::sinks::csv::{DaemonCsv, PREDICTIONS_HEADER, PredictionsCsv};
use service::sinks::memory::MemorySink;
use service::sinks::prometheus::Metrics;
use service::source::{Clock, ManualClock, Next, PacketSource, SourceError};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/lab-cellular-s3.pcap.gz")
}

fn model() -> Persistence {
    Persistence {
        threshold_mbps: 20.0,
    }
}

/// A capture file played as if it arrived live: a record is released once the
/// manual clock reaches its timestamp; while waiting the source is idle and the
/// clock moves 1 ms per call. After the last record the clock runs on for 2 s
/// (40 silent windows), then stands still: a manual clock runs far faster than
/// real time, and beyond that it would only flood the queues.
struct AsLive {
    file: CaptureFile,
    clock: ManualClock,
    held: Option<(u32, Vec<u8>, u32, i64)>,
    buf: Vec<u8>,
    ended: bool,
    last_ts: i64,
}

impl AsLive {
    fn open(path: &std::path::Path, clock: ManualClock) -> Self {
        AsLive {
            file: CaptureFile::open(path).unwrap(),
            clock,
            held: None,
            buf: Vec::new(),
            ended: false,
            last_ts: 0,
        }
    }
}

impl PacketSource for AsLive {
    fn name(&self) -> String {
        "as-live".into()
    }

    fn is_live(&self) -> bool {
        true
    }

    fn next(&mut self) -> Result<Next<'_>, SourceError> {
        if self.held.is_none() && !self.ended {
            match self.file.next_record()? {
                Some(r) => {
                    let ts = r.ts_ns.expect("the sample has valid timestamps");
                    self.last_ts = ts;
                    self.held = Some((r.linktype, r.data.to_vec(), r.orig_len, ts));
                }
                None => self.ended = true,
            }
        }
        let now = self.clock.now_ns();
        match &self.held {
            Some((_, _, _, ts)) if *ts <= now => {
                let (linktype, data, orig_len, ts) = self.held.take().unwrap();
                self.buf = data;
                Ok(Next::Frame {
                    linktype,
                    data: &self.buf,
                    orig_len,
                    ts_ns: Some(ts),
                })
            }
            None if self.ended && now > self.last_ts + 2_000_000_000 => {
                std::thread::sleep(Duration::from_millis(1));
                Ok(Next::Idle)
            }
            _ => {
                self.clock.set(now + 1_000_000);
                Ok(Next::Idle)
            }
        }
    }
}

fn first_ts() -> i64 {
    let mut f = CaptureFile::open(&sample()).unwrap();
    f.next_record().unwrap().unwrap().ts_ns.unwrap()
}

/// What replay's code makes of the sample: every window with its forecasts.
fn replayed(out: Option<PathBuf>) -> Vec<Scored> {
    let (mem, rx) = MemorySink::new();
    Replay {
        classes: None,
        inputs: vec![sample()],
        filter: None,
        realtime: false,
        engine: EngineConfig::default(),
        model: model(),
        model_dir: "persistence".into(),
        out,
        report: None,
        plot: None,
        html: None,
        events_truth: None,
        events: Default::default(),
        print: false,
        shutdown: Shutdown::new(),
        extra_sinks: vec![Box::new(mem)],
        model_only: false,
        batch: 1,
        band: false,
    }
    .run()
    .unwrap();
    rx.try_iter().collect()
}

#[test]
fn the_daemon_runs_in_process_on_a_capture_played_as_live() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(first_ts());
    let metrics = Metrics::new();
    let (mem, rx) = MemorySink::new();
    let csv = dir.path().join("live.csv");
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(mem),
        Box::new(DaemonCsv::open(&csv, 100, 1, false, Arc::clone(&metrics)).unwrap()),
    ];
    let shutdown = Shutdown::new();
    let (serving_tx, serving) = crossbeam_channel::bounded(1);
    let daemon = Daemon {
        sources: vec![Box::new(AsLive::open(&sample(), clock.clone()))],
        top_hosts: 0,
        top_flows: 0,
        clock: Arc::new(clock.clone()),
        grace_ns: 5_000_000,
        engine: EngineConfig::default(),
        model: model(),
        sinks,
        metrics: Arc::clone(&metrics),
        metrics_addr: Some("127.0.0.1:0".into()),
        http_token: None,
        predict_model: None,
        shutdown: shutdown.clone(),
        flush_deadline: Duration::from_secs(5),
        events: service::events::EventConfig::default(),
        on_serving: Some(serving_tx),
        notifier: None,
    };
    let handle = std::thread::spawn(move || daemon.run());

    // While it runs: windows arrive in order, forecasts land on their targets,
    // and the clock (not the packets) closes windows after the capture ends.
    let reference = replayed(None);
    let last_data_window = reference.last().unwrap().row.start_ns;
    let w = WindowWidth::DEFAULT.ns();
    let mut live: Vec<Scored> = Vec::new();
    let mut forecasts_seen_while_running = 0;
    while live
        .last()
        .is_none_or(|s| s.row.start_ns < last_data_window + 20 * w)
    {
        let s = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("windows keep coming while the daemon runs");
        if let Some(prev) = live.last() {
            assert_eq!(s.row.start_ns - prev.row.start_ns, w, "contiguous windows");
        }
        if let Some(f) = &s.at_target {
            assert_eq!(f.target_start_ns, s.row.start_ns);
            forecasts_seen_while_running += 1;
        }
        live.push(s);
    }
    assert!(!handle.is_finished(), "still running when checked");
    let addr = serving.recv_timeout(Duration::from_secs(5)).unwrap();
    let (status, body) = http_get(&addr, "/readyz");
    assert_eq!(status, 200, "healthy and ready while windows flow: {body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    assert!(forecasts_seen_while_running > 100);
    assert!(
        live[live.len() - 10..].iter().all(|s| s.row.is_silent),
        "silent windows after the capture ends, closed on the clock"
    );
    shutdown.trigger();
    let summary = handle.join().unwrap().unwrap();
    live.extend(rx.try_iter());

    // The same windows and forecasts as replay's code, window by window.
    assert_eq!(live[0].row.start_ns, reference[0].row.start_ns);
    for (a, b) in live.iter().zip(&reference) {
        assert_eq!(
            a,
            &Scored {
                inference: a.inference,
                ..b.clone()
            }
        );
    }
    assert_eq!(summary.run.windows_dropped, 0);
    assert_eq!(
        summary.run.forecasts as usize,
        live.iter().filter(|s| s.issued.is_some()).count()
    );

    // The daemon's CSV holds every forecast at its target, and starts with
    // exactly the rows replay's CSV has.
    let replay_csv = dir.path().join("replay.csv");
    replayed(Some(replay_csv.clone()));
    let live_text = std::fs::read_to_string(&csv).unwrap();
    let replay_text = std::fs::read_to_string(&replay_csv).unwrap();
    assert!(live_text.starts_with(PREDICTIONS_HEADER));
    assert!(
        live_text.starts_with(&replay_text),
        "replay's rows are the live rows' prefix"
    );
    assert_eq!(
        live_text.lines().count() - 1,
        live.iter().filter(|s| s.at_target.is_some()).count()
    );
    assert_eq!(summary.csv_rows as usize, live_text.lines().count() - 1);
}

#[test]
fn replay_through_the_service_matches_the_predictions_csv() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("p.csv");
    let scored = replayed(Some(out.clone()));
    let text = std::fs::read_to_string(&out).unwrap();
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let with_forecast: Vec<&Scored> = scored
        .iter()
        .filter(|s| s.published_at_target.is_some())
        .collect();
    assert_eq!(rows.len(), with_forecast.len());
    assert!(rows.len() > 100);
    for (line, s) in rows.iter().zip(with_forecast) {
        let mut want = String::new();
        service::sinks::csv::format_prediction_row(
            s.row.start_ns,
            s.row.throughput_mbps,
            s.published_at_target.as_ref().unwrap(),
            &mut want,
        );
        assert_eq!(format!("{line}\n"), want);
    }
    // A write-only sink keeps the same rows when given directly.
    let mut again = PredictionsCsv::create(&dir.path().join("q.csv")).unwrap();
    for s in &scored {
        again.window(s).unwrap();
    }
    again.finish(std::time::Instant::now()).unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.path().join("q.csv")).unwrap(),
        text
    );
}

/// GET `path` from `addr`: (status, body).
fn http_get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|x| x.1)
        .unwrap_or("")
        .to_owned();
    (status, body)
}

/// `/healthz` tells the truth while the daemon runs: with every write failing
/// it answers 503 and names the writer; capture and model are fine.
#[test]
fn healthz_names_the_failing_writer() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let (mem, rx) = MemorySink::new();
    // Nothing listens on this loopback port: every write fails.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let influx = service::config::InfluxConfig {
        url: format!("http://{closed}"),
        org: "o".into(),
        ..Default::default()
    };
    let sinks: Vec<Box<dyn Sink>> = vec![
        Box::new(mem),
        Box::new(
            service::sinks::influx::InfluxSink::new(
                &influx,
                "h",
                "as-live",
                "p",
                Arc::clone(&metrics),
            )
            .unwrap(),
        ),
        Box::new(
            DaemonCsv::open(
                &dir.path().join("p.csv"),
                100,
                1,
                false,
                Arc::clone(&metrics),
            )
            .unwrap(),
        ),
    ];
    let clock = ManualClock::new(first_ts());
    let shutdown = Shutdown::new();
    let (tx, serving) = crossbeam_channel::bounded(1);
    let daemon = Daemon {
        sources: vec![Box::new(AsLive::open(&sample(), clock.clone()))],
        top_hosts: 0,
        top_flows: 0,
        clock: Arc::new(clock),
        grace_ns: 5_000_000,
        engine: EngineConfig::default(),
        model: model(),
        sinks,
        metrics: Arc::clone(&metrics),
        metrics_addr: Some("127.0.0.1:0".into()),
        http_token: None,
        predict_model: None,
        shutdown: shutdown.clone(),
        flush_deadline: Duration::from_secs(1),
        events: service::events::EventConfig::default(),
        on_serving: Some(tx),
        notifier: None,
    };
    let handle = std::thread::spawn(move || daemon.run());
    let addr = serving.recv_timeout(Duration::from_secs(10)).unwrap();
    // Windows flow; a full batch has been tried and failed.
    let mut seen = 0;
    while seen < 300 {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("windows while running");
        seen += 1;
    }
    let mut health = (0, String::new());
    for _ in 0..50 {
        health = http_get(&addr, "/healthz");
        if health.0 == 503 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = health;
    assert_eq!(status, 503, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["failing"], serde_json::json!(["writer"]), "{body}");
    assert_eq!(h["parts"]["capture"]["ok"], true, "{body}");
    assert!(
        h["parts"]["writer"]["detail"]
            .as_str()
            .unwrap()
            .contains("writes fail"),
        "{body}"
    );
    let (status, metrics_text) = http_get(&addr, "/metrics");
    assert_eq!(status, 200);
    assert!(metrics_text.contains("netforecast_forecasts_total"));
    shutdown.trigger();
    let summary = handle.join().unwrap().unwrap();
    assert_eq!(summary.points_written, 0);
    assert_eq!(
        summary.points_dropped[2], summary.points_made,
        "unsent at shutdown, counted"
    );
}

/// Persistence, but not batch-invariant (so the pipeline puts at most one window
/// of a stream in a call), recording the size of every call.
struct Recording {
    inner: Persistence,
    calls: Arc<std::sync::Mutex<Vec<usize>>>,
}

impl engine::forecast::SequenceModel for Recording {
    fn forward(
        &mut self,
        seqs: &[f32],
        n: usize,
    ) -> Result<Vec<(f64, f64)>, engine::forecast::PredictError> {
        self.calls.lock().unwrap().push(n);
        // A model call takes time, as a real one does: the streams' windows
        // meet in the queue meanwhile, however fast (or loaded) the machine.
        std::thread::sleep(std::time::Duration::from_micros(200));
        self.inner.forward(seqs, n)
    }
    fn version(&self) -> &str {
        "recording"
    }
    fn threshold_mbps(&self) -> f64 {
        self.inner.threshold_mbps
    }
}

/// A file read at a walk: a short pause every 20 frames, so captures opened
/// together are still producing together and their windows interleave in
/// the queue (read at full speed, one thread could queue a whole file before
/// another started, and every model call would carry one stream).
struct Walking {
    inner: service::source::FileSource,
    frames: u64,
}

impl PacketSource for Walking {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn is_live(&self) -> bool {
        self.inner.is_live()
    }
    fn next(&mut self) -> Result<Next<'_>, SourceError> {
        self.frames += 1;
        if self.frames.is_multiple_of(20) {
            std::thread::sleep(Duration::from_micros(50));
        }
        self.inner.next()
    }
    fn notes(&self) -> service::source::FileNotes {
        self.inner.notes()
    }
}

/// Several captures at once, as the daemon runs its interfaces (files here, so
/// the run is deterministic): the model calls mix the streams, and yet each
/// stream's windows, forecasts, skill and band are exactly those of the
/// same capture run alone.
#[test]
fn concurrent_streams_share_model_calls_and_each_gets_what_it_would_alone() {
    use service::pipeline::{Pipeline, Policy, SourceOpener};
    let data = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
    let files = [
        sample(),
        data.join("netns-bulk-steps.pcap"),
        data.join("veth-tbf20-offloads.pcap.gz"),
    ];
    let run = |files: &[PathBuf], concurrent: bool| {
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mem, rx) = MemorySink::new();
        let sources = files
            .iter()
            .cloned()
            .map(|f| {
                Box::new(move || {
                    Ok(Box::new(Walking {
                        inner: service::source::FileSource::open(&f, None)?,
                        frames: 0,
                    }) as Box<dyn PacketSource>)
                }) as SourceOpener
            })
            .collect();
        let summary = Pipeline {
            sources,
            concurrent,
            top_hosts: 0,
            top_flows: 0,
            engine: EngineConfig::default(),
            clock: Arc::new(service::source::SystemClock),
            grace_ns: 0,
            model: Recording {
                inner: model(),
                calls: Arc::clone(&calls),
            },
            sinks: vec![Box::new(mem)],
            metrics: Metrics::new(),
            shutdown: Shutdown::new(),
            policy: Policy::REPLAY,
            flush_deadline: Duration::from_secs(5),
            online: Some(service::online::OnlineConfig::default()),
            events: Default::default(),
            batch: 1,
        }
        .run()
        .unwrap();
        let calls = calls.lock().unwrap().clone();
        (rx.try_iter().collect::<Vec<Scored>>(), summary, calls)
    };
    let (together, summary, calls) = run(&files, true);
    assert_eq!(summary.captures.len(), 3);
    assert!(
        calls.iter().any(|n| *n > 1),
        "some call carried windows of several streams: {} calls, largest {:?}",
        calls.len(),
        calls.iter().max()
    );
    assert!(
        calls.iter().all(|n| *n <= 3),
        "at most one window per stream per call"
    );
    for (i, f) in files.iter().enumerate() {
        let (alone, _, _) = run(std::slice::from_ref(f), false);
        let mine: Vec<&Scored> = together.iter().filter(|s| s.stream == i).collect();
        assert_eq!(mine.len(), alone.len(), "stream {i}: every window");
        assert!(alone.len() > 40, "stream {i}: {} windows", alone.len());
        for (a, b) in mine.iter().zip(&alone) {
            assert_eq!(
                &Scored {
                    inference: None,
                    stream: 0,
                    ..(*a).clone()
                },
                &Scored {
                    inference: None,
                    ..b.clone()
                },
                "stream {i}"
            );
        }
    }
}
