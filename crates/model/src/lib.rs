//! netforecast's model: the only package that links libtorch (through tch).
//!
//! - [`torch`]: load a TorchScript model directory (MODEL.md) and run it as the
//!   engine's [`engine::forecast::SequenceModel`];
//! - [`train`]: train a model directory from features CSVs (the LSTM, a linear
//!   gate, or boosted trees) and export it as TorchScript;
//! - [`gbt`]: the gradient-boosted oblivious trees and their tensor export;
//! - [`native`]: those trees walked in Rust for large batches, checked against
//!   the TorchScript module.

pub mod gbt;
pub mod native;
pub mod torch;
pub mod train;
