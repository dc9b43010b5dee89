//! Capacity given back after a burst. The session's maps and queues grow
//! to hold every request of a burst at once (20,000 instances announcing
//! together: megabytes), and a collection keeps its capacity when emptied;
//! so once seven eighths of it are unused, it shrinks to twice what it
//! holds. Each shrink needs the contents to fall to an eighth again, so the
//! copying costs O(1) per element removed, amortized.

use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::hash::{BuildHasher, Hash};

/// Below this capacity nothing is given back: small collections cost
/// little, and would only shrink and grow again.
const KEEP: usize = 1024;

pub trait Spare {
    fn len(&self) -> usize;
    fn capacity(&self) -> usize;
    fn shrink_to(&mut self, capacity: usize);
}

/// Shrinks `c` to twice its length when seven eighths of it are unused.
pub fn give_back(c: &mut impl Spare) {
    let (len, capacity) = (c.len(), c.capacity());
    if capacity > KEEP && len < capacity / 8 {
        c.shrink_to((2 * len).max(KEEP / 2));
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> Spare for HashMap<K, V, S> {
    fn len(&self) -> usize {
        self.len()
    }
    fn capacity(&self) -> usize {
        self.capacity()
    }
    fn shrink_to(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

impl<T: Eq + Hash, S: BuildHasher> Spare for HashSet<T, S> {
    fn len(&self) -> usize {
        self.len()
    }
    fn capacity(&self) -> usize {
        self.capacity()
    }
    fn shrink_to(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

impl<T> Spare for VecDeque<T> {
    fn len(&self) -> usize {
        self.len()
    }
    fn capacity(&self) -> usize {
        self.capacity()
    }
    fn shrink_to(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

impl<T: Ord> Spare for BinaryHeap<T> {
    fn len(&self) -> usize {
        self.len()
    }
    fn capacity(&self) -> usize {
        self.capacity()
    }
    fn shrink_to(&mut self, capacity: usize) {
        self.shrink_to(capacity);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_collection_shrinks_once_seven_eighths_are_unused() {
        let mut queue: VecDeque<u32> = (0..100_000).collect();
        let grown = queue.capacity();
        queue.truncate(20_000);
        give_back(&mut queue);
        assert_eq!(queue.capacity(), grown, "a fifth still in use");
        queue.truncate(10_000);
        give_back(&mut queue);
        assert!(queue.capacity() < 25_000, "{}", queue.capacity());
        assert!(queue.iter().copied().eq(0..10_000), "contents kept");
        let mut small: VecDeque<u32> = VecDeque::with_capacity(KEEP);
        small.push_back(1);
        give_back(&mut small);
        assert!(small.capacity() >= KEEP, "small ones are left alone");
    }
}
