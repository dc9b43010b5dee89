use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;
use crate::proto::{AnnounceParams, AnnounceRequest, ConnectRequest, PROTOCOL_ID};

struct Harness {
    tracker: Tracker,
    rng: StdRng,
    now: Instant,
}

fn harness(config: Config) -> Harness {
    let now = Instant::now();
    Harness {
        tracker: Tracker::new(config, [7; 32], now),
        rng: StdRng::seed_from_u64(1),
        now,
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

impl Harness {
    fn send(&mut self, bytes: &[u8], from: SocketAddr) -> Option<Response> {
        let reply = self.tracker.handle(bytes, from, self.now, &mut self.rng)?;
        assert_eq!(reply.to, from);
        Some(Response::parse(&reply.bytes, canonical(from).is_ipv6()).expect("a valid reply"))
    }

    fn connect(&mut self, from: SocketAddr) -> ConnectionId {
        let mut out = Vec::new();
        ConnectRequest {
            transaction_id: TransactionId(1),
        }
        .write(&mut out);
        match self.send(&out, from) {
            Some(Response::Connect(c)) => c.connection_id,
            other => panic!("expected a connect reply, got {other:?}"),
        }
    }

    fn announce(&mut self, from: SocketAddr, req: &AnnounceRequest) -> Option<Response> {
        let mut out = Vec::new();
        req.write(&mut out);
        self.send(&out, from)
    }

    /// Connects, then announces `event` for `peer` (one byte of peer id).
    fn announce_as(
        &mut self,
        from: SocketAddr,
        hash: u8,
        peer: u8,
        event: AnnounceEvent,
        left: u64,
    ) -> AnnounceResponse {
        let connection_id = self.connect(from);
        let mut req = request(connection_id, hash, peer, event, left);
        req.params.port = from.port();
        match self.announce(from, &req) {
            Some(Response::Announce(r)) => r,
            other => panic!("expected an announce reply, got {other:?}"),
        }
    }

    fn scrape(&mut self, from: SocketAddr, hashes: &[u8]) -> Option<Response> {
        let connection_id = self.connect(from);
        let mut out = Vec::new();
        ScrapeRequest {
            connection_id,
            transaction_id: TransactionId(3),
            info_hashes: hashes.iter().map(|&h| InfoHash([h; 20])).collect(),
        }
        .write(&mut out);
        self.send(&out, from)
    }
}

fn request(
    connection_id: ConnectionId,
    hash: u8,
    peer: u8,
    event: AnnounceEvent,
    left: u64,
) -> AnnounceRequest {
    AnnounceRequest {
        connection_id,
        transaction_id: TransactionId(2),
        params: AnnounceParams {
            info_hash: InfoHash([hash; 20]),
            peer_id: PeerId([peer; 20]),
            downloaded: 0,
            left,
            uploaded: 0,
            event,
            ip: 0,
            key: 9,
            num_want: -1,
            port: 6881,
            url_data: Vec::new(),
            extensions: None,
        },
    }
}

#[test]
fn connect_is_answered_with_the_transaction_id_and_a_fresh_id() {
    let mut h = harness(Config::default());
    let a = h.connect(addr("127.0.0.1:1000"));
    assert_ne!(a.0, PROTOCOL_ID);
    let b = h.connect(addr("127.0.0.2:1000"));
    assert_ne!(a, b, "ids differ between addresses");
    assert_eq!(h.tracker.stats().connect, 2);
    assert_eq!(h.tracker.stats().replies, 2);
}

#[test]
fn connection_ids_are_tied_to_the_address_and_expire_after_two_minutes() {
    let mut h = harness(Config::default());
    let alice = addr("127.0.0.1:1000");
    let id = h.connect(alice);
    let req = request(id, 1, 1, AnnounceEvent::Started, 5);
    // Another port of the same host may use it ...
    assert!(h.announce(addr("127.0.0.1:2000"), &req).is_some());
    // ... another host may not, nor a forged or flipped id.
    assert_eq!(h.announce(addr("127.0.0.2:1000"), &req), None);
    for forged in [
        ConnectionId(id.0 ^ 1),
        ConnectionId(id.0 + (1 << 32)),
        ConnectionId(0),
    ] {
        assert_eq!(
            h.announce(alice, &request(forged, 1, 1, AnnounceEvent::None, 5)),
            None
        );
    }
    assert_eq!(h.tracker.stats().dropped_connection_id, 4);
    h.now += Duration::from_secs(119);
    assert!(h.announce(alice, &req).is_some());
    h.now += Duration::from_secs(1);
    assert_eq!(h.announce(alice, &req), None, "expired after 120 s");
}

#[test]
fn restart_forgets_connection_ids_and_swarms() {
    let mut h = harness(Config::default());
    let alice = addr("127.0.0.1:1000");
    let id = h.connect(alice);
    h.announce_as(alice, 1, 1, AnnounceEvent::Started, 5);
    assert!(h.tracker.swarm(&InfoHash([1; 20])).is_some());
    h.tracker.restart([8; 32], h.now);
    assert!(h.tracker.swarm(&InfoHash([1; 20])).is_none());
    assert_eq!(
        h.announce(alice, &request(id, 1, 1, AnnounceEvent::None, 5)),
        None
    );
    assert_eq!(h.tracker.stats().announce, 2, "counters survive a restart");
}

#[test]
fn announce_returns_the_other_peers_of_the_same_family_and_counts_all() {
    let mut h = harness(Config::default());
    let seeder = addr("127.0.0.1:1001");
    let leecher = addr("127.0.0.2:1002");
    let v6 = addr("[::1]:1003");
    let first = h.announce_as(seeder, 1, 1, AnnounceEvent::Started, 0);
    assert_eq!(
        (first.seeders, first.leechers, first.interval),
        (1, 0, 1800)
    );
    assert!(first.peers.is_empty(), "never the announcing peer itself");
    let second = h.announce_as(leecher, 1, 2, AnnounceEvent::Started, 10);
    assert_eq!((second.seeders, second.leechers), (1, 1));
    assert_eq!(second.peers, vec![seeder]);
    let third = h.announce_as(v6, 1, 3, AnnounceEvent::Started, 10);
    assert_eq!((third.seeders, third.leechers), (1, 2));
    assert!(third.peers.is_empty(), "no IPv4 peer in an IPv6 reply");
    let again = h.announce_as(seeder, 1, 1, AnnounceEvent::None, 0);
    assert_eq!(again.peers, vec![leecher]);
}

#[test]
fn an_ipv4_client_on_a_dual_stack_socket_is_an_ipv4_peer() {
    let mut h = harness(Config::default());
    h.announce_as(addr("127.0.0.1:1001"), 1, 1, AnnounceEvent::Started, 0);
    let mapped = addr("[::ffff:127.0.0.2]:1002");
    let reply = h.announce_as(mapped, 1, 2, AnnounceEvent::Started, 0);
    assert_eq!(reply.peers, vec![addr("127.0.0.1:1001")]);
    let swarm = h.tracker.swarm(&InfoHash([1; 20])).unwrap();
    assert!(swarm.peers().any(|p| p.addr == addr("127.0.0.2:1002")));
}

#[test]
fn num_want_is_honoured_up_to_max_peers() {
    let mut h = harness(Config {
        max_peers: 3,
        ..Config::default()
    });
    for peer in 1..=6 {
        h.announce_as(
            addr(&format!("127.0.0.{peer}:1000")),
            1,
            peer,
            AnnounceEvent::Started,
            1,
        );
    }
    let me = addr("127.0.0.99:1000");
    let id = h.connect(me);
    for (want, got) in [(-1, 3), (0, 0), (2, 2), (100, 3)] {
        let mut req = request(id, 1, 99, AnnounceEvent::None, 1);
        req.params.num_want = want;
        let Some(Response::Announce(r)) = h.announce(me, &req) else {
            panic!("announce reply");
        };
        assert_eq!(r.peers.len(), got, "num_want {want}");
    }
}

#[test]
fn stopped_removes_the_peer_and_completed_counts_once() {
    let mut h = harness(Config::default());
    let a = addr("127.0.0.1:1001");
    let b = addr("127.0.0.2:1002");
    h.announce_as(a, 1, 1, AnnounceEvent::Started, 10);
    h.announce_as(b, 1, 2, AnnounceEvent::Started, 10);
    h.announce_as(a, 1, 1, AnnounceEvent::Completed, 0);
    h.announce_as(a, 1, 1, AnnounceEvent::Completed, 0);
    let swarm = h.tracker.swarm(&InfoHash([1; 20])).unwrap();
    assert_eq!((swarm.counts(), swarm.downloaded), ((1, 1), 1));
    let stopped = h.announce_as(b, 1, 2, AnnounceEvent::Stopped, 10);
    assert_eq!((stopped.seeders, stopped.leechers), (1, 0));
    assert!(stopped.peers.is_empty());
    let swarm = h.tracker.swarm(&InfoHash([1; 20])).unwrap();
    assert_eq!(swarm.peers().count(), 1);
}

#[test]
fn peers_that_stop_announcing_expire_after_two_intervals() {
    let mut h = harness(Config {
        interval: 10,
        ..Config::default()
    });
    h.announce_as(addr("127.0.0.1:1001"), 1, 1, AnnounceEvent::Started, 0);
    h.now += Duration::from_secs(21);
    let reply = h.announce_as(addr("127.0.0.2:1002"), 1, 2, AnnounceEvent::Started, 0);
    assert_eq!((reply.seeders, reply.peers.len()), (1, 0));
}

#[test]
fn quiet_swarms_are_swept_away_but_download_counts_stay() {
    let mut h = harness(Config {
        interval: 10,
        ..Config::default()
    });
    h.announce_as(addr("127.0.0.1:1001"), 1, 1, AnnounceEvent::Started, 5);
    h.announce_as(addr("127.0.0.1:1001"), 2, 1, AnnounceEvent::Completed, 0);
    assert_eq!(h.tracker.size(), (2, 2));
    h.now += Duration::from_secs(61);
    h.connect(addr("127.0.0.1:1001"));
    assert_eq!(h.tracker.size(), (1, 0));
    assert_eq!(h.tracker.swarm(&InfoHash([2; 20])).unwrap().downloaded, 1);
}

#[test]
fn scrape_answers_the_first_max_scrape_hashes() {
    let mut h = harness(Config {
        max_scrape: 2,
        ..Config::default()
    });
    let a = addr("127.0.0.1:1001");
    h.announce_as(a, 1, 1, AnnounceEvent::Started, 0);
    h.announce_as(a, 1, 1, AnnounceEvent::Completed, 0);
    h.announce_as(addr("127.0.0.2:1"), 2, 2, AnnounceEvent::Started, 5);
    let Some(Response::Scrape(r)) = h.scrape(a, &[1, 2, 3]) else {
        panic!("scrape reply");
    };
    let counts: Vec<_> = r
        .stats
        .iter()
        .map(|s| (s.seeders, s.completed, s.leechers))
        .collect();
    assert_eq!(counts, vec![(1, 1, 0), (0, 0, 1)]);
}

#[test]
fn error_for_and_silent_for_refuse_those_hashes_only() {
    let mut faults = Faults::default();
    faults
        .error_for
        .insert(InfoHash([5; 20]), "unregistered torrent".into());
    faults.silent_for.insert(InfoHash([6; 20]));
    let mut h = harness(Config {
        faults,
        ..Config::default()
    });
    let a = addr("127.0.0.1:1001");
    let id = h.connect(a);
    let Some(Response::Error(e)) = h.announce(a, &request(id, 5, 1, AnnounceEvent::Started, 0))
    else {
        panic!("an error reply");
    };
    assert_eq!(
        (e.message.as_str(), e.transaction_id),
        ("unregistered torrent", TransactionId(2))
    );
    assert_eq!(
        h.announce(a, &request(id, 6, 1, AnnounceEvent::Started, 0)),
        None
    );
    assert!(matches!(
        h.announce(a, &request(id, 7, 1, AnnounceEvent::Started, 0)),
        Some(Response::Announce(_))
    ));
    assert!(matches!(h.scrape(a, &[7, 5]), Some(Response::Error(_))));
    assert_eq!(h.scrape(a, &[6]), None);
    let s = h.tracker.stats();
    assert_eq!((s.errors, s.dropped_silent), (2, 2));
    assert!(
        h.tracker.swarm(&InfoHash([5; 20])).is_none(),
        "refused announces change nothing"
    );
}

#[test]
fn malformed_requests_with_a_valid_id_get_an_error_and_others_are_dropped() {
    let mut h = harness(Config::default());
    let a = addr("127.0.0.1:1001");
    let id = h.connect(a);
    let mut bad = Vec::new();
    request(id, 1, 1, AnnounceEvent::Started, 0).write(&mut bad);
    bad[80..84].copy_from_slice(&9u32.to_be_bytes()); // no such event
    let Some(Response::Error(e)) = h.send(&bad, a) else {
        panic!("an error reply");
    };
    assert_eq!(e.message, "malformed request");
    bad[0..8].copy_from_slice(&0u64.to_be_bytes());
    assert_eq!(h.send(&bad, a), None);
    assert_eq!(h.send(&bad[..15], a), None);
    let mut scrape_no_hash = Vec::new();
    ScrapeRequest {
        connection_id: id,
        transaction_id: TransactionId(4),
        info_hashes: Vec::new(),
    }
    .write(&mut scrape_no_hash);
    assert!(matches!(
        h.send(&scrape_no_hash, a),
        Some(Response::Error(_))
    ));
    let s = h.tracker.stats();
    assert_eq!((s.invalid, s.dropped_malformed, s.errors), (4, 2, 2));
}

#[test]
fn random_datagrams_never_panic() {
    use rand::Rng;
    let mut h = harness(Config::default());
    let mut gen = StdRng::seed_from_u64(2);
    let a = addr("127.0.0.1:1001");
    let id = h.connect(a);
    for _ in 0..20_000 {
        let len = gen.random_range(0..200);
        let mut bytes: Vec<u8> = (0..len).map(|_| gen.random()).collect();
        if len >= 16 && gen.random_bool(0.5) {
            bytes[..8].copy_from_slice(&id.0.to_be_bytes());
            bytes[8..12].copy_from_slice(&gen.random_range(0u32..4).to_be_bytes());
        }
        if let Some(reply) = h.tracker.handle(&bytes, a, h.now, &mut h.rng) {
            assert!(Response::parse(&reply.bytes, false).is_ok());
        }
    }
}

#[test]
fn loss_drops_requests_and_replies_at_the_given_rate() {
    let mut faults = Faults {
        loss: 0.3,
        ..Faults::default()
    };
    faults.delay = (Duration::from_millis(10), Duration::from_millis(20));
    let mut h = harness(Config {
        faults,
        ..Config::default()
    });
    let mut out = Vec::new();
    ConnectRequest {
        transaction_id: TransactionId(1),
    }
    .write(&mut out);
    let mut answered = 0;
    for _ in 0..10_000 {
        if let Some(reply) = h
            .tracker
            .handle(&out, addr("127.0.0.1:1"), h.now, &mut h.rng)
        {
            answered += 1;
            assert!((10..=20).contains(&reply.delay.as_millis()));
        }
    }
    // (1 - 0.3)² = 0.49 of the round trips survive.
    assert!((4500..5300).contains(&answered), "{answered}");
    assert_eq!(h.tracker.stats().dropped_loss, 10_000 - answered);
}

#[test]
fn duplicate_sends_a_second_copy() {
    let mut h = harness(Config {
        faults: Faults {
            duplicate: 1.0,
            ..Faults::default()
        },
        ..Config::default()
    });
    let mut out = Vec::new();
    ConnectRequest {
        transaction_id: TransactionId(1),
    }
    .write(&mut out);
    let reply = h
        .tracker
        .handle(&out, addr("127.0.0.1:1"), h.now, &mut h.rng)
        .unwrap();
    assert_eq!(reply.copies, 2);
    let s = h.tracker.stats();
    assert_eq!((s.replies, s.duplicates), (2, 1));
}

#[test]
fn ipv6_announces_get_ipv6_peers_in_18_byte_entries() {
    let mut h = harness(Config::default());
    for peer in 1..=3 {
        h.announce_as(
            addr(&format!("[::{peer}]:100{peer}")),
            1,
            peer,
            AnnounceEvent::Started,
            0,
        );
    }
    let reply = h.announce_as(addr("[::9]:1009"), 1, 9, AnnounceEvent::Started, 0);
    assert_eq!(reply.peers.len(), 3);
    assert!(reply.peers.iter().all(SocketAddr::is_ipv6));
}
