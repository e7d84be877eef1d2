//! netforecast: watch TCP traffic, cut it into 50 ms windows, forecast it.
//!
//! Data flows through the modules in this order:
//! - [`pcapfile`] / [`live`]: records from capture files or a live interface;
//! - [`capture`]: a frame becomes a small [`capture::PacketSummary`] (or a counted skip);
//! - [`flow`]: Wireshark-exact TCP sequence analysis (ACK RTT, bytes in flight);
//! - [`window`]: the epoch-aligned time grid and the nine features per window;
//! - [`pipeline`]: the engine tying the three together with its counters;
//! - [`eval`]: metrics against naive baselines;
//! - [`sink`]: CSV files;
//! - [`app`] and [`cli`]: commands, threads, signals and summaries;
//! - [`lab`]: schedules and delay-line logic of the traffic lab (`nf-lab`).
//!
//! The model, `replay`, `train` and the daemon are in the `netforecast-ml` package
//! (`ml/`), which links libtorch; this crate and the `netforecast` binary do not,
//! so `extract` starts in milliseconds. The contract for every number is
//! `spec/FEATURES.md`; tshark 4.0 is the oracle.

pub mod app;
pub mod capture;
pub mod cli;
pub mod eval;
pub mod flow;
pub mod lab;
pub mod live;
pub mod pcapfile;
pub mod pipeline;
pub mod rng;
pub mod sink;
pub mod window;
