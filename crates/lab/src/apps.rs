//! Application-shaped traffic: what a video player, a browser, an interactive
//! app or a paced streamer asks a server for, and when.
//!
//! The client (`nf-lab client`, in the receiver's namespace) sends requests; the
//! server (`nf-lab serve`, in the sender's namespace) answers each with the
//! requested number of bytes, as fast as TCP allows or paced. So the data flows
//! sender -> receiver through the bottleneck like the bulk profiles' data, and the
//! gaps, bursts and app limits come from the application, not from the link.
//!
//! Everything here is pure: the random draws are a deterministic function of the
//! seed; only the video player's choices also depend on the throughput it measured.

use crate::Rng;

/// Application profiles (the lab's other profiles are backlogged bulk senders).
pub const APP_PROFILES: [&str; 5] = ["video", "web", "interactive", "paced", "mixture"];

/// How the server sends one response.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As fast as the congestion control allows.
    Bulk,
    /// Kernel pacing: `SO_MAX_PACING_RATE` at the given rate.
    Kernel,
    /// The application writes a small chunk every few milliseconds.
    Writer,
}

/// One request on the wire: 16 bytes, little-endian `size: u64, rate_kbps: u32, pace: u32`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// Bytes the server answers with.
    pub size: u64,
    /// Rate limit for `Kernel` and `Writer` pacing, kbit/s.
    pub rate_kbps: u32,
    /// How to send.
    pub pace: Pace,
}

impl Request {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// Wire form.
    pub fn encode(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&self.size.to_le_bytes());
        b[8..12].copy_from_slice(&self.rate_kbps.to_le_bytes());
        let p: u32 = match self.pace {
            Pace::Bulk => 0,
            Pace::Kernel => 1,
            Pace::Writer => 2,
        };
        b[12..].copy_from_slice(&p.to_le_bytes());
        b
    }

    /// Parse the wire form; `None` for an unknown pacing mode or a zero-size request.
    pub fn decode(b: &[u8; 16]) -> Option<Request> {
        let size = u64::from_le_bytes(b[..8].try_into().ok()?);
        let rate_kbps = u32::from_le_bytes(b[8..12].try_into().ok()?);
        let pace = match u32::from_le_bytes(b[12..].try_into().ok()?) {
            0 => Pace::Bulk,
            1 => Pace::Kernel,
            2 => Pace::Writer,
            _ => return None,
        };
        (size > 0 && (pace == Pace::Bulk || rate_kbps > 0)).then_some(Request {
            size,
            rate_kbps,
            pace,
        })
    }
}

/// A Pareto draw with shape `alpha` and minimum `xm`, capped at `cap`.
pub fn pareto(r: &mut Rng, alpha: f64, xm: f64, cap: f64) -> f64 {
    let u = r.f64().max(1e-12);
    (xm / u.powf(1.0 / alpha)).min(cap)
}

/// One web page load: when it starts, and its objects as waves of parallel
/// fetches (each object its own short connection).
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// Waves in order: the HTML, then the objects it names, then what those name.
    pub waves: Vec<Vec<u64>>,
}

/// The pages a browser loads in `duration_s`: 5-80 objects per page with
/// heavy-tailed sizes (Pareto 1.1 from 1.5 kB, capped at 6 MB) in up to three
/// waves, and log-normal think times (median 4 s, 0.5-40 s) between pages.
pub fn web_pages(seed: u64, duration_s: f64) -> Vec<Page> {
    let mut r = Rng::new(seed ^ 0x5EB_u64);
    let mut t = r.range(0.0, 1.0);
    let mut out = Vec::new();
    while t < duration_s {
        let n = r.log_range(5.0, 81.0) as usize;
        let html = pareto(&mut r, 1.5, 8_000.0, 400_000.0) as u64;
        let mut waves = vec![vec![html]];
        let mut rest = n - 1;
        while rest > 0 {
            let k = if waves.len() == 2 {
                rest
            } else {
                (rest as f64 * r.range(0.4, 0.9)).ceil() as usize
            };
            let k = k.clamp(1, rest);
            waves.push(
                (0..k)
                    .map(|_| pareto(&mut r, 1.1, 1500.0, 6e6) as u64)
                    .collect(),
            );
            rest -= k;
        }
        out.push(Page { at_s: t, waves });
        // Reading the page: think time after it is loaded (the loader waits for the load).
        t += (4.0f64.ln() + 0.9 * r.normal()).exp().clamp(0.5, 40.0);
    }
    out
}

/// An interactive session: small requests at random times on a few long
/// connections (chat, API calls, a remote shell), with idle stretches.
#[derive(Clone, Debug, PartialEq)]
pub struct Interaction {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// Which of the session's connections carries it.
    pub conn: usize,
    /// Response bytes.
    pub size: u64,
}

/// Requests of an interactive session: 1-4 connections; Poisson arrivals at a
/// per-seed mean gap of 50 ms-1 s; log-normal sizes (median 1.5 kB, 100 B-200 kB);
/// every few seconds a chance of an idle stretch of 3-30 s.
pub fn interactions(seed: u64, duration_s: f64) -> (usize, Vec<Interaction>) {
    let mut r = Rng::new(seed ^ 0x1A7E_u64);
    let conns = 1 + (r.f64() * 4.0) as usize;
    let mean_gap = r.log_range(0.05, 1.0);
    let mut t = 0.0;
    let mut out = Vec::new();
    while t < duration_s {
        t += -mean_gap * r.f64().max(1e-9).ln();
        if r.f64() < 0.01 {
            t += r.range(3.0, 30.0);
        }
        if t >= duration_s {
            break;
        }
        let size = (1500f64.ln() + 1.3 * r.normal())
            .exp()
            .clamp(100.0, 200_000.0) as u64;
        out.push(Interaction {
            at_s: t,
            conn: (r.f64() * conns as f64) as usize % conns,
            size,
        });
    }
    (conns, out)
}

/// One paced stream: from `at_s`, `seconds` long, at `rate_kbps`, then idle.
#[derive(Clone, Debug, PartialEq)]
pub struct Stream {
    /// Seconds from the start of the run.
    pub at_s: f64,
    /// How long it sends.
    pub seconds: f64,
    /// Its rate.
    pub rate_kbps: u32,
    /// Kernel pacing or a rate-limited writer.
    pub pace: Pace,
}

/// Streams of one paced flow: rates log-uniform 50 kbit/s-5 Mbit/s, 2-60 s on,
/// 1-30 s idle (long idle stretches), kernel pacing or a rate-limited writer.
pub fn paced_streams(seed: u64, flow: u32, duration_s: f64) -> Vec<Stream> {
    let mut r = Rng::new(seed ^ 0xFACE_u64 ^ ((flow as u64) << 32));
    let mut t = r.range(0.0, 3.0);
    let mut out = Vec::new();
    while t < duration_s {
        let seconds = r.range(2.0, 60.0).min(duration_s - t);
        let rate_kbps = r.log_range(50.0, 5000.0) as u32;
        let pace = if r.f64() < 0.5 {
            Pace::Kernel
        } else {
            Pace::Writer
        };
        out.push(Stream {
            at_s: t,
            seconds,
            rate_kbps,
            pace,
        });
        t += seconds + r.log_range(1.0, 30.0);
    }
    out
}

/// A video player's fixed choices for one session.
#[derive(Clone, Debug, PartialEq)]
pub struct Player {
    /// Seconds of media per segment (2-10).
    pub segment_s: f64,
    /// Bitrate ladder, kbit/s, ascending.
    pub ladder: Vec<u32>,
    /// Buffer below which the player fetches the lowest rung, seconds.
    pub reservoir_s: f64,
    /// Buffer above which it fetches the highest rung it can sustain, seconds.
    pub cushion_s: f64,
    /// The player stops fetching while the buffer holds this much, seconds.
    pub max_buffer_s: f64,
    /// Seconds from the start of the run when it starts.
    pub start_s: f64,
}

/// The bitrate ladder the players draw from (kbit/s), a common streaming one.
pub const LADDER_KBPS: [u32; 10] = [235, 375, 560, 750, 1050, 1750, 2350, 3000, 4300, 5800];

/// `n` players: each with a segment length of 2, 4, 6 or 10 s, a top rung of
/// 1.75-5.8 Mbit/s, a 6-15 s reservoir, and a buffer cap of 20-60 s.
pub fn players(seed: u64, n: usize) -> Vec<Player> {
    let mut r = Rng::new(seed ^ 0x71DE0_u64);
    (0..n)
        .map(|i| {
            let segment_s = [2.0, 4.0, 6.0, 10.0][(r.f64() * 4.0) as usize % 4];
            let top = 5 + (r.f64() * 5.0) as usize % 5;
            let reservoir_s = r.range(6.0, 15.0).max(segment_s);
            let max_buffer_s = r.range(20.0, 60.0).max(reservoir_s + 3.0 * segment_s);
            Player {
                segment_s,
                ladder: LADDER_KBPS[..=top].to_vec(),
                reservoir_s,
                cushion_s: (max_buffer_s * 0.8).max(reservoir_s + segment_s),
                max_buffer_s,
                start_s: if i == 0 {
                    r.range(0.0, 1.0)
                } else {
                    r.range(0.0, 20.0)
                },
            }
        })
        .collect()
}

impl Player {
    /// Buffer-based choice (BBA): the lowest rung below the reservoir, the top
    /// rung above the cushion, linear in between; never above 0.9 of the
    /// throughput the last segment measured (0 when nothing was measured yet).
    pub fn choose(&self, buffer_s: f64, measured_kbps: f64) -> u32 {
        let lo = self.ladder[0];
        let frac =
            ((buffer_s - self.reservoir_s) / (self.cushion_s - self.reservoir_s)).clamp(0.0, 1.0);
        let by_buffer = self.ladder[((self.ladder.len() - 1) as f64 * frac).floor() as usize];
        let cap = if measured_kbps > 0.0 {
            0.9 * measured_kbps
        } else {
            f64::INFINITY
        };
        self.ladder
            .iter()
            .copied()
            .filter(|&k| k <= by_buffer && (k as f64) <= cap)
            .max()
            .unwrap_or(lo)
    }

    /// Bytes of one segment at `kbps`.
    pub fn segment_bytes(&self, kbps: u32) -> u64 {
        (kbps as f64 * 1000.0 / 8.0 * self.segment_s) as u64
    }
}

/// What runs in one application profile's run: players, browsers, sessions,
/// paced flows and background bulk flows.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    /// Concurrent video players (each one connection).
    pub players: usize,
    /// Browsers (each loads pages independently).
    pub browsers: usize,
    /// Interactive sessions.
    pub sessions: usize,
    /// Paced flows.
    pub paced: u32,
    /// Backlogged background flows (`nf-lab send`), whole run.
    pub bulk: u32,
}

/// The mix of an application profile for a seed. `mixture` puts 1-2 background
/// bulk flows under one or two of the foreground applications.
pub fn mix(profile: &str, seed: u64) -> Result<Mix, String> {
    let mut r = Rng::new(seed ^ 0x313_u64);
    let mut m = Mix {
        players: 0,
        browsers: 0,
        sessions: 0,
        paced: 0,
        bulk: 0,
    };
    let pick = |r: &mut Rng, lo: usize, hi: usize| {
        lo + (r.f64() * (hi - lo + 1) as f64) as usize % (hi - lo + 1)
    };
    match profile {
        "video" => m.players = pick(&mut r, 1, 3),
        "web" => m.browsers = pick(&mut r, 1, 2),
        "interactive" => m.sessions = pick(&mut r, 1, 3),
        "paced" => m.paced = pick(&mut r, 1, 3) as u32,
        "mixture" => {
            m.bulk = pick(&mut r, 1, 2) as u32;
            match pick(&mut r, 0, 3) {
                0 => m.players = pick(&mut r, 1, 2),
                1 => m.browsers = 1,
                2 => m.sessions = pick(&mut r, 1, 2),
                _ => {
                    m.players = 1;
                    m.browsers = 1;
                }
            }
        }
        other => {
            return Err(format!(
                "unknown application profile {other:?}; choose one of: {}",
                APP_PROFILES.join(", ")
            ));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_reject_nonsense() {
        for pace in [Pace::Bulk, Pace::Kernel, Pace::Writer] {
            let q = Request {
                size: 123_456,
                rate_kbps: 800,
                pace,
            };
            assert_eq!(Request::decode(&q.encode()), Some(q));
        }
        let mut b = Request {
            size: 1,
            rate_kbps: 1,
            pace: Pace::Bulk,
        }
        .encode();
        b[12] = 9;
        assert_eq!(Request::decode(&b), None);
        assert_eq!(Request::decode(&[0; 16]), None, "zero size");
        let paced_without_rate = Request {
            size: 10,
            rate_kbps: 0,
            pace: Pace::Kernel,
        };
        assert_eq!(Request::decode(&paced_without_rate.encode()), None);
    }

    #[test]
    fn web_pages_are_bursts_of_heavy_tailed_objects() {
        let pages = web_pages(4, 600.0);
        assert_eq!(pages, web_pages(4, 600.0));
        assert!(pages.len() > 40, "{}", pages.len());
        let mut sizes = Vec::new();
        for w in pages.windows(2) {
            assert!(w[1].at_s - w[0].at_s >= 0.5);
        }
        for p in &pages {
            let n: usize = p.waves.iter().map(Vec::len).sum();
            assert!((5..=80).contains(&n), "{n}");
            assert!(p.waves.len() <= 3 && p.waves[0].len() == 1);
            sizes.extend(p.waves.iter().flatten().copied());
        }
        sizes.sort_unstable();
        let median = sizes[sizes.len() / 2];
        let p99 = sizes[sizes.len() * 99 / 100];
        assert!(
            median < 5_000 && p99 > 25 * median,
            "median {median} p99 {p99}"
        );
    }

    #[test]
    fn paced_streams_stay_within_rates_and_idle_between() {
        let s = paced_streams(9, 1, 900.0);
        assert!(s.len() > 10);
        for w in s.windows(2) {
            assert!(w[1].at_s >= w[0].at_s + w[0].seconds + 1.0);
        }
        assert!(s.iter().all(|x| (50..=5000).contains(&x.rate_kbps)));
        assert!(
            s.iter().any(|x| x.pace == Pace::Kernel) && s.iter().any(|x| x.pace == Pace::Writer)
        );
    }

    #[test]
    fn video_player_follows_its_buffer_and_the_measured_rate() {
        let p = &players(2, 1)[0];
        assert_eq!(p.choose(0.0, 0.0), p.ladder[0], "empty buffer: lowest rung");
        assert_eq!(p.choose(p.max_buffer_s, 1e9), *p.ladder.last().unwrap());
        assert!(
            p.choose(p.max_buffer_s, 1000.0) <= 900,
            "capped by the measured rate"
        );
        let mid = p.choose((p.reservoir_s + p.cushion_s) / 2.0, 1e9);
        assert!(mid > p.ladder[0] && mid < *p.ladder.last().unwrap());
        assert_eq!(p.segment_bytes(1000), (125_000.0 * p.segment_s) as u64);
    }

    #[test]
    fn interactive_sessions_are_small_and_sometimes_idle() {
        let (conns, reqs) = interactions(3, 600.0);
        assert!((1..=4).contains(&conns));
        assert!(
            reqs.iter()
                .all(|q| q.conn < conns && (100..=200_000).contains(&q.size))
        );
        assert!(reqs.windows(2).all(|w| w[1].at_s >= w[0].at_s));
    }

    #[test]
    fn every_app_profile_has_a_mix() {
        for p in APP_PROFILES {
            for seed in 0..20 {
                let m = mix(p, seed).unwrap();
                assert!(
                    m.players + m.browsers + m.sessions + m.paced as usize > 0,
                    "{p}"
                );
                assert_eq!(m.bulk > 0, p == "mixture");
            }
        }
        assert!(mix("bulk", 1).is_err());
    }
}
