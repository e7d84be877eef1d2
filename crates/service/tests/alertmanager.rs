//! The Alertmanager sink against a real Alertmanager (Debian's
//! `prometheus-alertmanager`, installed by `scripts/setup.sh --test`; another
//! binary with `NF_ALERTMANAGER`), started here on 127.0.0.1 and ended by PID:
//! an event raises an alert with its labels, stays active across re-posts,
//! resolves when the event ends, and an alert raised while Alertmanager is
//! down arrives once it is back; a server that takes connections and never
//! answers does not hold up the sink's caller (the pipeline's writer thread).

use service::events::{Change, Event, Kind, Severity, Signals};
use service::sinks::Sink;
use service::sinks::alertmanager::{AlertmanagerConfig, AlertmanagerSink};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary() -> PathBuf {
    let p = std::env::var_os("NF_ALERTMANAGER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/prometheus-alertmanager"));
    assert!(
        p.exists(),
        "{} is missing: run scripts/setup.sh --test (Debian's prometheus-alertmanager) or set NF_ALERTMANAGER",
        p.display()
    );
    p
}

fn start(dir: &Path, port: u16) -> Server {
    let cfg = dir.join("am.yml");
    std::fs::write(
        &cfg,
        "route:\n  receiver: none\n  group_wait: 0s\nreceivers:\n  - name: none\n",
    )
    .unwrap();
    let child = Command::new(binary())
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start alertmanager");
    let s = Server { child };
    let t0 = Instant::now();
    while get(port, "/-/ready").is_none_or(|b| !b.contains("OK")) {
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "alertmanager did not become ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

/// The body of a GET, or None when nothing answers.
fn get(port: u16, path: &str) -> Option<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut text = String::new();
    c.read_to_string(&mut text).ok()?;
    text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn alerts(port: u16) -> Vec<serde_json::Value> {
    let body = get(port, "/api/v2/alerts").expect("alertmanager answers");
    serde_json::from_str::<serde_json::Value>(&body)
        .expect("JSON")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn wait_for(
    port: u16,
    what: &str,
    ok: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let t0 = Instant::now();
    loop {
        let a = alerts(port);
        if ok(&a) {
            return a;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{what}: {a:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn event(kind: Kind, stream: &str) -> Event {
    Event {
        kind,
        stream: stream.into(),
        start_ns: now_ns(),
        end_ns: None,
        severity: Severity::Critical,
        forecast_mbps: Some(38.5),
        band: Some((31.0, 45.0)),
        congestion_prob: Some(0.12),
        mase_recent: Some(0.8),
        signals: Signals {
            throughput_mbps: 9.7,
            rtt_ms: 42.0,
            rtt_min_ms: 20.5,
            bif_bytes: 64_000,
            silent_windows: 0,
            capture_lost: 0,
            unacked_segments: 0,
            zero_window_segments: 0,
            retransmissions: 0,
            duplicate_acks: 0,
        },
    }
}

/// Wait until the posting thread's counters satisfy `ok`.
fn until(
    sink: &AlertmanagerSink,
    what: &str,
    ok: impl Fn(&service::sinks::alertmanager::AlertmanagerStats) -> bool,
) {
    let t0 = Instant::now();
    while !ok(&sink.stats()) {
        assert!(
            t0.elapsed() < Duration::from_secs(40),
            "{what}: {:?}",
            sink.stats()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn events_become_alerts_that_resolve_and_survive_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = start(dir.path(), port);
    let mut sink = AlertmanagerSink::new(AlertmanagerConfig {
        url: format!("http://127.0.0.1:{port}"),
        host: "router-7".into(),
        resend: Duration::from_millis(300),
        hold: Duration::from_secs(120),
    })
    .unwrap();

    let e = event(Kind::CapacityDrop, "veth0");
    sink.events(&[Change::Started(e.clone())]).unwrap();
    until(&sink, "the start posted", |s| s.sent == 1);
    let a = wait_for(port, "the alert is active", |a| a.len() == 1);
    let l = &a[0]["labels"];
    assert_eq!(l["alertname"], "NetforecastCapacityDrop");
    assert_eq!(l["kind"], "capacity_drop");
    assert_eq!(l["stream"], "veth0");
    assert_eq!(l["host"], "router-7");
    assert_eq!(l["severity"], "critical");
    assert_eq!(a[0]["status"]["state"], "active");
    let d = a[0]["annotations"]["description"].as_str().unwrap();
    assert!(
        d.contains("9.70 Mbit/s") && d.contains("31.00-45.00"),
        "{d}"
    );

    // Active events are re-posted while they last.
    std::thread::sleep(Duration::from_millis(350));
    sink.tick().unwrap();
    until(&sink, "the re-post", |s| s.sent == 2);
    assert_eq!(sink.active(), 1);
    assert_eq!(alerts(port).len(), 1, "still active after the re-post");

    // The end resolves it.
    let mut ended = e.clone();
    ended.end_ns = Some(now_ns());
    sink.events(&[Change::Ended(ended)]).unwrap();
    wait_for(port, "the alert resolved", |a| a.is_empty());
    assert_eq!(sink.active(), 0);

    // Alertmanager down: the post fails and is kept ...
    drop(server);
    let e2 = event(Kind::CongestionAhead, "veth1");
    sink.events(&[Change::Started(e2)]).unwrap();
    until(&sink, "the post failed", |s| s.failed_posts >= 1);
    assert_eq!(sink.stats().sent, 3, "nothing posted while it was down");
    // ... and arrives once it is back (the thread retries with a backoff).
    let _server = start(dir.path(), port);
    until(&sink, "delivered after the outage", |s| s.sent >= 4);
    let a = wait_for(port, "the alert raised during the outage", |a| {
        a.iter().any(|x| x["labels"]["stream"] == "veth1")
    });
    assert_eq!(a[0]["labels"]["alertname"], "NetforecastCongestionAhead");
    assert_eq!(sink.stats().dropped, 0);
}

/// A server that accepts connections and never answers (a hung Alertmanager,
/// a proxy black hole): the sink's calls still return at once, so the writer
/// thread keeps feeding the CSV and InfluxDB; the post times out on the
/// sink's own thread and is counted.
#[test]
fn a_hung_alertmanager_does_not_hold_up_the_writer() {
    let hung = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hung.local_addr().unwrap().port();
    let mut sink = AlertmanagerSink::new(AlertmanagerConfig {
        url: format!("http://127.0.0.1:{port}"),
        host: "router-7".into(),
        resend: Duration::from_millis(10),
        hold: Duration::from_secs(120),
    })
    .unwrap();
    let t0 = Instant::now();
    for i in 0..50 {
        let e = event(Kind::CapacityDrop, &format!("veth{i}"));
        sink.events(&[Change::Started(e)]).unwrap();
        sink.tick().unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    // 50 windows' worth of calls take their 20 ms sleeps and little more.
    assert!(
        took < Duration::from_millis(1_800),
        "the caller waited: {took:?}"
    );
    until(&sink, "the hung post timed out", |s| s.failed_posts >= 1);
    assert_eq!(sink.stats().sent, 0);
    drop(hung);
}

/// An event that starts as a warning and grows critical: its end resolves the
/// alert Alertmanager has (labels as at the start), and no twin is left.
#[test]
fn an_event_that_grew_critical_resolves_the_alert_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _server = start(dir.path(), port);
    let mut sink = AlertmanagerSink::new(AlertmanagerConfig {
        url: format!("http://127.0.0.1:{port}"),
        host: "router-7".into(),
        resend: Duration::from_secs(30),
        hold: Duration::from_secs(120),
    })
    .unwrap();
    let mut w = event(Kind::CapacityDrop, "veth1");
    w.severity = Severity::Warning;
    sink.events(&[Change::Started(w.clone())]).unwrap();
    let a = wait_for(port, "the warning is active", |a| a.len() == 1);
    assert_eq!(a[0]["labels"]["severity"], "warning");
    let mut worse = w.clone();
    worse.severity = Severity::Critical;
    worse.end_ns = Some(now_ns());
    sink.events(&[Change::Ended(worse)]).unwrap();
    wait_for(port, "the escalated alert resolved", |a| a.is_empty());
}
