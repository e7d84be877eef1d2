//! netforecast's engine: packets in, the nine window features out, and the
//! shared vocabulary of forecasting. No clock, no threads, no network: callers
//! pass frames and, in live mode, the time.
//!
//! Data flows through the modules in this order:
//! - [`pcapfile`]: records from capture files (pcap, pcapng, gzip);
//! - [`capture`]: a frame becomes a small [`capture::PacketSummary`] (or a counted skip);
//! - [`flow`]: Wireshark-exact TCP sequence analysis (ACK RTT, bytes in flight);
//! - [`window`]: the epoch-aligned time grid and the nine features per window;
//! - [`pipeline`]: the [`pipeline::Engine`] tying the three together with its counters;
//! - [`forecast`]: the window width, [`forecast::Forecast`], the
//!   [`forecast::SequenceModel`] a model implements and the [`forecast::Predictor`]
//!   that feeds it the last 15 windows;
//! - [`eval`]: error metrics and the naive baselines every forecast is judged against;
//! - [`csv`]: the features CSV (written by `extract`, read by `train`) and the
//!   per-packet CSV for the tshark oracle.
//!
//! The contract for every number is `spec/FEATURES.md`; tshark 4.0 is the oracle.

#![warn(missing_docs)]

pub mod capture;
pub mod csv;
pub mod eval;
pub mod flow;
mod flowindex;
pub mod forecast;
pub mod pcapfile;
pub mod pipeline;
pub mod rng;
mod seglist;
pub mod shift;
pub mod window;
