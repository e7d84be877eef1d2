//! The HTTP endpoint over a real socket: every REST answer checked against the
//! OpenAPI document the endpoint serves, the live stream while windows arrive
//! (and resumed after a reconnect), `/predict` on a real model with its
//! errors, fuzzed bodies, the token, and the limits.

use engine::forecast::{Persistence, SequenceModel};
use engine::pipeline::EngineConfig;
use proptest::prelude::*;
use serde_json::{Value, json};
use service::forecast::Scored;
use service::live::{Live, LiveSink};
use service::replay::Replay;
use service::shutdown::Shutdown;
use service::sinks::Sink;
use service::sinks::memory::MemorySink;
use service::sinks::prometheus::Metrics;
use service::web::{MAX_BODY_BYTES, Web, serve};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/lab-cellular-s3.pcap.gz")
}

fn persistence() -> Persistence {
    Persistence {
        threshold_mbps: 20.0,
    }
}

/// Every window of the sample with its forecasts and the events it raised.
fn replayed() -> (Vec<Scored>, Vec<service::events::Change>) {
    struct Events(Arc<Mutex<Vec<service::events::Change>>>);
    impl Sink for Events {
        fn window(&mut self, _: &Scored) -> Result<(), service::sinks::SinkError> {
            Ok(())
        }
        fn events(
            &mut self,
            c: &[service::events::Change],
        ) -> Result<(), service::sinks::SinkError> {
            self.0.lock().unwrap().extend_from_slice(c);
            Ok(())
        }
    }
    let (mem, rx) = MemorySink::new();
    let ev = Arc::new(Mutex::new(Vec::new()));
    replay(None, vec![Box::new(mem), Box::new(Events(Arc::clone(&ev)))]);
    let changes = ev.lock().unwrap().clone();
    (rx.try_iter().collect(), changes)
}

/// The sample replayed with the persistence model into `extra_sinks` (and an
/// HTML report when asked).
fn replay(
    html: Option<PathBuf>,
    extra_sinks: Vec<Box<dyn Sink>>,
) -> service::sinks::report::ReplayReport {
    Replay {
        classes: None,
        inputs: vec![sample()],
        filter: None,
        realtime: false,
        engine: EngineConfig::default(),
        model: persistence(),
        model_dir: "persistence".into(),
        out: None,
        report: None,
        plot: None,
        html,
        events_truth: None,
        events: Default::default(),
        print: false,
        shutdown: Shutdown::new(),
        extra_sinks,
        model_only: false,
        batch: 1,
        band: false,
    }
    .run()
    .unwrap()
    .0
}

struct Server {
    addr: String,
    stop: Shutdown,
    thread: Option<std::thread::JoinHandle<()>>,
    live: Arc<Live>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.trigger();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn start(token: Option<&str>) -> Server {
    let live = Live::new();
    let model: Box<dyn SequenceModel + Send> = Box::new(persistence());
    let web = Arc::new(Web {
        metrics: Metrics::new(),
        live: Arc::clone(&live),
        model: Some(Arc::new(Mutex::new(model))),
        model_version: Some("persistence".into()),
        token: token.map(str::to_owned),
    });
    let stop = Shutdown::new();
    let (thread, addr) = serve("127.0.0.1:0", web, stop.clone()).unwrap();
    Server {
        addr,
        stop,
        thread: Some(thread),
        live,
    }
}

/// One request; (status, headers, body).
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    // The server may answer (413) before reading everything we send.
    let _ = s.write_all(&req);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (status, head.to_owned(), body.to_owned())
}

fn get(addr: &str, path: &str) -> (u16, Value) {
    let (code, _, body) = request(addr, "GET", path, "", b"");
    (
        code,
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}")),
    )
}

// ---- a JSON Schema check for the subset the document uses ----

fn resolve<'a>(doc: &'a Value, s: &'a Value) -> &'a Value {
    match s.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r.rsplit('/').next().unwrap();
            &doc["components"]["schemas"][name]
        }
        None => s,
    }
}

fn check(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let s = resolve(doc, schema);
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(x) => vec![x.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "number" => v.is_number(),
            "integer" => v.is_i64() || v.is_u64(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => false,
        });
        if !ok {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        return Err(format!("{at}: {v} not in {e:?}"));
    }
    if let (Some(min), Some(x)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && x < min
    {
        return Err(format!("{at}: {x} < {min}"));
    }
    if let (Some(max), Some(x)) = (s.get("maximum").and_then(Value::as_f64), v.as_f64())
        && x > max
    {
        return Err(format!("{at}: {x} > {max}"));
    }
    if let Some(o) = v.as_object() {
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !o.contains_key(r) {
                return Err(format!("{at}: missing {r}"));
            }
        }
        if let Some(props) = s.get("properties").and_then(Value::as_object) {
            for (k, sub) in props {
                if let Some(x) = o.get(k) {
                    check(doc, sub, x, &format!("{at}.{k}"))?;
                }
            }
        }
    }
    if let Some(a) = v.as_array() {
        if let Some(n) = s.get("minItems").and_then(Value::as_u64)
            && (a.len() as u64) < n
        {
            return Err(format!("{at}: {} items < {n}", a.len()));
        }
        if let Some(n) = s.get("maxItems").and_then(Value::as_u64)
            && (a.len() as u64) > n
        {
            return Err(format!("{at}: {} items > {n}", a.len()));
        }
        if let Some(items) = s.get("items") {
            for (i, x) in a.iter().enumerate() {
                check(doc, items, x, &format!("{at}[{i}]"))?;
            }
        }
    }
    if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
        let n = one.iter().filter(|o| check(doc, o, v, at).is_ok()).count();
        if n != 1 {
            return Err(format!("{at}: matches {n} of oneOf"));
        }
    }
    Ok(())
}

/// The response schema the document gives for `path` `method` `code`.
fn response_schema<'a>(doc: &'a Value, path: &str, method: &str, code: u16) -> &'a Value {
    let r = &doc["paths"][path][method]["responses"][code.to_string()];
    assert!(
        !r.is_null(),
        "{method} {path} answered {code}, which the document does not list"
    );
    &r["content"]["application/json"]["schema"]
}

fn conforms(doc: &Value, path: &str, method: &str, code: u16, v: &Value) {
    let s = response_schema(doc, path, method, code);
    check(doc, s, v, path).unwrap_or_else(|e| panic!("{method} {path} {code}: {e}"));
}

fn feed(server: &Server, windows: &[Scored], changes: &[service::events::Change]) {
    let mut sink = LiveSink::new(Arc::clone(&server.live));
    sink.begin(0, "live veth0").unwrap();
    for s in windows {
        sink.window(s).unwrap();
    }
    sink.events(changes).unwrap();
}

#[test]
fn every_answer_matches_the_openapi_document() {
    let (windows, changes) = replayed();
    assert!(!changes.is_empty(), "the cellular sample raises events");
    let server = start(None);
    let a = server.addr.as_str();
    let (code, doc) = get(a, "/api/openapi.json");
    assert_eq!(code, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    // Before any window: empty lists, still conforming.
    let (code, v) = get(a, "/api/v1/streams");
    assert_eq!((code, v.clone()), (200, json!([])));
    feed(&server, &windows, &changes);

    let (code, v) = get(a, "/api/v1/streams");
    conforms(&doc, "/api/v1/streams", "get", code, &v);
    assert_eq!(v[0]["id"], "veth0");
    assert_eq!(v[0]["windows"], windows.len());
    let (code, v) = get(a, "/api/v1/streams/veth0/windows?since=0");
    conforms(&doc, "/api/v1/streams/{id}/windows", "get", code, &v);
    assert_eq!(v["t"].as_array().unwrap().len(), windows.len());
    let thr: Vec<f64> = windows.iter().map(|s| s.row.throughput_mbps).collect();
    let got: Vec<f64> = serde_json::from_value(v["actual"].clone()).unwrap();
    assert_eq!(got, thr, "every window's throughput, in order");
    let (code, v) = get(a, "/api/v1/streams/veth0/windows?since=100&limit=5");
    conforms(&doc, "/api/v1/streams/{id}/windows", "get", code, &v);
    assert_eq!(
        (v["first"].as_u64(), v["next"].as_u64()),
        (Some(100), Some(105))
    );
    let (code, v) = get(a, "/api/v1/streams/nope/windows");
    conforms(&doc, "/api/v1/streams/{id}/windows", "get", code, &v);
    assert_eq!(code, 404);
    let (code, v) = get(a, "/api/v1/streams/veth0/windows?since=-1");
    conforms(&doc, "/api/v1/streams/{id}/windows", "get", code, &v);
    assert_eq!(code, 400);
    let (code, v) = get(a, "/api/v1/forecast");
    conforms(&doc, "/api/v1/forecast", "get", code, &v);
    let last = windows.last().unwrap().published.unwrap();
    assert_eq!(v[0]["forecast_mbps"].as_f64(), Some(last.throughput_mbps));
    let (code, v) = get(a, "/api/v1/events?since=0");
    conforms(&doc, "/api/v1/events", "get", code, &v);
    assert_eq!(v["events"].as_array().unwrap().len(), changes.len());
    assert_eq!(v["next"].as_u64(), Some(changes.len() as u64));
    let (code, v) = get(a, "/api/v1/events?since=x");
    conforms(&doc, "/api/v1/events", "get", code, &v);
    assert_eq!(code, 400);
    let (code, v) = get(a, "/api/v1/status");
    conforms(&doc, "/api/v1/status", "get", code, &v);
    assert_eq!(v["model"], "persistence");

    // Predict: one sequence from the sample's last 15 windows; persistence
    // forecasts the last window's throughput.
    let seq: Vec<Vec<f64>> = windows[windows.len() - 15..]
        .iter()
        .map(|s| s.row.features().to_vec())
        .collect();
    let body = json!({ "sequences": [seq.clone(), seq.clone()] }).to_string();
    let (code, _, text) = request(a, "POST", "/api/v1/predict", "", body.as_bytes());
    let v: Value = serde_json::from_str(&text).unwrap();
    conforms(&doc, "/api/v1/predict", "post", code, &v);
    assert_eq!(code, 200, "{text}");
    let f = &v["forecasts"];
    assert_eq!(f.as_array().unwrap().len(), 2);
    let want = (seq[14][5] as f32) as f64;
    assert!((f[0]["throughput_mbps"].as_f64().unwrap() - want).abs() < 1e-9);
    assert!(
        f[0]["lower_mbps"].is_number(),
        "the stream's band is known: {v}"
    );
    assert_eq!(v["model"], "persistence");
    let request_schema = &doc["paths"]["/api/v1/predict"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    check(
        &doc,
        request_schema,
        &serde_json::from_str(&body).unwrap(),
        "body",
    )
    .unwrap();
    for bad in [
        json!({ "sequences": [seq[..14].to_vec()] }).to_string(),
        json!({ "sequence": [[1, 2, 3]] }).to_string(),
        "{\"sequence\": NaN}".to_owned(),
        "not json".to_owned(),
        json!({ "sequences": vec![seq.clone(); 513] }).to_string(),
    ] {
        let (code, _, text) = request(a, "POST", "/api/v1/predict", "", bad.as_bytes());
        let v: Value = serde_json::from_str(&text).unwrap();
        conforms(&doc, "/api/v1/predict", "post", code, &v);
        assert_eq!(code, 400, "{bad:.80}: {text}");
        assert!(v["error"].as_str().unwrap().len() > 10);
    }
    let big = vec![b' '; MAX_BODY_BYTES + 1];
    let (code, _, text) = request(a, "POST", "/api/v1/predict", "", &big);
    assert_eq!(code, 413, "{text}");
    let (code, _, _) = request(a, "GET", "/api/v1/predict", "", b"");
    assert_eq!(code, 405);
    let (code, _, _) = request(a, "DELETE", "/api/v1/streams", "", b"");
    assert_eq!(code, 405);
    // The page and its assets are embedded; unknown paths say where to look.
    let (code, head, page) = request(a, "GET", "/", "", b"");
    assert_eq!(code, 200);
    assert!(head.contains("text/html") && page.contains("uPlot.iife.min.js"));
    for asset in [
        "/app.js",
        "/app.css",
        "/vendor/uPlot.iife.min.js",
        "/vendor/uPlot.LICENSE",
    ] {
        let (code, _, body) = request(a, "GET", asset, "", b"");
        assert!(code == 200 && body.len() > 500, "{asset}");
    }
    let (code, _, body) = request(a, "GET", "/nope", "", b"");
    assert!(code == 404 && body.contains("/api/openapi.json"));
    let (code, _, body) = request(a, "GET", "/metrics", "", b"");
    assert!(code == 200 && body.contains("netforecast_frames_total"));
}

/// Read server-sent events until `until` says stop or 10 s pass.
fn read_events(
    r: &mut BufReader<TcpStream>,
    mut until: impl FnMut(&str, &str, &Value) -> bool,
) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let (mut id, mut event, mut data) = (String::new(), String::new(), String::new());
    let mut last_id = None;
    while Instant::now() < deadline {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            if !id.is_empty() {
                last_id = Some(id.clone());
            }
            if !data.is_empty() {
                let v: Value = serde_json::from_str(&data).unwrap();
                if until(&event, &id, &v) {
                    return last_id;
                }
            }
            (id, event, data) = (String::new(), String::new(), String::new());
        } else if let Some(x) = line.strip_prefix("id: ") {
            id = x.to_owned();
        } else if let Some(x) = line.strip_prefix("event: ") {
            event = x.to_owned();
        } else if let Some(x) = line.strip_prefix("data: ") {
            data = x.to_owned();
        }
    }
    None
}

fn open_live(addr: &str, query: &str, last_id: Option<&str>) -> BufReader<TcpStream> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let extra = last_id
        .map(|i| format!("Last-Event-ID: {i}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET /api/v1/live{query} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n{extra}\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    assert!(status.contains(" 200 "), "{status}");
    r
}

#[test]
fn live_clients_get_each_window_once_while_windows_arrive_and_resume_after_a_reconnect() {
    let (windows, _) = replayed();
    let server = start(None);
    let mut sink = LiveSink::new(Arc::clone(&server.live));
    sink.begin(0, "live veth0").unwrap();
    sink.window(&windows[0]).unwrap();
    let mut r = open_live(&server.addr, "?stream=veth0&since=0", None);
    let mut got: Vec<f64> = Vec::new();
    let mut status_seen = false;
    // Windows are appended in batches while the client listens: each batch
    // reaches it within a few ticks, in order, none twice.
    let mut fed = 1;
    let mut last_id = None;
    for batch in windows[1..300].chunks(40) {
        for s in batch {
            sink.window(s).unwrap();
        }
        fed += batch.len();
        last_id = read_events(&mut r, |event, _, v| {
            if event == "status" {
                status_seen = true;
                assert!(v["health"]["status"].is_string());
                return false;
            }
            let w = &v["windows"];
            if w.is_object() {
                assert_eq!(
                    w["first"].as_u64(),
                    Some(got.len() as u64),
                    "no gap, no repeat"
                );
                got.extend(
                    w["actual"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| x.as_f64().unwrap()),
                );
            }
            got.len() == fed
        });
        assert!(last_id.is_some(), "batch ending at {fed} arrived");
    }
    assert!(status_seen);
    let want: Vec<f64> = windows[..300]
        .iter()
        .map(|s| s.row.throughput_mbps)
        .collect();
    assert_eq!(got, want);
    // The client goes away; 100 windows later it reconnects with the id of
    // the last event it saw and gets exactly the windows it missed.
    drop(r);
    for s in &windows[300..400] {
        sink.window(s).unwrap();
    }
    let id = last_id.unwrap();
    assert!(id.starts_with("300."), "{id}");
    let mut r = open_live(&server.addr, "?stream=veth0&since=0", Some(&id));
    let mut again = Vec::new();
    read_events(&mut r, |event, _, v| {
        if event == "update" {
            assert_eq!(
                v["windows"]["first"].as_u64(),
                Some(300 + again.len() as u64)
            );
            again.extend(
                v["windows"]["actual"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap()),
            );
        }
        again.len() >= 100
    })
    .expect("the missed windows arrive");
    let want: Vec<f64> = windows[300..400]
        .iter()
        .map(|s| s.row.throughput_mbps)
        .collect();
    assert_eq!(again, want);
    let (code, _, _) = request(&server.addr, "GET", "/api/v1/live?stream=nope", "", b"");
    assert_eq!(code, 404);
}

#[test]
fn a_token_is_asked_for_and_accepted_as_basic_or_bearer() {
    let server = start(Some("s3cret"));
    let a = server.addr.as_str();
    let (code, head, body) = request(a, "GET", "/api/v1/streams", "", b"");
    assert_eq!(code, 401, "{body}");
    assert!(head.contains("WWW-Authenticate: Basic"), "{head}");
    assert!(!body.contains("s3cret"));
    for h in [
        "Authorization: Bearer s3cret\r\n",
        "Authorization: Basic eDpzM2NyZXQ=\r\n",
    ] {
        let (code, _, _) = request(a, "GET", "/api/v1/streams", h, b"");
        assert_eq!(code, 200, "{h}");
    }
    let (code, _, _) = request(a, "GET", "/metrics", "Authorization: Bearer wrong\r\n", b"");
    assert_eq!(code, 401);
    let (code, _, _) = request(a, "GET", "/", "", b"");
    assert_eq!(code, 401);
}

#[test]
fn fifty_live_clients_and_a_slow_one_do_not_hold_up_a_scrape() {
    let (windows, _) = replayed();
    let server = start(None);
    feed(&server, &windows[..100], &[]);
    let mut clients: Vec<BufReader<TcpStream>> = (0..50)
        .map(|_| open_live(&server.addr, "?since=0", None))
        .collect();
    // One more connects and never reads.
    let _stuck = open_live(&server.addr, "?since=0", None);
    for c in clients.iter_mut().take(5) {
        assert!(read_events(c, |e, _, _| e == "update").is_some());
    }
    let t = Instant::now();
    let (code, _, _) = request(&server.addr, "GET", "/metrics", "", b"");
    assert_eq!(code, 200);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a scrape among 51 live clients took {:?}",
        t.elapsed()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, .. ProptestConfig::default() })]

    /// Any body: an answer, never a panic.
    #[test]
    fn predict_bodies_never_panic(body in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = service::web::api::parse_sequences(&body);
    }

    /// Near-valid bodies: right or a reason.
    #[test]
    fn near_valid_bodies_are_accepted_or_explained(
        rows in 13usize..17, cols in 7usize..11, x in prop_oneof![
            Just("1".to_owned()), Just("-0.5".to_owned()), Just("null".to_owned()),
            Just("\"a\"".to_owned()), Just("1e308".to_owned()), Just("[]".to_owned()),
            Just("1e39".to_owned()),
        ], at in 0usize..200,
    ) {
        let mut vals = vec!["0.25".to_owned(); rows * cols];
        let k = at % vals.len();
        vals[k] = x.clone();
        let seq: Vec<String> = vals.chunks(cols).map(|c| format!("[{}]", c.join(","))).collect();
        let body = format!("{{\"sequences\": [[{}]]}}", seq.join(","));
        match service::web::api::parse_sequences(body.as_bytes()) {
            Ok((flat, n, _)) => {
                prop_assert_eq!((rows, cols, n), (15, 9, 1));
                prop_assert!(flat.iter().all(|v| v.is_finite()));
                prop_assert!(x == "1" || x == "-0.5");
            }
            Err(e) => prop_assert!(!e.is_empty()),
        }
    }
}

#[test]
fn fuzzed_predict_bodies_over_the_socket_get_400_or_200() {
    let server = start(None);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let valid = json!({ "sequence": vec![vec![0.5; 9]; 15] })
        .to_string()
        .into_bytes();
    for _ in 0..300 {
        let mut body = valid.clone();
        for _ in 0..(next() % 4) {
            let i = (next() as usize) % body.len();
            body[i] = (next() % 256) as u8;
        }
        let (code, _, text) = request(&server.addr, "POST", "/api/v1/predict", "", &body);
        assert!(code == 200 || code == 400, "{code}: {text}");
        assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text}");
    }
    // Still serving.
    let (code, _, _) = request(&server.addr, "GET", "/healthz", "", b"");
    assert!(code == 200 || code == 503);
}

#[test]
fn the_html_report_is_one_file_with_everything_inside() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let report = replay(Some(out.clone()), vec![]);
    let text = std::fs::read_to_string(&out).unwrap();
    for external in [
        "src=\"",
        "href=\"vendor",
        "href=\"app.css",
        "href=\"api",
        "href=\"http",
    ] {
        assert!(
            !text.contains(external),
            "the report refers outside itself: {external}"
        );
    }
    assert!(
        text.contains("uPlot") && text.contains("Leon Sorokin"),
        "uPlot and its licence inlined"
    );
    let start = text.find("window.NF_STATIC = ").unwrap() + "window.NF_STATIC = ".len();
    let end = start + text[start..].find(";</script>").unwrap();
    let data: Value = serde_json::from_str(&text[start..end].replace("<\\/", "</")).unwrap();
    let s = &data["streams"][0];
    assert_eq!(s["id"], "lab-cellular-s3.pcap.gz");
    assert_eq!(
        s["columns"]["t"].as_array().unwrap().len() as u64,
        s["summary"]["windows"].as_u64().unwrap()
    );
    assert!(s["summary"]["windows"].as_u64().unwrap() > 400);
    assert_eq!(
        data["report"]["windows"].as_u64(),
        Some(report.windows as u64)
    );
    assert!(
        !s["events"].as_array().unwrap().is_empty(),
        "the events are in"
    );
}
