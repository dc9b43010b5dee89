//! Happy eyeballs for UDP: a host name with an address in each family.

use super::tests::announce_kind;
use super::*;
use crate::proto::{AnnounceRequest, ConnectResponse};
use rand::SeedableRng;

const V4: &str = "127.0.0.1:6969";
const V6: &str = "[::1]:6969";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn options() -> RequestOptions {
    RequestOptions {
        timeout: Duration::from_millis(100),
        ..RequestOptions::default()
    }
}

fn session() -> Session {
    Session::with_rng(StdRng::seed_from_u64(41))
}

fn drain(session: &mut Session) -> Vec<Transmit> {
    std::iter::from_fn(|| session.poll_transmit()).collect()
}

fn connect_reply(session: &mut Session, now: Instant, to: &Transmit) {
    let tid = ConnectRequest::parse(&to.payload).unwrap().transaction_id;
    let mut bytes = Vec::new();
    Response::Connect(ConnectResponse {
        transaction_id: tid,
        connection_id: ConnectionId(99),
    })
    .write(&mut bytes);
    session.handle_datagram(now, to.destination, &bytes);
}

fn announce_reply(session: &mut Session, now: Instant, to: &Transmit) {
    let tid = AnnounceRequest::parse(&to.payload).unwrap().transaction_id;
    let mut bytes = Vec::new();
    Response::Announce(AnnounceResponse {
        transaction_id: tid,
        interval: 60,
        leechers: 1,
        seeders: 2,
        peers: Vec::new(),
    })
    .write(&mut bytes);
    session.handle_datagram(now, to.destination, &bytes);
}

#[test]
fn silent_first_family_falls_back_after_the_first_wait() {
    let t0 = Instant::now();
    let mut s = session();
    s.start_with_fallback(t0, 1, addr(V4), Some(addr(V6)), announce_kind(), options());
    let first = drain(&mut s);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].destination, addr(V4));
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_millis(200)));

    let t1 = t0 + Duration::from_millis(200);
    s.handle_timeout(t1);
    let second = drain(&mut s);
    assert_eq!(
        second.len(),
        1,
        "one connect to the fallback, none to the old address"
    );
    assert_eq!(second[0].destination, addr(V6));
    assert!(ConnectRequest::parse(&second[0].payload).is_some());

    connect_reply(&mut s, t1, &second[0]);
    let announce_out = drain(&mut s);
    assert_eq!(announce_out[0].destination, addr(V6));
    announce_reply(&mut s, t1, &announce_out[0]);
    assert!(matches!(
        s.poll_completion(),
        Some(Completion {
            id: 1,
            outcome: Outcome::Announced(_)
        })
    ));
}

#[test]
fn a_host_that_answered_on_its_fallback_is_tried_there_first() {
    let t0 = Instant::now();
    let mut s = session();
    s.start_with_fallback(t0, 1, addr(V4), Some(addr(V6)), announce_kind(), options());
    drain(&mut s);
    let t1 = t0 + Duration::from_millis(200);
    s.handle_timeout(t1);
    let connect = drain(&mut s);
    connect_reply(&mut s, t1, &connect[0]);
    let out = drain(&mut s);
    announce_reply(&mut s, t1, &out[0]);
    s.poll_completion().unwrap();

    s.forget_connection_ids();
    s.start_with_fallback(t1, 2, addr(V4), Some(addr(V6)), announce_kind(), options());
    let next = drain(&mut s);
    assert_eq!(next[0].destination, addr(V6));

    // Once the preference has expired the first family is tried again.
    s.cancel(2, t1);
    let later = t1 + FAMILY_PREFERENCE_TTL;
    s.handle_timeout(later);
    s.start_with_fallback(
        later,
        3,
        addr(V4),
        Some(addr(V6)),
        announce_kind(),
        options(),
    );
    assert_eq!(drain(&mut s)[0].destination, addr(V4));
}

#[test]
fn a_send_error_moves_to_the_fallback_at_once() {
    let t0 = Instant::now();
    let mut s = session();
    s.start_with_fallback(t0, 1, addr(V6), Some(addr(V4)), announce_kind(), options());
    let first = drain(&mut s);
    s.handle_send_error(t0, first[0].owner, "Network is unreachable");
    assert_eq!(s.poll_completion(), None);
    let second = drain(&mut s);
    assert_eq!(second[0].destination, addr(V4));
}

#[test]
fn without_a_fallback_a_send_error_fails_the_request() {
    let t0 = Instant::now();
    let mut s = session();
    s.start(t0, 1, addr(V6), announce_kind(), options());
    let first = drain(&mut s);
    s.handle_send_error(t0, first[0].owner, "Network is unreachable");
    let done = s.poll_completion().unwrap();
    assert_eq!(
        done.outcome,
        Outcome::Failed(RequestError::Send("Network is unreachable".into()))
    );
    assert_eq!(s.in_flight(), 0);
}

#[test]
fn the_fallback_is_used_once_then_the_normal_schedule_applies() {
    let t0 = Instant::now();
    let mut s = session();
    let opts = RequestOptions {
        max_attempts: 2,
        ..options()
    };
    s.start_with_fallback(t0, 1, addr(V4), Some(addr(V6)), announce_kind(), opts);
    drain(&mut s);
    let mut now = t0;
    let mut sends = Vec::new();
    while let Some(at) = s.poll_timeout() {
        now = at;
        s.handle_timeout(now);
        sends.extend(drain(&mut s).into_iter().map(|t| (now - t0, t.destination)));
    }
    // Fallback at 200 ms, its retransmit 200 ms later, give up 400 ms after that.
    assert_eq!(
        sends,
        vec![
            (Duration::from_millis(200), addr(V6)),
            (Duration::from_millis(400), addr(V6)),
        ]
    );
    assert_eq!(now - t0, Duration::from_millis(800));
    let done = s.poll_completion().unwrap();
    assert_eq!(
        done.outcome,
        Outcome::Failed(RequestError::Timeout { waited_ms: 400 })
    );
}
