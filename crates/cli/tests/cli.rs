//! The binary as users meet it: exit codes, one-line errors, the public captures
//! from ../shared (when present), several files as separate captures.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `netforecast`, handing model commands to this build's `netforecast-ml`
/// (never a stale one found elsewhere).
fn nf() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_netforecast"));
    c.env("NETFORECAST_ML", env!("CARGO_BIN_EXE_netforecast-ml"));
    c
}

/// Root: the tests that capture or make namespaces run only as root.
fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The daemon capturing on lo (no traffic) with the shipped model, quiet,
/// forecasts to the CSV `csv`; stderr piped.
fn lo_daemon(csv: &Path) -> Command {
    let mut c = nf();
    c.args(["--iface", "lo", "-q", "--model"])
        .arg(repo().join("model_files"))
        .arg("--csv")
        .arg(csv)
        .stderr(std::process::Stdio::piped());
    c
}

/// Polls `ready` every 100 ms until it holds or `secs` pass; says whether it
/// held. The daemon tests wait for what they need (rows in a CSV) instead of a
/// fixed time: libtorch's start takes 0.3 s on an idle machine and 2 s or more
/// while other tests load both cores, and fixed sleeps failed there.
fn wait_until(secs: u64, mut ready: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if ready() {
            return true;
        }
        if std::time::Instant::now() > until {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Rows of a CSV after its header so far (0 while it does not exist).
fn csv_rows(p: &Path) -> usize {
    std::fs::read_to_string(p)
        .map(|t| t.lines().count().saturating_sub(1))
        .unwrap_or(0)
}

/// Kills the child with this PID if the test fails before it is waited for
/// (set it to 0 once waited for): a failing test must not leave a daemon
/// holding the test's pipes open.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if self.0 != 0 && std::thread::panicking() {
            // SAFETY: signalling the child we started, by its PID.
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sample() -> PathBuf {
    repo().join("tests/data/netns-bulk-steps.pcap")
}

fn public_dir() -> Option<PathBuf> {
    let d = repo().join("../shared/fixtures/public");
    d.is_dir().then_some(d)
}

/// Run `cmd`, which must succeed; its stderr.
fn succeeds(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

fn extract(args: &[&Path]) -> (i32, String, String) {
    let out = nf()
        .arg("extract")
        .args(args)
        .args(["--out", "-"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn every_public_capture_is_read_without_a_panic() {
    let Some(dir) = public_dir() else {
        eprintln!("../shared/fixtures/public not present; skipped");
        return;
    };
    let mut seen = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            continue;
        }
        seen += 1;
        let (code, stdout, stderr) = extract(&[&p]);
        assert!(!stderr.contains("panicked"), "{}: {stderr}", p.display());
        match code {
            0 => assert!(
                stdout.starts_with("window_start,size,delay,bif,"),
                "{}",
                p.display()
            ),
            1 => assert_eq!(
                stderr.trim().lines().count(),
                1,
                "{}: one error line, got {stderr}",
                p.display()
            ),
            c => panic!("{}: exit code {c}", p.display()),
        }
    }
    assert!(seen >= 18);
}

#[test]
fn cut_short_pcapng_is_one_clear_error() {
    let Some(dir) = public_dir() else { return };
    let (code, _, stderr) = extract(&[&dir.join("pcapng-cut-short.bin")]);
    assert_eq!(code, 1);
    assert_eq!(stderr.trim().lines().count(), 1);
    assert!(stderr.contains("pcapng-cut-short.bin"), "{stderr}");
}

#[test]
fn a_full_disk_is_one_error_naming_the_output() {
    let out = nf()
        .arg("extract")
        .arg(sample())
        .args(["-o", "/dev/full"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("/dev/full"), "{stderr}");
}

#[test]
fn missing_file_names_the_path_and_exits_1() {
    let (code, _, stderr) = extract(&[Path::new("/nonexistent/x.pcap")]);
    assert_eq!(code, 1);
    assert_eq!(stderr.trim().lines().count(), 1);
    assert!(stderr.contains("/nonexistent/x.pcap"));
}

#[test]
fn bad_usage_exits_2() {
    let out = nf()
        .args(["extract", "--window-ms", "0", "x.pcap"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = nf().args(["extract"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    // The daemon with no interface: a usage error in one line (INTERFACE.md).
    let out = nf()
        .args(["run", "--metrics-addr", ""])
        .env_remove("INFLUX_URL")
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("--iface"), "{e}");
}

#[test]
fn a_closed_standard_output_ends_quietly_with_0() {
    // `netforecast extract F --out - | head`: the reader goes away first.
    let mut child = nf()
        .arg("extract")
        .arg(sample())
        .args(["-q", "--out", "-", "--packets-out", "-"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(e.is_empty(), "nothing on stderr: {e}");
}

#[test]
fn sample_capture_gives_contiguous_windows_with_the_header() {
    let (code, stdout, stderr) = extract(&[&sample()]);
    assert_eq!(code, 0, "{stderr}");
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(
            "window_start,size,delay,bif,iat_mean,iat_std,throughput_mbps,delay_grad,bif_grad,is_silent"
        )
    );
    let starts: Vec<i64> = lines
        .map(|l| {
            let (s, ns) = l.split(',').next().unwrap().split_once('.').unwrap();
            assert_eq!(ns.len(), 9);
            s.parse::<i64>().unwrap() * 1_000_000_000 + ns.parse::<i64>().unwrap()
        })
        .collect();
    assert!(starts.len() > 70, "{} windows", starts.len());
    assert!(starts.windows(2).all(|w| w[1] - w[0] == 50_000_000));
    assert!(stderr.contains("packets/s"));
}

#[test]
fn several_files_are_separate_captures() {
    let s = sample();
    let (_, one, _) = extract(&[&s]);
    let (_, two, _) = extract(&[&s, &s]);
    let body: Vec<&str> = one.lines().skip(1).collect();
    let both: Vec<&str> = two.lines().skip(1).collect();
    // Same file twice: the second capture starts from fresh state, so its rows
    // repeat the first's exactly (nothing carried over).
    assert_eq!(both.len(), 2 * body.len());
    assert_eq!(&both[..body.len()], &body[..]);
    assert_eq!(&both[body.len()..], &body[..]);
}

#[test]
fn window_width_option_changes_the_grid() {
    let out = nf()
        .args(["extract", "--window-ms", "100", "-q", "--out", "-"])
        .arg(sample())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let (_, fifty, _) = extract(&[&sample()]);
    let n50 = fifty.lines().count() - 1;
    assert!((rows.len() as i64 - (n50 as i64 + 1) / 2).abs() <= 1);
    assert!(out.stderr.is_empty(), "-q prints nothing");
}

/// `replay` end to end with a model trained here on the committed captures:
/// predictions CSV on the rows of the windows they predict, the report with the
/// model and the three baselines, the plot.
#[test]
fn replay_writes_predictions_report_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lab = repo().join("tests/data/lab-cellular-s3.pcap.gz");
    let mut feats = Vec::new();
    for (i, cap) in [sample(), lab.clone()].iter().enumerate() {
        let f = d.join(format!("f{i}.csv"));
        let st = nf()
            .args(["extract", "-q", "--out"])
            .arg(&f)
            .arg(cap)
            .status()
            .unwrap();
        assert!(st.success());
        feats.push(f);
    }
    let model = d.join("model");
    succeeds(
        nf().args(["train", "--epochs", "2", "--hidden", "8", "--out"])
            .arg(&model)
            .args(&feats),
    );
    let (pred, report, plot) = (d.join("p.csv"), d.join("r.json"), d.join("p.png"));
    let stderr = succeeds(
        nf().args(["replay", "--model"])
            .arg(&model)
            .arg("--out")
            .arg(&pred)
            .arg("--report")
            .arg(&report)
            .arg("--plot")
            .arg(&plot)
            .arg(&lab),
    );
    assert!(
        stderr.contains("persistence") && stderr.contains("MASE"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&pred).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("window_start,actual_mbps,predicted_mbps,congestion_prob")
    );
    let rows: Vec<&str> = lines.collect();
    // 411 windows in the capture; the first 15 have no forecast.
    assert_eq!(rows.len(), 411 - 15);
    let feats_text = std::fs::read_to_string(&feats[1]).unwrap();
    let sixteenth = feats_text.lines().nth(16).unwrap();
    assert!(
        rows[0].starts_with(sixteenth.split(',').next().unwrap()),
        "first forecast sits on window 16"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r["windows"], 396);
    for k in ["model", "persistence", "mean_last_15", "ewma"] {
        for m in [
            "r2",
            "mae_mbps",
            "rmse_mbps",
            "mase",
            "roc_auc",
            "pr_auc",
            "prevalence",
        ] {
            assert!(r[k][m].is_number(), "{k}.{m} in {r}");
        }
    }
    assert_eq!(r["persistence"]["mase"], 1.0);
    assert!(r["skipped_packets"].is_object());
    let png = std::fs::read(&plot).unwrap();
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"));

    // Two captures recorded at different times: one report over both, one plot
    // with each capture its own segment.
    let plot2 = d.join("p2.png");
    succeeds(
        nf().args(["replay", "-q", "--model"])
            .arg(&model)
            .arg("--report")
            .arg(&report)
            .arg("--plot")
            .arg(&plot2)
            .arg(sample())
            .arg(&lab),
    );
    let r2: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(r2["captures"].as_array().map(|c| c.len()), Some(2));
    assert!(r2["windows"].as_u64().unwrap() > 396);
    let png = std::fs::read(&plot2).unwrap();
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"));
}

/// The first thing a newcomer tries: one bulk flow through a tbf (20 Mbit/s)
/// on a veth pair with offloads on, captured by tcpdump at the sender
/// (`scripts/lab/netns-transfer.sh --rates 20:20 --offloads on`). The shipped
/// model with the online stage must beat persistence and the prevalence.
#[test]
fn shipped_model_beats_persistence_and_prevalence_on_a_veth_bulk_flow() {
    let dir = tempfile::tempdir().unwrap();
    let cap = repo().join("tests/data/veth-tbf20-offloads.pcap.gz");
    let manifest = dir.path().join("m.csv");
    std::fs::write(&manifest, "name,class\nveth-tbf20-offloads,newcomer\n").unwrap();
    let report = dir.path().join("r.json");
    let stderr = succeeds(
        nf().args(["replay", "--model"])
            .arg(repo().join("model_files"))
            .arg("--classes")
            .arg(&manifest)
            .arg("--report")
            .arg(&report)
            .arg(&cap),
    );
    assert!(stderr.contains("per class"), "{stderr}");
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let mase = r["published"]["mase"].as_f64().unwrap();
    let brier = r["calibration"]["published"]["brier"].as_f64().unwrap();
    let prevalence = r["calibration"]["brier_prevalence"].as_f64().unwrap();
    assert!(mase < 1.0, "published MASE {mase}");
    assert!(
        brier < prevalence,
        "Brier {brier} vs prevalence {prevalence}"
    );
    assert_eq!(r["per_class"][0]["class"], "newcomer");
    assert_eq!(r["per_class"][0]["windows"], r["windows"]);
    // The shipped model says what its training data looked like; 20 s is less
    // than the minute the shift monitor needs, so it is null with a reason.
    assert!(
        r["input_shift"].is_null() && r["input_shift_note"].is_string(),
        "{r}"
    );

    // A class manifest without a class column is one line, exit 1.
    std::fs::write(&manifest, "name,kind\nx,y\n").unwrap();
    let out = nf()
        .args(["replay", "-q", "--classes"])
        .arg(&manifest)
        .arg(&cap)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("class manifest") && err.trim().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn train_with_an_unknown_architecture_is_one_line() {
    let out = nf()
        .args(["train", "--arch", "forest", "--out", "/tmp/never-written"])
        .arg(sample())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "bad usage exits 2");
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(
        e.contains("forest") && e.contains("lstm, lstm-gbt, linear, gbt"),
        "{e}"
    );
}

#[test]
fn replay_with_a_missing_model_is_one_line() {
    let out = nf()
        .args(["replay", "--model", "/nonexistent/m"])
        .arg(sample())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("/nonexistent/m"));
}

/// Without capture privileges the daemon and live extract say what to do in one
/// line (run as root with setpriv to drop to nobody; skipped when not root).
#[test]
fn capture_without_permission_says_what_to_do() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("not root or no setpriv; skipped");
        return;
    }
    for args in [
        &["extract", "--iface", "lo", "--out", "-"][..],
        &["--iface", "lo", "--metrics-addr", ""][..],
    ] {
        let out = Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_netforecast"))
            .args(args)
            .current_dir(std::env::temp_dir())
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {e}");
        assert_eq!(e.trim().lines().count(), 1, "{e}");
        assert!(
            e.contains("no permission to capture on lo") && e.contains("setcap"),
            "{e}"
        );
        assert!(out.stdout.is_empty());
    }
}

/// `--user` drops root once the capture is open: the running daemon's uid is the
/// user's, and SIGTERM still ends it cleanly (root only; captures on lo, no traffic).
#[test]
fn user_option_drops_privileges_after_opening_the_capture() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let child = nf()
        .args([
            "--iface",
            "lo",
            "--user",
            "nobody",
            "--metrics-addr",
            "",
            "-q",
            "--csv",
        ])
        .arg(dir.path().join("p.csv"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut uid_line = String::new();
    for _ in 0..100 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        uid_line = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap_or("")
            .to_string();
        if uid_line.contains("65534") {
            break;
        }
    }
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|u| u == "65534"),
        "{uid_line}"
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("stopped after"));
}

/// Diagnostics go through `tracing`: `-v` is accepted everywhere, and
/// `--log-format json` makes every diagnostic a JSON line (root only for the
/// daemon part: it captures on lo for a moment, no traffic).
#[test]
fn verbose_and_json_logs() {
    let out = nf()
        .args(["extract", "-v", "--out", "/dev/null"])
        .arg(sample())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let child = nf()
        .args([
            "--iface",
            "lo",
            "--metrics-addr",
            "",
            "--log-format",
            "json",
            "--csv",
        ])
        .arg(dir.path().join("p.csv"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A forecast in the CSV: the capture has started and said so.
    wait_until(60, || csv_rows(&dir.path().join("p.csv")) >= 1);
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    let json: Vec<serde_json::Value> = e
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert!(
        json.iter().any(|v| v["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("capturing on lo"))),
        "{e}"
    );
    assert!(
        json.iter()
            .all(|v| v["level"].is_string() && v["timestamp"].is_string())
    );
}

/// GNU `timeout` sends SIGTERM twice (to the child, then to its group): the
/// second must not cut the run short. Every forecast that reached its target
/// window is in the CSV, and the summary is printed.
#[test]
fn timeout_sends_sigterm_twice_and_nothing_is_lost() {
    if Command::new("timeout").arg("--version").output().is_err() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("p.csv");
    let report = dir.path().join("r.json");
    let out = Command::new("timeout")
        .args(["-s", "TERM", "6"])
        .arg(env!("CARGO_BIN_EXE_netforecast"))
        .env("NETFORECAST_ML", env!("CARGO_BIN_EXE_netforecast-ml"))
        .args(["replay", "--realtime", "--out"])
        .arg(&csv)
        .arg("--report")
        .arg(&report)
        .arg(repo().join("tests/data/lab-cellular-s3.pcap.gz"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "timeout stopped it: {e}");
    assert!(
        e.contains("forecasts for"),
        "the summary table is printed: {e}"
    );
    let rows = std::fs::read_to_string(&csv).unwrap().lines().count() - 1;
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(rows > 20, "6 s less libtorch's start of windows: {rows}");
    assert_eq!(
        rows as u64,
        r["windows"].as_u64().unwrap(),
        "every scored forecast is in the CSV"
    );
}

/// SIGHUP is not fatal: the daemon reopens its CSV (as after logrotate moved
/// it) and keeps forecasting; SIGTERM then ends it cleanly (root: captures on lo).
#[test]
fn sighup_reopens_the_csv_and_does_not_stop_the_daemon() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("p.csv");
    let child = lo_daemon(&csv)
        .args(["--metrics-addr", ""])
        .spawn()
        .unwrap();
    let pid = child.id() as i32;
    // Lookback (15 windows) plus a few forecasts at 50 ms each, then rotate.
    assert!(
        wait_until(60, || csv_rows(&csv) > 8),
        "forecasts before SIGHUP"
    );
    let moved = dir.path().join("p.csv.1");
    std::fs::rename(&csv, &moved).unwrap();
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    assert!(
        wait_until(30, || csv_rows(&csv) > 8),
        "a new CSV with forecasts after SIGHUP"
    );
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(e.contains("stopped after"), "{e}");
    let old = std::fs::read_to_string(&moved).unwrap();
    let new = std::fs::read_to_string(&csv).unwrap();
    assert!(old.lines().count() > 5, "{old}");
    assert!(
        new.starts_with("window_start,") && new.lines().count() > 5,
        "{new}"
    );
    // Rows continue across the two files: one window apart.
    let last_old = old
        .lines()
        .last()
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let first_new = new
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .next()
        .unwrap()
        .to_owned();
    let gap = first_new.parse::<f64>().unwrap() - last_old.parse::<f64>().unwrap();
    assert!(
        (gap - 0.05).abs() < 1e-6,
        "no row lost at the reopen: {last_old} -> {first_new}"
    );
}

/// Shutdown with the database down: every point made is accounted for in the
/// summary (written, or dropped with a reason); none vanish (root: lo).
#[test]
fn shutdown_with_the_server_down_accounts_for_every_point() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, "shutdown_deadline_s = 1\n").unwrap();
    let child = lo_daemon(&dir.path().join("p.csv"))
        .args(["--metrics-addr", "", "--config"])
        .arg(&cfg)
        // Port 9 on loopback: nothing listens, every write fails.
        .env("INFLUX_URL", "http://127.0.0.1:9")
        .env("INFLUX_ORG", "o")
        .env("INFLUX_BUCKET", "b")
        .spawn()
        .unwrap();
    // The CSV is flushed once a second: more than 12 rows there, more made.
    wait_until(60, || csv_rows(&dir.path().join("p.csv")) > 12);
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    let line = e
        .lines()
        .find(|l| l.contains("stopped after"))
        .expect("summary");
    let num = |after: &str| -> u64 {
        let i = line
            .find(after)
            .unwrap_or_else(|| panic!("{after:?} in {line}"));
        line[..i]
            .split_whitespace()
            .last()
            .unwrap()
            .trim_start_matches('(')
            .parse()
            .unwrap()
    };
    let forecasts = num(" forecasts");
    let written = num(" points written");
    let made = num(" made)");
    let unsent = num(" unsent at shutdown");
    let dropped = num(" dropped:");
    assert!(forecasts > 10, "{line}");
    assert_eq!(written, 0, "{line}");
    assert!(made == forecasts || made == forecasts + 1, "{line}");
    assert_eq!(unsent, made, "every unsent point is counted: {line}");
    assert_eq!(dropped, made - written, "{line}");
}

/// Inputs that can be read only once: a pipe on `-`, a gzip FIFO, and a FIFO
/// nobody writes to, which must still end on SIGTERM.
#[test]
fn pipes_and_fifos_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    let want = dir.path().join("want.csv");
    succeeds(
        nf().arg("extract")
            .arg(sample())
            .arg("-q")
            .arg("--out")
            .arg(&want),
    );
    let want = std::fs::read(want).unwrap();
    // `cat F | netforecast extract - --out x.csv`
    let got = dir.path().join("stdin.csv");
    let mut child = nf()
        .args(["extract", "-", "-q", "--out"])
        .arg(&got)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&std::fs::read(sample()).unwrap()).unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(
        std::fs::read(&got).unwrap(),
        want,
        "stdin gives the file's rows"
    );
    // A gzip capture through a FIFO.
    let fifo = dir.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let gz = repo().join("tests/data/lab-cellular-s3.pcap.gz");
    let writer = {
        let (gz, fifo) = (gz.clone(), fifo.clone());
        std::thread::spawn(move || std::fs::write(&fifo, std::fs::read(gz).unwrap()))
    };
    let from_fifo = dir.path().join("fifo.csv");
    succeeds(
        nf().arg("extract")
            .arg(&fifo)
            .arg("-q")
            .arg("--out")
            .arg(&from_fifo),
    );
    writer.join().unwrap().unwrap();
    let direct = dir.path().join("gz.csv");
    succeeds(
        nf().arg("extract")
            .arg(&gz)
            .arg("-q")
            .arg("--out")
            .arg(&direct),
    );
    assert_eq!(
        std::fs::read(from_fifo).unwrap(),
        std::fs::read(direct).unwrap()
    );
    // A FIFO with no writer: SIGTERM ends it (after the grace period at most).
    let lonely = dir.path().join("lonely");
    assert!(
        Command::new("mkfifo")
            .arg(&lonely)
            .status()
            .unwrap()
            .success()
    );
    let child = nf()
        .arg("extract")
        .arg(&lonely)
        .args(["--out", "/dev/null"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let t = std::time::Instant::now();
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(
        t.elapsed() < std::time::Duration::from_secs(6),
        "{:?}",
        t.elapsed()
    );
    assert_ne!(out.status.code(), Some(0));
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(e.trim().lines().count(), 1, "one line: {e}");
}

/// 2,000 idle connections to the metrics endpoint of a daemon limited to 1,024
/// open files: no panic, a handful of threads, and `/metrics` still answers at
/// once (root: captures on lo).
#[test]
fn idle_connections_cannot_lock_out_a_scrape() {
    use std::io::{Read, Write};
    use std::os::unix::process::CommandExt;
    if !root() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = lo_daemon(&dir.path().join("p.csv"));
    cmd.args(["--metrics-addr", &addr]);
    // SAFETY: setrlimit in the child before exec, async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 1024,
                rlim_max: 1024,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let mut reap = KillOnPanic(pid);
    let get = |path: &str| -> (std::time::Duration, String) {
        let t = std::time::Instant::now();
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        let _ = s.read_to_string(&mut text);
        (t.elapsed(), text)
    };
    // Wait for the endpoint.
    for _ in 0..100 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let idle: Vec<std::net::TcpStream> = (0..2000)
        .map(|i| {
            std::net::TcpStream::connect(&addr)
                .unwrap_or_else(|e| panic!("idle connection {i}: {e}"))
        })
        .collect();
    let best = (0..3)
        .map(|_| {
            let (t, text) = get("/metrics");
            assert!(text.starts_with("HTTP/1.1 200"), "{text}");
            assert!(text.contains("netforecast_frames_total"));
            t
        })
        .min()
        .unwrap();
    eprintln!("/metrics with 2000 idle connections: {best:?}");
    // Locked out would be the 10 s read timeout; 500 ms leaves room for a loaded machine.
    assert!(best < std::time::Duration::from_millis(500), "{best:?}");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let threads: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(threads <= 16, "a bounded number of threads: {threads}");
    drop(idle);
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    reap.0 = 0;
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert!(
        !e.contains("panicked") && !e.contains("Too many open files"),
        "{e}"
    );
}

/// A loopback HTTP server that stores every line protocol line written to it
/// (gzip or not) and answers 204; `/health` and `/ping` answer 200.
fn recording_influx() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = std::sync::Arc::clone(&lines);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let store = std::sync::Arc::clone(&store);
            std::thread::spawn(move || {
                loop {
                    let mut head = Vec::new();
                    let mut b = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        match s.read(&mut b) {
                            Ok(1) => head.push(b[0]),
                            _ => return,
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map(|v| v.trim().parse().unwrap_or(0))
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    if s.read_exact(&mut body).is_err() {
                        return;
                    }
                    if head.contains("content-encoding: gzip") {
                        let mut d = Vec::new();
                        flate2::read::GzDecoder::new(&body[..])
                            .read_to_end(&mut d)
                            .unwrap();
                        body = d;
                    }
                    let status = if head.starts_with("post") {
                        let text = String::from_utf8_lossy(&body).into_owned();
                        store
                            .lock()
                            .unwrap()
                            .extend(text.lines().map(str::to_owned));
                        "204 No Content"
                    } else {
                        "200 OK"
                    };
                    if write!(s, "HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, lines)
}

/// An outage, then SIGKILL, then a restart with the server back: the points of
/// the first run are delivered from the disk buffer, all but the last second
/// (root: captures on lo).
#[test]
fn sigkill_during_an_outage_loses_at_most_a_second() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let buffer = dir.path().join("buffer");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!("[influx]\nbuffer_dir = \"{}\"\n", buffer.display()),
    )
    .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let daemon = |url: &str, csv: &std::path::Path| {
        lo_daemon(csv)
            .args(["--metrics-addr", "", "--config"])
            .arg(&cfg)
            .env("INFLUX_URL", url)
            .env("INFLUX_ORG", "o")
            .env("INFLUX_BUCKET", "b")
            .spawn()
            .unwrap()
    };
    // Run 1: the server is away; killed after 6 s (under load libtorch's start
    // can take 2 s of them; 4 s once left only 30 forecasts in a CI rehearsal).
    let csv1 = dir.path().join("1.csv");
    let mut first = daemon(&format!("http://{closed}"), &csv1);
    wait_until(60, || csv_rows(&csv1) > 40);
    first.kill().unwrap();
    let killed_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    first.wait().unwrap();
    let on_disk: u64 = std::fs::read_dir(&buffer)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "lp"))
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert!(on_disk > 0, "points were on disk when it was killed");
    // Run 2: the server is back.
    let (addr, received) = recording_influx();
    let csv2 = dir.path().join("2.csv");
    let second = daemon(&format!("http://{addr}"), &csv2);
    // Until every row run 1 wrote has arrived (at most 60 s), then stop.
    let rows1: Vec<i64> = std::fs::read_to_string(&csv1)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| (l.split(',').next().unwrap().parse::<f64>().unwrap() * 1000.0).round() as i64)
        .collect();
    wait_until(60, || {
        let got = received.lock().unwrap();
        let got: std::collections::HashSet<i64> = got
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect();
        rows1.iter().all(|t| got.contains(t)) && csv_rows(&csv2) > 5
    });
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(second.id() as i32, libc::SIGTERM) };
    let out = second.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: std::collections::HashSet<i64> = received
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    // Every forecast of run 1 that reached its CSV (flushed each second, so up
    // to a second before the kill) reached the server through the disk buffer.
    let rows = rows1;
    assert!(rows.len() > 30, "run 1 made forecasts: {}", rows.len());
    let missing: Vec<&i64> = rows.iter().filter(|t| !got.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} run-1 points lost: {missing:?}",
        missing.len(),
        rows.len()
    );
    // And the newest point of run 1 that arrived is less than a second (plus a
    // window and the capture's grace) older than the kill.
    let newest_run1 = got.iter().filter(|t| **t < killed_ms).max().unwrap();
    eprintln!(
        "newest point from run 1: {} ms before the kill",
        killed_ms - newest_run1
    );
    assert!(
        killed_ms - newest_run1 < 1000 + 100,
        "{} ms lost",
        killed_ms - newest_run1
    );
}

/// An interface that goes down and comes back: the daemon keeps running, says
/// so once each way, and `/healthz` names the capture while it is down (root:
/// a veth pair in a network namespace of its own; nothing is sent).
#[test]
fn an_interface_flap_is_logged_and_shows_in_health() {
    if !root() {
        return;
    }
    let ns = format!("nfflap{}", std::process::id());
    let ip = |args: &[&str]| {
        let ok = Command::new("ip")
            .args(args)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "ip {args:?}");
    };
    ip(&["netns", "add", &ns]);
    struct Cleanup(String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
        }
    }
    let _cleanup = Cleanup(ns.clone());
    ip(&["-n", &ns, "link", "set", "lo", "up"]);
    // A veth pair with both ends in the namespace (this kernel has no dummy).
    ip(&[
        "-n", &ns, "link", "add", "d0", "type", "veth", "peer", "name", "d1",
    ]);
    ip(&["-n", &ns, "link", "set", "d1", "up"]);
    ip(&["-n", &ns, "link", "set", "d0", "up"]);
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(env!("CARGO_BIN_EXE_netforecast"))
        .env("NETFORECAST_ML", env!("CARGO_BIN_EXE_netforecast-ml"))
        .args([
            "--iface",
            "d0",
            "--metrics-addr",
            "127.0.0.1:9898",
            "--model",
        ])
        .arg(repo().join("model_files"))
        .arg("--csv")
        .arg(dir.path().join("p.csv"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let health = || {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "python3", "-c"])
            .arg(
                "import urllib.request as u, urllib.error as e\n\
                 try:\n r=u.urlopen('http://127.0.0.1:9898/healthz',timeout=5)\n\
                 except e.HTTPError as x:\n r=x\n\
                 print(r.status, r.read().decode())",
            )
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // What /healthz says once it says `want` (or after `secs`): the daemon's
    // start (libtorch's load) and the capture noticing a change take a
    // variable time on a loaded machine.
    let health_until = |want: &str, secs: u64| {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let h = health();
            if h.starts_with(want) || std::time::Instant::now() > until {
                return h;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let up = health_until("200", 60);
    assert!(up.starts_with("200"), "{up}");
    ip(&["-n", &ns, "link", "set", "d0", "down"]);
    let down = health_until("503", 20);
    assert!(
        down.starts_with("503") && down.contains("\"capture\""),
        "{down}"
    );
    assert!(down.contains("interface is down"), "{down}");
    ip(&["-n", &ns, "link", "set", "d0", "up"]);
    let again = health_until("200", 20);
    assert!(again.starts_with("200"), "{again}");
    // Windows after the flap, for the CSV check below.
    std::thread::sleep(std::time::Duration::from_millis(3000));
    wait_until(30, || csv_rows(&dir.path().join("p.csv")) > 50);
    // SAFETY: signalling the child (`ip netns exec` execs the daemon: same PID).
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{e}");
    assert_eq!(e.matches("interface d0 is down").count(), 1, "{e}");
    assert_eq!(e.matches("interface d0 is up again").count(), 1, "{e}");
    // Nothing TCP crossed d0 (its own namespace; lo is shared by parallel
    // tests): every published forecast is exactly 0, no phantom traffic.
    let csv = std::fs::read_to_string(dir.path().join("p.csv")).unwrap();
    assert!(csv.lines().count() > 50, "{csv}");
    for row in csv.lines().skip(1) {
        assert_eq!(row.split(',').nth(2), Some("0"), "{row}");
    }
}

/// `scripts/install.sh` puts the binaries, libtorch and the model under one
/// prefix that works without the checkout's libtorch, also when copied; the
/// binaries without their libtorch say what to do instead of a loader error.
#[test]
fn an_installed_prefix_works_from_a_copy() {
    if Command::new("patchelf").arg("--version").output().is_err()
        || !repo().join("libtorch/lib/libtorch_cpu.so").exists()
    {
        eprintln!("no patchelf or no libtorch; skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let st = Command::new(repo().join("scripts/install.sh"))
        .arg("--prefix")
        .arg(&a)
        .status()
        .unwrap();
    assert!(st.success());
    let b = dir.path().join("b");
    assert!(
        Command::new("cp")
            .arg("-a")
            .arg(&a)
            .arg(&b)
            .status()
            .unwrap()
            .success()
    );
    // The copy loads its own libtorch, not the checkout's.
    let ldd = Command::new("ldd")
        .arg(b.join("bin/netforecast-ml"))
        .output()
        .unwrap();
    let ldd = String::from_utf8_lossy(&ldd.stdout);
    let torch = ldd.lines().find(|l| l.contains("libtorch_cpu.so")).unwrap();
    assert!(torch.contains(&*b.to_string_lossy()), "{torch}");
    // And replays with the model it carries (run away from the checkout).
    let out = Command::new(b.join("bin/netforecast"))
        .args(["replay", "-q", "--report"])
        .arg(dir.path().join("r.json"))
        .arg(sample())
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("r.json")).unwrap()).unwrap();
    assert!(
        r["model_dir"]
            .as_str()
            .unwrap()
            .contains("share/netforecast/model_files")
    );
    // Binaries whose libtorch is gone: one line that says what to do, exit 1.
    std::fs::remove_dir_all(b.join("lib")).unwrap();
    std::fs::remove_dir_all(&a).unwrap();
    let out = Command::new(b.join("bin/netforecast"))
        .args(["replay"])
        .arg(sample())
        .current_dir(dir.path())
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("libtorch") && e.contains("install.sh"), "{e}");
}

/// Under systemd's `Type=notify`: READY=1 once capturing, WATCHDOG=1 every half
/// `WATCHDOG_USEC` while windows flow, STOPPING=1 at SIGTERM (root: lo).
#[test]
fn systemd_notify_ready_watchdog_stopping() {
    if !root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let child = lo_daemon(&dir.path().join("p.csv"))
        .args(["--metrics-addr", ""])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "600000")
        .spawn()
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while got
        .iter()
        .filter(|m: &&String| m.contains("WATCHDOG=1"))
        .count()
        < 3
    {
        let n = sock.recv(&mut buf).expect("notifications keep coming");
        got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(got[0].starts_with("READY=1"), "{got:?}");
    // SAFETY: signalling the child we started, by its PID.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    loop {
        let n = sock.recv(&mut buf).expect("STOPPING=1 at shutdown");
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            break;
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `replay --batch`: the shipped model's trees are walked natively, each
/// window's forecast from its own row, so batches of 1 and 32 write the same
/// bytes. The TorchScript module alone (the same directory without
/// `trees.bin`) batches only when asked and agrees to the last bits of f32
/// arithmetic, with the native walk too. On the committed lab capture and on
/// real captures nobody here made (../shared, when present).
#[test]
fn replay_in_batches_forecasts_the_same_windows_alike() {
    let dir = tempfile::tempdir().unwrap();
    let lab = repo().join("tests/data/lab-cellular-s3.pcap.gz");
    let module_only = dir.path().join("module-only");
    std::fs::create_dir(&module_only).unwrap();
    for f in ["netforecast.pt", "model.json"] {
        std::fs::copy(repo().join("model_files").join(f), module_only.join(f)).unwrap();
    }
    let run = |model: &Path, b: &str, cap: &Path| -> String {
        let p = dir.path().join(format!(
            "{}-b{b}.csv",
            model.file_name().unwrap().to_string_lossy()
        ));
        succeeds(
            nf().args(["replay", "-q", "--model-only", "--batch", b, "--model"])
                .arg(model)
                .arg("--out")
                .arg(&p)
                .arg(cap),
        );
        std::fs::read_to_string(&p).unwrap()
    };
    let parse = |text: &str| -> Vec<Vec<f64>> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let shipped = repo().join("model_files");
    let mut caps = vec![(lab.clone(), Some(411 - 15))];
    if let Some(d) = public_dir() {
        for f in [
            "zero-window-stall.pcap.gz",
            "https-download-rawip.pcap",
            "iperf-client-sll.pcapng",
        ] {
            caps.push((d.join(f), None));
        }
    }
    for (cap, windows) in caps {
        let native = run(&shipped, "1", &cap);
        assert_eq!(
            native,
            run(&shipped, "32", &cap),
            "{}: the same bytes at batch 32",
            cap.display()
        );
        let native = parse(&native);
        assert!(
            native.len() > 50,
            "{}: {} forecasts",
            cap.display(),
            native.len()
        );
        if let Some(w) = windows {
            assert_eq!(native.len(), w);
        }
        for other in [run(&module_only, "1", &cap), run(&module_only, "32", &cap)] {
            let other = parse(&other);
            assert_eq!(native.len(), other.len());
            for (a, b) in native.iter().zip(&other) {
                assert_eq!(a[..2], b[..2], "window and actual");
                for k in 2..4 {
                    assert!(
                        (a[k] - b[k]).abs() <= 1e-5 * a[k].abs().max(1.0),
                        "{}: {a:?} vs {b:?}",
                        cap.display()
                    );
                }
            }
        }
    }
    let e = nf()
        .args(["replay", "--batch", "0"])
        .arg(&lab)
        .output()
        .unwrap();
    assert_eq!(e.status.code(), Some(2), "a usage error");
}

/// `replay --band`: the band columns, empty until the stream has residuals,
/// then an interval around the forecast; the report measures its coverage,
/// which must be near its nominal 80 % on the committed lab capture.
#[test]
fn replay_band_columns_and_their_measured_coverage() {
    let dir = tempfile::tempdir().unwrap();
    let (pred, report) = (dir.path().join("p.csv"), dir.path().join("r.json"));
    let stderr = succeeds(
        nf().args(["replay", "--band", "--out"])
            .arg(&pred)
            .arg("--report")
            .arg(&report)
            .arg(repo().join("tests/data/lab-cellular-s3.pcap.gz")),
    );
    assert!(stderr.contains("band: "), "{stderr}");
    let text = std::fs::read_to_string(&pred).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("window_start,actual_mbps,predicted_mbps,congestion_prob,lower_mbps,upper_mbps")
    );
    let (mut empty, mut banded) = (0, 0);
    for l in lines {
        let v: Vec<&str> = l.split(',').collect();
        assert_eq!(v.len(), 6, "{l}");
        if v[4].is_empty() {
            assert!(v[5].is_empty() && banded == 0, "no band once banded: {l}");
            empty += 1;
            continue;
        }
        banded += 1;
        let (lo, hi): (f64, f64) = (v[4].parse().unwrap(), v[5].parse().unwrap());
        assert!(0.0 <= lo && lo <= hi, "{l}");
    }
    assert!(
        empty > 0 && banded > 300,
        "{empty} without, {banded} with a band"
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let b = &r["band"];
    assert_eq!(b["scored"].as_u64(), Some(banded));
    let c = b["coverage"].as_f64().unwrap();
    assert!(
        (0.7..=0.95).contains(&c),
        "coverage {c} against a nominal 0.8"
    );
}

/// Events in the replay report: none on a steady bulk flow through a 20 Mbit/s
/// bucket (a healthy link must not alert), congestion ahead and capacity drops
/// on the committed cellular lab trace, each with its stream, a start before
/// its end and the signals that moved.
#[test]
fn replay_reports_events_where_the_link_changes_and_none_where_it_is_steady() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    for cap in ["veth-tbf20-offloads.pcap.gz", "lab-cellular-s3.pcap.gz"] {
        let report = dir.path().join(format!("{cap}.json"));
        succeeds(
            nf().args(["replay", "-q", "--report"])
                .arg(&report)
                .arg(repo().join("tests/data").join(cap)),
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        events.push(r["events"].as_array().unwrap().clone());
    }
    assert!(
        events[0].is_empty(),
        "a steady link alerted: {:?}",
        events[0]
    );
    let kinds: Vec<&str> = events[1]
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["congestion_ahead", "capacity_drop"] {
        assert!(
            kinds.contains(&k),
            "no {k} on the cellular trace: {kinds:?}"
        );
    }
    for e in &events[1] {
        assert!(
            e["stream"].as_str().unwrap().contains("lab-cellular-s3"),
            "{e}"
        );
        assert!(
            e["end_ns"].as_i64().unwrap() > e["start_ns"].as_i64().unwrap(),
            "{e}"
        );
        assert!(e["signals"]["rtt_ms"].as_f64().unwrap() > 0.0, "{e}");
        if e["kind"] == "capacity_drop" {
            // Backlogged: a standing queue over the RTT minimum.
            let s = &e["signals"];
            assert!(
                s["rtt_ms"].as_f64().unwrap() >= 1.25 * s["rtt_min_ms"].as_f64().unwrap(),
                "{e}"
            );
        }
    }
}

/// A bulk sender whose receiving application stops reading and trickles
/// (tests/data/README.md): its throughput falls while its bytes in flight
/// stay, as at a link that slowed, but the receiver's small windows hold it
/// back, so no capacity drop is raised (the build before the rule raised two,
/// at 12.9 s in a trickle and at 25.8 s). The link stayed at 8 Mbit/s.
#[test]
fn a_receiver_that_stops_reading_raises_no_capacity_drop() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    succeeds(
        nf().args(["replay", "-q", "--report"])
            .arg(&report)
            .arg(repo().join("tests/data/veth-receiver-stalls.pcap.gz")),
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let drops: Vec<&serde_json::Value> = r["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "capacity_drop")
        .collect();
    assert!(drops.is_empty(), "{drops:?}");
    assert!(r["windows"].as_u64().unwrap() > 500, "{}", r["windows"]);
}

/// `--events-truth` scores against the schedule beside the capture, given
/// after the captures or before them; a file needs `=` (with a space the
/// first capture was taken for the schedule and nothing was scored), and a
/// file for several captures is a usage error.
#[test]
fn events_truth_reads_the_schedule_beside_the_capture_or_the_one_given() {
    let dir = tempfile::tempdir().unwrap();
    let lab = repo().join("tests/data/lab-cellular-s3.pcap.gz");
    let schedule = repo().join("tests/data/lab-cellular-s3.schedule.csv");
    let scored = |args: &[&std::ffi::OsStr], name: &str| {
        let report = dir.path().join(name);
        succeeds(
            nf().args(["replay", "-q", "--report"])
                .arg(&report)
                .args(args),
        );
        let r: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
        let t = r["events_truth"].clone();
        assert_eq!(t["captures_scored"], 1, "{name}: {t}");
        assert!(t["drops"].as_u64().unwrap() > 0, "{name}: {t}");
        assert!(t["recall"].as_f64().is_some(), "{name}: {t}");
        t
    };
    let beside = scored(&[lab.as_os_str(), "--events-truth".as_ref()], "after.json");
    let before = scored(&["--events-truth".as_ref(), lab.as_os_str()], "before.json");
    let mut given = std::ffi::OsString::from("--events-truth=");
    given.push(&schedule);
    let file = scored(&[given.as_os_str(), lab.as_os_str()], "given.json");
    assert_eq!(beside, before);
    assert_eq!(beside["drops"], file["drops"]);
    assert_eq!(beside["detected"], file["detected"]);

    let out = nf()
        .args(["replay", "-q"])
        .arg(&given)
        .arg(&lab)
        .arg(repo().join("tests/data/veth-tbf20-offloads.pcap.gz"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{e}");
    assert_eq!(e.trim().lines().count(), 1, "{e}");
    assert!(e.contains("--events-truth"), "{e}");
}

/// A classic pcap (Ethernet) of `frames` at their times (s).
fn write_pcap(p: &Path, frames: &[(f64, Vec<u8>)]) {
    let mut w = engine::pcapfile::PcapWriter::new(Vec::new(), 1, 65_535).unwrap();
    for (t, f) in frames {
        let ts_ns = 1_700_000_000 * 1_000_000_000 + (t * 1e9).round() as i64;
        w.write(ts_ns, f, f.len() as u32).unwrap();
    }
    std::fs::write(p, w.into_inner()).unwrap();
}

/// A data segment from 10.0.0.1:40000 to 10.0.0.2:5201, `len` bytes at `seq`.
fn data_frame(seq: u32, len: usize) -> Vec<u8> {
    let mut f = Vec::new();
    testkit::tcp4_frame(
        &testkit::Tcp4 {
            src: ([10, 0, 0, 1], 40_000),
            dst: ([10, 0, 0, 2], 5201),
            seq,
            ack: 1,
            flags: 0x18,
            len,
        },
        &mut f,
    );
    f
}

#[test]
fn replay_of_nothing_to_forecast_says_why_and_never_prints_nan() {
    let dir = tempfile::tempdir().unwrap();
    let replay = |name: &str, frames: &[(f64, Vec<u8>)]| {
        let pcap = dir.path().join(name);
        write_pcap(&pcap, frames);
        let report = dir.path().join(format!("{name}.json"));
        let out = nf()
            .args(["replay", "--out"])
            .arg(dir.path().join(format!("{name}.csv")))
            .arg("--report")
            .arg(&report)
            .arg(&pcap)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let words = stderr.split(|c: char| c.is_whitespace() || ",;:()/".contains(c));
        for w in words {
            let w = w.trim_start_matches(['-', '+']).to_lowercase();
            assert!(w != "nan" && w != "inf", "{name}: {w} in {stderr}");
        }
        let csv = std::fs::read_to_string(dir.path().join(format!("{name}.csv"))).unwrap();
        assert!(!csv.to_lowercase().contains("nan"), "{name}: {csv}");
        let report = std::fs::read_to_string(&report).ok();
        (out.status.code(), stderr, report)
    };

    // No TCP at all (ARP frames), and TCP for fewer windows than the
    // lookback: the summary counts what was read, then one line says why
    // nothing was forecast; exit 1, no report.
    let arp = {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
        f.extend_from_slice(&[0; 28]);
        f
    };
    let short: Vec<(f64, Vec<u8>)> = (0..6u32)
        .map(|i| (f64::from(i) * 0.05, data_frame(1 + i * 1448, 1448)))
        .collect();
    for (name, frames) in [
        ("arp.pcap", vec![(0.0, arp.clone()), (0.5, arp)]),
        ("short.pcap", short),
    ] {
        let (code, stderr, report) = replay(name, &frames);
        assert_eq!(code, Some(1), "{name}: {stderr}");
        let why: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("netforecast:"))
            .collect();
        assert_eq!(why.len(), 1, "{name}: {stderr}");
        assert!(
            why[0].contains("need at least 16 contiguous windows of TCP traffic"),
            "{name}: {}",
            why[0]
        );
        assert!(
            stderr.contains("frames read"),
            "{name}: no summary in {stderr}"
        );
        assert!(report.is_none(), "{name}");
    }

    // One segment, then three seconds of silence, then another: every
    // forecast window is below the threshold (one class), and an all-zero
    // actual leaves R2 and MASE 0/0. The table says n/a and why; the report
    // has null with the reason, never a number.
    let (code, stderr, report) = replay(
        "silent.pcap",
        &[(0.0, data_frame(1, 100)), (3.0, data_frame(101, 100))],
    );
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr
            .contains("n/a: roc_auc, pr_auc: every window is below the threshold (one class only)"),
        "{stderr}"
    );
    let r: serde_json::Value = serde_json::from_str(&report.unwrap()).unwrap();
    for who in ["published", "model", "persistence"] {
        assert!(
            r[who]["roc_auc"].is_null() && r[who]["pr_auc"].is_null(),
            "{who}: {}",
            r[who]
        );
        let why = r[who]["undefined"].to_string();
        assert!(why.contains("one class only"), "{who}: {why}");
        // The actual is the same (0) in every forecast window but the last.
        if r[who]["r2"].is_null() {
            assert!(why.contains("r2:"), "{who}: {why}");
        }
    }
    assert!(r["windows"].as_u64().unwrap() > 0, "{r}");
}
