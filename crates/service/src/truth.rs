//! `replay --events-truth`: the events scored against the rate schedule a lab
//! capture was made with (`NAME.schedule.csv` beside `NAME.pcap[.gz]`, columns
//! `time` in Unix seconds and `rate_mbps`; the rate in effect until the next
//! row).
//!
//! - A capacity drop is a moment the scheduled rate falls to at most half of
//!   the highest rate in effect over the second before, and stays there for at
//!   least a second (inside the capture). A `capacity_drop` event detects it
//!   when it is raised (the end of its first window) within 5 s after it; the
//!   delay is that time minus the drop. Recall is drops detected over drops;
//!   precision is `capacity_drop` events that detected a drop over all of them.
//!   Each alert, in the order raised, detects the latest drop before it that
//!   is not detected yet. A drop the traffic felt is one where its throughput
//!   over the second before exceeded every rate of the second after, and
//!   its throughput over the second after is at most half that of the second
//!   before (`recall_felt`): a sender using a fifth of a link does not see it
//!   halve, and a video player between segments does not feel a drop that
//!   its own pause happens to halve.
//! - Precision counts an alert on a drop shorter than a second, a real one,
//!   as false; `precision_at_half` asks only whether the link was at half or
//!   less of its capacity when the alert was raised: at some moment in the
//!   `RAISE_SLACK_S` before, the scheduled rate at most half the highest rate
//!   in the second before that moment.
//! - A congestion onset is a window under the threshold after at least a
//!   second (20 windows of 50 ms) at or over it. A `congestion_ahead` event
//!   active at the window before warned of it; the lead time is the onset's
//!   start minus the time the event was raised. The lead times of every
//!   onset alerted before or within `DETECT_S` after are reported too
//!   (negative: raised after the onset), so a detector that only follows
//!   onsets shows by how much. An event followed by no window
//!   under the threshold within 5 s of being raised is a false alert; one
//!   raised while at least half the last second's windows were silent is an
//!   alert on an idle link.
//! - A steady link: the scheduled rate unchanged from `SETTLE_S` before to
//!   `DETECT_S` after, and the traffic busy (no silent window in the
//!   `SETTLE_S` before). Every alert raised there is counted per hour of such
//!   windows: a `capacity_drop` is false by definition, a `congestion_ahead`
//!   is counted, and false if no window under the threshold follows it (a
//!   flow on a link near the threshold does dip under it). On a capture of
//!   steady bulk traffic (the lab's `steady` profile) this is the false alert
//!   rate the operator of a healthy link sees.
//!
//! Owns reading schedules and scoring; the events come from `crate::events`.

use crate::capture::CaptureSummary;
use crate::events::{Change, Event, Kind};
use crate::forecast::Scored;
use crate::sinks::{Sink, SinkError};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How long after a drop an event still detects it, s.
pub const DETECT_S: f64 = 5.0;
/// How long a drop must last, s.
pub const DROP_LASTS_S: f64 = 1.0;
/// How long after the scheduled rate changed the link is not yet steady, s
/// (the senders find the new rate within a few round trips; a second more
/// for the slowest).
pub const SETTLE_S: f64 = 2.0;
/// How long before an alert was raised the link may have been at half, s
/// (the traffic shows a drop a round trip or two after it).
pub const RAISE_SLACK_S: f64 = 0.5;

/// A distribution's 10th, 50th and 90th percentiles (None: no sample).
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Spread {
    /// Samples.
    pub n: usize,
    /// 10th percentile.
    pub p10: Option<f64>,
    /// Median.
    pub median: Option<f64>,
    /// 90th percentile.
    pub p90: Option<f64>,
}

impl Spread {
    fn of(xs: &[f64]) -> Spread {
        let mut v: Vec<f64> = xs.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| {
            (!v.is_empty())
                .then(|| v[((p * (v.len() - 1) as f64).round() as usize).min(v.len() - 1)])
        };
        Spread {
            n: v.len(),
            p10: q(0.1),
            median: q(0.5),
            p90: q(0.9),
        }
    }
}

/// One capture against its schedule.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CaptureTruth {
    /// The capture.
    pub name: String,
    /// The schedule read, or why none was.
    pub schedule: String,
    /// Whether it was scored.
    pub scored: bool,
    /// Seconds of windows.
    pub seconds: f64,
    /// Capacity drops in the schedule.
    pub drops: usize,
    /// Of them, detected (by a `capacity_drop`).
    pub detected: usize,
    /// Drops the traffic felt (its throughput over the second after at most
    /// half that of the second before), and of them, detected.
    pub drops_felt: usize,
    /// See `drops_felt`.
    pub detected_felt: usize,
    /// Of them, detected by a `capacity_drop` or a `link_stall` (an outage
    /// sends nothing, so only a stall can tell it).
    pub detected_with_stall: usize,
    /// `capacity_drop` events, and those that detected a drop.
    pub drop_events: usize,
    /// See `drop_events`.
    pub drop_events_matched: usize,
    /// `capacity_drop` events raised while the link was at half or less of
    /// its capacity (see the module's doc).
    pub drop_events_at_half: usize,
    /// Detection delays, s.
    pub delays_s: Vec<f64>,
    /// Those of the drops the traffic felt, s (an unfelt drop is seen only
    /// once the traffic reaches the lower rate, if ever).
    pub delays_felt_s: Vec<f64>,
    /// Congestion onsets, and those warned of.
    pub onsets: usize,
    /// See `onsets`.
    pub warned: usize,
    /// Lead times, s.
    pub leads_s: Vec<f64>,
    /// The lead times of the onsets with a `congestion_ahead` active the
    /// window before or raised within `DETECT_S` after (negative: raised
    /// after the onset), s; as many as such onsets.
    pub leads_all_s: Vec<f64>,
    /// `congestion_ahead` events, false ones, and ones on an idle link.
    pub congestion_events: usize,
    /// See `congestion_events`.
    pub congestion_false: usize,
    /// See `congestion_events`.
    pub congestion_idle: usize,
    /// Seconds of busy windows on a steady link (see the module's doc).
    pub steady_s: f64,
    /// Alerts raised on a steady link: `capacity_drop`, `congestion_ahead`,
    /// and of those the false ones.
    pub steady_drops: usize,
    /// See `steady_drops`.
    pub steady_congestion: usize,
    /// See `steady_drops`.
    pub steady_congestion_false: usize,
    /// Seconds of windows on an idle link (at least half of the last
    /// second's windows silent).
    pub idle_s: f64,
    /// `capacity_drop` alerts raised on an idle link that detected no drop
    /// (an outage leaves the windows silent too; `congestion_idle` counts the
    /// `congestion_ahead` ones).
    pub idle_drops: usize,
}

/// Every capture pooled.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct TruthReport {
    /// Captures scored (those with a schedule).
    pub captures_scored: usize,
    /// Hours of windows scored.
    pub hours: f64,
    /// Capacity drops, detected, recall.
    pub drops: usize,
    /// See `drops`.
    pub detected: usize,
    /// See `drops`.
    pub recall: Option<f64>,
    /// Recall when a `link_stall` also counts as detecting a drop.
    pub recall_with_stall: Option<f64>,
    /// Drops the traffic felt, detected, recall.
    pub drops_felt: usize,
    /// See `drops_felt`.
    pub detected_felt: usize,
    /// See `drops_felt`.
    pub recall_felt: Option<f64>,
    /// `capacity_drop` events that detected a drop over all of them.
    pub precision: Option<f64>,
    /// `capacity_drop` events raised while the link was at half or less of its
    /// capacity over all of them.
    pub precision_at_half: Option<f64>,
    /// Detection delay, s.
    pub delay_s: Spread,
    /// Of the drops the traffic felt, s.
    pub delay_felt_s: Spread,
    /// `capacity_drop` events that detected nothing, per hour.
    pub false_drops_per_hour: Option<f64>,
    /// Congestion onsets and those warned of.
    pub onsets: usize,
    /// See `onsets`.
    pub warned: usize,
    /// Lead time of the warnings, s.
    pub lead_s: Spread,
    /// Onsets alerted before or within `DETECT_S` after.
    pub alerted: usize,
    /// Lead time of those alerts (negative: after the onset), s.
    pub lead_all_s: Spread,
    /// False `congestion_ahead` alerts per hour.
    pub false_congestion_per_hour: Option<f64>,
    /// `congestion_ahead` alerts on an idle link.
    pub congestion_on_idle: usize,
    /// Hours of busy windows on a steady link.
    pub steady_hours: f64,
    /// `capacity_drop` alerts per hour on a steady link (every one false).
    pub steady_drops_per_hour: Option<f64>,
    /// `congestion_ahead` alerts per hour on a steady link, and the false
    /// ones (no window under the threshold followed).
    pub steady_congestion_per_hour: Option<f64>,
    /// See `steady_congestion_per_hour`.
    pub steady_congestion_false_per_hour: Option<f64>,
    /// Hours of windows on an idle link.
    pub idle_hours: f64,
    /// Alerts per hour on an idle link: `congestion_ahead`, and
    /// `capacity_drop` that detected no drop.
    pub idle_alerts_per_hour: Option<f64>,
    /// Each capture.
    pub per_capture: Vec<CaptureTruth>,
}

impl TruthReport {
    /// Pool `caps`.
    pub fn pool(caps: Vec<CaptureTruth>) -> TruthReport {
        let s: Vec<&CaptureTruth> = caps.iter().filter(|c| c.scored).collect();
        let sum = |f: fn(&CaptureTruth) -> usize| s.iter().map(|c| f(c)).sum::<usize>();
        let hours = s.iter().map(|c| c.seconds).sum::<f64>() / 3600.0;
        let (drops, detected) = (sum(|c| c.drops), sum(|c| c.detected));
        let with_stall = sum(|c| c.detected_with_stall);
        let (ev, matched) = (sum(|c| c.drop_events), sum(|c| c.drop_events_matched));
        let at_half = sum(|c| c.drop_events_at_half);
        let (felt, felt_hit) = (sum(|c| c.drops_felt), sum(|c| c.detected_felt));
        let delays: Vec<f64> = s.iter().flat_map(|c| c.delays_s.clone()).collect();
        let delays_felt: Vec<f64> = s.iter().flat_map(|c| c.delays_felt_s.clone()).collect();
        let leads: Vec<f64> = s.iter().flat_map(|c| c.leads_s.clone()).collect();
        let leads_all: Vec<f64> = s.iter().flat_map(|c| c.leads_all_s.clone()).collect();
        let per_hour = |n: usize| (hours > 0.0).then(|| n as f64 / hours);
        let steady_hours = s.iter().map(|c| c.steady_s).sum::<f64>() / 3600.0;
        let per_steady_hour = |n: usize| (steady_hours > 0.0).then(|| n as f64 / steady_hours);
        let idle_hours = s.iter().map(|c| c.idle_s).sum::<f64>() / 3600.0;
        let idle_alerts = sum(|c| c.congestion_idle + c.idle_drops);
        TruthReport {
            captures_scored: s.len(),
            hours,
            drops,
            detected,
            recall: (drops > 0).then(|| detected as f64 / drops as f64),
            recall_with_stall: (drops > 0).then(|| with_stall as f64 / drops as f64),
            drops_felt: felt,
            detected_felt: felt_hit,
            recall_felt: (felt > 0).then(|| felt_hit as f64 / felt as f64),
            precision: (ev > 0).then(|| matched as f64 / ev as f64),
            precision_at_half: (ev > 0).then(|| at_half as f64 / ev as f64),
            delay_s: Spread::of(&delays),
            delay_felt_s: Spread::of(&delays_felt),
            false_drops_per_hour: per_hour(ev - matched),
            onsets: sum(|c| c.onsets),
            warned: sum(|c| c.warned),
            lead_s: Spread::of(&leads),
            alerted: leads_all.len(),
            lead_all_s: Spread::of(&leads_all),
            false_congestion_per_hour: per_hour(sum(|c| c.congestion_false)),
            congestion_on_idle: sum(|c| c.congestion_idle),
            steady_hours,
            steady_drops_per_hour: per_steady_hour(sum(|c| c.steady_drops)),
            steady_congestion_per_hour: per_steady_hour(sum(|c| c.steady_congestion)),
            steady_congestion_false_per_hour: per_steady_hour(sum(|c| c.steady_congestion_false)),
            idle_hours,
            idle_alerts_per_hour: (idle_hours > 0.0).then(|| idle_alerts as f64 / idle_hours),
            per_capture: caps,
        }
    }

    /// Lines for the printed summary.
    pub fn lines(&self) -> Vec<String> {
        let f = |x: Option<f64>, d: usize| x.map_or("-".into(), |v| format!("{v:.d$}"));
        vec![
            format!(
                "events against the schedules ({} captures, {:.1} min): capacity drops detected {}/{} (recall {}; {} counting link stalls; {}/{} = {} of those the traffic felt), precision {} ({} raised with the link at half), delay p10/median/p90 {}/{}/{} s (felt {}/{}/{} s), {} false drops/h",
                self.captures_scored,
                self.hours * 60.0,
                self.detected,
                self.drops,
                f(self.recall, 2),
                f(self.recall_with_stall, 2),
                self.detected_felt,
                self.drops_felt,
                f(self.recall_felt, 2),
                f(self.precision, 2),
                f(self.precision_at_half, 2),
                f(self.delay_s.p10, 2),
                f(self.delay_s.median, 2),
                f(self.delay_s.p90, 2),
                f(self.delay_felt_s.p10, 2),
                f(self.delay_felt_s.median, 2),
                f(self.delay_felt_s.p90, 2),
                f(self.false_drops_per_hour, 1)
            ),
            format!(
                "congestion onsets warned {}/{}, lead p10/median/p90 {}/{}/{} s; alerted before or within {DETECT_S} s after {}/{}, lead p10/median/p90 {}/{}/{} s (negative: after the onset); {} false alerts/h, {} on an idle link",
                self.warned,
                self.onsets,
                f(self.lead_s.p10, 2),
                f(self.lead_s.median, 2),
                f(self.lead_s.p90, 2),
                self.alerted,
                self.onsets,
                f(self.lead_all_s.p10, 2),
                f(self.lead_all_s.median, 2),
                f(self.lead_all_s.p90, 2),
                f(self.false_congestion_per_hour, 1),
                self.congestion_on_idle
            ),
            format!(
                "on a steady link ({:.1} min busy): {} capacity drops/h, {} congestion-ahead alerts/h ({} false); on an idle link ({:.1} min): {} alerts/h",
                self.steady_hours * 60.0,
                f(self.steady_drops_per_hour, 1),
                f(self.steady_congestion_per_hour, 1),
                f(self.steady_congestion_false_per_hour, 1),
                self.idle_hours * 60.0,
                f(self.idle_alerts_per_hour, 1)
            ),
        ]
    }
}

/// A schedule: (Unix seconds, rate Mbit/s), in time order.
pub fn read_schedule(path: &Path) -> Result<Vec<(f64, f64)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut lines = text.lines();
    let head: Vec<&str> = lines
        .next()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .collect();
    let (Some(ti), Some(ri)) = (
        head.iter().position(|h| *h == "time"),
        head.iter().position(|h| *h == "rate_mbps"),
    ) else {
        return Err("the first line must name the columns time and rate_mbps".into());
    };
    let mut rows = Vec::new();
    for (i, l) in lines.enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        let v: Vec<&str> = l.split(',').collect();
        let num = |k: usize| {
            v.get(k)
                .and_then(|x| x.trim().parse::<f64>().ok())
                .filter(|x| x.is_finite())
        };
        match (num(ti), num(ri)) {
            (Some(t), Some(r)) => rows.push((t, r)),
            _ => return Err(format!("line {} has no time or rate", i + 2)),
        }
    }
    rows.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(rows)
}

/// The schedule beside a capture: `NAME.schedule.csv` for `NAME.pcap[.gz]` or
/// `NAME.pcapng[.gz]`.
pub fn schedule_beside(capture: &Path) -> PathBuf {
    let s = capture.to_string_lossy();
    let base = [".pcap.gz", ".pcapng.gz", ".pcapng", ".pcap"]
        .iter()
        .find_map(|ext| s.strip_suffix(ext))
        .unwrap_or(&s);
    PathBuf::from(format!("{base}.schedule.csv"))
}

/// The capacity drops of a schedule within `[from, to]` (Unix seconds).
pub fn drops(rows: &[(f64, f64)], from: f64, to: f64) -> Vec<f64> {
    let over = |a: f64, b: f64| rates_over(rows, a, b);
    let mut out = Vec::new();
    // The rows within a second of a drop belong to it (a fall over a few
    // rows, a cellular rate that slides on down); after that the level it
    // fell to is the one a later halving is measured from, so each step
    // of a staircase down that halves the rate and holds is a drop of its
    // own (41 -> 4.8 after 224 -> 65 is one: an operator wants to hear of
    // it). A drop is measured from the highest rate of the second before
    // it, since the last drop.
    let mut last: Option<f64> = None;
    for &(t, r) in rows {
        if t - DROP_LASTS_S < from || t + DROP_LASTS_S > to {
            continue;
        }
        if last.is_some_and(|d| t < d + DROP_LASTS_S) {
            continue;
        }
        let since = last.unwrap_or(f64::NEG_INFINITY);
        let before = over((t - DROP_LASTS_S).max(since), t);
        let Some(pre) = before.iter().copied().reduce(f64::max) else {
            continue;
        };
        if pre > 0.0 && r <= 0.5 * pre && over(t, t + DROP_LASTS_S).iter().all(|x| *x <= 0.5 * pre)
        {
            out.push(t);
            last = Some(t);
        }
    }
    out
}

/// The rate in effect at `t`, None before the first row (`rows` in time
/// order, as `read_schedule` gives them: found by bisection).
fn rate_at(rows: &[(f64, f64)], t: f64) -> Option<f64> {
    rows.partition_point(|r| r.0 <= t)
        .checked_sub(1)
        .map(|i| rows[i].1)
}

/// The rates in effect over `[a, b)`: the row in effect at `a` and every
/// row after it before `b` (`rows` in time order).
fn rates_over(rows: &[(f64, f64)], a: f64, b: f64) -> Vec<f64> {
    let after = rows.partition_point(|r| r.0 <= a);
    let before = rows.partition_point(|r| r.0 < b).max(after);
    let mut v: Vec<f64> = rate_at(rows, a).into_iter().collect();
    v.extend(rows[after..before].iter().map(|r| r.1));
    v
}

/// Whether at some moment in `[t - RAISE_SLACK_S, t]` the scheduled rate
/// was at most half the highest rate in effect over the second before it.
pub fn at_half(rows: &[(f64, f64)], t: f64) -> bool {
    let from = t - RAISE_SLACK_S;
    let moments =
        std::iter::once(from).chain(rows.iter().map(|r| r.0).filter(|x| *x > from && *x <= t));
    moments.into_iter().any(|m| {
        let Some(now) = rate_at(rows, m) else {
            return false;
        };
        let before = rates_over(rows, m - DROP_LASTS_S, m);
        before.into_iter().fold(now, f64::max) >= 2.0 * now
    })
}

/// Score one capture's windows `(start s, throughput, silent)` and events.
pub fn score(
    name: &str,
    windows: &[(f64, f64, bool)],
    events: &[Event],
    schedule: &[(f64, f64)],
    threshold_mbps: f64,
    width_s: f64,
) -> CaptureTruth {
    let (Some(first), Some(last)) = (windows.first(), windows.last()) else {
        return CaptureTruth {
            name: name.into(),
            ..CaptureTruth::default()
        };
    };
    let raised = |e: &Event| e.start_ns as f64 / 1e9 + width_s;
    let mut c = CaptureTruth {
        name: name.into(),
        scored: true,
        seconds: last.0 + width_s - first.0,
        ..CaptureTruth::default()
    };
    // Capacity drops.
    let cap: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == Kind::CapacityDrop)
        .collect();
    let ds = drops(schedule, first.0, last.0 + width_s);
    // Each alert, in the order raised, detects the latest drop before it not
    // detected yet (an alert explains the most recent drop, not one 4 s
    // older that the traffic may not have felt).
    let mut delay_of: Vec<Option<f64>> = vec![None; ds.len()];
    let mut matched = vec![false; cap.len()];
    let mut order: Vec<usize> = (0..cap.len()).collect();
    order.sort_by(|a, b| raised(cap[*a]).total_cmp(&raised(cap[*b])));
    for i in order {
        let r = raised(cap[i]);
        if let Some(k) = (0..ds.len())
            .rev()
            .find(|&k| delay_of[k].is_none() && ds[k] <= r && r - ds[k] <= DETECT_S)
        {
            delay_of[k] = Some(r - ds[k]);
            matched[i] = true;
        }
    }
    c.delays_s = delay_of.iter().flatten().copied().collect();
    // The drops the traffic felt: its throughput over the second before
    // above the highest rate the link gives in the second after (the drop
    // took capacity the traffic was using, not only headroom), and its
    // throughput over the second after at most half that of the second
    // before.
    let mean = |a: f64, b: f64| {
        let (sum, n) = windows
            .iter()
            .filter(|w| w.0 >= a && w.0 < b)
            .fold((0.0, 0), |(s, n), w| (s + w.1, n + 1));
        (n > 0).then(|| sum / n as f64)
    };
    for (k, t) in ds.iter().enumerate() {
        if let (Some(before), Some(after)) =
            (mean(t - DROP_LASTS_S, *t), mean(*t, t + DROP_LASTS_S))
            && before > 0.0
            && after <= 0.5 * before
            && rates_over(schedule, *t, t + DROP_LASTS_S)
                .into_iter()
                .all(|r| r < before)
        {
            c.drops_felt += 1;
            c.delays_felt_s.extend(delay_of[k]);
        }
    }
    c.drops = ds.len();
    c.detected = c.delays_s.len();
    c.detected_felt = c.delays_felt_s.len();
    let stalls: Vec<f64> = events
        .iter()
        .filter(|e| e.kind == Kind::LinkStall)
        .map(raised)
        .collect();
    c.detected_with_stall = ds
        .iter()
        .filter(|t| {
            let near = |r: &f64| *r >= **t && *r - **t <= DETECT_S;
            stalls.iter().any(near) || cap.iter().map(|e| raised(e)).any(|r| near(&r))
        })
        .count();
    c.drop_events = cap.len();
    // One alert to one drop: as many matched as detected.
    c.drop_events_matched = c.detected;
    c.drop_events_at_half = cap.iter().filter(|e| at_half(schedule, raised(e))).count();
    // Congestion onsets.
    let cong: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == Kind::CongestionAhead)
        .collect();
    let need = (1.0 / width_s).round() as usize;
    let mut above = 0usize;
    for (k, w) in windows.iter().enumerate() {
        if w.1 >= threshold_mbps {
            above += 1;
            continue;
        }
        if above >= need && k > 0 {
            c.onsets += 1;
            let before = windows[k - 1].0;
            let before_ns = (before * 1e9).round() as i64;
            let active = cong
                .iter()
                .find(|e| e.start_ns <= before_ns && e.end_ns.is_none_or(|end| end > before_ns));
            if let Some(e) = active {
                c.warned += 1;
                c.leads_s.push(w.0 - raised(e));
            }
            let late = || {
                cong.iter()
                    .find(|e| raised(e) > before && raised(e) <= w.0 + DETECT_S)
            };
            if let Some(e) = active.or_else(late) {
                c.leads_all_s.push(w.0 - raised(e));
            }
        }
        above = 0;
    }
    c.congestion_events = cong.len();
    // Windows and silent ones that start in [a, b) (the windows are in time
    // order; prefix sums keep an hour's capture linear).
    let mut silent_before = Vec::with_capacity(windows.len() + 1);
    silent_before.push(0usize);
    for w in windows {
        silent_before.push(silent_before.last().copied().unwrap_or(0) + usize::from(w.2));
    }
    let span = |a: f64, b: f64| {
        let lo = windows.partition_point(|w| w.0 < a);
        let hi = windows.partition_point(|w| w.0 < b).max(lo);
        (hi - lo, silent_before[hi] - silent_before[lo])
    };
    // Whether the last second before `t` was at least half silent windows.
    let idle_at = |t: f64| {
        let (n, silent) = span(t - 1.0, t);
        n > 0 && silent * 2 >= n
    };
    // Steady bulk: a steady link and traffic that has not paused for the
    // `SETTLE_S` before (an on-off sender's bursts are not steady traffic).
    let steady_at = |t: f64| steady(schedule, t) && span(t - SETTLE_S, t).1 == 0;
    for e in &cong {
        let r = raised(e);
        let follows = windows
            .iter()
            .any(|w| w.0 + width_s > r - width_s && w.0 <= r + DETECT_S && w.1 < threshold_mbps);
        if !follows {
            c.congestion_false += 1;
        }
        if idle_at(r) {
            c.congestion_idle += 1;
        }
        if steady_at(r) {
            c.steady_congestion += 1;
            c.steady_congestion_false += usize::from(!follows);
        }
    }
    c.steady_drops = cap.iter().filter(|e| steady_at(raised(e))).count();
    // An outage leaves the windows silent too: a drop alert there that
    // detected a drop is no alert on an idle link.
    c.idle_drops = cap
        .iter()
        .zip(&matched)
        .filter(|(e, m)| !**m && idle_at(raised(e)))
        .count();
    c.idle_s = windows.iter().filter(|w| idle_at(w.0 + width_s)).count() as f64 * width_s;
    c.steady_s = windows
        .iter()
        .filter(|w| !w.2 && steady_at(w.0 + width_s))
        .count() as f64
        * width_s;
    c
}

/// Whether the scheduled rate at `t` has held since `SETTLE_S` before and
/// holds until `DETECT_S` after (a schedule's last rate holds to its end).
/// `rows` in time order.
pub fn steady(rows: &[(f64, f64)], t: f64) -> bool {
    let rates = rates_over(rows, t - SETTLE_S, t + DETECT_S);
    rate_at(rows, t - SETTLE_S).is_some() && rates.iter().all(|r| *r == rates[0])
}

/// The sink that collects a capture's windows and events and scores them at
/// its end.
pub struct TruthSink {
    /// An explicit schedule (for a single capture), else the one beside each.
    schedule: Option<PathBuf>,
    threshold_mbps: f64,
    width_s: f64,
    name: String,
    windows: Vec<(f64, f64, bool)>,
    events: Vec<Event>,
    out: Arc<Mutex<Vec<CaptureTruth>>>,
}

impl TruthSink {
    /// A sink scoring against `schedule` (None: beside each capture); results in `out`.
    pub fn new(
        schedule: Option<PathBuf>,
        threshold_mbps: f64,
        width_s: f64,
        out: Arc<Mutex<Vec<CaptureTruth>>>,
    ) -> Self {
        TruthSink {
            schedule,
            threshold_mbps,
            width_s,
            name: String::new(),
            windows: Vec::new(),
            events: Vec::new(),
            out,
        }
    }
}

impl Sink for TruthSink {
    fn begin(&mut self, _index: usize, name: &str) -> Result<(), SinkError> {
        self.name = name.to_owned();
        self.windows.clear();
        self.events.clear();
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        self.windows.push((
            s.row.start_ns as f64 / 1e9,
            s.row.throughput_mbps,
            s.row.is_silent,
        ));
        Ok(())
    }

    fn events(&mut self, changes: &[Change]) -> Result<(), SinkError> {
        for c in changes {
            if let Change::Ended(e) = c {
                self.events.push(e.clone());
            }
        }
        Ok(())
    }

    fn end(&mut self, _index: usize, _summary: &CaptureSummary) -> Result<(), SinkError> {
        let path = self
            .schedule
            .clone()
            .unwrap_or_else(|| schedule_beside(Path::new(&self.name)));
        let mut t = match read_schedule(&path) {
            Ok(rows) => {
                let mut t = score(
                    &self.name,
                    &self.windows,
                    &self.events,
                    &rows,
                    self.threshold_mbps,
                    self.width_s,
                );
                t.schedule = path.display().to_string();
                t
            }
            Err(e) => CaptureTruth {
                name: self.name.clone(),
                schedule: format!("{}: {e}; not scored", path.display()),
                ..CaptureTruth::default()
            },
        };
        t.name = self.name.clone();
        if let Ok(mut o) = self.out.lock() {
            o.push(t);
        }
        self.windows.clear();
        self.events.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Severity, Signals};

    fn ev(kind: Kind, start_s: f64, end_s: f64) -> Event {
        Event {
            kind,
            stream: "x".into(),
            start_ns: (start_s * 1e9).round() as i64,
            end_ns: Some((end_s * 1e9).round() as i64),
            severity: Severity::Warning,
            forecast_mbps: None,
            band: None,
            congestion_prob: None,
            mase_recent: None,
            signals: Signals::default(),
        }
    }

    #[test]
    fn drops_are_halvings_that_last_a_second() {
        // 60 until 10, 15 until 12 (a drop), 100, 40 for half a second (not a
        // drop: it does not last), 100, then a slide 100 -> 45 within a second.
        let rows = [
            (0.0, 60.0),
            (10.0, 15.0),
            (12.0, 100.0),
            (20.0, 40.0),
            (20.5, 100.0),
            (30.0, 80.0),
            (30.3, 60.0),
            (30.6, 45.0),
            (40.0, 100.0),
        ];
        assert_eq!(drops(&rows, 0.0, 50.0), vec![10.0, 30.6]);
        // The lab's steps profile (seed 200): from 214 down to 4.7 and
        // staying under half of 214 for a minute, with four more halvings
        // that hold on the way: 15.5 -> 2.3 and 69 -> 7 after rises, and the
        // steps down 2.3 -> 1.1 and 7 -> 1.5 from the levels those fell to.
        let steps = [
            (0.0, 214.0),
            (2.5, 4.7),
            (7.5, 13.4),
            (10.2, 18.9),
            (15.2, 15.5),
            (18.9, 2.3),
            (23.6, 1.1),
            (29.3, 20.5),
            (31.6, 18.4),
            (36.1, 57.2),
            (39.3, 69.4),
            (42.6, 7.0),
            (45.7, 1.5),
            (48.9, 11.8),
            (52.0, 221.7),
        ];
        assert_eq!(drops(&steps, 0.0, 60.0), vec![2.5, 18.9, 23.6, 42.6, 45.7]);
        // Within a second of a drop, the rows are the same drop, whether
        // they rise a little or a lot before falling again.
        let noisy = [
            (0.0, 100.0),
            (10.0, 10.0),
            (10.3, 15.0),
            (10.6, 9.0),
            (20.0, 100.0),
        ];
        assert_eq!(drops(&noisy, 0.0, 30.0), vec![10.0]);
        let again = [
            (0.0, 100.0),
            (10.0, 10.0),
            (10.3, 21.0),
            (10.6, 9.0),
            (20.0, 100.0),
        ];
        assert_eq!(drops(&again, 0.0, 30.0), vec![10.0]);
        // A second later a halving from the level it fell to is a drop of
        // its own, measured from that level (20), not from the 100 before.
        let stair = [
            (0.0, 100.0),
            (10.0, 20.0),
            (12.0, 9.0),
            (13.0, 11.0),
            (16.0, 100.0),
        ];
        assert_eq!(drops(&stair, 0.0, 30.0), vec![10.0, 12.0]);
        assert_eq!(
            drops(&rows, 0.0, 10.5),
            Vec::<f64>::new(),
            "not a second of it inside"
        );
    }

    #[test]
    fn events_are_matched_to_drops_and_onsets() {
        let w = 0.05;
        // 40 s of windows: 40 Mbit/s, 10 Mbit/s from 10 s to 12 s, 40 again.
        let windows: Vec<(f64, f64, bool)> = (0..800)
            .map(|k| {
                let t = k as f64 * w;
                (
                    t,
                    if (10.0..12.0).contains(&t) {
                        10.0
                    } else {
                        40.0
                    },
                    false,
                )
            })
            .collect();
        let rows = [(0.0, 40.0), (10.0, 10.0), (12.0, 40.0)];
        let events = [
            ev(Kind::CapacityDrop, 10.15, 11.0),
            ev(Kind::CapacityDrop, 30.0, 31.0),
            ev(Kind::CongestionAhead, 9.8, 10.5),
            ev(Kind::CongestionAhead, 25.0, 26.0),
        ];
        let c = score("x", &windows, &events, &rows, 20.0, w);
        assert_eq!(
            (c.drops, c.detected, c.drop_events, c.drop_events_matched),
            (1, 1, 2, 1)
        );
        assert!((c.delays_s[0] - 0.2).abs() < 1e-9, "{:?}", c.delays_s);
        assert_eq!((c.onsets, c.warned), (1, 1));
        assert!((c.leads_s[0] - 0.15).abs() < 1e-9, "{:?}", c.leads_s);
        assert_eq!(
            (c.congestion_events, c.congestion_false, c.congestion_idle),
            (2, 1, 0)
        );
        // The second was raised on a steady link.
        assert_eq!(c.drop_events_at_half, 1);
        let r = TruthReport::pool(vec![c]);
        assert_eq!((r.recall, r.precision), (Some(1.0), Some(0.5)));
        assert_eq!(r.precision_at_half, Some(0.5));
        assert_eq!(r.lines().len(), 3);
        // Warned of: alerted, with the same lead.
        assert_eq!((r.alerted, r.lead_all_s.median), (1, r.lead_s.median));
        // Started at 10.25 s, raised at the end of its first window: 0.3 s
        // after the onset, not warned of, alerted late.
        let late = [ev(Kind::CongestionAhead, 10.25, 10.5)];
        let c = score("x", &windows, &late, &rows, 20.0, w);
        assert_eq!((c.onsets, c.warned, c.leads_all_s.len()), (1, 0, 1));
        assert!((c.leads_all_s[0] + 0.3).abs() < 1e-9, "{:?}", c.leads_all_s);
        // Raised more than 5 s after: neither.
        let never = [ev(Kind::CongestionAhead, 15.5, 16.0)];
        let c = score("x", &windows, &never, &rows, 20.0, w);
        assert_eq!((c.warned, c.leads_all_s.len()), (0, 0));
    }

    #[test]
    fn an_alert_detects_the_latest_drop_and_felt_drops_are_the_ones_traffic_shows() {
        let w = 0.05;
        // The link: 100, 40 at 10 s (a drop), 100 at 12 s, 20 at 14 s.
        let rows = [(0.0, 100.0), (10.0, 40.0), (12.0, 100.0), (14.0, 20.0)];
        // The traffic used 30 of it until 14 s, then 12: it did not feel the
        // first drop, and felt the second.
        let windows: Vec<(f64, f64, bool)> = (0..400)
            .map(|k| {
                let t = k as f64 * w;
                (t, if t < 14.0 { 30.0 } else { 12.0 }, false)
            })
            .collect();
        assert_eq!(drops(&rows, 0.0, 20.0), vec![10.0, 14.0]);
        let events = [ev(Kind::CapacityDrop, 14.1, 15.0)];
        let c = score("x", &windows, &events, &rows, 20.0, w);
        // Raised 0.15 s after the second drop: that one, not the first
        // (4.15 s before, within the 5 s too).
        assert_eq!((c.drops, c.detected, c.drop_events_matched), (2, 1, 1));
        assert!((c.delays_s[0] - 0.15).abs() < 1e-9, "{:?}", c.delays_s);
        assert_eq!((c.drops_felt, c.detected_felt), (1, 1));
        assert_eq!(c.delays_felt_s, c.delays_s);
        // Raised at 10.3 s instead, it detects the first drop, which the
        // traffic did not feel: a delay, but none of a felt drop.
        let early = [ev(Kind::CapacityDrop, 10.25, 11.0)];
        let c2 = score("x", &windows, &early, &rows, 20.0, w);
        assert_eq!((c2.delays_s.len(), c2.delays_felt_s.len()), (1, 0));
        let r = TruthReport::pool(vec![c, c2]);
        assert_eq!((r.recall, r.recall_felt), (Some(0.5), Some(0.5)));
        assert_eq!((r.delay_s.n, r.delay_felt_s.n), (2, 1));
    }

    #[test]
    fn alerts_on_a_steady_busy_link_are_counted_per_hour_of_it() {
        let w = 0.05;
        // The link: 40, 10 from 10 s to 12 s, 40 again; the traffic follows
        // it, silent from 30 s to 35 s.
        let rows = [(0.0, 40.0), (10.0, 10.0), (12.0, 40.0)];
        let windows: Vec<(f64, f64, bool)> = (0..800)
            .map(|k| {
                let t = k as f64 * w;
                let silent = (30.0..35.0).contains(&t);
                let mbps = if silent {
                    0.0
                } else if (10.0..12.0).contains(&t) {
                    10.0
                } else {
                    40.0
                };
                (t, mbps, silent)
            })
            .collect();
        // Steady: from 2 s after the start or a change to 5 s before the next.
        assert!(!steady(&rows, 1.9) && steady(&rows, 2.1) && steady(&rows, 4.9));
        assert!(!steady(&rows, 5.1) && !steady(&rows, 13.9) && steady(&rows, 14.1));
        assert!(steady(&rows, 39.0), "the last rate holds to the end");
        let events = [
            // At the drop: not on a steady link.
            ev(Kind::CapacityDrop, 10.15, 11.0),
            ev(Kind::CongestionAhead, 9.8, 10.5),
            // On a steady busy link: a false drop, a false warning, and a
            // warning the silence at 30 s follows (not false).
            ev(Kind::CapacityDrop, 20.0, 21.0),
            ev(Kind::CongestionAhead, 22.0, 23.0),
            ev(Kind::CongestionAhead, 27.0, 28.0),
            // On an idle link: not on a steady busy one.
            ev(Kind::CongestionAhead, 33.0, 34.0),
            ev(Kind::CapacityDrop, 33.5, 34.0),
        ];
        let c = score("x", &windows, &events, &rows, 20.0, w);
        assert_eq!(
            (
                c.steady_drops,
                c.steady_congestion,
                c.steady_congestion_false
            ),
            (1, 2, 1)
        );
        assert_eq!((c.congestion_idle, c.idle_drops), (1, 1));
        // Idle from the window ending at 30.5 s (half the last second
        // silent) to the one ending at 35.5 s.
        assert!((c.idle_s - 5.0).abs() <= 0.1, "{}", c.idle_s);
        // Busy steady windows end in [2, 5] and [14, 40) less the silence
        // and the 2 s after it (steady traffic has not paused for 2 s).
        let expect = (5.0 - 2.0) + (40.0 - 14.0) - 7.0;
        assert!((c.steady_s - expect).abs() <= 0.2, "{}", c.steady_s);
        let r = TruthReport::pool(vec![c]);
        let hours = r.steady_hours;
        assert_eq!(r.steady_drops_per_hour, Some(1.0 / hours));
        assert_eq!(r.steady_congestion_per_hour, Some(2.0 / hours));
        assert_eq!(r.steady_congestion_false_per_hour, Some(1.0 / hours));
        assert_eq!(r.idle_alerts_per_hour, Some(2.0 / r.idle_hours));
        assert_eq!(r.lines().len(), 3);
    }

    #[test]
    fn a_drop_is_felt_only_by_traffic_that_used_more_than_the_link_then_gives() {
        let w = 0.05;
        // The link: 100, then 40 from 10 s.
        let rows = [(0.0, 100.0), (10.0, 40.0)];
        let felt = |before: f64, after: f64| {
            let windows: Vec<(f64, f64, bool)> = (0..400)
                .map(|k| {
                    let t = k as f64 * w;
                    (t, if t < 10.0 { before } else { after }, false)
                })
                .collect();
            score("x", &windows, &[], &rows, 20.0, w).drops_felt
        };
        // 60 -> 25: it used more than 40, and it halved.
        assert_eq!(felt(60.0, 25.0), 1);
        // 30 -> 10: it halved, but 30 still fits in 40 (an application's
        // own pause or slower pace at that moment, not the drop).
        assert_eq!(felt(30.0, 10.0), 0);
        // 60 -> 40: it used more, but did not halve.
        assert_eq!(felt(60.0, 40.0), 0);
    }

    #[test]
    fn an_alert_counts_at_half_on_a_short_outage_and_not_long_after_a_drop() {
        // 18 Mbit/s, out for 0.7 s at 20 s (too short to be a drop), at 4
        // from 30 s for 10 s, and 18 -> 12 -> 7 a second apart (never half).
        let rows = [
            (0.0, 18.0),
            (20.0, 0.05),
            (20.7, 18.0),
            (30.0, 4.0),
            (40.0, 18.0),
            (50.0, 12.0),
            (51.2, 7.0),
        ];
        assert!(drops(&rows, 0.0, 60.0) == vec![30.0]);
        assert!(at_half(&rows, 20.1) && at_half(&rows, 20.5));
        // Raised after the link was back, within the slack of the outage.
        assert!(at_half(&rows, 21.1) && !at_half(&rows, 21.3));
        assert!(at_half(&rows, 30.2) && at_half(&rows, 30.9));
        // A second into the drop the second before is at 4 too.
        assert!(!at_half(&rows, 31.6));
        assert!(!at_half(&rows, 10.0) && !at_half(&rows, 50.2) && !at_half(&rows, 51.5));
        assert!(!at_half(&rows, -5.0));
    }

    #[test]
    fn a_schedule_is_found_beside_its_capture_and_read() {
        assert_eq!(
            schedule_beside(Path::new("/c/lab-x.pcap.gz")),
            PathBuf::from("/c/lab-x.schedule.csv")
        );
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
        let rows = read_schedule(&schedule_beside(&dir.join("lab-cellular-s3.pcap.gz"))).unwrap();
        assert!(rows.len() > 100 && rows.windows(2).all(|w| w[0].0 <= w[1].0));
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("s.csv");
        std::fs::write(&bad, "t,r\n1,2\n").unwrap();
        assert!(
            read_schedule(&bad)
                .unwrap_err()
                .contains("time and rate_mbps")
        );
    }
}
