//! Arbitrary bytes as a capture file (pcap or pcapng, chosen by the first byte)
//! read to the end or to a clean error, every record through the engine.
#![no_main]
use libfuzzer_sys::fuzz_target;
use engine::pcapfile::CaptureFile;
use engine::pipeline::{Engine, EngineConfig};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    let mut bytes = match kind % 3 {
        0 => vec![
            0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0,
            0,
        ],
        1 => vec![
            0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff,
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
        ],
        _ => Vec::new(),
    };
    bytes.extend_from_slice(body);
    let Ok(mut f) =
        CaptureFile::from_reader(Path::new("fuzz"), Box::new(std::io::Cursor::new(bytes)))
    else {
        return;
    };
    let mut e = Engine::new(EngineConfig::default());
    let mut n = 0;
    while let Ok(Some(r)) = f.next_record() {
        e.frame(r.linktype, r.data, r.orig_len, r.ts_ns, &mut |_| {});
        n += 1;
        if n > 10_000 {
            break;
        }
    }
    e.finish(&mut |_| {});
});
