//! Capacity given back after a burst. The session's maps and queues grow
//! to hold every request of a burst at once (20,000 instances announcing
//! together: megabytes), and a collection keeps its capacity when emptied;
//! so once seven eighths of it are unused, it shrinks to twice what it
//! holds. Each shrink needs the contents to fall to an eighth again, so the
//! copying costs O(1) per element removed, amortized.

/// Below this capacity nothing is given back: small collections cost
/// little, and would only shrink and grow again.
const KEEP: usize = 1024;

/// The capacity a collection holding `len` in `capacity` shrinks to, if
/// it should.
pub fn shrunk(len: usize, capacity: usize) -> Option<usize> {
    (capacity > KEEP && len < capacity / 8).then(|| (2 * len).max(KEEP / 2))
}

/// Shrinks a collection (anything with `len`, `capacity` and `shrink_to`:
/// the standard maps, sets, heaps and deques) when seven eighths of it are
/// unused.
macro_rules! give_back {
    ($collection:expr) => {
        if let Some(capacity) =
            $crate::session::spare::shrunk($collection.len(), $collection.capacity())
        {
            $collection.shrink_to(capacity);
        }
    };
}
pub(super) use give_back;

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn a_collection_shrinks_once_seven_eighths_are_unused() {
        let mut queue: VecDeque<u32> = (0..100_000).collect();
        let grown = queue.capacity();
        queue.truncate(20_000);
        give_back!(queue);
        assert_eq!(queue.capacity(), grown, "a fifth still in use");
        queue.truncate(10_000);
        give_back!(queue);
        assert!(queue.capacity() < 25_000, "{}", queue.capacity());
        assert!(queue.iter().copied().eq(0..10_000), "contents kept");
        let mut small: VecDeque<u32> = VecDeque::with_capacity(KEEP);
        small.push_back(1);
        give_back!(small);
        assert!(small.capacity() >= KEEP, "small ones are left alone");
    }
}
