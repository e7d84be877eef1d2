//! The traffic lab's pure parts: bottleneck schedules and the delay line's
//! decisions. The I/O (TUN device, sockets, `tc`) lives in `src/bin/nf-lab/`.
//!
//! A schedule is a list of steps `(time, rate, delay, jitter, loss)` and is a
//! deterministic function of `(profile, seed, duration)`, so every trace in a
//! corpus can be made again and every window has a ground-truth capacity.

use std::fmt::Write as _;

pub mod apps;

pub use engine::rng::Rng;

/// Lowest and highest bottleneck rates a profile may use, Mbit/s (issue 3).
pub const MIN_RATE_MBPS: f64 = 1.0;
pub const MAX_RATE_MBPS: f64 = 300.0;
/// Rate used for an outage: tbf needs a positive rate; 0.05 Mbit/s is a dead link.
pub const OUTAGE_RATE_MBPS: f64 = 0.05;

/// One step of a schedule: from `t_s` on, these conditions hold.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct Step {
    pub t_s: f64,
    pub rate_mbps: f64,
    pub delay_ms: f64,
    pub jitter_ms: f64,
    pub loss: f64,
}

pub const PROFILES: [&str; 9] = [
    "steps",
    "ramps",
    "random-walk",
    "outages",
    "cellular",
    "loss-bursts",
    "delay-steps",
    "on-off",
    "steady",
];

/// What a profile looks like, for `--help` and the README.
pub fn describe(profile: &str) -> &'static str {
    match profile {
        "steps" => "rate jumps to a new log-uniform level (1-300 Mbit/s) every 2-6 s; fixed delay",
        "ramps" => "rate glides linearly between random levels over 3-8 s, in 100 ms steps",
        "random-walk" => {
            "rate takes a geometric random walk every 200 ms (sd 12 %), within 2-200 Mbit/s"
        }
        "outages" => "a steady rate broken by 0.3-3 s outages every 4-10 s",
        "cellular" => "log-normal AR(1) rate at 100 ms with deep fades, plus jitter",
        "loss-bursts" => "steady rate with 100-800 ms bursts of 5-30 % loss",
        "delay-steps" => "steady rate, one-way delay stepping between 5 and 200 ms every 3-8 s",
        "on-off" => "steady rate; the senders switch on and off (see `nf-lab send --on-off`)",
        "steady" => "one log-uniform rate (5-300 Mbit/s) and delay for the whole run: steady bulk",
        "video" => "1-3 video players: segments of 2-10 s at a buffer-based bitrate ladder, on/off",
        "web" => "page loads: bursts of 5-80 short parallel flows, heavy-tailed sizes, think times",
        "interactive" => "small requests and responses on 1-4 long connections, idle stretches",
        "paced" => "1-3 paced or rate-limited streams at 50 kbit/s-5 Mbit/s, long idle periods",
        "mixture" => "1-2 backlogged background flows under video, web or interactive traffic",
        _ => "unknown profile",
    }
}

/// Build the schedule for `(profile, seed, duration_s)`. Errors name the profiles.
pub fn schedule(profile: &str, seed: u64, duration_s: f64) -> Result<Vec<Step>, String> {
    let mut r = Rng::new(seed ^ fnv(profile));
    let base_delay = r.range(5.0, 60.0).round();
    let mut steps = Vec::new();
    let mut t = 0.0;
    let step = |t: f64, rate: f64, delay: f64, jitter: f64, loss: f64| Step {
        t_s: (t * 1000.0).round() / 1000.0,
        rate_mbps: (rate.clamp(OUTAGE_RATE_MBPS, MAX_RATE_MBPS) * 1000.0).round() / 1000.0,
        // Whole milliseconds, except for LAN-like delays under 2 ms.
        delay_ms: if delay < 2.0 {
            (delay * 100.0).round() / 100.0
        } else {
            delay.round()
        },
        jitter_ms: (jitter * 10.0).round() / 10.0,
        loss: (loss * 1e4).round() / 1e4,
    };
    match profile {
        "steps" => {
            while t < duration_s {
                steps.push(step(
                    t,
                    r.log_range(MIN_RATE_MBPS, MAX_RATE_MBPS),
                    base_delay,
                    0.0,
                    0.0,
                ));
                t += r.range(2.0, 6.0);
            }
        }
        "ramps" => {
            let mut from = r.log_range(2.0, 200.0);
            while t < duration_s {
                let to = r.log_range(2.0, 200.0);
                let len = r.range(3.0, 8.0);
                let n = (len / 0.1).round().max(1.0) as usize;
                for i in 0..n {
                    if t >= duration_s {
                        break;
                    }
                    let rate = from + (to - from) * i as f64 / n as f64;
                    steps.push(step(t, rate, base_delay, 0.0, 0.0));
                    t += 0.1;
                }
                from = to;
            }
        }
        "random-walk" => {
            let mut rate = r.log_range(5.0, 100.0);
            while t < duration_s {
                steps.push(step(t, rate, base_delay, 0.0, 0.0));
                rate = (rate * (0.12 * r.normal()).exp()).clamp(2.0, 200.0);
                t += 0.2;
            }
        }
        "outages" => {
            let rate = r.log_range(5.0, 150.0);
            while t < duration_s {
                steps.push(step(t, rate, base_delay, 0.0, 0.0));
                t += r.range(4.0, 10.0);
                if t >= duration_s {
                    break;
                }
                steps.push(step(t, OUTAGE_RATE_MBPS, base_delay, 0.0, 0.0));
                t += r.range(0.3, 3.0);
            }
        }
        "cellular" => {
            let mean_ln = r.log_range(5.0, 60.0).ln();
            let mut x = 0.0f64;
            while t < duration_s {
                x = 0.9 * x + 0.35 * r.normal();
                let fade = if r.f64() < 0.01 { -2.5 } else { 0.0 };
                let rate = (mean_ln + x + fade).exp().clamp(1.0, 150.0);
                steps.push(step(t, rate, base_delay, r.range(1.0, 8.0), 0.0));
                t += 0.1;
            }
        }
        "loss-bursts" => {
            let rate = r.log_range(5.0, 100.0);
            while t < duration_s {
                steps.push(step(t, rate, base_delay, 0.0, 0.0));
                t += r.range(2.0, 6.0);
                if t >= duration_s {
                    break;
                }
                steps.push(step(t, rate, base_delay, 0.0, r.range(0.05, 0.30)));
                t += r.range(0.1, 0.8);
            }
        }
        "delay-steps" => {
            let rate = r.log_range(5.0, 100.0);
            while t < duration_s {
                steps.push(step(t, rate, r.log_range(5.0, 200.0), 0.0, 0.0));
                t += r.range(3.0, 8.0);
            }
        }
        "on-off" => {
            steps.push(step(0.0, r.log_range(10.0, 150.0), base_delay, 0.0, 0.0));
        }
        "steady" => {
            steps.push(step(0.0, r.log_range(5.0, 300.0), base_delay, 0.0, 0.0));
        }
        p if apps::APP_PROFILES.contains(&p) => {
            // The network under an application: a LAN-to-intercontinental base
            // delay (one way, 0.05-300 ms, log-uniform), and either a steady
            // rate that moves every 10-40 s or a cellular-like AR(1) rate.
            let delay = r.log_range(0.05, 300.0);
            let mean = r.log_range(3.0, 100.0);
            if r.f64() < 0.6 {
                while t < duration_s {
                    let rate = mean * (0.5 * r.normal()).exp();
                    steps.push(step(t, rate.max(MIN_RATE_MBPS), delay, 0.0, 0.0));
                    t += r.range(10.0, 40.0);
                }
            } else {
                let mut x = 0.0f64;
                while t < duration_s {
                    x = 0.95 * x + 0.25 * r.normal();
                    let rate = (mean.ln() + x).exp().clamp(MIN_RATE_MBPS, 150.0);
                    steps.push(step(
                        t,
                        rate,
                        delay,
                        r.range(0.0, 0.2 * delay.min(20.0)),
                        0.0,
                    ));
                    t += 0.5;
                }
            }
        }
        other => {
            return Err(format!(
                "unknown profile {other:?}; choose one of: {}, {}",
                PROFILES.join(", "),
                apps::APP_PROFILES.join(", ")
            ));
        }
    }
    Ok(steps)
}

/// The on/off pattern of sender `flow` for the on-off profile: `(start, stop)`
/// periods in seconds. Other profiles keep every flow on for the whole run.
pub fn on_periods(profile: &str, seed: u64, flow: u32, duration_s: f64) -> Vec<(f64, f64)> {
    if profile != "on-off" {
        return vec![(0.0, duration_s)];
    }
    let mut r = Rng::new(seed ^ fnv(profile) ^ (0xA5A5 + flow as u64));
    let mut out = Vec::new();
    let mut t = r.range(0.0, 2.0);
    while t < duration_s {
        let on = r.range(1.0, 6.0);
        out.push((t, (t + on).min(duration_s)));
        t += on + r.range(0.5, 4.0);
    }
    out
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Schedule as CSV (`time_s,rate_mbps,delay_ms,jitter_ms,loss`), the file written
/// beside each trace.
pub fn schedule_csv(steps: &[Step]) -> String {
    let mut s = String::from("time_s,rate_mbps,delay_ms,jitter_ms,loss\n");
    for st in steps {
        let _ = writeln!(
            s,
            "{},{},{},{},{}",
            st.t_s, st.rate_mbps, st.delay_ms, st.jitter_ms, st.loss
        );
    }
    s
}

/// Parse a schedule CSV written by [`schedule_csv`].
pub fn parse_schedule_csv(text: &str) -> Result<Vec<Step>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let v: Result<Vec<f64>, _> = line.split(',').map(|x| x.trim().parse::<f64>()).collect();
        match v.as_deref() {
            Ok([t, rate, delay, jitter, loss]) => out.push(Step {
                t_s: *t,
                rate_mbps: *rate,
                delay_ms: *delay,
                jitter_ms: *jitter,
                loss: *loss,
            }),
            _ => {
                return Err(format!(
                    "line {}: expected time_s,rate_mbps,delay_ms,jitter_ms,loss",
                    i + 1
                ));
            }
        }
    }
    if out.is_empty() {
        return Err("the schedule has no steps".into());
    }
    Ok(out)
}

/// The delay line's per-packet decisions: drop or release time. Releases never
/// go backwards, so jitter delays packets without reordering them (as a real
/// link's queue would).
pub struct DelayLine {
    rng: Rng,
    last_release_ns: i64,
}

impl DelayLine {
    pub fn new(seed: u64) -> Self {
        DelayLine {
            rng: Rng::new(seed),
            last_release_ns: i64::MIN,
        }
    }

    /// `None`: drop the packet. Otherwise the time to release it.
    pub fn admit(&mut self, now_ns: i64, step: &Step) -> Option<i64> {
        if step.loss > 0.0 && self.rng.f64() < step.loss {
            return None;
        }
        let jitter_ms = if step.jitter_ms > 0.0 {
            step.jitter_ms * self.rng.normal()
        } else {
            0.0
        };
        let d_ns = ((step.delay_ms + jitter_ms).max(0.0) * 1e6) as i64;
        let release = (now_ns + d_ns).max(self.last_release_ns);
        self.last_release_ns = release;
        Some(release)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_are_deterministic_and_within_bounds() {
        for p in PROFILES.iter().chain(&apps::APP_PROFILES) {
            let p = *p;
            let a = schedule(p, 7, 60.0).unwrap();
            assert_eq!(a, schedule(p, 7, 60.0).unwrap(), "{p}");
            assert!(!a.is_empty());
            assert_eq!(a[0].t_s, 0.0);
            for w in a.windows(2) {
                assert!(w[1].t_s > w[0].t_s, "{p}: times increase");
            }
            for s in &a {
                assert!(s.t_s < 60.0);
                assert!(
                    (OUTAGE_RATE_MBPS..=MAX_RATE_MBPS).contains(&s.rate_mbps),
                    "{p}: {s:?}"
                );
                assert!((0.0..=300.0).contains(&s.delay_ms) && (0.0..1.0).contains(&s.loss));
            }
            assert_eq!(parse_schedule_csv(&schedule_csv(&a)).unwrap(), a);
        }
        assert!(schedule("nope", 1, 10.0).is_err());
        assert_ne!(
            schedule("steps", 1, 60.0).unwrap(),
            schedule("steps", 2, 60.0).unwrap()
        );
    }

    #[test]
    fn delay_line_loss_rate_and_order() {
        let mut d = DelayLine::new(3);
        let st = Step {
            t_s: 0.0,
            rate_mbps: 10.0,
            delay_ms: 40.0,
            jitter_ms: 5.0,
            loss: 0.1,
        };
        let mut kept = 0;
        let mut last = i64::MIN;
        for i in 0..100_000i64 {
            if let Some(r) = d.admit(i * 100_000, &st) {
                kept += 1;
                assert!(r >= last);
                last = r;
            }
        }
        let loss = 1.0 - kept as f64 / 100_000.0;
        assert!((loss - 0.1).abs() < 0.01, "{loss}");
    }

    #[test]
    fn on_off_periods_alternate() {
        let p = on_periods("on-off", 5, 0, 60.0);
        assert!(p.len() > 3);
        for w in p.windows(2) {
            assert!(w[1].0 > w[0].1);
        }
        assert_eq!(on_periods("steps", 5, 0, 60.0), vec![(0.0, 60.0)]);
    }
}
