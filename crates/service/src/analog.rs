//! The analog expert: a stream's own past as its forecaster (the method of
//! analogues). The last [`PATTERN`] changes of the throughput (or the last
//! one, [`SHORT_PATTERN`], for the second such expert) are looked up in
//! the stream's last [`HISTORY`] windows; the [`MATCHES`] moments that moved
//! most alike, at a level most alike, say what comes next: the forecast is the
//! current window plus the median of the changes that followed them, each
//! weighted by how near its moment was.
//!
//! Traffic repeats itself at scales no fixed smoother knows: a player fetches
//! a segment every few seconds, congestion control saws up and halves, BBR
//! cycles its pacing gain, a request/response client asks, waits and asks
//! again. The combination in [`crate::online`] weighs this expert by its
//! recent errors like any other, so where the past does not repeat it loses
//! its weight.
//!
//! Owns the history of one stream; both lookups cost about 2 us a window
//! (see `benches/README.md`).

/// Windows of history searched (51.2 s at 50 ms). Chosen on the development
/// captures (see `crate::online`'s `ANALOG_PRIOR`): pooled published MASE
/// 0.8786 / 0.8707 / 0.8575 / 0.8569 with 128 / 512 / 1024 / 2048 (the first
/// two with 10 matches).
pub const HISTORY: usize = 1024;
/// Changes in a pattern (so `PATTERN + 1` windows): 0.8665 / 0.8713 / 0.8696
/// with 3 / 4 / 6 (512 windows, 10 matches); 0.8563 with 5 at 1024 windows.
pub const PATTERN: usize = 4;
/// The changes in the pattern of the short analog (`crate::online` runs
/// both): with the 4-change one kept, a second one of 0 / 1 / 2 / 3 / 8 / 12
/// changes (prior 0.2) gives 0.8483 / 0.8343 / 0.8416 / 0.8389 / 0.8438 /
/// 0.8455 (0.8482 without it): what followed the same step from the same
/// level, the finest match, beside the shape of the last four.
pub const SHORT_PATTERN: usize = 1;
/// Moments whose sequels are combined (see [`NEAREST_SHARE`]). With their
/// plain mean: 0.8603 / 0.8610 / 0.8713 with 3 / 5 / 10 (512 windows), 0.8573
/// / 0.8568 with 5 / 7 at 1,024; their median 0.8528 / 0.8536 / 0.8539 with
/// 5 / 7 / 9; the mean weighted by nearness 0.8488 / 0.8505 / 0.8528 with 7 /
/// 9 / 10; the weighted median 0.8480 / 0.8487 / 0.8483 / 0.8503 / 0.8481
/// with 5 / 7 / 9 / 11 / 15 (kept: 9, the largest capture 1.006 against
/// 1.015 with 5).
pub const MATCHES: usize = 9;
/// A moment's weight is 1 / (its distance + this share of the nearest one's
/// + 0.001): 0.8484 / 0.8483 / 0.8497 at 0.02 / 0.1 / 0.5 (9 matches).
pub const NEAREST_SHARE: f32 = 0.1;
/// A moment's distance is the sum of the absolute differences of its changes
/// from the pattern's plus this times the difference of its level from the
/// current window's: 0.8763 without the level, 0.8700 / 0.8609 / 0.8597 /
/// 0.8600 at 0.5 / 0.25 / 1 / 2 (the first two with 512 windows, 5 matches,
/// prior 0.1, the rest with 512, 5, 0.2).
pub const LEVEL_WEIGHT: f32 = 0.5;

/// The history of one stream, and its forecasts.
#[derive(Clone, Debug, Default)]
pub struct Analog {
    /// Throughput per window, Mbit/s, oldest first; between `HISTORY` and
    /// twice that long once full (the oldest half is dropped in one move),
    /// of which the last `HISTORY` are searched.
    past: Vec<f32>,
    /// Each window's change from the one before (0 for the first), aligned
    /// with `past`.
    changes: Vec<f32>,
    /// The newest window's throughput as it came (the base of the forecasts).
    current_mbps: f64,
}

impl Analog {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget the history (a gap in the grid: what came before does not join
    /// what comes after).
    pub fn clear(&mut self) {
        self.past.clear();
        self.changes.clear();
        self.current_mbps = 0.0;
    }

    /// Window `t`'s throughput (0 for a silent window) joins the history.
    pub fn push(&mut self, current_mbps: f64) {
        if self.past.len() == 2 * HISTORY {
            self.past.drain(..HISTORY);
            self.changes.drain(..HISTORY);
        }
        let x = current_mbps as f32;
        self.changes.push(self.past.last().map_or(0.0, |l| x - l));
        self.past.push(x);
        self.current_mbps = current_mbps;
    }

    /// The forecasts of window `t + 1` from the moments that moved like the
    /// last [`PATTERN`] changes and like the last [`SHORT_PATTERN`] ones, in
    /// that order. Persistence until the history holds more than a pattern
    /// per match (and with no history, 0).
    pub fn forecasts(&self) -> [f64; 2] {
        const { assert!(SHORT_PATTERN <= PATTERN) };
        let from = self.past.len().saturating_sub(HISTORY);
        let (v, dv) = (&self.past[from..], &self.changes[from..]);
        let n = v.len();
        let Some(&x) = v.last() else {
            return [0.0; 2];
        };
        let current_mbps = self.current_mbps;
        if n < SHORT_PATTERN + MATCHES + 2 {
            return [current_mbps; 2];
        }
        // The moments are windows `j` in pattern..n - 1 (each followed by a
        // window in the past, and with `pattern` changes of its own in the
        // history). Their distances are summed a term at a time over all of
        // them, which the compiler turns into vector arithmetic: the level's,
        // the short pattern's, whose nearest are then taken, and the rest of
        // the long one's (the same sums in the same order as one at a time).
        let moments = SHORT_PATTERN..n - 1;
        let mut dist = [0f32; HISTORY];
        let dist = &mut dist[..moments.len()];
        for (d, past) in dist.iter_mut().zip(&v[moments.clone()]) {
            *d = LEVEL_WEIGHT * (past - x).abs();
        }
        let add_change = |dist: &mut [f32], i: usize| {
            let p = dv[n - 1 - i];
            let start = n - 1 - dist.len();
            for (d, c) in dist.iter_mut().zip(&dv[start - i..n - 1 - i]) {
                *d += (c - p).abs();
            }
        };
        for i in 0..SHORT_PATTERN {
            add_change(dist, i);
        }
        let short = sequel(&nearest(dist, moments.start), dv, current_mbps);
        if n < PATTERN + MATCHES + 2 {
            return [current_mbps, short];
        }
        let long = &mut dist[PATTERN - SHORT_PATTERN..];
        for i in SHORT_PATTERN..PATTERN {
            add_change(long, i);
        }
        [sequel(&nearest(long, PATTERN), dv, current_mbps), short]
    }
}

/// The [`MATCHES`] smallest of `dist` as (distance, moment), the moment of
/// `dist[k]` being `first + k`; nearest first and, of equal distances, the
/// most recent. Scanned newest first in blocks whose least distance is
/// checked first: once the matches are near, most blocks hold none nearer.
fn nearest(dist: &[f32], first: usize) -> [(f32, usize); MATCHES] {
    const BLOCK: usize = 8;
    let mut best = [(f32::INFINITY, 0usize); MATCHES];
    let mut end = dist.len();
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &dist[start..end];
        if block.iter().fold(f32::INFINITY, |m, d| m.min(*d)) < best[MATCHES - 1].0 {
            for (k, &d) in block.iter().enumerate().rev() {
                if d < best[MATCHES - 1].0 {
                    let mut m = MATCHES - 1;
                    while m > 0 && best[m - 1].0 > d {
                        best[m] = best[m - 1];
                        m -= 1;
                    }
                    best[m] = (d, first + start + k);
                }
            }
        }
        end = start;
    }
    best
}

/// The forecast from the matches: the current throughput plus the median of
/// the changes that followed them, each weighted by how near it was (the
/// nearest not infinitely: [`NEAREST_SHARE`] of its distance is added to
/// every one): the least absolute error, not led by one moment that went
/// another way. At least 0.
fn sequel(best: &[(f32, usize); MATCHES], changes: &[f32], current_mbps: f64) -> f64 {
    let floor = 1e-3 + NEAREST_SHARE * best[0].0;
    let mut next = best.map(|(d, j)| (changes[j + 1], 1.0 / (d + floor)));
    next.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = 0.5 * next.iter().map(|n| n.1).sum::<f32>();
    let mut below = 0.0;
    let change = next
        .iter()
        .find(|n| {
            below += n.1;
            below >= half
        })
        .map_or(0.0, |n| n.0);
    (current_mbps + f64::from(change)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pattern_seen_before_is_forecast_to_go_on_as_it_did() {
        // A sawtooth: up 10 a window for four windows, then back to 10.
        // Once every phase has been seen MATCHES times, each is forecast
        // exactly; a persistence forecast would miss every window.
        let saw = |t: usize| 10.0 + 10.0 * (t % 5) as f64;
        let mut a = Analog::new();
        for t in 0..60 {
            a.push(saw(t));
            let f = a.forecasts()[0];
            if t >= PATTERN + 5 * MATCHES {
                assert_eq!(f, saw(t + 1), "window {t}");
            }
        }
    }

    #[test]
    fn a_short_history_is_persistence_and_a_cleared_one_starts_again() {
        let mut a = Analog::new();
        assert_eq!(a.forecasts(), [0.0; 2]);
        // A ramp: once the history holds enough, both forecast its next step.
        for t in 0..(SHORT_PATTERN + MATCHES + 1) {
            a.push(t as f64 * 3.1);
            assert_eq!(a.forecasts(), [t as f64 * 3.1; 2]);
        }
        for t in (SHORT_PATTERN + MATCHES + 1)..40 {
            a.push(t as f64 * 3.1);
        }
        let next = 40.0 * 3.1;
        assert!(a.forecasts().iter().all(|f| (f - next).abs() < 1e-3));
        a.clear();
        a.push(7.0);
        assert_eq!(a.forecasts(), [7.0; 2]);
    }

    #[test]
    fn the_history_is_bounded_and_the_forecast_never_negative() {
        let mut a = Analog::new();
        // A fall to silence, seen many times: the forecast after the fall
        // is 0, not below.
        for t in 0..(5 * HISTORY) {
            let x = if t % 10 < 5 { 40.0 } else { 0.0 };
            a.push(x);
            let [long, short] = a.forecasts();
            let f = long.min(short);
            assert!(f >= 0.0);
            assert!(a.past.len() <= 2 * HISTORY);
            assert_eq!(a.past.len(), a.changes.len());
        }
        assert!(a.past.len() >= HISTORY);
    }
}
