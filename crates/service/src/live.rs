//! The last minutes of every stream, in memory, for the web page and the REST
//! API: the writer thread appends each scored window and each event through
//! [`LiveSink`]; the HTTP thread reads copies out under a short lock.
//!
//! Windows are kept as columns (what the page's charts take) with a sequence
//! number per stream, so a client asks for "everything after n" and never
//! misses or repeats a window, however late it asks: a client that fell
//! further behind than what is kept gets the oldest kept window onwards and
//! is told how many it missed.

use crate::capture::CaptureSummary;
use crate::events::{Change, Event};
use crate::forecast::Scored;
use crate::sinks::{Sink, SinkError};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// How much window time each stream keeps (15 minutes).
pub const KEEP_NS: i64 = 15 * 60 * 1_000_000_000;
/// At most this many windows per stream, whatever their width.
pub const KEEP_WINDOWS: usize = 100_000;
/// Event records (starts and ends) kept.
pub const KEEP_EVENTS: usize = 1000;

/// One window as the page shows it. Every number is finite or absent (JSON has
/// no NaN).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Point {
    /// Window start, ns since the Unix epoch.
    pub start_ns: i64,
    /// Window start, Unix seconds.
    pub t: f64,
    /// Throughput, Mbit/s.
    pub actual: f64,
    /// The published forecast for this window (made one window before).
    pub forecast: Option<f64>,
    /// Its band.
    pub lower: Option<f64>,
    /// Its band.
    pub upper: Option<f64>,
    /// The published forecast for the next window, issued at this one.
    pub issued: Option<f64>,
    /// Probability the next window is below the threshold.
    pub prob: Option<f64>,
    /// Mean ACK RTT, ms (carried forward).
    pub rtt_ms: f64,
    /// Bytes in flight.
    pub bif: f64,
    /// Bytes on the wire.
    pub size: f64,
    /// Mean and standard deviation of the inter-arrival time, s.
    pub iat_mean: f64,
    /// See `iat_mean`.
    pub iat_std: f64,
    /// Change of the delay since the previous window, s.
    pub delay_grad: f64,
    /// Change of bytes in flight, bytes.
    pub bif_grad: f64,
    /// No packet in the window.
    pub silent: bool,
    /// Rolling MASE of the published forecast (last minute).
    pub mase: Option<f64>,
}

impl Point {
    fn of(s: &Scored) -> Point {
        let r = &s.row;
        let fin = |x: f64| if x.is_finite() { x } else { 0.0 };
        let opt = |x: Option<f64>| x.filter(|v| v.is_finite());
        Point {
            start_ns: r.start_ns,
            t: r.start_ns as f64 / 1e9,
            actual: fin(r.throughput_mbps),
            forecast: opt(s.published_at_target.map(|f| f.throughput_mbps)),
            lower: opt(s.band_at_target.map(|b| b.0)),
            upper: opt(s.band_at_target.map(|b| b.1)),
            issued: opt(s.published.map(|f| f.throughput_mbps)),
            prob: opt(s.published.map(|f| f.congestion_prob)),
            rtt_ms: fin(r.delay_s * 1e3),
            bif: r.bif_bytes as f64,
            size: r.size_bytes as f64,
            iat_mean: fin(r.iat_mean_s),
            iat_std: fin(r.iat_std_s),
            delay_grad: fin(r.delay_grad_s),
            bif_grad: r.bif_grad_bytes as f64,
            silent: r.is_silent,
            mase: opt(s.skill.as_ref().and_then(|k| k.mase_recent)),
        }
    }
}

/// Windows as columns, the shape uPlot draws (`t` first), with the sequence
/// number of the first and the one to ask for next.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Columns {
    /// The stream's id.
    pub stream: String,
    /// Sequence number of the first window here.
    pub first: u64,
    /// Ask for `since=next` to get the windows after these.
    pub next: u64,
    /// Windows asked for that are no longer kept.
    pub missed: u64,
    /// Window starts, Unix seconds.
    pub t: Vec<f64>,
    /// Throughput, Mbit/s.
    pub actual: Vec<f64>,
    /// Published forecast for the window (null before the first).
    pub forecast: Vec<Option<f64>>,
    /// Band of that forecast.
    pub lower: Vec<Option<f64>>,
    /// Band of that forecast.
    pub upper: Vec<Option<f64>>,
    /// Forecast for the next window, issued at this one.
    pub issued: Vec<Option<f64>>,
    /// Probability the next window is below the threshold.
    pub prob: Vec<Option<f64>>,
    /// Mean ACK RTT, ms.
    pub rtt_ms: Vec<f64>,
    /// Bytes in flight.
    pub bif: Vec<f64>,
    /// Bytes on the wire.
    pub size: Vec<f64>,
    /// Mean inter-arrival time, s.
    pub iat_mean: Vec<f64>,
    /// Standard deviation of the inter-arrival time, s.
    pub iat_std: Vec<f64>,
    /// Change of the delay, s.
    pub delay_grad: Vec<f64>,
    /// Change of bytes in flight, bytes.
    pub bif_grad: Vec<f64>,
    /// 1 for a window without a packet.
    pub silent: Vec<u8>,
    /// Rolling MASE of the published forecast.
    pub mase: Vec<Option<f64>>,
}

impl Columns {
    fn push(&mut self, p: &Point) {
        self.t.push(p.t);
        self.actual.push(p.actual);
        self.forecast.push(p.forecast);
        self.lower.push(p.lower);
        self.upper.push(p.upper);
        self.issued.push(p.issued);
        self.prob.push(p.prob);
        self.rtt_ms.push(p.rtt_ms);
        self.bif.push(p.bif);
        self.size.push(p.size);
        self.iat_mean.push(p.iat_mean);
        self.iat_std.push(p.iat_std);
        self.delay_grad.push(p.delay_grad);
        self.bif_grad.push(p.bif_grad);
        self.silent.push(u8::from(p.silent));
        self.mase.push(p.mase);
    }

    /// Windows here.
    pub fn len(&self) -> usize {
        self.t.len()
    }

    /// No window.
    pub fn is_empty(&self) -> bool {
        self.t.is_empty()
    }
}

/// The latest forecast of a stream.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Latest {
    /// The stream's id.
    pub stream: String,
    /// Start of the window the forecast is for, Unix seconds.
    pub target_start: f64,
    /// Forecast throughput, Mbit/s.
    pub forecast_mbps: f64,
    /// Probability the window is below the threshold.
    pub congestion_prob: f64,
    /// The band, when the stream has residuals to fit one.
    pub lower_mbps: Option<f64>,
    /// See `lower_mbps`.
    pub upper_mbps: Option<f64>,
    /// Start of the window it was issued at, Unix seconds.
    pub issued_at: f64,
}

/// One stream's summary (`GET /api/v1/streams`).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct StreamInfo {
    /// Used in URLs: letters, digits, `.`, `_`, `-`.
    pub id: String,
    /// The interface or the capture's name.
    pub name: String,
    /// Windows kept in memory.
    pub windows: u64,
    /// Sequence number of the next window.
    pub next: u64,
    /// Start of the last window, Unix seconds.
    pub last_window: Option<f64>,
    /// Window width, s.
    pub window_s: Option<f64>,
    /// Rolling MASE of the published forecast (last minute), and since start.
    pub mase_recent: Option<f64>,
    /// See `mase_recent`.
    pub mase_total: Option<f64>,
    /// Windows scored so far.
    pub scored: u64,
    /// The band's coverage so far: windows inside their band over windows
    /// whose forecast had one.
    pub band_hits: u64,
    /// See `band_hits`.
    pub band_scored: u64,
    /// Events active now, by kind.
    pub active: Vec<String>,
    /// Whether the stream's capture ended (a replayed file).
    pub ended: bool,
}

/// An event record: a start or an end, numbered.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct EventRecord {
    /// Sequence number (across streams).
    pub seq: u64,
    /// `started` or `ended`.
    pub change: &'static str,
    /// The event (its end set when it ended).
    pub event: Event,
}

#[derive(Debug, Default)]
struct StreamState {
    name: String,
    points: VecDeque<Point>,
    /// Sequence number of `points[0]`.
    first: u64,
    latest: Option<Latest>,
    width_s: Option<f64>,
    mase_total: Option<f64>,
    scored: u64,
    band_hits: u64,
    band_scored: u64,
    ended: bool,
    /// Band offsets from the published forecast (lower, upper), after a busy
    /// window [0] and after a silent one [1]: what `/api/v1/predict` adds.
    offsets: [Option<(f64, f64)>; 2],
}

impl StreamState {
    fn next(&self) -> u64 {
        self.first + self.points.len() as u64
    }
}

#[derive(Debug, Default)]
struct Inner {
    streams: BTreeMap<String, StreamState>,
    events: VecDeque<EventRecord>,
    next_event: u64,
    active: BTreeMap<(String, &'static str), Event>,
}

/// The shared store.
#[derive(Debug)]
pub struct Live {
    inner: Mutex<Inner>,
    keep_ns: i64,
    keep_windows: usize,
    keep_events: usize,
}

impl Default for Live {
    fn default() -> Self {
        Live {
            inner: Mutex::default(),
            keep_ns: KEEP_NS,
            keep_windows: KEEP_WINDOWS,
            keep_events: KEEP_EVENTS,
        }
    }
}

/// Windows per capture a report keeps (about 14 hours of 50 ms windows).
pub const REPORT_WINDOWS: usize = 1_000_000;

/// A stream name as an id: a live capture's interface, a file's name; letters,
/// digits, `.`, `_` and `-`, anything else becoming `_`.
pub fn stream_id(name: &str) -> String {
    let name = name.strip_prefix("live ").unwrap_or(name);
    let base = name.rsplit('/').next().unwrap_or(name);
    let id: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if id.is_empty() { "stream".into() } else { id }
}

impl Live {
    /// An empty store keeping the last 15 minutes.
    pub fn new() -> Arc<Live> {
        Arc::new(Live::default())
    }

    /// An empty store for a replay report: every window up to
    /// [`REPORT_WINDOWS`] per capture, every event.
    pub fn for_report() -> Arc<Live> {
        Arc::new(Live {
            keep_ns: i64::MAX,
            keep_windows: REPORT_WINDOWS,
            keep_events: usize::MAX,
            ..Live::default()
        })
    }

    /// Windows a stream lost to the limits (the report says so).
    pub fn dropped(&self, id: &str) -> u64 {
        self.lock().streams.get(id).map_or(0, |s| s.first)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The streams, by id.
    pub fn streams(&self) -> Vec<StreamInfo> {
        let g = self.lock();
        g.streams
            .iter()
            .map(|(id, s)| StreamInfo {
                id: id.clone(),
                name: s.name.clone(),
                windows: s.points.len() as u64,
                next: s.next(),
                last_window: s.points.back().map(|p| p.t),
                window_s: s.width_s,
                mase_recent: s.points.back().and_then(|p| p.mase),
                mase_total: s.mase_total,
                scored: s.scored,
                band_hits: s.band_hits,
                band_scored: s.band_scored,
                active: g
                    .active
                    .keys()
                    .filter(|(st, _)| st == id)
                    .map(|(_, k)| (*k).to_owned())
                    .collect(),
                ended: s.ended,
            })
            .collect()
    }

    /// Windows of stream `id` after sequence number `since` (at most `limit`),
    /// or None for an unknown stream.
    pub fn windows(&self, id: &str, since: u64, limit: usize) -> Option<Columns> {
        let g = self.lock();
        let s = g.streams.get(id)?;
        let from = since.max(s.first);
        let skip = (from - s.first) as usize;
        let mut c = Columns {
            stream: id.to_owned(),
            first: from.min(s.next()),
            missed: from
                .saturating_sub(since)
                .min(s.first.saturating_sub(since)),
            ..Columns::default()
        };
        for p in s.points.iter().skip(skip).take(limit) {
            c.push(p);
        }
        c.next = c.first + c.len() as u64;
        Some(c)
    }

    /// The sequence numbers every stream will give next (where a live client
    /// that wants only new windows starts).
    pub fn heads(&self) -> BTreeMap<String, u64> {
        let g = self.lock();
        g.streams
            .iter()
            .map(|(id, s)| (id.clone(), s.next()))
            .collect()
    }

    /// The latest forecast of every stream that has one.
    pub fn latest(&self) -> Vec<Latest> {
        let g = self.lock();
        g.streams
            .values()
            .filter_map(|s| s.latest.clone())
            .collect()
    }

    /// Event records after `since` (at most `limit`), and the number to ask for next.
    pub fn events(&self, since: u64, limit: usize) -> (Vec<EventRecord>, u64) {
        let g = self.lock();
        let v: Vec<EventRecord> = g
            .events
            .iter()
            .filter(|e| e.seq >= since)
            .take(limit)
            .cloned()
            .collect();
        let next = v
            .last()
            .map(|e| e.seq + 1)
            .unwrap_or(g.next_event.max(since).min(g.next_event));
        (v, next)
    }

    /// Events active now.
    pub fn active(&self) -> Vec<Event> {
        self.lock().active.values().cloned().collect()
    }

    /// The band offsets of stream `id` (any stream if None) for a forecast
    /// made after a silent window or not.
    pub fn band_offsets(&self, id: Option<&str>, after_silent: bool) -> Option<(f64, f64)> {
        let g = self.lock();
        let ctx = usize::from(after_silent);
        match id {
            Some(id) => g.streams.get(id).and_then(|s| s.offsets[ctx]),
            None => g.streams.values().rev().find_map(|s| s.offsets[ctx]),
        }
    }

    fn begin(&self, name: &str) -> String {
        let mut g = self.lock();
        let mut id = stream_id(name);
        // A second capture of the same name (a replay of two files called the
        // same) is a stream of its own; a live capture restarting keeps its id.
        if let Some(s) = g.streams.get(&id)
            && s.ended
        {
            let mut k = 2;
            while g.streams.contains_key(&format!("{id}-{k}")) {
                k += 1;
            }
            id = format!("{id}-{k}");
        }
        let s = g.streams.entry(id.clone()).or_default();
        s.name = name.to_owned();
        s.ended = false;
        id
    }

    fn push(&self, id: &str, s: &Scored) {
        let p = Point::of(s);
        let mut g = self.lock();
        let st = g.streams.entry(id.to_owned()).or_default();
        if let Some(prev) = st.points.back() {
            let w = p.t - prev.t;
            if w > 0.0 {
                st.width_s = Some(st.width_s.map_or(w, |x: f64| x.min(w)));
            }
        }
        st.points.push_back(p);
        while st.points.len() > self.keep_windows
            || st
                .points
                .front()
                .is_some_and(|f| p.start_ns.saturating_sub(f.start_ns) > self.keep_ns)
        {
            st.points.pop_front();
            st.first += 1;
        }
        if let Some(k) = &s.skill {
            st.mase_total = k.mase_total.filter(|v| v.is_finite());
            st.scored = k.scored;
        }
        if let Some((lo, hi)) = s.band_at_target {
            st.band_scored += 1;
            if (lo..=hi).contains(&s.row.throughput_mbps) {
                st.band_hits += 1;
            }
        }
        if let Some(f) = s.published {
            if let Some((lo, hi)) = s.band
                && lo > 0.0
            {
                st.offsets[usize::from(s.row.is_silent)] =
                    Some((lo - f.throughput_mbps, hi - f.throughput_mbps));
            }
            st.latest = Some(Latest {
                stream: id.to_owned(),
                target_start: f.target_start_ns as f64 / 1e9,
                forecast_mbps: f.throughput_mbps,
                congestion_prob: f.congestion_prob,
                lower_mbps: s.band.map(|b| b.0),
                upper_mbps: s.band.map(|b| b.1),
                issued_at: p.t,
            });
        }
    }

    fn record(&self, changes: &[Change]) {
        let mut g = self.lock();
        for c in changes {
            let (change, e) = match c {
                Change::Started(e) => ("started", e),
                Change::Ended(e) => ("ended", e),
            };
            let key = (stream_id(&e.stream), e.kind.name());
            if change == "started" {
                g.active.insert(key, e.clone());
            } else {
                g.active.remove(&key);
            }
            let seq = g.next_event;
            g.next_event += 1;
            g.events.push_back(EventRecord {
                seq,
                change,
                event: e.clone(),
            });
            if g.events.len() > self.keep_events {
                g.events.pop_front();
            }
        }
    }

    fn end(&self, id: &str) {
        if let Some(s) = self.lock().streams.get_mut(id) {
            s.ended = true;
        }
    }
}

/// The writer-side handle: appends windows and events to a [`Live`].
pub struct LiveSink {
    live: Arc<Live>,
    /// Each running stream's id, by the pipeline's stream number.
    ids: std::collections::HashMap<usize, String>,
}

impl LiveSink {
    /// A sink writing into `live`.
    pub fn new(live: Arc<Live>) -> Self {
        LiveSink {
            live,
            ids: std::collections::HashMap::new(),
        }
    }
}

impl Sink for LiveSink {
    fn begin(&mut self, index: usize, name: &str) -> Result<(), SinkError> {
        self.ids.insert(index, self.live.begin(name));
        Ok(())
    }

    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        let id = match self.ids.get(&s.stream) {
            Some(id) => id,
            None => {
                let id = self.live.begin(&format!("stream {}", s.stream));
                self.ids.entry(s.stream).or_insert(id)
            }
        };
        self.live.push(id, s);
        Ok(())
    }

    fn events(&mut self, changes: &[Change]) -> Result<(), SinkError> {
        self.live.record(changes);
        Ok(())
    }

    fn end(&mut self, index: usize, _summary: &CaptureSummary) -> Result<(), SinkError> {
        if let Some(id) = self.ids.remove(&index) {
            self.live.end(&id);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::window::WindowRow;

    fn scored(k: i64, thr: f64) -> Scored {
        Scored {
            stream: 0,
            row: WindowRow {
                start_ns: 1_700_000_000_000_000_000 + k * 50_000_000,
                size_bytes: 0,
                delay_s: 0.02,
                bif_bytes: 0,
                iat_mean_s: 0.0,
                iat_std_s: 0.0,
                throughput_mbps: thr,
                delay_grad_s: 0.0,
                bif_grad_bytes: 0,
                is_silent: false,
                packets: 0,
                tcp: Default::default(),
            },
            at_target: None,
            baselines: None,
            issued: None,
            inference: None,
            published_at_target: None,
            published: None,
            band_at_target: None,
            band: None,
            skill: None,
            input_shift: None,
        }
    }

    #[test]
    fn clients_resume_where_they_left_and_learn_what_they_missed() {
        let live = Live::new();
        let mut sink = LiveSink::new(Arc::clone(&live));
        sink.begin(0, "eth0").unwrap();
        for k in 0..10 {
            sink.window(&scored(k, k as f64)).unwrap();
        }
        let a = live.windows("eth0", 0, 4).unwrap();
        assert_eq!(
            (a.first, a.next, a.actual.clone()),
            (0, 4, vec![0., 1., 2., 3.])
        );
        let b = live.windows("eth0", a.next, 100).unwrap();
        assert_eq!((b.first, b.next, b.len()), (4, 10, 6));
        assert_eq!(b.rtt_ms[0], 20.0);
        assert!(live.windows("eth0", 10, 100).unwrap().is_empty());
        assert!(live.windows("wlan0", 0, 100).is_none());
        // 15 minutes and one window later the first window is gone.
        let last = KEEP_NS / 50_000_000;
        sink.window(&scored(last + 2, 1.0)).unwrap();
        let c = live.windows("eth0", 0, 100).unwrap();
        assert_eq!((c.first, c.missed, c.len()), (2, 2, 9));
        assert_eq!(live.streams()[0].windows, 9);
    }

    #[test]
    fn ids_are_url_safe_and_a_second_file_of_the_same_name_is_its_own_stream() {
        assert_eq!(stream_id("/tmp/x y/cap.pcap.gz"), "cap.pcap.gz");
        assert_eq!(stream_id("eth0"), "eth0");
        assert_eq!(stream_id("live eth0"), "eth0");
        assert_eq!(stream_id("a:b"), "a_b");
        let live = Live::new();
        let mut sink = LiveSink::new(Arc::clone(&live));
        sink.begin(0, "a/cap.pcap").unwrap();
        sink.end(0, &CaptureSummary::default()).unwrap();
        sink.begin(1, "b/cap.pcap").unwrap();
        let ids: Vec<String> = live.streams().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["cap.pcap", "cap.pcap-2"]);
    }
}
