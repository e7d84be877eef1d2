//! The flow table's index: canonical 5-tuple to slot, built for churn.
//!
//! Linear probing over 8-byte buckets (32 bits of the key's hash, the slot),
//! removal by backward shift, so no tombstones pile up when flows come and go
//! at the cap (a general-purpose map either keeps tombstones, whose probes
//! lengthen until it rehashes, or stores the 40-byte keys in its buckets). A
//! lookup reads one cache line of buckets, and a flow's key only when 32 bits
//! of hash match; a removal needs no key at all: the slot and its hash say
//! where the bucket is.

use crate::capture::Endpoints;

const EMPTY: u32 = u32::MAX;

#[derive(Copy, Clone, Debug)]
struct Bucket {
    hash: u32,
    slot: u32,
}

const VACANT: Bucket = Bucket {
    hash: 0,
    slot: EMPTY,
};

/// Slots by key; the keys themselves live with the flows.
#[derive(Debug)]
pub(crate) struct FlowIndex {
    buckets: Vec<Bucket>,
    mask: usize,
    len: usize,
}

/// The hash the index files `key` under, the same for both directions of a
/// flow: each end's address words and port multiplied by odd constants (three
/// products in parallel), the two ends added, mixed once more. Symmetric, so a
/// packet is hashed without putting its ends in canonical order first (on a
/// thread that parses ahead, the order cost as much as the hash).
#[inline]
pub(crate) fn hash_key(key: &Endpoints) -> u32 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let h = end_hash(&key.src, key.sport).wrapping_add(end_hash(&key.dst, key.dport))
        ^ u64::from(key.v6);
    let h = h.wrapping_mul(K);
    (h ^ (h >> 32)) as u32
}

#[inline(always)]
fn end_hash(addr: &[u8; 16], port: u16) -> u64 {
    let a = u128::from_le_bytes(*addr);
    let x = (a as u64).wrapping_mul(0xD6E8_FEB8_6659_FD93)
        ^ ((a >> 64) as u64).wrapping_mul(0xA076_1D64_78BD_642F)
        ^ u64::from(port).wrapping_mul(0xE703_7ED1_A0B4_28DB);
    x ^ (x >> 29)
}

impl FlowIndex {
    pub fn new() -> Self {
        FlowIndex {
            buckets: vec![VACANT; 16],
            mask: 15,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    fn home(&self, hash: u32) -> usize {
        // Fibonacci hashing: the top bits of the product mix all of the hash.
        let bits = self.mask.count_ones();
        ((u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize) & self.mask
    }

    /// Ask the cache for the buckets a lookup of `hash` starts at (a hint:
    /// with a million flows they are a cache miss, which a lookup a few
    /// packets later then does not wait for).
    #[inline]
    pub fn prefetch(&self, hash: u32) {
        prefetch(&self.buckets[self.home(hash)]);
    }

    /// The slot filed under `hash` for which `is_key(slot)` holds.
    #[inline]
    pub fn find(&self, hash: u32, mut is_key: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut i = self.home(hash);
        loop {
            let b = self.buckets[i];
            if b.slot == EMPTY {
                return None;
            }
            if b.hash == hash && is_key(b.slot) {
                return Some(b.slot);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// File `slot` under `hash` (the caller knows the key is not there yet).
    pub fn insert(&mut self, hash: u32, slot: u32) {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        self.place(Bucket { hash, slot });
        self.len += 1;
    }

    fn place(&mut self, b: Bucket) {
        let mut i = self.home(b.hash);
        while self.buckets[i].slot != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.buckets[i] = b;
    }

    fn grow(&mut self) {
        let size = self.buckets.len() * 2;
        let mut fresh = Vec::with_capacity(size);
        advise_huge_pages(&fresh);
        fresh.resize(size, VACANT);
        let old = std::mem::replace(&mut self.buckets, fresh);
        self.mask = self.buckets.len() - 1;
        for b in old.into_iter().filter(|b| b.slot != EMPTY) {
            self.place(b);
        }
    }

    /// Remove `slot`, filed under `hash`; false if it was not there.
    pub fn remove(&mut self, hash: u32, slot: u32) -> bool {
        let mut i = self.home(hash);
        loop {
            let b = self.buckets[i];
            if b.slot == EMPTY {
                return false;
            }
            if b.slot == slot {
                break;
            }
            i = (i + 1) & self.mask;
        }
        // Backward shift: pull later members of the run into the hole when
        // their home is not between the hole and them.
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let b = self.buckets[j];
            if b.slot == EMPTY {
                break;
            }
            let home = self.home(b.hash);
            let dist_home = j.wrapping_sub(home) & self.mask;
            let dist_hole = j.wrapping_sub(hole) & self.mask;
            if dist_home >= dist_hole {
                self.buckets[hole] = b;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.buckets[hole] = VACANT;
        self.len -= 1;
        true
    }
}

/// A hint to load the cache line of `v`; nothing where there is no such hint.
#[inline(always)]
pub(crate) fn prefetch<T>(v: &T) {
    prefetch_ptr((v as *const T).cast::<u8>());
}

/// A hint to load every cache line of `v` (a value larger than one line).
#[inline(always)]
pub(crate) fn prefetch_all<T>(v: &T) {
    let p = (v as *const T).cast::<u8>();
    for off in (0..std::mem::size_of::<T>()).step_by(64) {
        prefetch_ptr(p.wrapping_add(off));
    }
}

/// Ask Linux for transparent huge pages under `v`'s buffer, before it is
/// written (a hint). A million flows are random reads over 70 MB of slots:
/// with 4 KiB pages nearly every one also misses the TLB; with this hint the
/// churn capture extracts in 0.247-0.256 s instead of 0.284-0.292 s (best of
/// 9, two alternating rounds; benches/README.md). Only buffers of 4 MiB and
/// more, so a small run's memory stays as it was.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    const HUGE: usize = 2 << 20;
    let bytes = v.capacity() * std::mem::size_of::<T>();
    if bytes < 2 * HUGE {
        return;
    }
    let start = v.as_ptr() as usize;
    let (a, b) = (
        (start + HUGE - 1) & !(HUGE - 1),
        (start + bytes) & !(HUGE - 1),
    );
    if b > a {
        // SAFETY: the range lies inside `v`'s allocation; MADV_HUGEPAGE only
        // changes how later faults are served, never the contents.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_HUGEPAGE);
        }
    }
}

#[inline(always)]
fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it reads nothing and faults on nothing.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p.cast::<i8>(), std::arch::x86_64::_MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{HashMap, HashSet};

    fn ends(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16, v6: bool) -> Endpoints {
        Endpoints {
            src,
            dst,
            sport,
            dport,
            v6,
        }
    }

    #[test]
    fn both_directions_hash_alike_and_flows_spread() {
        let v4 = |x: u32| u128::from(x).to_le_bytes();
        let mut seen = HashSet::new();
        // A client's ports to one server (the churn pattern), and hosts of a /16.
        for k in 0..100_000u32 {
            let (a, b) = (v4(0x0A00_0001 + (k >> 12)), v4(0xC0A8_0001));
            let (p, q) = ((1024 + (k & 0xFFF) * 13) as u16, 443);
            let h = hash_key(&ends(a, p, b, q, false));
            assert_eq!(h, hash_key(&ends(b, q, a, p, false)));
            seen.insert(h);
        }
        // 100,000 flows in 2^32 values: a few coincide by chance, not thousands.
        assert!(seen.len() > 99_900, "{}", seen.len());
        let v6 = |x: u128| x.to_le_bytes();
        let (a, b) = (v6(0x2001_0db8 << 96 | 1), v6(0x2001_0db8 << 96 | 2));
        assert_eq!(
            hash_key(&ends(a, 1, b, 2, true)),
            hash_key(&ends(b, 2, a, 1, true))
        );
        assert_ne!(
            hash_key(&ends(a, 1, b, 2, true)),
            hash_key(&ends(a, 2, b, 1, true))
        );
    }

    proptest! {
        /// Against a std map, with hashes from a tiny range so runs collide,
        /// wrap around the table end and shift back on removal.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..300, 0u32..8), 1..2000)) {
            let mut ix = FlowIndex::new();
            // slot -> hash, for the live entries.
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (add, slot, h) in ops {
                // Hashes near the top of the table's range too.
                let hash = h.wrapping_mul(0x8000_0001);
                if add && !model.contains_key(&slot) {
                    ix.insert(hash, slot);
                    model.insert(slot, hash);
                } else if !add {
                    let expect = model.remove(&slot);
                    let removed = ix.remove(expect.unwrap_or(hash), slot);
                    prop_assert_eq!(removed, expect.is_some());
                }
                prop_assert_eq!(ix.len(), model.len());
                for (&s, &hs) in &model {
                    prop_assert_eq!(ix.find(hs, |x| x == s), Some(s));
                }
                prop_assert_eq!(ix.find(12345, |x| x == 9999), None);
            }
        }
    }
}
