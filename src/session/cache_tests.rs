//! The connection-id cache's scopes, the probe of a cached id after a
//! tracker restart, the round-trip estimate, scrape batches and partial
//! scrape answers, and send errors of an earlier phase. A child of `tests`,
//! whose fake-clock `Tester` it uses.

use super::*;

fn scoped(timeout_ms: u64, scope: Scope) -> RequestOptions {
    RequestOptions {
        scope,
        ..options(timeout_ms)
    }
}

fn connects(sent: &[Transmit]) -> usize {
    sent.iter().filter(|t| is_connect(t)).count()
}

/// Request `id` of `scope` runs to completion: the connect (if any) is
/// answered after `rtt` ms with `connection_id`, the announce `rtt` ms later.
/// Returns the time it completed.
fn announce_with_rtt(
    t: &mut Tester,
    ms: u64,
    id: RequestId,
    scope: Scope,
    rtt: u64,
    connection_id: u64,
) -> u64 {
    t.start(ms, id, announce_kind(), scoped(DEFAULT_T, scope));
    let mut now = ms;
    let mut datagram = t.sent_one();
    if is_connect(&datagram) {
        now += rtt;
        t.answer_connect(now, &datagram, connection_id);
        datagram = t.sent_one();
    }
    now += rtt;
    t.answer_announce(now, &datagram);
    assert!(matches!(t.completed().outcome, Outcome::Announced(_)));
    now
}

// 1. Scopes: who reuses a cached id.

#[test]
fn a_request_of_another_scope_connects_instead_of_reusing_the_id() {
    // A 1.2.0 user's test suite: a new instance (scope) against a mock
    // restarted on the same port expects a connect of its own.
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 1, 0, 77);
    t.start(1_000, 2, announce_kind(), scoped(DEFAULT_T, 2));
    assert!(is_connect(&t.sent_one()));
}

#[test]
fn a_request_of_the_same_scope_reuses_the_id() {
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 1, 0, 77);
    t.start(1_000, 2, announce_kind(), scoped(DEFAULT_T, 1));
    let announce = t.sent_one();
    assert_eq!(announce_of(&announce).connection_id, ConnectionId(77));
}

#[test]
fn n_scopes_started_together_cost_one_connect_and_each_caches_the_id() {
    let mut t = Tester::new();
    for scope in 1..=5 {
        t.start(0, scope, announce_kind(), scoped(DEFAULT_T, scope));
    }
    let connect = t.sent_one();
    t.answer_connect(10, &connect, 77);
    let announces = t.sent();
    assert_eq!((announces.len(), connects(&announces)), (5, 0));
    for announce in &announces {
        t.answer_announce(20, announce);
    }
    assert_eq!(t.completions().len(), 5);
    assert_eq!(t.session.stats().sent, 6, "N + 1 datagrams");
    // Each scope reuses the id later; a sixth does not.
    for scope in 1..=5 {
        t.start(1_000, 10 + scope, announce_kind(), scoped(DEFAULT_T, scope));
        let again = t.sent_one();
        assert_eq!(announce_of(&again).connection_id, ConnectionId(77));
    }
    t.start(1_000, 20, announce_kind(), scoped(DEFAULT_T, 6));
    assert!(is_connect(&t.sent_one()));
}

#[test]
fn requests_the_window_queued_while_the_connect_was_in_flight_use_its_id() {
    let mut t = Tester::new();
    let now = t.at(0);
    t.session.set_window(2, now);
    for scope in 1..=6 {
        t.start(0, scope, announce_kind(), scoped(DEFAULT_T, scope));
    }
    assert_eq!(t.session.queued(), 4);
    let connect = t.sent_one();
    t.answer_connect(10, &connect, 77);
    let mut sent = 1;
    let mut answered = 0;
    let mut ms = 20;
    while answered < 6 {
        let batch = t.sent();
        assert_eq!(connects(&batch), 0, "no second connect");
        assert!(!batch.is_empty());
        sent += batch.len();
        for announce in &batch {
            assert_eq!(announce_of(announce).connection_id, ConnectionId(77));
            t.answer_announce(ms, announce);
            answered += 1;
        }
        ms += 10;
    }
    assert_eq!(sent, 7);
    assert_eq!(t.completions().len(), 6);
}

#[test]
fn requests_handed_over_later_in_the_same_tick_use_its_connect() {
    // A large JS tick reaches the session in parts: the first part's connect
    // is answered before the second part arrives, whose requests (other
    // scopes) still count as started with the first.
    let mut t = Tester::new();
    let tick = t.at(0);
    t.start(0, 1, announce_kind(), scoped(DEFAULT_T, 1));
    let connect = t.sent_one();
    t.answer_connect(10, &connect, 77);
    assert!(!is_connect(&t.sent_one()));
    let (now, tracker) = (t.at(20), tracker());
    t.session.start_together(
        now,
        tick,
        2,
        tracker,
        None,
        announce_kind(),
        scoped(DEFAULT_T, 2),
    );
    let announce = t.sent_one();
    assert_eq!(announce_of(&announce).connection_id, ConnectionId(77));
    // A request of a later tick connects.
    let later = t.at(30);
    t.session.start_together(
        later,
        later,
        3,
        tracker,
        None,
        announce_kind(),
        scoped(DEFAULT_T, 3),
    );
    assert!(is_connect(&t.sent_one()));
}

#[test]
fn scope_0_is_shared_by_every_request_that_uses_it() {
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 0, 0, 77);
    t.start(30_000, 2, announce_kind(), scoped(DEFAULT_T, 0));
    assert_eq!(announce_of(&t.sent_one()).connection_id, ConnectionId(77));
}

// 2. Silence to a cached id: the tracker may have restarted.

#[test]
fn silence_to_a_cached_id_reconnects_after_4_srtt_and_is_not_counted() {
    let mut t = Tester::new();
    // Two samples of 100 ms: SRTT 100 ms.
    let done = announce_with_rtt(&mut t, 0, 1, 0, 100, 77);
    let rtt = t.session.tracker(tracker()).unwrap().rtt().unwrap();
    assert_eq!(rtt.srtt, Duration::from_millis(100));

    let three_sends = RequestOptions {
        max_attempts: 3,
        ..scoped(5_000, 0)
    };
    t.start(done + 1_000, 2, announce_kind(), three_sends);
    let lost = t.sent_one();
    assert_eq!(announce_of(&lost).connection_id, ConnectionId(77));
    let probe = done + 1_000 + 400;
    assert_eq!(t.next_timeout(), Some(probe), "4 x SRTT");
    t.tick(probe - 1);
    t.sent_nothing();
    t.tick(probe);
    let reconnect = t.sent_one();
    assert!(is_connect(&reconnect));
    assert!(t.session.connection_ids().is_empty());
    assert_eq!(t.session.stats().renewed_connection_ids, 1);

    t.answer_connect(probe + 100, &reconnect, 78);
    let fresh = t.sent_one();
    assert_eq!(announce_of(&fresh).connection_id, ConnectionId(78));
    // The announce the restarted tracker dropped is not one of the 3.
    t.expect_unanswered(2, probe + 100, 5_000, 3, &fresh);
}

#[test]
fn the_probe_waits_at_least_250_ms() {
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 0, 0, 77);
    t.start(1_000, 2, announce_kind(), scoped(DEFAULT_T, 0));
    t.sent_one();
    assert_eq!(t.next_timeout(), Some(1_250));
}

#[test]
fn the_probe_never_waits_longer_than_the_first_retransmission() {
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 0, 100, 77);
    t.start(1_000, 2, announce_kind(), scoped(50, 0));
    t.sent_one();
    assert_eq!(t.next_timeout(), Some(1_100), "2 x 50 ms, not 400 ms");
}

#[test]
fn a_cached_id_the_tracker_still_answers_on_is_not_renewed() {
    // Not a restart: another request on the same id was answered after this
    // one was sent. This one was lost (or is slow): it is sent again on the
    // same id and transaction id, and the id stays cached.
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 0, 0, 77);
    t.start(1_000, 2, announce_kind(), scoped(DEFAULT_T, 0));
    t.start(1_000, 3, announce_kind(), scoped(DEFAULT_T, 0));
    let sent = t.sent();
    let (slow, answered) = (&sent[0], &sent[1]);
    t.answer_announce(1_100, answered);
    t.completed();
    t.tick(1_249);
    t.sent_nothing();
    t.tick(1_250);
    assert_eq!(t.sent_one(), *slow);
    assert_eq!(t.session.connection_ids().len(), 1);
    assert_eq!(t.session.stats().renewed_connection_ids, 0);
}

#[test]
fn a_dead_tracker_gets_one_probe_then_the_bep15_connect_schedule() {
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 0, 0, 77);
    t.start(1_000, 2, announce_kind(), scoped(100, 0));
    t.sent_one();
    t.tick(1_200);
    let connect = t.sent_one();
    assert!(is_connect(&connect));
    t.expect_unanswered(2, 1_200, 100, 8, &connect);
}

// 3. The round-trip estimate (RFC 6298).

#[test]
fn the_rtt_estimate_follows_rfc_6298() {
    let mut t = Tester::new();
    t.start(0, 1, announce_kind(), options(DEFAULT_T));
    let connect = t.sent_one();
    t.answer_connect(100, &connect, 77);
    let first = t.session.tracker(tracker()).unwrap().rtt().unwrap();
    assert_eq!(
        (first.srtt, first.rttvar),
        (Duration::from_millis(100), Duration::from_millis(50))
    );
    let announce = t.sent_one();
    t.answer_announce(300, &announce);
    let second = t.session.tracker(tracker()).unwrap().rtt().unwrap();
    // RTTVAR = 3/4 · 50 + 1/4 · |100 − 200| = 62.5; SRTT = 7/8 · 100 + 1/8 · 200.
    assert_eq!(second.rttvar, Duration::from_micros(62_500));
    assert_eq!(second.srtt, Duration::from_micros(112_500));
}

#[test]
fn a_reply_to_a_retransmitted_datagram_is_no_rtt_sample() {
    let mut t = Tester::new();
    t.start(0, 1, announce_kind(), options(100));
    let connect = t.sent_one();
    t.tick(200);
    t.sent_one();
    t.answer_connect(250, &connect, 77);
    assert!(t
        .session
        .tracker(tracker())
        .is_none_or(|s| s.rtt().is_none()));
}

// 4. Scrape batches and partial answers.

/// The tracker answers `scrape` with its first `entries` hashes' counts:
/// seeders = the hash's first byte.
fn answer_scrape(t: &mut Tester, ms: u64, scrape: &Transmit, entries: usize) {
    let request = scrape_of(scrape);
    let stats = request
        .info_hashes
        .iter()
        .take(entries)
        .map(|h| ScrapeStats {
            seeders: u32::from(h.0[0]),
            completed: 0,
            leechers: 1,
        })
        .collect();
    let response = ScrapeResponse {
        transaction_id: request.transaction_id,
        stats,
    };
    t.reply(ms, scrape, &Response::Scrape(response));
}

fn scraped_seeders(done: &Completion) -> Vec<u32> {
    match &done.outcome {
        Outcome::Scraped(reply) => reply.stats.iter().map(|s| s.seeders).collect(),
        other => panic!("expected a scrape, got {other:?}"),
    }
}

#[test]
fn a_scrape_of_200_hashes_goes_in_batches_of_74_over_one_connection_id() {
    let mut t = Tester::new();
    t.start(0, 1, RequestKind::Scrape(hashes(200)), options(DEFAULT_T));
    let mut scrape = t.connected(0, 77);
    let mut sizes = Vec::new();
    for ms in 1.. {
        sizes.push(scrape_of(&scrape).info_hashes.len());
        assert_eq!(scrape_of(&scrape).connection_id, ConnectionId(77));
        answer_scrape(&mut t, ms, &scrape, sizes[sizes.len() - 1]);
        let next = t.sent();
        if next.is_empty() {
            break;
        }
        assert_eq!(next.len(), 1);
        scrape = next[0].clone();
    }
    assert_eq!(sizes, [74, 74, 52]);
    let done = t.completed();
    assert_eq!(scraped_seeders(&done), (1..=200).collect::<Vec<u32>>());
}

#[test]
fn a_scrape_to_an_ipv6_tracker_goes_in_batches_of_60() {
    let mut t = Tester::new();
    t.start_to(
        0,
        1,
        addr(TRACKER_V6),
        RequestKind::Scrape(hashes(100)),
        options(DEFAULT_T),
    );
    let scrape = t.connected(0, 77);
    assert_eq!(scrape_of(&scrape).info_hashes.len(), 60);
}

#[test]
fn a_partial_scrape_answer_keeps_its_counts_asks_for_the_rest_and_is_remembered() {
    // aquatic's default max_scrape_torrents is 70.
    let mut t = Tester::new();
    t.start(0, 1, RequestKind::Scrape(hashes(100)), options(DEFAULT_T));
    let first = t.connected(0, 77);
    assert_eq!(scrape_of(&first).info_hashes.len(), 74);
    answer_scrape(&mut t, 5, &first, 70);
    let rest = t.sent_one();
    assert_eq!(scrape_of(&rest).info_hashes, hashes(100)[70..].to_vec());
    answer_scrape(&mut t, 10, &rest, 30);
    let done = t.completed();
    assert_eq!(scraped_seeders(&done), (1..=100).collect::<Vec<u32>>());
    let limit = t.session.tracker(tracker()).unwrap().scrape_limit();
    assert_eq!(limit, Some(70));

    // The next scrape to this tracker asks for 70 at a time.
    t.start(20, 2, RequestKind::Scrape(hashes(100)), options(DEFAULT_T));
    let next = t.sent_one();
    assert_eq!(scrape_of(&next).info_hashes.len(), 70);
}

#[test]
fn a_scrape_reply_that_is_not_whole_entries_is_still_an_error() {
    let mut t = Tester::new();
    t.start(0, 1, RequestKind::Scrape(hashes(3)), options(DEFAULT_T));
    let scrape = t.connected(0, 77);
    let tid = scrape_of(&scrape).transaction_id;
    t.deliver(5, scrape.destination, &raw_reply(2, tid, 8 + 12 * 2 + 5));
    assert_eq!(
        t.completed().outcome,
        Outcome::Failed(RequestError::BadResponse(ParseError::ScrapeLength))
    );
}

#[test]
fn each_scrape_batch_gets_the_full_retransmission_schedule() {
    let mut t = Tester::new();
    t.start(0, 1, RequestKind::Scrape(hashes(80)), options(100));
    let first = t.connected(0, 77);
    answer_scrape(&mut t, 5, &first, 74);
    let second = t.sent_one();
    assert_eq!(scrape_of(&second).info_hashes.len(), 6);
    t.expect_unanswered(1, 5, 100, 8, &second);
}

// 5. Send errors of an earlier phase.

#[test]
fn a_send_error_for_a_datagram_of_an_earlier_phase_is_ignored() {
    let mut t = Tester::new();
    announce_with_rtt(&mut t, 0, 1, 0, 0, 77);
    t.start(1_000, 2, announce_kind(), scoped(DEFAULT_T, 0));
    let old = t.sent_one();
    // The probe renews the id: request 2 is now connecting.
    t.tick(1_250);
    let connect = t.sent_one();
    assert!(is_connect(&connect));
    let now = t.at(1_260);
    t.session
        .handle_send_error(now, old.owner, "Message too long");
    t.no_completion();
    t.answer_connect(1_270, &connect, 78);
    let fresh = t.sent_one();
    let answer = t.answer_announce(1_280, &fresh);
    assert_eq!(t.completed().outcome, Outcome::Announced(answer));
}
