//! A multiply hasher for the session's hot maps, whose keys are small and
//! ours: request ids, transaction ids (random), tracker addresses, scopes.
//!
//! The standard SipHash costs more than the rest of a lookup on keys this
//! small, on every datagram. No key here comes from a remote party: replies
//! carry transaction ids, but those are only looked up, never inserted, and
//! the ids in the tables are random. A per-process random seed keeps the
//! layout unpredictable all the same. The mixing is rustc-hash 2's: add, then
//! multiply by an odd constant per word, and rotate at the end so that the
//! well-mixed high bits land where hashbrown takes its bucket index.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::OnceLock;

/// rustc-hash 2's multiplier.
const K: u64 = 0xf135_7aea_2e62_a9c5;

pub type FastMap<K, V> = HashMap<K, V, FastState>;
pub type FastSet<T> = HashSet<T, FastState>;

/// Builds [`FastHasher`]s from the process's seed.
#[derive(Clone, Copy, Debug)]
pub struct FastState {
    seed: u64,
}

impl Default for FastState {
    fn default() -> Self {
        static SEED: OnceLock<u64> = OnceLock::new();
        FastState {
            seed: *SEED.get_or_init(rand::random),
        }
    }
}

impl BuildHasher for FastState {
    type Hasher = FastHasher;

    fn build_hasher(&self) -> FastHasher {
        FastHasher { hash: self.seed }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct FastHasher {
    hash: u64,
}

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.hash = self.hash.wrapping_add(word).wrapping_mul(K);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            for (to, from) in word.iter_mut().zip(chunk) {
                *to = *from;
            }
            self.add(u64::from_le_bytes(word));
        }
        // Tells "ab" + "c" from "a" + "bc".
        self.add(bytes.len() as u64);
    }

    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    fn write_u16(&mut self, i: u16) {
        self.add(u64::from(i));
    }

    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    fn write_u128(&mut self, i: u128) {
        self.add(i as u64);
        self.add((i >> 64) as u64);
    }

    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    fn finish(&self) -> u64 {
        self.hash.rotate_left(26)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn equal_keys_hash_alike_and_near_keys_apart() {
        let state = FastState::default();
        assert_eq!(state.hash_one(7u32), FastState::default().hash_one(7u32));
        let a: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:6970".parse().unwrap();
        assert_eq!(state.hash_one(a), state.hash_one(a));
        assert_ne!(state.hash_one(a), state.hash_one(b));
        assert_ne!(state.hash_one([1u8, 2, 3]), state.hash_one([1u8, 2, 3, 0]));
    }

    #[test]
    fn sequential_ids_spread_over_buckets() {
        // hashbrown takes the bucket from the low bits: 4096 sequential ids
        // (as JS hands out request ids) must not crowd a few of 4096 buckets
        // (a random function fills about 2,600 of them; this one about 2,000).
        let state = FastState::default();
        let buckets: HashSet<u64> = (0..4096u32).map(|id| state.hash_one(id) & 4095).collect();
        assert!(buckets.len() > 1500, "{} buckets used", buckets.len());
    }
}
