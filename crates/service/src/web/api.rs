//! What each path answers. Handlers are plain functions of the [`Web`] state
//! and the [`Request`], so tests call them without a socket.

use super::{Reply, Request, Web};
use crate::shutdown::Shutdown;
use engine::forecast::{LOOKBACK, N_FEATURES};
use std::time::Duration;

/// The OpenAPI 3.1 document of the REST API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// The page and its assets, embedded: (path, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "/",
        "text/html; charset=utf-8",
        include_str!("assets/index.html"),
    ),
    (
        "/app.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/app.js"),
    ),
    (
        "/app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    (
        "/vendor/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "/vendor/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("assets/vendor/uPlot.min.css"),
    ),
    (
        "/vendor/uPlot.LICENSE",
        "text/plain; charset=utf-8",
        include_str!("assets/vendor/uPlot.LICENSE"),
    ),
];

/// The asset at `path`, for the self-contained HTML report.
pub fn asset(path: &str) -> &'static str {
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|(_, _, b)| *b)
        .unwrap_or("")
}

/// Most windows one `/windows` answer carries (15 minutes of 50 ms windows).
pub const MAX_WINDOWS: usize = 18_000;
/// Most sequences one `/predict` call takes.
pub const MAX_SEQUENCES: usize = 512;

/// Answer `req`.
pub async fn route(web: &Web, req: Request) -> Reply {
    if let Some(token) = &web.token
        && !authorized(req.authorization.as_deref(), token)
    {
        return Reply::Full {
            code: 401,
            ctype: "application/json",
            body: b"{\"error\":\"this endpoint needs the token: HTTP Basic (any user, the token as password) or Authorization: Bearer TOKEN\"}\n".to_vec(),
            headers: "WWW-Authenticate: Basic realm=\"netforecast\", charset=\"UTF-8\"\r\n".into(),
        };
    }
    let get = matches!(req.method.as_str(), "GET" | "HEAD");
    let path = req.path.as_str();
    if let Some((_, ctype, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
        if !get {
            return Reply::error(405, "only GET");
        }
        return Reply::Full {
            code: 200,
            ctype,
            body: body.as_bytes().to_vec(),
            headers: "Cache-Control: no-cache\r\n".into(),
        };
    }
    match (req.method.as_str(), path) {
        ("POST", "/api/v1/predict") => predict(web, &req).await,
        (_, "/api/v1/predict") => Reply::error(405, "POST a JSON body to /api/v1/predict"),
        (_, _) if !get => Reply::error(405, "only GET here"),
        (_, "/metrics") => Reply::new(200, "text/plain; version=0.0.4", web.metrics.render()),
        (_, "/healthz" | "/readyz") => {
            let h = web.metrics.health(path == "/readyz");
            Reply::json(if h.failing.is_empty() { 200 } else { 503 }, &h)
        }
        (_, "/api/openapi.json") => Reply::new(200, "application/json", OPENAPI),
        (_, "/api/v1/streams") => Reply::json(200, &web.live.streams()),
        (_, "/api/v1/forecast") => Reply::json(200, &web.live.latest()),
        (_, "/api/v1/status") => Reply::json(200, &status(web)),
        (_, "/api/v1/events") => events(web, &req),
        (_, "/api/v1/live") => live(web, &req),
        (_, p) => match p
            .strip_prefix("/api/v1/streams/")
            .and_then(|r| r.strip_suffix("/windows"))
        {
            Some(id) => windows(web, id, &req),
            None => Reply::error(
                404,
                format!(
                    "no {p}: the page is at /, the API at /api/v1 (see /api/openapi.json), metrics at /metrics"
                ),
            ),
        },
    }
}

/// Whether `header` carries `token` (Basic with any user, or Bearer), compared
/// in constant time.
fn authorized(header: Option<&str>, token: &str) -> bool {
    let Some(h) = header else {
        return false;
    };
    let given = if let Some(b) = h.strip_prefix("Bearer ") {
        b.trim().as_bytes().to_vec()
    } else if let Some(b) = h.strip_prefix("Basic ") {
        match base64_decode(b.trim()) {
            Some(d) => match d.iter().position(|c| *c == b':') {
                Some(i) => d[i + 1..].to_vec(),
                None => return false,
            },
            None => return false,
        }
    } else {
        return false;
    };
    let want = token.as_bytes();
    given.len() == want.len() && given.iter().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= val(*c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        match chunk.len() {
            4 => out.extend_from_slice(&bytes[1..4]),
            3 => out.extend_from_slice(&bytes[1..3]),
            2 => out.push(bytes[1]),
            _ => return None,
        }
    }
    Some(out)
}

fn number(req: &Request, name: &str) -> Result<Option<u64>, Reply> {
    match req.param(name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            Reply::error(
                400,
                format!("{name}={v:?} is not a whole number of at least 0"),
            )
        }),
    }
}

fn windows(web: &Web, id: &str, req: &Request) -> Reply {
    let since = match number(req, "since") {
        Ok(v) => v.unwrap_or(0),
        Err(r) => return r,
    };
    let limit = match number(req, "limit") {
        Ok(v) => v.map_or(MAX_WINDOWS, |l| (l as usize).min(MAX_WINDOWS)),
        Err(r) => return r,
    };
    match web.live.windows(id, since, limit) {
        Some(c) => Reply::json(200, &c),
        None => Reply::error(
            404,
            format!("no stream {id:?}; GET /api/v1/streams lists them"),
        ),
    }
}

fn events(web: &Web, req: &Request) -> Reply {
    let since = match number(req, "since") {
        Ok(v) => v.unwrap_or(0),
        Err(r) => return r,
    };
    let limit = match number(req, "limit") {
        Ok(v) => v.map_or(1000, |l| (l as usize).min(1000)),
        Err(r) => return r,
    };
    let (records, next) = web.live.events(since, limit);
    Reply::json(
        200,
        &serde_json::json!({ "events": records, "next": next, "active": web.live.active() }),
    )
}

/// The capture's and the pipeline's health, and every stream's summary.
pub fn status(web: &Web) -> serde_json::Value {
    let m = &web.metrics;
    serde_json::json!({
        "health": m.health(false),
        "kernel_drops": m.kernel_drops.get() + m.kernel_if_drops.get(),
        "windows_dropped": m.windows_dropped.get(),
        "frames": m.frames.get(),
        "streams": web.live.streams(),
        "active": web.live.active(),
        "forecast": web.live.latest(),
        "model": web.model_version,
    })
}

fn live(web: &Web, req: &Request) -> Reply {
    // An EventSource reconnecting says where it was: "<window>.<event>".
    let resume = req.last_event_id.as_deref().and_then(|id| {
        let (w, e) = id.split_once('.')?;
        Some((w.parse::<u64>().ok()?, e.parse::<u64>().ok()?))
    });
    let since = match number(req, "since") {
        Ok(v) => resume.map(|r| r.0).or(v),
        Err(r) => return r,
    };
    let events = match number(req, "events") {
        Ok(v) => resume.map(|r| r.1).or(v),
        Err(r) => return r,
    };
    let streams = web.live.streams();
    let stream = match req.param("stream") {
        Some(id) if streams.iter().any(|s| s.id == id) => Some(id),
        Some(id) => {
            return Reply::error(
                404,
                format!("no stream {id:?}; GET /api/v1/streams lists them"),
            );
        }
        None => streams.first().map(|s| s.id.clone()),
    };
    Reply::Live {
        stream,
        since,
        events,
    }
}

/// Write a live stream until the client leaves or the daemon stops: every
/// 250 ms the windows and events after the client's position; every second
/// the status; a comment every 15 s when there is nothing else.
pub async fn live_stream(
    stream: &mut tokio::net::TcpStream,
    web: &Web,
    mut id: Option<String>,
    since: Option<u64>,
    events: Option<u64>,
    stop: &Shutdown,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: keep-alive\r\n\r\nretry: 2000\n\n";
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut next = since.unwrap_or_else(|| {
        id.as_ref()
            .and_then(|i| web.live.heads().get(i).copied())
            .unwrap_or(0)
    });
    let mut next_event = events.unwrap_or_else(|| web.live.events(u64::MAX, 0).1);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut ticks, mut quiet) = (0u64, 0u64);
    let mut scratch = [0u8; 512];
    loop {
        tokio::select! {
            // The client closed (or sent something we do not read).
            r = stream.read(&mut scratch) => if matches!(r, Ok(0) | Err(_)) { return },
            _ = tick.tick() => {}
        }
        if stop.is_set() {
            return;
        }
        if id.is_none() {
            id = web.live.streams().first().map(|s| s.id.clone());
        }
        let mut out = String::new();
        let w = id
            .as_deref()
            .and_then(|i| web.live.windows(i, next, MAX_WINDOWS))
            .filter(|c| !c.is_empty() || c.missed > 0);
        let (recs, ev_next) = web.live.events(next_event, 1000);
        if w.is_some() || !recs.is_empty() {
            if let Some(c) = &w {
                next = c.next;
            }
            next_event = ev_next;
            let data = serde_json::json!({ "windows": w, "events": recs });
            out.push_str(&format!(
                "id: {next}.{next_event}\nevent: update\ndata: {data}\n\n"
            ));
        }
        if ticks.is_multiple_of(4) {
            out.push_str(&format!("event: status\ndata: {}\n\n", status(web)));
        }
        ticks += 1;
        if out.is_empty() {
            quiet += 1;
            if quiet < 60 {
                continue;
            }
            out.push_str(": still here\n\n");
        }
        quiet = 0;
        match tokio::time::timeout(Duration::from_secs(10), stream.write_all(out.as_bytes())).await
        {
            Ok(Ok(())) => {}
            // Gone, or too slow to take ten seconds of updates: it reconnects
            // from its last id.
            _ => return,
        }
    }
}

/// `POST /api/v1/predict`: `{"sequences": [[[9 numbers] x 15], ...]}` (or
/// `{"sequence": [...]}` for one) to forecasts from the loaded model.
async fn predict(web: &Web, req: &Request) -> Reply {
    let Some(model) = web.model.clone() else {
        return Reply::error(503, "no model is loaded for /api/v1/predict");
    };
    let (flat, n, last_silent) = match parse_sequences(&req.body) {
        Ok(v) => v,
        Err(e) => return Reply::error(400, e),
    };
    let stream = req.param("stream");
    let run = tokio::task::spawn_blocking(move || {
        let mut m = model.lock().unwrap_or_else(|p| p.into_inner());
        let out = m.forward(&flat, n);
        (out, m.version().to_owned(), m.threshold_mbps())
    })
    .await;
    let (out, version, threshold) = match run {
        Ok(v) => v,
        Err(_) => return Reply::error(500, "the model failed"),
    };
    let out = match out {
        Ok(o) if o.len() == n => o,
        Ok(o) => {
            return Reply::error(
                500,
                format!("the model returned {} forecasts for {n} sequences", o.len()),
            );
        }
        Err(e) => return Reply::error(500, e.to_string()),
    };
    let forecasts: Vec<serde_json::Value> = out
        .iter()
        .zip(&last_silent)
        .map(|((thr, prob), silent)| {
            let thr = if thr.is_finite() { thr.max(0.0) } else { 0.0 };
            let prob = if prob.is_finite() {
                prob.clamp(0.0, 1.0)
            } else {
                0.5
            };
            let band = web.live.band_offsets(stream.as_deref(), *silent);
            serde_json::json!({
                "throughput_mbps": thr,
                "congestion_prob": prob,
                "lower_mbps": band.map(|b| (thr + b.0).max(0.0)),
                "upper_mbps": band.map(|b| (thr + b.1).max(0.0)),
            })
        })
        .collect();
    Reply::json(
        200,
        &serde_json::json!({
            "model": version,
            "threshold_mbps": threshold,
            "forecasts": forecasts,
        }),
    )
}

/// The sequences of a predict body, flattened for the model, with whether each
/// one's last window was silent; or what is wrong with it, in words.
pub fn parse_sequences(body: &[u8]) -> Result<(Vec<f32>, usize, Vec<bool>), String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!("the body is not JSON ({e}); send {{\"sequences\": [[[9 numbers] x 15], ...]}}")
    })?;
    let seqs: Vec<&serde_json::Value> = match (v.get("sequences"), v.get("sequence")) {
        (Some(serde_json::Value::Array(a)), None) => a.iter().collect(),
        (None, Some(s)) => vec![s],
        (Some(_), None) => return Err("\"sequences\" must be an array of sequences".into()),
        (Some(_), Some(_)) => return Err("give \"sequences\" or \"sequence\", not both".into()),
        (None, None) => {
            return Err(
                "the body needs \"sequences\": an array of sequences, each 15 windows of the 9 features in FEATURES.md order"
                    .into(),
            );
        }
    };
    if seqs.is_empty() {
        return Err("\"sequences\" is empty".into());
    }
    if seqs.len() > MAX_SEQUENCES {
        return Err(format!(
            "{} sequences; at most {MAX_SEQUENCES} per call",
            seqs.len()
        ));
    }
    let mut flat = Vec::with_capacity(seqs.len() * LOOKBACK * N_FEATURES);
    let mut silent = Vec::with_capacity(seqs.len());
    for (i, s) in seqs.iter().enumerate() {
        let rows = s
            .as_array()
            .ok_or_else(|| format!("sequence {i} is not an array of windows"))?;
        if rows.len() != LOOKBACK {
            return Err(format!(
                "sequence {i} has {} windows; each needs exactly {LOOKBACK}",
                rows.len()
            ));
        }
        for (j, r) in rows.iter().enumerate() {
            let xs = r
                .as_array()
                .ok_or_else(|| format!("sequence {i} window {j} is not an array of numbers"))?;
            if xs.len() != N_FEATURES {
                return Err(format!(
                    "sequence {i} window {j} has {} values; each window needs the {N_FEATURES} features (size, delay, bif, iat_mean, iat_std, throughput_mbps, delay_grad, bif_grad, is_silent)",
                    xs.len()
                ));
            }
            for (k, x) in xs.iter().enumerate() {
                let x = x
                    .as_f64()
                    .filter(|x| x.is_finite() && x.abs() <= f32::MAX as f64)
                    .ok_or_else(|| {
                        format!("sequence {i} window {j} value {k} is not a finite number: {x}")
                    })?;
                flat.push(x as f32);
            }
            if j == LOOKBACK - 1 {
                silent.push(xs[N_FEATURES - 1].as_f64().is_some_and(|v| v != 0.0));
            }
        }
    }
    Ok((flat, seqs.len(), silent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(v: f64) -> serde_json::Value {
        serde_json::json!(vec![vec![v; 9]; 15])
    }

    #[test]
    fn predict_bodies_are_checked_with_reasons() {
        let ok = serde_json::json!({ "sequences": [seq(1.0), seq(2.0)] }).to_string();
        let (flat, n, silent) = parse_sequences(ok.as_bytes()).unwrap();
        assert_eq!((flat.len(), n, silent), (270, 2, vec![true, true]));
        let one = serde_json::json!({ "sequence": seq(0.0) }).to_string();
        assert_eq!(parse_sequences(one.as_bytes()).unwrap().2, vec![false]);
        for (body, says) in [
            ("", "not JSON"),
            ("{\"sequences\": [[[NaN]]]}", "not JSON"),
            ("[]", "needs \"sequences\""),
            ("{\"sequences\": []}", "empty"),
            ("{\"sequences\": 3}", "must be an array"),
            ("{\"sequences\": [[[1,2,3,4,5,6,7,8,9]]]}", "has 1 windows"),
            ("{\"sequences\": [[1]]}", "has 1 windows"),
            ("{\"sequences\": [1]}", "not an array of windows"),
            ("{\"sequences\": [[[1e400]]]}", "not JSON"),
        ] {
            let e = parse_sequences(body.as_bytes()).unwrap_err();
            assert!(e.contains(says), "{body}: {e}");
        }
        let mut s = vec![vec![serde_json::json!(1.0); 9]; 15];
        s[3][4] = serde_json::Value::Null;
        let e = parse_sequences(serde_json::json!({ "sequence": s }).to_string().as_bytes())
            .unwrap_err();
        assert!(e.contains("window 3 value 4 is not a finite number"), "{e}");
        s[3] = vec![serde_json::json!(1.0); 8];
        let e = parse_sequences(serde_json::json!({ "sequence": s }).to_string().as_bytes())
            .unwrap_err();
        assert!(e.contains("window 3 has 8 values"), "{e}");
        let big = serde_json::json!({ "sequence": vec![vec![1e39; 9]; 15] }).to_string();
        assert!(parse_sequences(big.as_bytes()).is_err());
    }

    #[test]
    fn tokens_are_read_from_basic_and_bearer() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        // "nf:s3cret"
        assert!(authorized(Some("Basic bmY6czNjcmV0"), "s3cret"));
        assert!(!authorized(Some("Basic bmY6czNjcmV1"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Basic !!!!"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
        assert_eq!(base64_decode("YQ==").unwrap(), b"a");
        assert_eq!(base64_decode("YWI=").unwrap(), b"ab");
        assert_eq!(base64_decode("YWJj").unwrap(), b"abc");
    }
}
