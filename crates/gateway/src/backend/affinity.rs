//! Which idle connection a schema tenant's transaction prefers, so that each backend sees a
//! share of the schemas and not all of them.
//!
//! A PostgreSQL backend caches every relation it opens (the relation and catalog caches are
//! never trimmed), and its first transaction in a schema pays for opening that schema's
//! tables: catalog lookups, each a few index scans. A pool database serves every schema
//! tenant of its cluster, so with thousands of schemas spread over every connection at
//! random, most transactions land on a backend that has not seen their schema yet. The
//! preference, after a connection that already holds the tenant's context:
//! 1. one whose session has already run under the tenant's search_path ([`Warmth`]);
//! 2. one of the tenant's group: connections and search paths are split into `GROUPS` (4)
//!    groups, so a schema first meets the backends of its own group when one is idle;
//! 3. any (the one used last).
//!
//! A preference, never a wait: a busy connection is not waited for.

use std::hash::Hasher;
use std::sync::atomic::{AtomicU32, Ordering};

/// How many groups connections and search paths are split into.
const GROUPS: u32 = 4;

/// Bits in a connection's set of search paths seen (8 KiB): with 5,000 schemas all seen,
/// about one look in thirteen is a false "seen".
const WARM_BITS: usize = 1 << 16;

/// The search paths a backend session has run under: a set of hashes that may answer "seen"
/// for one it has not (a lost preference, never a wrong context).
pub struct Warmth {
    bits: Box<[u64]>,
}

impl Default for Warmth {
    fn default() -> Self {
        Self {
            bits: vec![0u64; WARM_BITS / 64].into_boxed_slice(),
        }
    }
}

impl std::fmt::Debug for Warmth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let seen: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
        write!(f, "Warmth({seen} bits)")
    }
}

/// A search path's key: the same in every connection of this process.
pub fn key_of(search_path: &str) -> u64 {
    // Fixed keys: the keys must agree across connections (not across processes).
    let mut h = std::collections::hash_map::DefaultHasher::new();
    h.write(search_path.as_bytes());
    h.finish()
}

impl Warmth {
    fn slot(key: u64) -> (usize, u64) {
        let bit = (key as usize) % WARM_BITS;
        (bit / 64, 1u64 << (bit % 64))
    }

    /// Notes that the session ran under the search path of `key`.
    pub fn saw(&mut self, key: u64) {
        let (word, mask) = Self::slot(key);
        if let Some(w) = self.bits.get_mut(word) {
            *w |= mask;
        }
    }

    /// Whether the session has (probably) run under the search path of `key`.
    pub fn has(&self, key: u64) -> bool {
        let (word, mask) = Self::slot(key);
        self.bits.get(word).is_some_and(|w| w & mask != 0)
    }
}

/// The group of a new connection: connections are numbered as they are opened, round robin.
pub fn next_group() -> u32 {
    static OPENED: AtomicU32 = AtomicU32::new(0);
    OPENED.fetch_add(1, Ordering::Relaxed) % GROUPS
}

/// The group of a search path's key.
pub fn group_of(key: u64) -> u32 {
    // The high bits: the low ones pick the Warmth bit.
    ((key >> 40) % u64::from(GROUPS)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_seen_is_remembered_and_keys_agree_across_calls() {
        let mut w = Warmth::default();
        let a = key_of("\"t_a\", public");
        assert_eq!(a, key_of("\"t_a\", public"));
        assert!(!w.has(a));
        w.saw(a);
        assert!(w.has(a));
        let misses = (0..1000)
            .map(|i| key_of(&format!("\"t_{i}\", public")))
            .filter(|k| *k != a && w.has(*k))
            .count();
        assert!(misses < 5, "{misses} false hits with one path seen");
    }

    #[test]
    fn paths_spread_over_every_group() {
        let mut counts = [0u32; GROUPS as usize];
        for i in 0..4000 {
            counts[group_of(key_of(&format!("\"t_{i}\", public"))) as usize] += 1;
        }
        assert!(counts.iter().all(|c| *c > 800), "{counts:?}");
    }
}
