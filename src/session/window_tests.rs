//! The window: how many requests may be out at once before others wait.

use super::*;
use crate::proto::ConnectResponse;
use rand::SeedableRng;

fn tracker() -> SocketAddr {
    "127.0.0.1:6969".parse().unwrap()
}

fn scrape() -> RequestKind {
    RequestKind::Scrape(vec![InfoHash([3; 20])])
}

fn options() -> RequestOptions {
    RequestOptions {
        timeout: Duration::from_millis(100),
        reuse_connection_id: false,
        ..RequestOptions::default()
    }
}

fn session(window: usize, now: Instant) -> Session {
    let mut s = Session::with_rng(StdRng::seed_from_u64(7));
    s.set_window(window, now);
    s
}

fn drain(s: &mut Session) -> Vec<Transmit> {
    std::iter::from_fn(|| s.poll_transmit()).collect()
}

fn answer_connect(s: &mut Session, now: Instant, connect: &Transmit) {
    let tid = ConnectRequest::parse(&connect.payload)
        .unwrap()
        .transaction_id;
    let mut bytes = Vec::new();
    Response::Connect(ConnectResponse {
        transaction_id: tid,
        connection_id: ConnectionId(5),
    })
    .write(&mut bytes);
    s.handle_datagram(now, tracker(), &bytes);
}

fn answer_scrape(s: &mut Session, now: Instant, scrape: &Transmit) {
    let request = ScrapeRequest::parse(&scrape.payload).unwrap();
    let mut bytes = Vec::new();
    Response::Scrape(ScrapeResponse {
        transaction_id: request.transaction_id,
        stats: vec![
            crate::proto::ScrapeStats {
                seeders: 1,
                completed: 2,
                leechers: 3
            };
            request.info_hashes.len()
        ],
    })
    .write(&mut bytes);
    s.handle_datagram(now, tracker(), &bytes);
}

#[test]
fn requests_beyond_the_window_wait_and_send_nothing() {
    let t0 = Instant::now();
    let mut s = session(2, t0);
    for id in 1..=5 {
        s.start(t0, id, tracker(), scrape(), options());
    }
    assert_eq!(
        drain(&mut s).len(),
        2,
        "two connects, one per admitted request"
    );
    assert_eq!(s.in_flight(), 5);
    assert_eq!(s.queued(), 3);
}

#[test]
fn a_finished_request_admits_the_next_in_order() {
    let t0 = Instant::now();
    let mut s = session(1, t0);
    s.start(t0, 1, tracker(), scrape(), options());
    s.start(t0, 2, tracker(), scrape(), options());
    let connect = drain(&mut s);
    assert_eq!(connect.len(), 1);
    answer_connect(&mut s, t0, &connect[0]);
    let request = drain(&mut s);
    assert_eq!(
        request.len(),
        1,
        "request 2 still waits: 1 is not answered yet"
    );
    answer_scrape(&mut s, t0, &request[0]);
    assert!(matches!(
        s.poll_completion(),
        Some(Completion {
            id: 1,
            outcome: Outcome::Scraped(_)
        })
    ));
    let next = drain(&mut s);
    assert_eq!(next.len(), 1);
    assert!(ConnectRequest::parse(&next[0].payload).is_some());
    assert_eq!(s.queued(), 0);
}

#[test]
fn a_request_leaves_the_window_when_its_first_wait_passes() {
    let t0 = Instant::now();
    let mut s = session(1, t0);
    s.start(t0, 1, tracker(), scrape(), options());
    s.start(t0, 2, tracker(), scrape(), options());
    assert_eq!(drain(&mut s).len(), 1);
    // Silence: after 2·timeout request 1 retransmits and request 2 goes out.
    s.handle_timeout(t0 + Duration::from_millis(200));
    assert_eq!(drain(&mut s).len(), 2);
    assert_eq!(s.queued(), 0);
    // Both keep their own schedules and fail in the end; nothing is lost.
    while let Some(at) = s.poll_timeout() {
        s.handle_timeout(at);
        drain(&mut s);
    }
    let done: Vec<_> = std::iter::from_fn(|| s.poll_completion()).collect();
    assert_eq!(done.len(), 2);
    assert!(done
        .iter()
        .all(|c| matches!(c.outcome, Outcome::Failed(RequestError::Timeout { .. }))));
}

#[test]
fn cancelling_a_queued_request_means_it_is_never_sent() {
    let t0 = Instant::now();
    let mut s = session(1, t0);
    s.start(t0, 1, tracker(), scrape(), options());
    s.start(t0, 2, tracker(), scrape(), options());
    s.start(t0, 3, tracker(), scrape(), options());
    drain(&mut s);
    s.cancel(2, t0);
    assert_eq!(s.queued(), 1);
    s.cancel(1, t0);
    // Request 3, not the cancelled 2, takes the place.
    assert_eq!(drain(&mut s).len(), 1);
    assert_eq!(s.in_flight(), 1);
    assert_eq!(s.queued(), 0);
    assert_eq!(s.poll_completion(), None);
}

#[test]
fn widening_the_window_admits_waiting_requests_at_once() {
    let t0 = Instant::now();
    let mut s = session(1, t0);
    for id in 1..=3 {
        s.start(t0, id, tracker(), scrape(), options());
    }
    assert_eq!(drain(&mut s).len(), 1);
    s.set_window(DEFAULT_WINDOW, t0);
    assert_eq!(drain(&mut s).len(), 2);
}

/// fuzz/regressions/session/stale-send-error-leaves-queue: a send error for a
/// datagram of a replaced request must not touch its queued successor.
#[test]
fn a_stale_send_error_leaves_a_queued_request_queued() {
    let t0 = Instant::now();
    let mut s = session(1, t0);
    let v6: SocketAddr = "[::1]:6969".parse().unwrap();
    let options = RequestOptions::default();
    s.start(t0, 1, tracker(), scrape(), options.clone());
    let connect = s.poll_transmit().unwrap();
    answer_connect(&mut s, t0, &connect);
    let old = s.poll_transmit().unwrap();
    assert_eq!(old.owner.request_id(), Some(1));

    s.start(t0, 2, tracker(), scrape(), options.clone());
    s.start_with_fallback(t0, 1, tracker(), Some(v6), scrape(), options);
    assert_eq!(s.poll_transmit().unwrap().owner.request_id(), Some(2));
    assert_eq!(s.queued(), 1);

    s.handle_send_error(t0, old.owner, "Network is unreachable");
    assert_eq!(s.poll_transmit(), None, "the queued request sends nothing");
    assert_eq!(s.queued(), 1);
    assert_eq!(s.poll_completion(), None);

    s.cancel(1, t0);
    s.cancel(2, t0);
    assert_eq!((s.in_flight(), s.queued()), (0, 0));
}
