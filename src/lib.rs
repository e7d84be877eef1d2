//! netforecast: watch TCP traffic, cut it into 50 ms windows, forecast it.
//!
//! Data flows through the modules in this order:
//! - [`pcapfile`] / [`live`]: records from capture files or a live interface;
//! - [`capture`]: a frame becomes a small [`capture::PacketSummary`] (or a counted skip);
//! - [`flow`]: Wireshark-exact TCP sequence analysis (ACK RTT, bytes in flight);
//! - [`window`]: the epoch-aligned time grid and the nine features per window;
//! - [`pipeline`]: the engine tying the three together with its counters;
//! - [`model`]: the TorchScript forecaster and its 15-window ring ([`train`] makes one);
//! - [`eval`] and [`plot`]: metrics against naive baselines, the phase-shift plot;
//! - [`sink`], [`influx`], [`metrics`]: CSV files, InfluxDB, the Prometheus endpoint;
//! - [`daemon`] and [`config`]: the live service (capture, inference and writer threads);
//! - [`app`] and [`cli`]: commands, threads, signals and summaries;
//! - [`lab`]: schedules and delay-line logic of the traffic lab (`nf-lab`).
//!
//! The contract for every number is `spec/FEATURES.md`; tshark 4.0 is the oracle.

pub mod app;
pub mod capture;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod eval;
pub mod flow;
pub mod influx;
pub mod lab;
pub mod live;
pub mod metrics;
pub mod model;
pub mod pcapfile;
pub mod pipeline;
pub mod plot;
pub mod rng;
pub mod sink;
pub mod train;
pub mod window;
