//! The daemon's HTTP endpoint: the live page (`/`), its REST API (`/api/v1/...`,
//! described by `/api/openapi.json`), its Server-Sent Events stream
//! (`/api/v1/live`), and Prometheus' `/metrics` with `/healthz` and `/readyz`.
//!
//! One tokio runtime on one thread serves every client. A request is read
//! whole (head within [`REQUEST_TIMEOUT`], body up to [`MAX_BODY_BYTES`]),
//! answered and closed; a live stream stays open and is written every 250 ms
//! from the shared [`Live`] store, each client from its own position, so a
//! slow client only delays itself. At most [`MAX_CONNECTIONS`] requests are
//! open (a new one closes the longest-idle) and [`MAX_STREAMS`] live streams.
//! Bound to localhost unless told otherwise; elsewhere the daemon asks for a
//! token ([`Web::token`]) unless run with `--insecure-http`.

pub mod api;
pub mod report;

use crate::live::Live;
use crate::shutdown::Shutdown;
use crate::sinks::prometheus::Metrics;
use engine::forecast::SequenceModel;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A model shared with the API's `/predict` (its own copy: the pipeline's is
/// busy on its thread).
pub type SharedModel = Arc<Mutex<Box<dyn SequenceModel + Send>>>;

/// What the endpoint serves from.
pub struct Web {
    /// The pipeline's metrics (`/metrics`, health, capture counters).
    pub metrics: Arc<Metrics>,
    /// The last minutes of every stream.
    pub live: Arc<Live>,
    /// The model `/api/v1/predict` runs, if any.
    pub model: Option<SharedModel>,
    /// The pipeline's model version (read without the predict model's lock,
    /// which a long `/predict` holds).
    pub model_version: Option<String>,
    /// Every request must carry this token (HTTP Basic password or Bearer).
    pub token: Option<String>,
}

/// The endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot serve HTTP on {addr}: {detail}; choose another --metrics-addr or give an empty one"
)]
pub struct ServeError {
    /// The address asked for.
    pub addr: String,
    /// What went wrong.
    pub detail: String,
}

/// Requests open at once; beyond this the longest-idle one is closed, so a
/// crowd of idle clients cannot lock out a scrape.
pub const MAX_CONNECTIONS: usize = 64;
/// Live streams open at once (each a browser tab); more are refused with 503.
pub const MAX_STREAMS: usize = 256;
/// A client has this long to send its request before it is closed.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Largest request body (`/api/v1/predict`): about 800 sequences of 15 x 9.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Serve on a named thread until `stop` is set; returns the thread and the
/// address bound (`:0` picks a free port).
pub fn serve(
    addr: &str,
    web: Arc<Web>,
    stop: Shutdown,
) -> Result<(std::thread::JoinHandle<()>, String), ServeError> {
    let err = |detail: String| ServeError {
        addr: addr.into(),
        detail,
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| err(e.to_string()))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| err(e.to_string()))?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| addr.to_owned());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| err(e.to_string()))?;
    std::thread::Builder::new()
        .name("http".into())
        .spawn(move || rt.block_on(accept_loop(listener, web, stop)))
        .map(|h| (h, bound))
        .map_err(|e| err(e.to_string()))
}

/// A connection's state, for eviction.
const READING: u8 = 0;
const ANSWERING: u8 = 1;
const STREAMING: u8 = 2;

/// One open connection: when it was accepted, what it is doing.
struct Conn {
    since: Instant,
    state: Arc<AtomicU8>,
    task: tokio::task::JoinHandle<()>,
}

async fn accept_loop(listener: std::net::TcpListener, web: Arc<Web>, stop: Shutdown) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        tracing::error!("the HTTP endpoint cannot listen");
        return;
    };
    let mut conns: Vec<Conn> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Out of file descriptors, or the client gave up: wait a moment.
                        crate::diag::warn_every(&ACCEPT_FAILED, format_args!("HTTP endpoint: accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                conns.retain(|c| !c.task.is_finished());
                let requests = conns.iter().filter(|c| c.state.load(Ordering::Relaxed) != STREAMING).count();
                // Counted before an eviction, which closes a request, not a stream.
                let streams = conns.len() - requests;
                if requests >= MAX_CONNECTIONS {
                    // Close the longest-idle request (one not being answered).
                    if let Some(i) = conns
                        .iter()
                        .enumerate()
                        .filter(|(_, c)| c.state.load(Ordering::Relaxed) == READING)
                        .min_by_key(|(_, c)| c.since)
                        .map(|(i, _)| i)
                    {
                        conns.swap_remove(i).task.abort();
                    }
                }
                let state = Arc::new(AtomicU8::new(READING));
                let task = tokio::spawn(answer(
                    stream,
                    Arc::clone(&web),
                    Arc::clone(&state),
                    streams < MAX_STREAMS,
                    stop.clone(),
                ));
                conns.push(Conn { since: Instant::now(), state, task });
            }
            _ = tick.tick() => {
                if stop.is_set() {
                    break;
                }
                conns.retain(|c| !c.task.is_finished());
            }
        }
    }
    for c in conns {
        c.task.abort();
    }
}

static ACCEPT_FAILED: crate::diag::RateLimit = crate::diag::RateLimit::every(60);

/// A request, read whole.
#[derive(Debug, Default)]
pub struct Request {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// `Authorization`, if sent.
    pub authorization: Option<String>,
    /// `Last-Event-ID`, if sent (an EventSource reconnecting).
    pub last_event_id: Option<String>,
    /// The body.
    pub body: Vec<u8>,
}

impl Request {
    /// The value of query parameter `name`, percent-decoded.
    pub fn param(&self, name: &str) -> Option<String> {
        self.query.split('&').find_map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An answer.
#[derive(Debug)]
pub enum Reply {
    /// A whole response.
    Full {
        /// Status code.
        code: u16,
        /// `Content-Type`.
        ctype: &'static str,
        /// The body.
        body: Vec<u8>,
        /// Further header lines, each ending in CRLF.
        headers: String,
    },
    /// A live stream of stream `stream` from window `since`, events from `events`.
    Live {
        /// The stream (None: none yet; the client gets status only until one appears).
        stream: Option<String>,
        /// First window sequence number to send (None: from now).
        since: Option<u64>,
        /// First event record to send (None: from now).
        events: Option<u64>,
    },
}

impl Reply {
    /// A response with no extra headers.
    pub fn new(code: u16, ctype: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply::Full {
            code,
            ctype,
            body: body.into(),
            headers: String::new(),
        }
    }

    /// A JSON response.
    pub fn json<T: serde::Serialize>(code: u16, v: &T) -> Reply {
        let mut body = serde_json::to_vec(v).unwrap_or_default();
        body.push(b'\n');
        Reply::new(code, "application/json", body)
    }

    /// A JSON error: `{"error": "..."}`.
    pub fn error(code: u16, msg: impl Into<String>) -> Reply {
        Reply::json(code, &serde_json::json!({ "error": msg.into() }))
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Why a request could not be read.
enum ReadError {
    /// The client went away or was too slow: close without answering.
    Gone,
    /// Answer this and close.
    Answer(Reply),
}

/// Read one request: the head, then `Content-Length` bytes of body.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Result<Request, ReadError> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(ReadError::Answer(Reply::error(
                431,
                "request head over 8 KiB",
            )));
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(ReadError::Gone),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut words = lines.next().unwrap_or("").split_whitespace();
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let mut req = Request {
        method: method.to_owned(),
        path: path.to_owned(),
        query: query.to_owned(),
        ..Request::default()
    };
    let mut length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => match value.parse::<usize>() {
                Ok(n) => length = Some(n),
                Err(_) => {
                    return Err(ReadError::Answer(Reply::error(
                        400,
                        "Content-Length is not a number",
                    )));
                }
            },
            "transfer-encoding" => {
                return Err(ReadError::Answer(Reply::error(
                    411,
                    "send the body with a Content-Length (chunked bodies are not read)",
                )));
            }
            "authorization" => req.authorization = Some(value.to_owned()),
            "last-event-id" => req.last_event_id = Some(value.to_owned()),
            _ => {}
        }
    }
    let length = length.unwrap_or(0);
    if length > MAX_BODY_BYTES {
        return Err(ReadError::Answer(Reply::error(
            413,
            format!("request body of {length} bytes; at most {MAX_BODY_BYTES}"),
        )));
    }
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return Err(ReadError::Gone),
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(length);
    req.body = body;
    Ok(req)
}

/// Read one request (within the timeout), answer it, close; or stream.
async fn answer(
    mut stream: tokio::net::TcpStream,
    web: Arc<Web>,
    state: Arc<AtomicU8>,
    may_stream: bool,
    stop: Shutdown,
) {
    use tokio::io::AsyncWriteExt;
    let read = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream)).await;
    let (reply, head_only) = match read {
        Err(_) | Ok(Err(ReadError::Gone)) => return,
        Ok(Err(ReadError::Answer(r))) => (r, false),
        Ok(Ok(req)) => {
            state.store(ANSWERING, Ordering::Relaxed);
            let head_only = req.method == "HEAD";
            (api::route(&web, req).await, head_only)
        }
    };
    match reply {
        Reply::Live { .. } if !may_stream => {
            let r = Reply::error(
                503,
                format!("{MAX_STREAMS} live streams are open; try later"),
            );
            write_full(&mut stream, r, false).await;
        }
        Reply::Live {
            stream: id,
            since,
            events,
        } => {
            state.store(STREAMING, Ordering::Relaxed);
            api::live_stream(&mut stream, &web, id, since, events, &stop).await;
        }
        full => write_full(&mut stream, full, head_only).await,
    }
    let _ = stream.shutdown().await;
}

async fn write_full(stream: &mut tokio::net::TcpStream, reply: Reply, head_only: bool) {
    use tokio::io::AsyncWriteExt;
    let Reply::Full {
        code,
        ctype,
        body,
        headers,
    } = reply
    else {
        return;
    };
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{headers}X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        reason(code),
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(&body);
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), stream.write_all(&out)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded() {
        let r = Request {
            query: "since=12&stream=eth%300&x&bad=%zz&end=%4".into(),
            ..Request::default()
        };
        assert_eq!(r.param("since").as_deref(), Some("12"));
        assert_eq!(r.param("stream").as_deref(), Some("eth00"));
        assert_eq!(r.param("x").as_deref(), Some(""));
        assert_eq!(r.param("bad").as_deref(), Some("%zz"));
        assert_eq!(r.param("end").as_deref(), Some("%4"));
        assert_eq!(r.param("none"), None);
    }
}
