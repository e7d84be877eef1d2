//! The traffic lab's small programs (scripts/lab/run.sh drives them):
//!
//! - `schedule`: print the schedule of (profile, seed, duration) as CSV;
//! - `delayline`: in the router namespace, a TUN device that delays, jitters and
//!   drops packets per the schedule, and re-rates the tbf bottleneck in place;
//! - `sink`: accept TCP connections and discard what arrives;
//! - `send`: bulk TCP senders with a chosen congestion control, on/off capable;
//! - `serve` / `client`: the application profiles (video, web, interactive,
//!   paced, mixture): the client asks, the server answers with data;
//! - `mix`: print what an application profile runs for a seed.
//!
//! Everything is bounded in time and ends by itself; addresses are whatever the
//! caller passes (the lab uses namespaces only).

mod apps;

use clap::{Parser, Subcommand};
use lab::{DelayLine, Step};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "nf-lab", about = "netforecast traffic lab helpers")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a schedule as CSV (time_s,rate_mbps,delay_ms,jitter_ms,loss).
    Schedule {
        #[arg(long)]
        profile: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 60.0)]
        duration_s: f64,
    },
    /// Run the delay line on a new TUN device and play the schedule.
    Delayline {
        /// TUN device to create.
        #[arg(long)]
        tun: String,
        /// Routing table whose default route is set to the TUN device.
        #[arg(long, default_value_t = 100)]
        table: u32,
        /// Schedule CSV.
        #[arg(long)]
        schedule: std::path::PathBuf,
        /// Device whose root tbf qdisc is the bottleneck (re-rated per step).
        #[arg(long)]
        shape_dev: String,
        /// Queue of the bottleneck, in milliseconds at the current rate.
        #[arg(long, default_value_t = 100)]
        queue_ms: u32,
        /// Stop after this many seconds (default: the schedule's end + 2 s).
        #[arg(long)]
        duration_s: Option<f64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Write each step as it is applied, with Unix time, to this CSV.
        #[arg(long)]
        applied: Option<std::path::PathBuf>,
    },
    /// Accept TCP connections on ADDR and discard the data.
    Sink {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 600.0)]
        duration_s: f64,
    },
    /// Bulk TCP senders.
    Send {
        #[arg(long)]
        to: SocketAddr,
        #[arg(long, default_value_t = 1)]
        flows: u32,
        /// Congestion control: reno, cubic or bbr.
        #[arg(long, default_value = "cubic")]
        cc: String,
        #[arg(long)]
        duration_s: f64,
        /// Profile whose on/off pattern the flows follow (only `on-off` switches).
        #[arg(long, default_value = "steps")]
        profile: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Answer application requests (in the sender's namespace).
    Serve {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value = "cubic")]
        cc: String,
        #[arg(long)]
        duration_s: f64,
    },
    /// Run an application profile's clients (in the receiver's namespace).
    Client {
        #[arg(long)]
        to: SocketAddr,
        /// video, web, interactive, paced or mixture.
        #[arg(long)]
        profile: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        duration_s: f64,
    },
    /// Print an application profile's mix for a seed as `key=value` words.
    Mix {
        #[arg(long)]
        profile: String,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Schedule {
            profile,
            seed,
            duration_s,
        } => lab::schedule(&profile, seed, duration_s).map(|s| print!("{}", lab::schedule_csv(&s))),
        Cmd::Delayline {
            tun,
            table,
            schedule,
            shape_dev,
            queue_ms,
            duration_s,
            seed,
            applied,
        } => delayline(
            &tun,
            table,
            &schedule,
            &shape_dev,
            queue_ms,
            duration_s,
            seed,
            applied.as_deref(),
        ),
        Cmd::Sink { listen, duration_s } => sink(listen, duration_s),
        Cmd::Send {
            to,
            flows,
            cc,
            duration_s,
            profile,
            seed,
        } => send(to, flows, &cc, duration_s, &profile, seed),
        Cmd::Serve {
            listen,
            cc,
            duration_s,
        } => apps::serve(listen, &cc, duration_s, stop_flag()),
        Cmd::Client {
            to,
            profile,
            seed,
            duration_s,
        } => apps::client(to, &profile, seed, duration_s, stop_flag()),
        Cmd::Mix { profile, seed } => lab::apps::mix(&profile, seed).map(|m| {
            println!(
                "players={} browsers={} sessions={} paced={} bulk={}",
                m.players, m.browsers, m.sessions, m.paced, m.bulk
            )
        }),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nf-lab: {e}");
            ExitCode::from(1)
        }
    }
}

fn stop_flag() -> Arc<AtomicBool> {
    let f = Arc::new(AtomicBool::new(false));
    for s in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(s, Arc::clone(&f));
    }
    f
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn tbf_args(dev: &str, rate_mbps: f64, queue_ms: u32, verb: &str) -> Vec<String> {
    let rate_kbit = (rate_mbps * 1000.0).round().max(1.0) as u64;
    // Burst: at least one 250 Hz tick of data and a few full frames.
    let burst = ((rate_kbit * 1000 / 8) / 250).max(16_000);
    let limit = (rate_kbit * 1000 / 8 * queue_ms as u64 / 1000).max(3 * 1514) + burst;
    ["qdisc", verb, "dev", dev, "root", "tbf", "rate"]
        .iter()
        .map(|s| s.to_string())
        .chain([
            format!("{rate_kbit}kbit"),
            "burst".into(),
            burst.to_string(),
            "limit".into(),
            limit.to_string(),
        ])
        .collect()
}

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Create a non-persistent TUN device; it disappears when the fd closes.
fn open_tun(name: &str) -> Result<std::fs::File, String> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(format!("TUN name {name:?} must have 1 to 15 characters"));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(|e| format!("cannot open /dev/net/tun: {e} (run as root)"))?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes one struct ifreq, which IfReq lays out.
    let rc = unsafe { libc::ioctl(f.as_raw_fd(), TUNSETIFF, &mut req) };
    if rc < 0 {
        return Err(format!(
            "TUNSETIFF {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: plain fcntl on an fd we own.
    unsafe {
        let fl = libc::fcntl(f.as_raw_fd(), libc::F_GETFL);
        libc::fcntl(f.as_raw_fd(), libc::F_SETFL, fl | libc::O_NONBLOCK);
    }
    Ok(f)
}

fn wait_readable(fd: i32, timeout_ns: i64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (timeout_ns % 1_000_000_000) as libc::c_long,
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd and timespec for the duration of the call.
    unsafe {
        libc::ppoll(&mut pfd, 1, &ts, std::ptr::null());
    }
}

/// Bytes the delay line may hold: 64 MiB is > 1.5 s at 300 Mbit/s.
const MAX_HELD_BYTES: usize = 64 << 20;

#[allow(clippy::too_many_arguments)]
fn delayline(
    tun: &str,
    table: u32,
    schedule: &std::path::Path,
    shape_dev: &str,
    queue_ms: u32,
    duration_s: Option<f64>,
    seed: u64,
    applied: Option<&std::path::Path>,
) -> Result<(), String> {
    let text = std::fs::read_to_string(schedule)
        .map_err(|e| format!("cannot read {}: {e}", schedule.display()))?;
    let steps: Vec<Step> =
        lab::parse_schedule_csv(&text).map_err(|e| format!("{}: {e}", schedule.display()))?;
    let duration_s = duration_s.unwrap_or(steps.last().map(|s| s.t_s).unwrap_or(0.0) + 2.0);
    let mut dev = open_tun(tun)?;
    run("ip", &["link", "set", "dev", tun, "up", "mtu", "1500"])?;
    run(
        "ip",
        &[
            "route",
            "replace",
            "default",
            "dev",
            tun,
            "table",
            &table.to_string(),
        ],
    )?;
    let args = tbf_args(shape_dev, steps[0].rate_mbps, queue_ms, "replace");
    run("tc", &args.iter().map(String::as_str).collect::<Vec<_>>())?;

    // Re-rating runs `tc` (a few ms); a helper thread keeps the packet loop free.
    let (tc_tx, tc_rx) = crossbeam_channel::unbounded::<f64>();
    let shape = shape_dev.to_owned();
    let tc_thread = std::thread::spawn(move || -> Result<u64, String> {
        let mut n = 0;
        for rate in tc_rx.iter() {
            let a = tbf_args(&shape, rate, queue_ms, "change");
            run("tc", &a.iter().map(String::as_str).collect::<Vec<_>>())?;
            n += 1;
        }
        Ok(n)
    });

    let mut applied_csv = match applied {
        Some(p) => {
            let mut f = std::fs::File::create(p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
            let _ = writeln!(f, "time,rate_mbps,delay_ms,jitter_ms,loss");
            Some(f)
        }
        None => None,
    };
    let mut log_step = |st: &Step| {
        if let Some(f) = applied_csv.as_mut() {
            let t = unix_now_ns();
            let _ = writeln!(
                f,
                "{}.{:09},{},{},{},{}",
                t / 1_000_000_000,
                t % 1_000_000_000,
                st.rate_mbps,
                st.delay_ms,
                st.jitter_ms,
                st.loss
            );
        }
    };
    let stop = stop_flag();
    let start = Instant::now();
    log_step(&steps[0]);
    let mut line = DelayLine::new(seed);
    let mut idx = 0usize;
    let mut held: VecDeque<(i64, i64, Vec<u8>)> = VecDeque::new();
    let mut held_bytes = 0usize;
    let mut pool: Vec<Vec<u8>> = Vec::new();
    let (mut n_in, mut n_out, mut n_loss, mut n_overflow) = (0u64, 0u64, 0u64, 0u64);
    let mut delay_sum_ns = 0i128;
    let end_ns = (duration_s * 1e9) as i64;
    let fd = dev.as_raw_fd();
    loop {
        let now = start.elapsed().as_nanos() as i64;
        if now >= end_ns || stop.load(Ordering::Relaxed) {
            break;
        }
        while idx + 1 < steps.len() && (steps[idx + 1].t_s * 1e9) as i64 <= now {
            idx += 1;
            if steps[idx].rate_mbps != steps[idx - 1].rate_mbps {
                let _ = tc_tx.send(steps[idx].rate_mbps);
            }
            log_step(&steps[idx]);
        }
        loop {
            let mut buf = pool.pop().unwrap_or_else(|| vec![0u8; 65536]);
            buf.resize(65536, 0);
            match dev.read(&mut buf) {
                Ok(n) if n > 0 => {
                    n_in += 1;
                    buf.truncate(n);
                    let t = start.elapsed().as_nanos() as i64;
                    match line.admit(t, &steps[idx]) {
                        None => {
                            n_loss += 1;
                            pool.push(buf);
                        }
                        Some(_) if held_bytes + n > MAX_HELD_BYTES => {
                            n_overflow += 1;
                            pool.push(buf);
                        }
                        Some(release) => {
                            held_bytes += n;
                            held.push_back((release, t, buf));
                        }
                    }
                }
                _ => {
                    pool.push(buf);
                    break;
                }
            }
        }
        let now = start.elapsed().as_nanos() as i64;
        while held.front().is_some_and(|(r, _, _)| *r <= now) {
            if let Some((_, arrived, pkt)) = held.pop_front() {
                held_bytes -= pkt.len();
                if dev.write(&pkt).is_ok() {
                    n_out += 1;
                    delay_sum_ns += (now - arrived) as i128;
                }
                pool.push(pkt);
            }
        }
        let next_step = steps
            .get(idx + 1)
            .map(|s| (s.t_s * 1e9) as i64)
            .unwrap_or(end_ns);
        let next_release = held.front().map(|(r, _, _)| *r).unwrap_or(i64::MAX);
        let wake = next_step
            .min(next_release)
            .min(now + 10_000_000)
            .min(end_ns);
        wait_readable(fd, (wake - now).max(0));
    }
    drop(tc_tx);
    let rerates = tc_thread
        .join()
        .map_err(|_| "tc thread panicked".to_string())??;
    let mean_ms = if n_out > 0 {
        delay_sum_ns as f64 / n_out as f64 / 1e6
    } else {
        0.0
    };
    eprintln!(
        "nf-lab delayline: {n_in} packets in, {n_out} out, {n_loss} dropped by the loss model, {n_overflow} by overflow, \
         mean applied delay {mean_ms:.2} ms, {rerates} re-rates, {} steps played",
        idx + 1
    );
    Ok(())
}

fn sink(listen: SocketAddr, duration_s: f64) -> Result<(), String> {
    let l = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stop = stop_flag();
    let start = Instant::now();
    let total = Arc::new(std::sync::atomic::AtomicU64::new(0));
    while start.elapsed().as_secs_f64() < duration_s && !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((mut s, _)) => {
                // No read timeout: outages plus RTO backoff stall a flow for many
                // seconds, and closing it then would end the trace. The process
                // ends at its deadline, which bounds every connection.
                let _ = s.set_nonblocking(false);
                let total = Arc::clone(&total);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 1 << 18];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        total.fetch_add(n as u64, Ordering::Relaxed);
                    }
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
    eprintln!(
        "nf-lab sink: {} bytes received",
        total.load(Ordering::Relaxed)
    );
    Ok(())
}

fn set_cc(s: &TcpStream, cc: &str) -> Result<(), String> {
    // SAFETY: setsockopt with a byte buffer of the given length.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CONGESTION,
            cc.as_ptr() as *const libc::c_void,
            cc.len() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "congestion control {cc:?} is not available: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

fn send(
    to: SocketAddr,
    flows: u32,
    cc: &str,
    duration_s: f64,
    profile: &str,
    seed: u64,
) -> Result<(), String> {
    let stop = stop_flag();
    let start = Instant::now();
    let mut handles = Vec::new();
    for flow in 0..flows {
        let periods = lab::on_periods(profile, seed, flow, duration_s);
        let cc = cc.to_owned();
        let stop = Arc::clone(&stop);
        handles.push(std::thread::spawn(move || -> Result<u64, String> {
            let s = TcpStream::connect_timeout(&to, Duration::from_secs(5))
                .map_err(|e| format!("connect {to}: {e}"))?;
            set_cc(&s, &cc)?;
            s.set_write_timeout(Some(Duration::from_millis(50)))
                .map_err(|e| e.to_string())?;
            let mut s = s;
            let buf = vec![0x5Au8; 1 << 16];
            let mut sent = 0u64;
            for (on, off) in periods {
                while start.elapsed().as_secs_f64() < on {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(sent);
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                while start.elapsed().as_secs_f64() < off && !stop.load(Ordering::Relaxed) {
                    match s.write(&buf) {
                        Ok(n) => sent += n as u64,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) => {}
                        Err(e) => return Err(format!("send to {to}: {e}")),
                    }
                }
            }
            let _ = s.shutdown(std::net::Shutdown::Write);
            Ok(sent)
        }));
    }
    let mut total = 0;
    for h in handles {
        total += h
            .join()
            .map_err(|_| "sender thread panicked".to_string())??;
    }
    eprintln!(
        "nf-lab send: {flows} flows, {cc}, {total} bytes written in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Wall clock in nanoseconds since the Unix epoch (the schedule's time base).
fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}
