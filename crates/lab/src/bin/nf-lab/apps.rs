//! `nf-lab serve` and `nf-lab client`: the I/O side of the application profiles
//! (the models are in `lab::apps`).

use lab::apps::{self, Pace, Request};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Answer requests until `duration_s` has passed: each connection on its own
/// thread, every response written with the congestion control `cc`.
pub fn serve(
    listen: SocketAddr,
    cc: &str,
    duration_s: f64,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let l = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    l.set_nonblocking(true).map_err(|e| e.to_string())?;
    let start = Instant::now();
    let served = Arc::new(AtomicU64::new(0));
    let conns = Arc::new(AtomicU64::new(0));
    while start.elapsed().as_secs_f64() < duration_s && !stop.load(Ordering::Relaxed) {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                super::set_cc(&s, cc)?;
                let _ = s.set_nodelay(true);
                conns.fetch_add(1, Ordering::Relaxed);
                let served = Arc::clone(&served);
                std::thread::spawn(move || answer(s, &served));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
    eprintln!(
        "nf-lab serve: {} connections, {} bytes served",
        conns.load(Ordering::Relaxed),
        served.load(Ordering::Relaxed)
    );
    Ok(())
}

fn set_pacing(s: &TcpStream, bytes_per_s: u32) {
    // SAFETY: setsockopt with a u32 option value of the stated length.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_MAX_PACING_RATE,
            &bytes_per_s as *const u32 as *const libc::c_void,
            std::mem::size_of::<u32>() as libc::socklen_t,
        );
    }
}

/// Serve one connection's requests in order until the client closes it.
fn answer(mut s: TcpStream, served: &AtomicU64) {
    let buf = vec![0xA5u8; 1 << 16];
    let mut req = [0u8; Request::LEN];
    while s.read_exact(&mut req).is_ok() {
        let Some(q) = Request::decode(&req) else {
            return;
        };
        let bytes_per_s = (q.rate_kbps as u64 * 1000 / 8).min(u32::MAX as u64) as u32;
        set_pacing(
            &s,
            if q.pace == Pace::Kernel {
                bytes_per_s
            } else {
                u32::MAX
            },
        );
        let mut left = q.size;
        if q.pace == Pace::Writer {
            // A rate-limited writer: a chunk every tick, at least one 1200-byte
            // chunk per tick, so slow rates tick less often.
            let tick = (1200.0 / bytes_per_s as f64).max(0.01);
            let chunk = ((bytes_per_s as f64 * tick) as u64).max(1);
            let t0 = Instant::now();
            let mut k = 0u64;
            while left > 0 {
                let n = chunk.min(left).min(buf.len() as u64) as usize;
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
                left -= n as u64;
                served.fetch_add(n as u64, Ordering::Relaxed);
                k += 1;
                let next = t0 + Duration::from_secs_f64(tick * k as f64);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        } else {
            while left > 0 {
                let n = left.min(buf.len() as u64) as usize;
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
                left -= n as u64;
                served.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

/// What the client threads share: the deadline, the stop flag, counters.
#[derive(Clone)]
struct Ctx {
    to: SocketAddr,
    start: Instant,
    end: Instant,
    stop: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
    failures: Arc<AtomicU64>,
}

impl Ctx {
    fn over(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.end
    }

    /// Sleep until `at_s` after the start; false if the run ends first.
    fn wait_until(&self, at_s: f64) -> bool {
        let at = self.start + Duration::from_secs_f64(at_s.max(0.0));
        while Instant::now() < at {
            if self.over() {
                return false;
            }
            std::thread::sleep((at - Instant::now()).min(Duration::from_millis(50)));
        }
        !self.over()
    }

    fn connect(&self) -> Option<TcpStream> {
        match TcpStream::connect_timeout(&self.to, Duration::from_secs(3)) {
            Ok(s) => {
                let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = s.set_nodelay(true);
                Some(s)
            }
            Err(_) => {
                self.failures.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// One request and its whole response; false if the run ended or the
    /// connection failed first.
    fn fetch(&self, s: &mut TcpStream, q: Request) -> bool {
        if s.write_all(&q.encode()).is_err() {
            self.failures.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut buf = vec![0u8; 1 << 16];
        let mut left = q.size;
        while left > 0 {
            match s.read(&mut buf[..left.min(1 << 16) as usize]) {
                Ok(0) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
                Ok(n) => {
                    left -= n as u64;
                    self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if self.over() {
                        return false;
                    }
                }
                Err(_) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    return false;
                }
            }
        }
        true
    }
}

/// Run the application mix of `(profile, seed)` against the server at `to`
/// for `duration_s` seconds.
pub fn client(
    to: SocketAddr,
    profile: &str,
    seed: u64,
    duration_s: f64,
    stop: Arc<AtomicBool>,
) -> Result<(), String> {
    let m = apps::mix(profile, seed)?;
    let start = Instant::now();
    let ctx = Ctx {
        to,
        start,
        end: start + Duration::from_secs_f64(duration_s),
        stop,
        bytes: Arc::default(),
        requests: Arc::default(),
        failures: Arc::default(),
    };
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    for p in apps::players(seed, m.players) {
        let c = ctx.clone();
        threads.push(std::thread::spawn(move || play(&c, &p)));
    }
    for b in 0..m.browsers {
        let c = ctx.clone();
        let pages = apps::web_pages(seed.wrapping_add(1000 * b as u64), duration_s);
        threads.push(std::thread::spawn(move || browse(&c, &pages)));
    }
    for i in 0..m.sessions {
        let c = ctx.clone();
        let (conns, reqs) = apps::interactions(seed.wrapping_add(77 * i as u64), duration_s);
        threads.push(std::thread::spawn(move || interact(&c, conns, &reqs)));
    }
    for f in 0..m.paced {
        let c = ctx.clone();
        let streams = apps::paced_streams(seed, f, duration_s);
        threads.push(std::thread::spawn(move || stream(&c, &streams)));
    }
    for t in threads {
        t.join()
            .map_err(|_| "a client thread panicked".to_string())?;
    }
    eprintln!(
        "nf-lab client: {profile} seed {seed}: {m:?}; {} requests, {} bytes, {} failures in {:.1} s",
        ctx.requests.load(Ordering::Relaxed),
        ctx.bytes.load(Ordering::Relaxed),
        ctx.failures.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A video player: fetch segments at the rung the buffer and the last
/// measured throughput allow; pause while the buffer is full.
fn play(c: &Ctx, p: &apps::Player) {
    if !c.wait_until(p.start_s) {
        return;
    }
    let Some(mut s) = c.connect() else { return };
    let mut buffer_s = 0.0f64;
    let mut measured = 0.0f64;
    let mut clock = Instant::now();
    while !c.over() {
        let full_at = p.max_buffer_s - p.segment_s;
        if buffer_s > full_at {
            let wait = buffer_s - full_at;
            if !c.wait_until(c.start.elapsed().as_secs_f64() + wait) {
                return;
            }
        }
        buffer_s = (buffer_s - clock.elapsed().as_secs_f64()).max(0.0);
        clock = Instant::now();
        let kbps = p.choose(buffer_s, measured);
        let size = p.segment_bytes(kbps);
        let t0 = Instant::now();
        if !c.fetch(
            &mut s,
            Request {
                size,
                rate_kbps: 0,
                pace: Pace::Bulk,
            },
        ) {
            return;
        }
        let took = t0.elapsed().as_secs_f64().max(1e-3);
        measured = size as f64 * 8.0 / 1000.0 / took;
        buffer_s = (buffer_s - clock.elapsed().as_secs_f64()).max(0.0) + p.segment_s;
        clock = Instant::now();
    }
}

/// A browser: each page's waves of objects fetched in parallel, one short
/// connection per object; the next page after the think time.
fn browse(c: &Ctx, pages: &[apps::Page]) {
    let mut offset = 0.0;
    for page in pages {
        if !c.wait_until(page.at_s + offset) {
            return;
        }
        let t0 = c.start.elapsed().as_secs_f64();
        for wave in &page.waves {
            let fetches: Vec<_> = wave
                .iter()
                .map(|&size| {
                    let c = c.clone();
                    std::thread::spawn(move || {
                        if let Some(mut s) = c.connect() {
                            c.fetch(
                                &mut s,
                                Request {
                                    size,
                                    rate_kbps: 0,
                                    pace: Pace::Bulk,
                                },
                            );
                        }
                    })
                })
                .collect();
            for f in fetches {
                let _ = f.join();
            }
            if c.over() {
                return;
            }
        }
        // Think time starts when the page has loaded.
        offset += c.start.elapsed().as_secs_f64() - t0;
    }
}

/// An interactive session: small requests on long connections.
fn interact(c: &Ctx, conns: usize, reqs: &[apps::Interaction]) {
    let mut socks: Vec<Option<TcpStream>> = (0..conns).map(|_| c.connect()).collect();
    for q in reqs {
        if !c.wait_until(q.at_s) {
            return;
        }
        if socks[q.conn].is_none() {
            socks[q.conn] = c.connect();
        }
        let Some(s) = socks[q.conn].as_mut() else {
            continue;
        };
        if !c.fetch(
            s,
            Request {
                size: q.size,
                rate_kbps: 0,
                pace: Pace::Bulk,
            },
        ) {
            socks[q.conn] = None;
        }
    }
}

/// A paced flow: each stream is one request at its rate on one connection.
fn stream(c: &Ctx, streams: &[apps::Stream]) {
    let mut s = None;
    for st in streams {
        if !c.wait_until(st.at_s) {
            return;
        }
        if s.is_none() {
            s = c.connect();
        }
        let Some(sock) = s.as_mut() else { continue };
        let size = ((st.rate_kbps as f64 * 1000.0 / 8.0) * st.seconds) as u64;
        if !c.fetch(
            sock,
            Request {
                size: size.max(1),
                rate_kbps: st.rate_kbps,
                pace: st.pace,
            },
        ) {
            s = None;
        }
    }
}
