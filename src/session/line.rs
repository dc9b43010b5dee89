//! A first-in, first-out line of requests, each under its (increasing)
//! sequence number: the window's queue, and each tracker's line of requests
//! waiting for room. Joining at the back and leaving at the front cost O(1);
//! a request leaving from the middle (cancelled) is only counted out, and
//! its entry is skipped when it reaches the front, as the timers' are.

use std::collections::VecDeque;

use super::{spare, RequestId};

/// A place in a line (4 bytes: a line entry is 8). Places wrap after 2^32
/// requests have joined lines; a dead entry would have to sit that long in
/// a line that neither moves nor grows (growing sweeps the dead ones out)
/// to be taken for a live one, and then its request would only leave the
/// line early.
pub type Seq = u32;

#[derive(Debug, Default)]
pub struct Line {
    entries: VecDeque<(Seq, RequestId)>,
    /// How many entries still stand in line.
    len: usize,
}

impl Line {
    /// `id` joins at the back under `seq`. `stands(seq, id)` tells whether
    /// an entry still stands in line: the dead ones are swept out before
    /// they outnumber the others.
    pub fn push(&mut self, seq: Seq, id: RequestId, stands: impl Fn(Seq, RequestId) -> bool) {
        if self.entries.len() >= 2 * self.len + 64 {
            self.entries.retain(|&(seq, id)| stands(seq, id));
            self.len = self.entries.len();
        }
        self.entries.push_back((seq, id));
        self.len += 1;
    }

    /// A request standing in line leaves it from wherever it is.
    pub fn leave(&mut self) {
        self.len = self.len.saturating_sub(1);
    }

    /// The first request still standing in line leaves it.
    pub fn pop(&mut self, stands: impl Fn(Seq, RequestId) -> bool) -> Option<RequestId> {
        while let Some((seq, id)) = self.entries.pop_front() {
            if stands(seq, id) {
                self.len = self.len.saturating_sub(1);
                return Some(id);
            }
        }
        self.len = 0;
        spare::give_back!(self.entries);
        None
    }

    /// How many requests stand in line.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn requests_leave_in_order_and_the_cancelled_are_skipped() {
        let mut line = Line::default();
        let mut standing: HashSet<Seq> = HashSet::new();
        for seq in 0..10 {
            standing.insert(seq);
            line.push(seq, seq as RequestId + 100, |s, _| standing.contains(&s));
        }
        for seq in [0, 3, 4, 9] {
            standing.remove(&seq);
            line.leave();
        }
        assert_eq!(line.len(), 6);
        let mut out = Vec::new();
        while let Some(id) = line.pop(|s, _| standing.contains(&s)) {
            standing.remove(&(id - 100));
            out.push(id);
        }
        assert_eq!(out, vec![101, 102, 105, 106, 107, 108]);
        assert!(line.is_empty());
    }

    #[test]
    fn cancelled_entries_are_swept_before_they_pile_up() {
        // A line that never moves while requests join and are cancelled.
        let mut line = Line::default();
        let mut standing: HashSet<Seq> = HashSet::new();
        standing.insert(0);
        line.push(0, 1, |s, _| standing.contains(&s));
        for seq in 1..10_000 {
            standing.insert(seq);
            line.push(seq, 2, |s, _| standing.contains(&s));
            standing.remove(&seq);
            line.leave();
            assert!(line.entries.len() <= 2 * line.len() + 64 + 1);
        }
        assert_eq!(line.len(), 1);
        assert_eq!(line.pop(|s, _| standing.contains(&s)), Some(1));
        assert_eq!(line.pop(|s, _| standing.contains(&s)), None);
    }
}
