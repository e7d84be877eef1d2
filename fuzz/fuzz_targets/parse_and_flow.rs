//! Arbitrary frames through parsing, TCP analysis and windows. The first byte
//! picks the link type; the rest is split into frames by 2-byte lengths, each
//! with a timestamp step, so flows and windows see sequences, not single frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use engine::pipeline::{Engine, EngineConfig};

const LINKTYPES: [u32; 12] = [0, 1, 9, 12, 14, 50, 101, 108, 113, 228, 229, 276];

fuzz_target!(|data: &[u8]| {
    let Some((&lt, mut rest)) = data.split_first() else {
        return;
    };
    let lt = LINKTYPES[lt as usize % LINKTYPES.len()];
    let mut e = Engine::new(EngineConfig::default());
    let mut ts = 1_700_000_000_000_000_000i64;
    let mut rows = 0u64;
    while rest.len() >= 3 {
        let len = u16::from_le_bytes([rest[0], rest[1]]) as usize % 256;
        ts += (rest[2] as i64) * 1_000_000;
        rest = &rest[3..];
        let take = len.min(rest.len());
        let (frame, tail) = rest.split_at(take);
        e.frame(
            lt,
            frame,
            frame.len() as u32 + (len as u32 % 7),
            Some(ts),
            &mut |_| rows += 1,
        );
        rest = tail;
    }
    e.finish(&mut |_| rows += 1);
    let c = e.counters();
    assert_eq!(c.counted + c.skipped_total(), c.frames);
});
