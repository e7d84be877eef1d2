//! Daemon configuration: a TOML file, then the environment on top
//! (INFLUX_URL, INFLUX_ORG, INFLUX_BUCKET, INFLUX_DB, INFLUX_VERSION,
//! INFLUX_TOKEN or INFLUX_TOKEN_FILE, INFLUX_FIELDS; KAFKA_BROKERS, KAFKA_TOPIC,
//! KAFKA_FORMAT, KAFKA_FIELDS), then command-line options.
//!
//! The InfluxDB token is a [`Secret`]: it is read from the environment or a
//! file, never from argv, and it prints as `***` in logs, errors and debug output.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A value that must never be printed.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The value, for the one place that sends it (an HTTP header).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// Whether there is no secret at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() { "(none)" } else { "***" })
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// Errors of the configuration (all of them usage errors).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file {path}: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// The file is not valid TOML for this configuration.
    #[error("the config file {path} is not valid: {detail}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        detail: String,
    },
    /// The token file cannot be read.
    #[error("cannot read the {what} token file {path}: {detail}")]
    TokenFile {
        /// Whose token: InfluxDB, HTTP.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        detail: String,
    },
    /// A value is out of range or the values do not fit together.
    #[error("{0}")]
    Invalid(String),
}

/// Which InfluxDB write API to use.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
pub enum InfluxApi {
    /// `/api/v2/write?org=&bucket=` with a token (InfluxDB 2, VictoriaMetrics).
    V2,
    /// `/write?db=` (InfluxDB 1.x).
    V1,
}

/// The `[influx]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// Empty: no database; forecasts go to the local CSV only.
    pub url: String,
    /// 2 or 1.
    pub version: u8,
    /// InfluxDB 2 organisation.
    pub org: String,
    /// InfluxDB 2 bucket.
    pub bucket: String,
    /// InfluxDB 1.x database.
    pub database: String,
    /// File holding the token (or INFLUX_TOKEN / INFLUX_TOKEN_FILE).
    pub token_file: Option<PathBuf>,
    /// The token (from INFLUX_TOKEN or the token file).
    #[serde(skip)]
    pub token: Secret,
    /// Points per write.
    pub batch_points: usize,
    /// Longest a point waits before its batch is written, ms.
    pub batch_age_ms: u64,
    /// Points held while the server is unreachable; the oldest are dropped beyond
    /// this. 100,000 points is over an hour at 20 points/s.
    pub buffer_points: usize,
    /// Compress writes.
    pub gzip: bool,
    /// Keep the unsent points on disk here (an outage plus a crash then loses at
    /// most the last second); empty: memory only.
    pub buffer_dir: Option<PathBuf>,
    /// Measurement name.
    pub measurement: String,
    /// The fields of a window's point written (INFLUX_FIELDS, comma-separated);
    /// empty: every one. A fleet writes what its dashboards draw: each field is
    /// a series per stream in VictoriaMetrics and Prometheus.
    pub fields: Vec<String>,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            url: String::new(),
            version: 2,
            org: String::new(),
            bucket: "netforecast".into(),
            database: "netforecast".into(),
            token_file: None,
            token: Secret::default(),
            batch_points: 200,
            batch_age_ms: 1000,
            buffer_points: 100_000,
            gzip: true,
            buffer_dir: None,
            measurement: "traffic_prediction".into(),
            fields: Vec::new(),
        }
    }
}

impl InfluxConfig {
    /// The write API the version asks for.
    pub fn api(&self) -> InfluxApi {
        if self.version == 1 {
            InfluxApi::V1
        } else {
            InfluxApi::V2
        }
    }
    /// Whether a database is configured.
    pub fn enabled(&self) -> bool {
        !self.url.is_empty()
    }
}

/// What a Kafka message holds.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaFormat {
    /// One point as InfluxDB line protocol (what Telegraf's Kafka consumer reads).
    Line,
    /// One point as a JSON object: measurement, tags, fields, time_ms.
    Json,
}

/// The `[kafka]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port]`; empty: no Kafka.
    pub brokers: String,
    /// The topic every point goes to.
    pub topic: String,
    /// `line` or `json`.
    pub format: KafkaFormat,
    /// Points held by the producer while the brokers do not take them; beyond
    /// this new points are dropped and counted.
    pub buffer_points: usize,
    /// Longest a point waits to fill a batch, ms.
    pub linger_ms: u64,
    /// `none`, `gzip`, `lz4`, `zstd` or `snappy` (what the brokers accept).
    pub compression: String,
    /// The fields of a window's point sent (KAFKA_FIELDS, comma-separated);
    /// empty: every one.
    pub fields: Vec<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            brokers: String::new(),
            topic: "netforecast".into(),
            format: KafkaFormat::Line,
            buffer_points: 100_000,
            linger_ms: 100,
            compression: "none".into(),
            fields: Vec::new(),
        }
    }
}

impl KafkaConfig {
    /// Whether a broker is configured.
    pub fn enabled(&self) -> bool {
        !self.brokers.trim().is_empty()
    }
}

/// Most host (or flow) streams per interface.
pub const MAX_TOP_HOSTS: usize = 4096;

/// Most interfaces one daemon captures on (a capture thread each).
pub const MAX_IFACES: usize = 64;

/// `a,b , c` as field names (empty entries dropped).
fn field_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `iface = "eth0"`, `iface = "eth0,eth1"` or `iface = ["eth0", "eth1"]`.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s,
        OneOrMany::Many(v) => v.join(","),
    })
}

/// The whole daemon configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DaemonConfig {
    /// Interfaces to capture on, comma-separated (the file also takes a list):
    /// one capture thread and one stream each. [`DaemonConfig::ifaces`] splits it.
    #[serde(deserialize_with = "one_or_many")]
    pub iface: String,
    /// BPF capture filter.
    pub filter: String,
    /// Bytes kept per packet.
    pub snaplen: i32,
    /// Kernel capture buffer, MiB.
    pub buffer_mib: i32,
    /// Streams of their own for the busiest hosts of each interface (0: none).
    pub top_hosts: usize,
    /// Streams of their own for the busiest TCP connections of each
    /// interface (0: none).
    pub top_flows: usize,
    /// Window width, ms.
    pub window_ms: u32,
    /// Model directory (None: the shipped one).
    pub model: Option<PathBuf>,
    /// Host tag on every point (default: the machine's hostname).
    pub host: String,
    /// Predictions CSV (the local log); written when set, and by default when
    /// no database is configured.
    pub csv: Option<PathBuf>,
    /// Rotate the CSV beyond this many MiB, keeping `csv_keep` old files.
    pub csv_max_mib: u64,
    /// Old CSV files kept.
    pub csv_keep: u32,
    /// The HTTP endpoint (page, REST API, `/metrics`); empty disables it.
    /// Localhost unless told otherwise.
    pub metrics_addr: String,
    /// File holding the token every HTTP request must carry (or
    /// NETFORECAST_HTTP_TOKEN / NETFORECAST_HTTP_TOKEN_FILE). Required when
    /// `metrics_addr` is not a loopback address, unless `insecure_http`.
    pub http_token_file: Option<PathBuf>,
    /// The HTTP token (from the environment or the file).
    #[serde(skip)]
    pub http_token: Secret,
    /// Serve a non-loopback address without a token.
    pub insecure_http: bool,
    /// Alertmanager base URL for the events (`POST /api/v2/alerts`); empty
    /// disables it.
    pub alertmanager_url: String,
    /// The `[events]` table: the event detector's thresholds.
    pub events: crate::events::EventConfig,
    /// Seconds allowed for flushing everything at shutdown.
    pub shutdown_deadline_s: u64,
    /// Drop root privileges to this user once the capture is open.
    pub user: Option<String>,
    /// The `[influx]` table.
    pub influx: InfluxConfig,
    /// The `[kafka]` table.
    pub kafka: KafkaConfig,
    /// The file it came from and its text, to name lines in messages.
    #[serde(skip)]
    pub source: Option<(PathBuf, String)>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            iface: String::new(),
            filter: "tcp".into(),
            snaplen: 256,
            buffer_mib: 64,
            top_hosts: 32,
            top_flows: 32,
            window_ms: 50,
            model: None,
            host: hostname(),
            csv: None,
            csv_max_mib: 100,
            csv_keep: 5,
            metrics_addr: "127.0.0.1:9898".into(),
            http_token_file: None,
            http_token: Secret::default(),
            insecure_http: false,
            alertmanager_url: String::new(),
            events: crate::events::EventConfig::default(),
            shutdown_deadline_s: 10,
            user: None,
            influx: InfluxConfig::default(),
            kafka: KafkaConfig::default(),
            source: None,
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Where the environment comes from (the process, or a map in tests).
pub trait Env {
    /// The variable's value, if set and not empty.
    fn get(&self, key: &str) -> Option<String>;
    /// Whether the variable is set to something that is not text (UTF-8).
    fn is_binary(&self, _key: &str) -> bool {
        false
    }
}

/// The process's environment.
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
    fn is_binary(&self, key: &str) -> bool {
        matches!(std::env::var(key), Err(std::env::VarError::NotUnicode(_)))
    }
}

/// The 1-based line of `key = ...` in a TOML text, for messages.
fn line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map(|i| i + 1)
}

/// Read a token file: one line of text, no control characters, not empty.
fn read_token_file(p: &Path, what: &'static str) -> Result<Secret, ConfigError> {
    let err = |detail: String| ConfigError::TokenFile {
        what,
        path: p.to_owned(),
        detail,
    };
    let bytes = std::fs::read(p).map_err(|e| err(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|_| err("it is not text (UTF-8)".into()))?;
    let t = text.strip_suffix('\n').unwrap_or(&text);
    let t = t.strip_suffix('\r').unwrap_or(t).trim();
    if t.is_empty() {
        return Err(err("it is empty; put the token on its one line".into()));
    }
    if t.contains('\n') {
        return Err(err(
            "it has more than one line; the token alone must be on its one line".into(),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(err(
            "the token has a control character; write the token alone on one line".into(),
        ));
    }
    {
        use std::os::unix::fs::PermissionsExt;
        if std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o004 != 0) {
            tracing::warn!(
                "the token file {} is readable by every user; chmod 600 it",
                p.display()
            );
        }
    }
    Ok(Secret::new(t))
}

impl DaemonConfig {
    /// Read the TOML file (if any), then apply the environment.
    pub fn load(file: Option<&Path>, env: &dyn Env) -> Result<Self, ConfigError> {
        let mut cfg = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Read {
                    path: p.to_owned(),
                    detail: e.to_string(),
                })?;
                let mut c = toml::from_str::<DaemonConfig>(&text).map_err(|e| {
                    let line = e
                        .span()
                        .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
                    ConfigError::Parse {
                        path: p.to_owned(),
                        detail: match line {
                            Some(l) => format!("line {l}: {}", e.message()),
                            None => e.message().to_owned(),
                        },
                    }
                })?;
                c.source = Some((p.to_owned(), text));
                c
            }
            None => DaemonConfig::default(),
        };
        let i = &mut cfg.influx;
        if let Some(v) = env.get("INFLUX_URL") {
            i.url = v;
        }
        if let Some(v) = env.get("INFLUX_ORG") {
            i.org = v;
        }
        if let Some(v) = env.get("INFLUX_BUCKET") {
            i.bucket = v;
        }
        if let Some(v) = env.get("INFLUX_DB") {
            i.database = v;
        }
        if let Some(v) = env.get("INFLUX_VERSION") {
            i.version = match v.trim() {
                "1" => 1,
                "2" => 2,
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "INFLUX_VERSION is {other:?}; use 1 or 2"
                    )));
                }
            };
        }
        if let Some(v) = env.get("INFLUX_TOKEN_FILE") {
            i.token_file = Some(PathBuf::from(v));
        }
        if env.is_binary("INFLUX_TOKEN") {
            return Err(ConfigError::Invalid(
                "INFLUX_TOKEN is not text (UTF-8); set it to the token, or use INFLUX_TOKEN_FILE"
                    .into(),
            ));
        }
        if let Some(v) = env.get("INFLUX_TOKEN") {
            if v.trim().chars().any(char::is_control) {
                return Err(ConfigError::Invalid(
                    "INFLUX_TOKEN has a control character; set it to the token alone".into(),
                ));
            }
            i.token = Secret::new(v.trim());
        } else if let Some(p) = &i.token_file {
            i.token = read_token_file(p, "InfluxDB")?;
        }
        if let Some(v) = env.get("INFLUX_FIELDS") {
            i.fields = field_list(&v);
        }
        if let Some(v) = env.get("KAFKA_BROKERS") {
            cfg.kafka.brokers = v;
        }
        if let Some(v) = env.get("KAFKA_FIELDS") {
            cfg.kafka.fields = field_list(&v);
        }
        if let Some(v) = env.get("KAFKA_TOPIC") {
            cfg.kafka.topic = v;
        }
        if let Some(v) = env.get("KAFKA_FORMAT") {
            cfg.kafka.format = match v.trim() {
                "line" => KafkaFormat::Line,
                "json" => KafkaFormat::Json,
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "KAFKA_FORMAT is {other:?}; use line or json"
                    )));
                }
            };
        }
        if let Some(v) = env.get("NETFORECAST_HTTP_TOKEN_FILE") {
            cfg.http_token_file = Some(PathBuf::from(v));
        }
        if let Some(v) = env.get("NETFORECAST_HTTP_TOKEN") {
            if v.trim().chars().any(char::is_control) {
                return Err(ConfigError::Invalid(
                    "NETFORECAST_HTTP_TOKEN has a control character; set it to the token alone"
                        .into(),
                ));
            }
            cfg.http_token = Secret::new(v.trim());
        } else if let Some(p) = &cfg.http_token_file {
            cfg.http_token = read_token_file(p, "HTTP")?;
        }
        Ok(cfg)
    }

    /// `key` and where it was set, for messages: "`buffer_mib` (c.toml line 3)".
    fn key(&self, key: &str) -> String {
        let short = key.rsplit('.').next().unwrap_or(key);
        match &self.source {
            Some((p, text)) => match line_of(text, short) {
                Some(l) => format!("{key} ({} line {l})", p.display()),
                None => key.to_owned(),
            },
            None => key.to_owned(),
        }
    }

    /// Every name in `fields` is a field of a window's point.
    fn known_fields(&self, key: &str, env: &str, fields: &[String]) -> Result<(), ConfigError> {
        let known: Vec<&str> = crate::sinks::influx::point_field_names().collect();
        match fields.iter().find(|f| !known.contains(&f.as_str())) {
            Some(f) => Err(ConfigError::Invalid(format!(
                "{} ({env}) names {f:?}, not a field of a point; use some of {}",
                self.key(key),
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// The interfaces, in the order given.
    pub fn ifaces(&self) -> Vec<&str> {
        self.iface
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Checks that need the whole configuration.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let ifaces = self.ifaces();
        if ifaces.is_empty() {
            return Err(ConfigError::Invalid(
                "no interface: give --iface IF (or iface in the config file)".into(),
            ));
        }
        if ifaces.len() > MAX_IFACES {
            return Err(ConfigError::Invalid(format!(
                "{} names {} interfaces; one daemon captures on at most {MAX_IFACES}",
                self.key("iface"),
                ifaces.len()
            )));
        }
        for (i, a) in ifaces.iter().enumerate() {
            if ifaces[..i].contains(a) {
                return Err(ConfigError::Invalid(format!(
                    "{} names {a} twice; give each interface once",
                    self.key("iface")
                )));
            }
        }
        for (key, k) in [("top_hosts", self.top_hosts), ("top_flows", self.top_flows)] {
            if k > MAX_TOP_HOSTS {
                return Err(ConfigError::Invalid(format!(
                    "{} is {k}: at most {MAX_TOP_HOSTS} streams of one kind per interface",
                    self.key(key)
                )));
            }
        }
        if !(1..=1024).contains(&self.buffer_mib) {
            return Err(ConfigError::Invalid(format!(
                "{} is {}: the kernel capture buffer must be 1 to 1024 MiB",
                self.key("buffer_mib"),
                self.buffer_mib
            )));
        }
        if !(64..=262_144).contains(&self.snaplen) {
            return Err(ConfigError::Invalid(format!(
                "{} is {}: use 64 to 262144 bytes",
                self.key("snaplen"),
                self.snaplen
            )));
        }
        if self.shutdown_deadline_s > 3600 {
            return Err(ConfigError::Invalid(format!(
                "{} is {}: use at most 3600 seconds",
                self.key("shutdown_deadline_s"),
                self.shutdown_deadline_s
            )));
        }
        if let Some(p) = self.events.problem() {
            return Err(ConfigError::Invalid(format!("[events] {p}")));
        }
        let am = &self.alertmanager_url;
        if !(am.is_empty() || am.starts_with("http://") || am.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "{} is {:?}: give Alertmanager's base URL such as http://127.0.0.1:9093 (empty disables it)",
                self.key("alertmanager_url"),
                self.alertmanager_url
            )));
        }
        if !self.metrics_addr.is_empty() {
            use std::net::ToSocketAddrs;
            match self
                .metrics_addr
                .to_socket_addrs()
                .map(|a| a.collect::<Vec<_>>())
            {
                Err(_) => {
                    return Err(ConfigError::Invalid(format!(
                        "{} is {:?}: give an address and port such as 127.0.0.1:9898 (empty disables it)",
                        self.key("metrics_addr"),
                        self.metrics_addr
                    )));
                }
                Ok(a) if a.iter().any(|a| !a.ip().is_loopback()) => {
                    if self.http_token.is_empty() && !self.insecure_http {
                        return Err(ConfigError::Invalid(format!(
                            "{} is {}, not only this host: set a token (NETFORECAST_HTTP_TOKEN, NETFORECAST_HTTP_TOKEN_FILE or http_token_file) or pass --insecure-http",
                            self.key("metrics_addr"),
                            self.metrics_addr
                        )));
                    }
                    if self.http_token.is_empty() {
                        tracing::warn!(
                            "the HTTP endpoint listens on {} without a token (--insecure-http): anyone who can reach it can read the forecasts and run the model",
                            self.metrics_addr
                        );
                    }
                }
                Ok(_) => {}
            }
        }
        let k = &self.kafka;
        if k.enabled() {
            for b in k.brokers.split(',').map(str::trim) {
                let port_ok = b
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !port_ok || b.contains("://") {
                    return Err(ConfigError::Invalid(format!(
                        "{} has {b:?}: give brokers as host:port[,host:port] such as 127.0.0.1:9092 (KAFKA_BROKERS)",
                        self.key("kafka.brokers")
                    )));
                }
            }
            let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
            if k.topic.is_empty() || k.topic.len() > 249 || !k.topic.chars().all(legal) {
                return Err(ConfigError::Invalid(format!(
                    "{} is {:?}: a Kafka topic is 1 to 249 of a-z A-Z 0-9 . _ - (KAFKA_TOPIC)",
                    self.key("kafka.topic"),
                    k.topic
                )));
            }
            if !(1..=10_000_000).contains(&k.buffer_points) {
                return Err(ConfigError::Invalid(format!(
                    "{} is {}: use 1 to 10000000 points",
                    self.key("kafka.buffer_points"),
                    k.buffer_points
                )));
            }
            if !["none", "gzip", "lz4", "zstd", "snappy"].contains(&k.compression.as_str()) {
                return Err(ConfigError::Invalid(format!(
                    "{} is {:?}: use none, gzip, lz4, zstd or snappy",
                    self.key("kafka.compression"),
                    k.compression
                )));
            }
            self.known_fields("kafka.fields", "KAFKA_FIELDS", &k.fields)?;
            if k.linger_ms > 60_000 {
                return Err(ConfigError::Invalid(format!(
                    "{} is {}: use at most 60000 ms",
                    self.key("kafka.linger_ms"),
                    k.linger_ms
                )));
            }
        }
        let i = &self.influx;
        if !matches!(i.version, 1 | 2) {
            return Err(ConfigError::Invalid(format!(
                "{} is {}: use 1 (InfluxDB 1.x) or 2 (InfluxDB 2, VictoriaMetrics)",
                self.key("influx.version"),
                i.version
            )));
        }
        if i.enabled() {
            if !(i.url.starts_with("http://") || i.url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "INFLUX_URL {:?} must start with http:// or https://",
                    i.url
                )));
            }
            if let Err(e) = reqwest::Url::parse(&i.url) {
                return Err(ConfigError::Invalid(format!(
                    "INFLUX_URL {:?} is not a valid URL ({e}); for example http://127.0.0.1:8086",
                    i.url
                )));
            }
            self.known_fields("influx.fields", "INFLUX_FIELDS", &i.fields)?;
            if i.buffer_points > 10_000_000 {
                return Err(ConfigError::Invalid(format!(
                    "{} is {}: use at most 10000000 points",
                    self.key("influx.buffer_points"),
                    i.buffer_points
                )));
            }
            if i.version == 2 && i.token.is_empty() {
                tracing::warn!(
                    "no InfluxDB token (INFLUX_TOKEN or INFLUX_TOKEN_FILE): writes are sent unauthenticated"
                );
            }
            if i.version == 2 && i.bucket.is_empty() {
                return Err(ConfigError::Invalid(
                    "InfluxDB 2 needs a bucket (INFLUX_BUCKET)".into(),
                ));
            }
            if i.version == 1 && i.database.is_empty() {
                return Err(ConfigError::Invalid(
                    "InfluxDB 1 needs a database (INFLUX_DB)".into(),
                ));
            }
            if i.batch_points == 0 || i.buffer_points < i.batch_points {
                return Err(ConfigError::Invalid(format!(
                    "{} must be at least {} (> 0)",
                    self.key("influx.buffer_points"),
                    self.key("influx.batch_points")
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Map(HashMap<&'static str, String>);
    impl Env for Map {
        fn get(&self, k: &str) -> Option<String> {
            self.0.get(k).cloned()
        }
    }

    #[test]
    fn the_events_table_sets_thresholds_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "iface = \"eth0\"\n[events]\ncongestion_prob = 0.7\ndrop_windows = 6\n",
        )
        .unwrap();
        let c = DaemonConfig::load(Some(&f), &Map(HashMap::new())).unwrap();
        c.validate().unwrap();
        assert_eq!(c.events.congestion_prob, 0.7);
        assert_eq!(c.events.drop_windows, 6);
        assert_eq!(c.events.congestion_m, 3, "the rest keep their defaults");
        let e = refused("iface = \"eth0\"\n[events]\ncongestion_m = 5\n", &[]);
        assert!(e.contains("congestion_m 5 of congestion_n 4"), "{e}");
        let e = refused("iface = \"eth0\"\n[events]\nfoo = 1\n", &[]);
        assert!(e.contains("foo"), "{e}");
    }

    #[test]
    fn env_overrides_file_and_the_token_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(
            &f,
            "iface = \"eth0\"\n[influx]\nurl = \"http://a:8086\"\nbucket = \"b\"\n",
        )
        .unwrap();
        let tok = dir.path().join("tok");
        std::fs::write(&tok, "s3cr3t-token\n").unwrap();
        let env = Map(HashMap::from([
            ("INFLUX_URL", "http://127.0.0.1:8428".to_string()),
            ("INFLUX_TOKEN_FILE", tok.display().to_string()),
        ]));
        let c = DaemonConfig::load(Some(&f), &env).unwrap();
        assert_eq!(c.influx.url, "http://127.0.0.1:8428");
        assert_eq!(c.influx.bucket, "b");
        assert_eq!(c.influx.token.expose(), "s3cr3t-token");
        let shown = format!("{c:?} {}", c.influx.token);
        assert!(!shown.contains("s3cr3t"), "{shown}");
        c.validate().unwrap();
    }

    #[test]
    fn the_shipped_example_configuration_loads_and_validates() {
        let f = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/netforecast.toml.example");
        // Its token_file is the deployed one; the environment's token wins.
        let env = Map(HashMap::from([("INFLUX_TOKEN", "t".to_string())]));
        let c = DaemonConfig::load(Some(&f), &env).unwrap();
        c.validate().unwrap();
        assert_eq!(c.ifaces(), ["eth0"]);
        assert!(c.influx.fields.is_empty() && c.kafka.fields.is_empty());
    }

    #[test]
    fn field_lists_from_the_file_or_the_environment_and_unknown_names_refused() {
        let c = accepted(
            "iface = \"eth0\"\n[influx]\nurl = \"http://a:8428\"\nfields = [\"actual_mbps\", \"congestion_prob\"]\n",
            &[
                ("KAFKA_BROKERS", "a:9092"),
                ("KAFKA_FIELDS", " actual_mbps, predicted_mbps ,"),
            ],
        );
        assert_eq!(c.influx.fields, ["actual_mbps", "congestion_prob"]);
        assert_eq!(c.kafka.fields, ["actual_mbps", "predicted_mbps"]);
        let c = accepted(
            "iface = \"eth0\"\n",
            &[
                ("INFLUX_URL", "http://a:8428"),
                ("INFLUX_FIELDS", "mase_recent,bif"),
            ],
        );
        assert_eq!(c.influx.fields, ["mase_recent", "bif"]);
        assert!(accepted("iface = \"eth0\"\n", &[]).influx.fields.is_empty());
        let e = refused(
            "iface = \"eth0\"\n",
            &[
                ("INFLUX_URL", "http://a:8428"),
                ("INFLUX_FIELDS", "actual_mbps,throughput"),
            ],
        );
        assert!(
            e.contains("INFLUX_FIELDS") && e.contains("\"throughput\""),
            "{e}"
        );
        assert!(
            e.contains("throughput_mbps"),
            "the valid names are listed: {e}"
        );
        let e = refused(
            "iface = \"eth0\"\n[kafka]\nbrokers = \"a:9092\"\nfields = [\"rtt\"]\n",
            &[],
        );
        assert!(e.contains("kafka.fields (") && e.contains("\"rtt\""), "{e}");
    }

    #[test]
    fn the_kafka_table_and_environment_set_the_sink_and_bad_values_are_refused() {
        let c = accepted(
            "iface = \"eth0\"\n[kafka]\ntopic = \"nf.points\"\nformat = \"json\"\n",
            &[("KAFKA_BROKERS", "127.0.0.1:9092,[::1]:9093")],
        );
        assert!(c.kafka.enabled());
        assert_eq!(c.kafka.topic, "nf.points");
        assert_eq!(c.kafka.format, KafkaFormat::Json);
        let c = accepted("iface = \"eth0\"\n", &[("KAFKA_FORMAT", "line")]);
        assert!(!c.kafka.enabled(), "no brokers: no Kafka");
        for (toml, env, says) in [
            ("", vec![("KAFKA_BROKERS", "kafka://a:9092")], "host:port"),
            ("", vec![("KAFKA_BROKERS", "a")], "host:port"),
            (
                "",
                vec![("KAFKA_BROKERS", "a:9092"), ("KAFKA_TOPIC", "a b")],
                "topic",
            ),
            ("", vec![("KAFKA_FORMAT", "avro")], "line or json"),
            (
                "[kafka]\nbrokers = \"a:1\"\ncompression = \"brotli\"\n",
                vec![],
                "kafka.compression (",
            ),
            (
                "[kafka]\nbrokers = \"a:1\"\nbuffer_points = 0\n",
                vec![],
                "buffer_points",
            ),
            ("[kafka]\nacks = 1\n", vec![], "acks"),
        ] {
            let e = refused(&format!("iface = \"eth0\"\n{toml}"), &env);
            assert!(e.contains(says), "{toml} {env:?}: {e}");
        }
    }

    fn refused(toml: &str, env: &[(&'static str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, toml).unwrap();
        let env = Map(env.iter().map(|(k, v)| (*k, v.to_string())).collect());
        match DaemonConfig::load(Some(&f), &env).and_then(|c| c.validate()) {
            Ok(()) => panic!("accepted: {toml}"),
            Err(e) => e.to_string(),
        }
    }

    fn accepted(toml: &str, env: &[(&'static str, &str)]) -> DaemonConfig {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, toml).unwrap();
        let env = Map(env.iter().map(|(k, v)| (*k, v.to_string())).collect());
        let c = DaemonConfig::load(Some(&f), &env).unwrap();
        c.validate().unwrap();
        c
    }

    #[test]
    fn several_interfaces_as_a_list_or_commas_each_once() {
        let c = accepted("iface = [\"eth0\", \"wlan0\"]\n", &[]);
        assert_eq!(c.ifaces(), ["eth0", "wlan0"]);
        let c = accepted("iface = \"eth0, eth1,eth2\"\n", &[]);
        assert_eq!(c.ifaces(), ["eth0", "eth1", "eth2"]);
        let e = refused("iface = [\"eth0\", \"eth0\"]\n", &[]);
        assert!(e.contains("names eth0 twice"), "{e}");
        let e = refused("iface = \" , \"\n", &[]);
        assert!(e.contains("no interface"), "{e}");
        let many: Vec<String> = (0..=MAX_IFACES).map(|i| format!("\"e{i}\"")).collect();
        let e = refused(&format!("iface = [{}]\n", many.join(",")), &[]);
        assert!(e.contains("at most 64"), "{e}");
    }

    #[test]
    fn another_hosts_address_needs_a_token_or_insecure_http() {
        let open = "iface = \"eth0\"\nmetrics_addr = \"0.0.0.0:9898\"\n";
        let e = refused(open, &[]);
        assert!(
            e.contains("metrics_addr")
                && e.contains("NETFORECAST_HTTP_TOKEN")
                && e.contains("--insecure-http"),
            "{e}"
        );
        let c = accepted(open, &[("NETFORECAST_HTTP_TOKEN", "t0ken")]);
        assert_eq!(c.http_token.expose(), "t0ken");
        assert!(
            !format!("{c:?}").contains("t0ken"),
            "the token never prints"
        );
        accepted(&format!("{open}insecure_http = true\n"), &[]);
        // Loopback needs nothing.
        accepted("iface = \"eth0\"\nmetrics_addr = \"127.0.0.1:9898\"\n", &[]);
    }

    #[test]
    fn configuration_mistakes_name_the_key_and_the_line() {
        let e = refused("iface = \"eth0\"\n\nbuffer_mib = 100000\n", &[]);
        assert!(e.contains("buffer_mib") && e.contains("line 3"), "{e}");
        let e = refused("iface = \"eth0\"\n[influx]\nversion = 3\n", &[]);
        assert!(e.contains("influx.version") && e.contains("line 3"), "{e}");
        let e = refused("iface = \"eth0\"\n", &[("INFLUX_URL", "http://[::1")]);
        assert!(e.contains("not a valid URL"), "{e}");
        let e = refused("iface = \"eth0\"\nsnaplen = \"big\"\n", &[]);
        assert!(e.contains("line 2"), "{e}");
        let e = refused("iface = \"eth0\"\nalertmanager_url = \"am:9093\"\n", &[]);
        assert!(
            e.contains("alertmanager_url") && e.contains("line 2"),
            "{e}"
        );
        let e = refused("iface = \"eth0\"\nmetrics_addr = \"nowhere\"\n", &[]);
        assert!(e.contains("metrics_addr") && e.contains("line 2"), "{e}");
        assert_eq!(e.lines().count(), 1, "{e}");
    }

    #[test]
    fn token_files_must_hold_one_line_of_text() {
        let dir = tempfile::tempdir().unwrap();
        for (body, says) in [
            (&b""[..], "empty"),
            (&b"abc\ndef\n"[..], "more than one line"),
            (&b"ab\x07c\n"[..], "control character"),
            (&b"\xff\xfe\n"[..], "not text"),
        ] {
            let t = dir.path().join("tok");
            std::fs::write(&t, body).unwrap();
            let env = Map(HashMap::from([(
                "INFLUX_TOKEN_FILE",
                t.display().to_string(),
            )]));
            let e = DaemonConfig::load(None, &env).unwrap_err().to_string();
            assert!(e.contains(says), "{body:?}: {e}");
            assert!(
                !e.contains("abc") && !e.contains("def"),
                "never the token: {e}"
            );
        }
    }

    #[test]
    fn unknown_keys_and_bad_versions_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.toml");
        std::fs::write(&f, "ifaec = \"eth0\"\n").unwrap();
        let e = DaemonConfig::load(Some(&f), &Map(HashMap::new())).unwrap_err();
        assert!(e.to_string().contains("ifaec"), "{e}");
        let env = Map(HashMap::from([("INFLUX_VERSION", "3".to_string())]));
        assert!(DaemonConfig::load(None, &env).is_err());
    }
}
