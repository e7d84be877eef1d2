//! Every scored window handed to a channel: the in-memory sink of the tests,
//! which read it while the pipeline runs (not only after it stops).

use super::{Sink, SinkError};
use crate::forecast::Scored;

/// Sends each scored window to the receiver [`MemorySink::new`] returns.
pub struct MemorySink {
    tx: crossbeam_channel::Sender<Scored>,
}

impl MemorySink {
    /// The sink and the receiving end.
    pub fn new() -> (Self, crossbeam_channel::Receiver<Scored>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (MemorySink { tx }, rx)
    }
}

impl Sink for MemorySink {
    fn window(&mut self, s: &Scored) -> Result<(), SinkError> {
        // A test that stopped listening does not fail the run.
        let _ = self.tx.send(s.clone());
        Ok(())
    }
}
