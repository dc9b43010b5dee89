//! Per-tracker congestion control, with a fake clock and a simulated tracker
//! whose receive queue holds a fixed number of datagrams (the rest are
//! dropped, as a kernel drops what overflows a socket buffer) and which
//! answers a fixed number per millisecond. A child of `tests`.

use super::*;

/// A tracker with a bounded queue, answering `per_ms` datagrams each ms.
struct QueueTracker {
    queue: VecDeque<Transmit>,
    capacity: usize,
    per_ms: usize,
    dropped: usize,
    received: usize,
}

impl QueueTracker {
    fn new(capacity: usize, per_ms: usize) -> Self {
        QueueTracker {
            queue: VecDeque::new(),
            capacity,
            per_ms,
            dropped: 0,
            received: 0,
        }
    }

    /// One millisecond: take what the client sent, answer what fits.
    fn step(&mut self, t: &mut Tester, ms: u64) {
        for datagram in t.sent() {
            self.received += 1;
            if self.queue.len() < self.capacity {
                self.queue.push_back(datagram);
            } else {
                self.dropped += 1;
            }
        }
        for _ in 0..self.per_ms {
            let Some(datagram) = self.queue.pop_front() else {
                break;
            };
            if is_connect(&datagram) {
                t.answer_connect(ms, &datagram, 77);
            } else {
                t.answer_announce(ms, &datagram);
            }
        }
        t.tick(ms);
    }
}

/// Starts `n` announces at 0 ms and runs until all complete (or `limit_ms`);
/// returns the completion time of each, in ms.
fn burst(t: &mut Tester, tracker: &mut QueueTracker, n: u32, limit_ms: u64) -> Vec<u64> {
    for id in 1..=n {
        t.start(0, id, announce_kind(), options(DEFAULT_T));
    }
    let mut done = Vec::new();
    for ms in 0..limit_ms {
        tracker.step(t, ms);
        for completion in t.completions() {
            assert!(
                matches!(completion.outcome, Outcome::Announced(_)),
                "{completion:?}"
            );
            done.push(ms);
        }
        if done.len() == n as usize {
            break;
        }
    }
    done
}

#[test]
fn a_burst_to_a_tracker_with_a_small_queue_completes_without_a_2t_wait() {
    // Without a per-tracker window, 500 datagrams at once into a queue of 20
    // lose 480, each then waiting 2·15 s for its retransmission.
    let mut t = Tester::new();
    let mut tracker = QueueTracker::new(20, 1);
    let done = burst(&mut t, &mut tracker, 500, 60_000);
    assert_eq!(done.len(), 500, "every announce answered");
    let slowest = *done.iter().max().unwrap();
    assert!(
        slowest < 5_000,
        "slowest {slowest} ms; {} drops",
        tracker.dropped
    );
    let stats = t.session.stats();
    assert!(tracker.dropped > 0, "the first window overflows the queue");
    assert!(stats.losses > 0 && stats.retransmits > 0);
    // Retransmitted only what was lost, plus a little.
    assert!(
        stats.retransmits <= tracker.dropped as u64 + 20,
        "{stats:?}"
    );
    // The window converged near what the tracker holds.
    let state = t.session.tracker(tracker_addr()).unwrap();
    assert!(
        (MIN_CWND..=80).contains(&state.window()),
        "window {}",
        state.window()
    );
}

fn tracker_addr() -> SocketAddr {
    tracker()
}

#[test]
fn a_small_burst_goes_out_at_once() {
    let mut t = Tester::new();
    t.announce_now(0, 1000, 77);
    for id in 1..=INITIAL_CWND as u32 {
        t.start(10, id, announce_kind(), options(DEFAULT_T));
    }
    assert_eq!(t.sent().len(), INITIAL_CWND, "no added latency");
    // One more waits for room.
    t.start(10, 999, announce_kind(), options(DEFAULT_T));
    t.sent_nothing();
    assert_eq!(t.session.tracker(tracker()).unwrap().waiting(), 1);
}

#[test]
fn requests_beyond_the_window_go_in_order_as_replies_come_back() {
    let mut t = Tester::new();
    t.announce_now(0, 1000, 77);
    let n = INITIAL_CWND as u32 + 3;
    for id in 1..=n {
        t.start(10, id, announce_kind(), options(DEFAULT_T));
    }
    let first = t.sent();
    assert_eq!(first.len(), INITIAL_CWND);
    t.answer_announce(20, &first[0]);
    let next = t.sent();
    // One reply frees one place and, in slow start, grows the window by one.
    let ids: Vec<_> = next.iter().filter_map(|d| d.owner.request_id()).collect();
    assert_eq!(ids, [INITIAL_CWND as u32 + 1, INITIAL_CWND as u32 + 2]);
}

#[test]
fn a_silent_tracker_gets_exactly_the_bep15_schedule() {
    // 200 requests, nothing answers: one shared connect, sent at 0, 2T, 6T
    // ... 8 times, and nothing else, ever.
    let mut t = Tester::new();
    for id in 1..=200 {
        t.start(0, id, announce_kind(), options(100));
    }
    let mut sends = Vec::new();
    let mut failed = 0;
    for ms in 0..60_000 {
        t.tick(ms);
        for datagram in t.sent() {
            assert!(is_connect(&datagram));
            sends.push(ms);
        }
        failed += t.completions().len();
        if failed == 200 {
            break;
        }
    }
    assert_eq!(failed, 200);
    let expected: Vec<u64> = (0..8).map(|k| send_offset(100, k)).collect();
    assert_eq!(sends, expected);
}

#[test]
fn a_tracker_that_dies_after_the_connect_keeps_the_bep15_schedule_for_every_request() {
    let mut t = Tester::new();
    let n = INITIAL_CWND as u32 * 2;
    for id in 1..=n {
        t.start(0, id, announce_kind(), options(100));
    }
    let connect = t.sent_one();
    t.answer_connect(1, &connect, 77);
    assert_eq!(t.sent().len(), INITIAL_CWND);
    // Silence for the first wait (2·100 ms) opens the window to the rest,
    // which then keep their own BEP 15 schedules (all within the id's 60 s).
    t.tick(201);
    assert_eq!(t.sent().len(), 2 * INITIAL_CWND, "resends and the rest");
    let mut announces = 3 * INITIAL_CWND;
    for ms in 202..2_000_000 {
        t.tick(ms);
        announces += t.sent().len();
        if t.session.in_flight() == 0 {
            break;
        }
    }
    assert_eq!(t.completions().len(), n as usize);
    assert_eq!(announces, 8 * n as usize, "8 sends each, no more");
    assert_eq!(t.session.stats().losses, 0, "silence is no loss");
}

/// An announce on cached id 77 sent at 10 ms and never answered, and a
/// later one (20 ms) answered at 21 ms: the first looks lost. Returns it.
fn one_lost_one_answered(t: &mut Tester) -> Transmit {
    t.announce_now(0, 1000, 77);
    t.start(10, 1, announce_kind(), options(DEFAULT_T));
    let lost = t.sent_one();
    t.start(20, 2, announce_kind(), options(DEFAULT_T));
    let later = t.sent_one();
    t.answer_announce(21, &later);
    t.completed();
    lost
}

#[test]
fn a_lost_announce_is_sent_again_after_later_ones_were_answered() {
    let mut t = Tester::new();
    let lost = one_lost_one_answered(&mut t);
    // SRTT is about 0 here: the check comes 250 ms after the send.
    t.tick(259);
    t.sent_nothing();
    t.tick(260);
    assert_eq!(t.sent_one(), lost, "fast retransmit, same transaction id");
    let state = t.session.tracker(tracker()).unwrap();
    assert_eq!((state.losses(), state.retransmits()), (1, 1));
    assert_eq!(state.window(), INITIAL_CWND / 2);
    let answer = t.answer_announce(270, &lost);
    assert_eq!(t.completed().outcome, Outcome::Announced(answer));
}

#[test]
fn a_lost_announce_whose_id_expired_meanwhile_connects_again() {
    // The check comes late (the process slept past the id's minute): the
    // resend must not carry the expired id. Found by the session fuzzer.
    let mut t = Tester::new();
    let lost = one_lost_one_answered(&mut t);
    t.tick(70_000);
    let next = t.sent_one();
    assert!(
        is_connect(&next),
        "a connect, not {next:?} with the expired id"
    );
    assert_ne!(next, lost);
}

#[test]
fn fast_retransmits_stay_within_max_attempts() {
    let mut t = Tester::new();
    t.announce_now(0, 1000, 77);
    let three = RequestOptions {
        max_attempts: 3,
        ..options(DEFAULT_T)
    };
    t.start(10, 1, announce_kind(), three);
    t.sent_one();
    let mut sends = 1;
    let mut ms = 10;
    // Another request is answered after each send of request 1.
    for id in 2..20 {
        ms += 300;
        t.start(ms, id, announce_kind(), options(DEFAULT_T));
        let datagram = t.sent();
        for d in &datagram {
            if d.owner.request_id() == Some(1) {
                sends += 1;
            } else {
                t.answer_announce(ms + 1, d);
            }
        }
        t.tick(ms + 2);
        sends += t
            .sent()
            .iter()
            .filter(|d| d.owner.request_id() == Some(1))
            .count();
    }
    assert_eq!(sends, 3);
}

#[test]
fn a_request_that_waited_past_its_ids_minute_connects_again() {
    let mut t = Tester::new();
    t.announce_now(0, 1000, 77);
    for id in 1..=INITIAL_CWND as u32 + 1 {
        t.start(10, id, announce_kind(), options(DEFAULT_T));
    }
    let first = t.sent();
    assert_eq!(first.len(), INITIAL_CWND);
    // The tracker answers one of them only after the id's minute is over.
    t.answer_announce(61_000, &first[0]);
    let next = t.sent();
    assert!(
        next.iter().any(is_connect),
        "a connect, not the expired id: {next:?}"
    );
    assert!(next
        .iter()
        .filter(|d| !is_connect(d))
        .all(|d| announce_of(d).connection_id != ConnectionId(77)));
}

#[test]
fn a_lost_connect_is_sent_again_once_the_tracker_answers_others() {
    let mut t = Tester::new();
    t.announce_now(0, 1000, 77);
    // A new scope connects; that connect is lost.
    let other_scope = RequestOptions {
        scope: 5,
        ..options(DEFAULT_T)
    };
    t.start(10, 1, announce_kind(), other_scope);
    let connect = t.sent_one();
    assert!(is_connect(&connect));
    // The tracker keeps answering the shared scope's requests.
    t.start(20, 2, announce_kind(), options(DEFAULT_T));
    let answered = t.sent_one();
    t.answer_announce(21, &answered);
    t.completed();
    t.tick(259);
    t.sent_nothing();
    t.tick(260);
    assert_eq!(
        t.sent_one(),
        connect,
        "the same connect, 250 ms after it, not 2T"
    );
    assert_eq!(t.session.stats().losses, 1);
    t.answer_connect(261, &connect, 78);
    let announce = t.sent_one();
    assert_eq!(announce_of(&announce).connection_id, ConnectionId(78));
}

#[test]
fn a_request_a_busy_tracker_is_slow_to_answer_gets_backed_off_checks() {
    // The tracker answers every other request at once but not request 1:
    // its checks come 250, 500, 1000 ms ... apart (doubling), not every
    // 250 ms, so it is sent 4 times in its first 2 s, not 8.
    let mut t = Tester::new();
    t.announce_now(0, 1000, 77);
    t.start(10, 1, announce_kind(), options(DEFAULT_T));
    let mut sends = t.sent().len();
    for (k, ms) in (11..2_010).enumerate() {
        if k % 100 == 0 {
            let id = 2 + u32::try_from(k).unwrap();
            t.start(ms, id, announce_kind(), options(DEFAULT_T));
        }
        t.tick(ms);
        for datagram in t.sent() {
            if datagram.owner.request_id() == Some(1) {
                sends += 1;
            } else {
                t.answer_announce(ms, &datagram);
            }
        }
        t.completions();
    }
    assert_eq!(sends, 4, "sent at 10, 260, 760 and 1760 ms");
}
