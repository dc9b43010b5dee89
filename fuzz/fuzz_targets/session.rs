//! Drives a `Session` with a fake clock through a sequence of operations read
//! from the fuzz input, and checks after every step that:
//!
//! - nothing panics;
//! - `in_flight()` equals starts − completions − cancels (a start that
//!   replaces a request in flight counts as a cancel of the old one);
//! - every completion is for a request that was started and is still in
//!   flight, so each start completes at most once, and a cancelled request
//!   never completes; a scrape that succeeds has one entry per hash;
//! - one received datagram makes the session send at most one datagram per
//!   request in flight, each request at most one, a reply to a request's own
//!   transaction id at most three (see `datagram`), and a datagram with a transaction id the
//!   session never sent none at all (no amplification);
//! - `poll_timeout()` is `Some` exactly when a request is in flight, and after
//!   `handle_timeout(now)` it is later than `now` (nothing due is left behind);
//! - `stats().sent` counts every datagram handed out;
//! - `queued()` never exceeds `in_flight()`; a start or a cancel sends at most
//!   two datagrams (its own, or those it lets in from its tracker's line and
//!   the global queue);
//! - a connect datagram is a valid connect request under its owner's
//!   transaction id, and an announce or scrape carries a connection id that
//!   its destination issued (in a connect reply to a connect sent there) less
//!   than `CONNECTION_ID_TTL` after that connect was last sent (BEP 15),
//!   except for the sends that answer the connect reply itself;
//! - at the end, with no more replies, running the timers until there are none
//!   completes every request (no request hangs).
#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bittorrent_udp_tracker::proto::{
    Action, AnnounceEvent, Authentication, ConnectRequest, InfoHash, LibtorrentExtensions, PeerId,
    TransactionId,
};
use bittorrent_udp_tracker::session::{
    AnnounceParams, Outcome, Owner, RequestId, RequestKind, RequestOptions, Scope, Session,
    Transmit, CONNECTION_ID_TTL,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;

const TRACKERS: [&str; 5] = [
    "127.0.0.1:6969",
    "127.0.0.2:6969",
    "127.0.0.1:6970",
    "[::1]:6969",
    "[::2]:6969",
];
/// Request ids are taken modulo this, so ids get reused and replaced.
const IDS: u8 = 16;
/// Sent datagrams remembered for building replies.
const LOG: usize = 256;

fn tracker(i: u8) -> SocketAddr {
    TRACKERS[usize::from(i) % TRACKERS.len()].parse().unwrap()
}

#[derive(Arbitrary, Debug)]
enum Op {
    Start {
        id: u8,
        tracker: u8,
        fallback: Option<u8>,
        kind: Kind,
        options: Options,
    },
    Cancel {
        id: u8,
    },
    /// Arbitrary bytes from one of the tracker addresses.
    Datagram {
        from: u8,
        bytes: Vec<u8>,
    },
    /// A reply to the `sent`-th remembered datagram, with its transaction id,
    /// from where it went (`None`) or another address.
    Reply {
        sent: u16,
        from: Option<u8>,
        reply: Reply,
    },
    Advance {
        ms: u32,
    },
    /// Jump to `poll_timeout()`, if any.
    AdvanceToTimeout,
    SendError {
        sent: u16,
    },
    ForgetConnectionIds,
    /// `set_window(window)`: small windows so that requests queue.
    SetWindow {
        window: u8,
    },
}

#[derive(Arbitrary, Debug)]
enum Kind {
    Announce {
        event: u8,
        num_want: i32,
        url_data: Vec<u8>,
        extensions: Option<Extensions>,
    },
    Scrape {
        hashes: u8,
    },
}

/// libtorrent's extensions: authentication with this user name, request string.
#[derive(Arbitrary, Debug)]
struct Extensions {
    username: Option<Vec<u8>>,
    request_string: Option<Vec<u8>>,
}

#[derive(Arbitrary, Debug)]
struct Options {
    /// Milliseconds, 0 included (the binding can produce a zero Duration).
    timeout_ms: u16,
    /// Unclamped: the session clamps to 1..=8.
    max_attempts: u8,
    strict_source: bool,
    reuse_connection_id: bool,
    /// Three scopes, so that ids are reused within and not across scopes.
    scope: u8,
}

#[derive(Arbitrary, Debug)]
enum Reply {
    Connect {
        connection_id: u64,
    },
    Announce {
        peers: u8,
        /// Peer entries of the other family's size.
        wrong_family: bool,
    },
    Scrape {
        /// `None`: one entry per hash of the datagram replied to.
        entries: Option<u8>,
    },
    Error {
        message: Vec<u8>,
    },
    /// Any action and body behind the transaction id.
    Raw {
        action: u32,
        body: Vec<u8>,
    },
}

impl Reply {
    fn bytes(&self, to: &Transmit, ipv6: bool) -> Vec<u8> {
        let tid = &to.payload[12..16];
        let (action, body) = match self {
            Reply::Connect { connection_id } => (
                Action::Connect.to_u32(),
                connection_id.to_be_bytes().to_vec(),
            ),
            Reply::Announce {
                peers,
                wrong_family,
            } => {
                let entry = if ipv6 != *wrong_family { 18 } else { 6 };
                let mut body = vec![0, 0, 0, 60, 0, 0, 0, 1, 0, 0, 0, 2];
                body.extend((0..usize::from(*peers) * entry).map(|i| i as u8));
                (Action::Announce.to_u32(), body)
            }
            Reply::Scrape { entries } => {
                let entries = entries.map_or(to.payload.len().saturating_sub(16) / 20, usize::from);
                (
                    Action::Scrape.to_u32(),
                    (0..entries * 12).map(|i| i as u8).collect(),
                )
            }
            Reply::Error { message } => (Action::Error.to_u32(), message.clone()),
            Reply::Raw { action, body } => (*action, body.clone()),
        };
        let mut out = action.to_be_bytes().to_vec();
        out.extend_from_slice(tid);
        out.extend_from_slice(&body);
        out
    }
}

fn kind(kind: &Kind) -> (RequestKind, Option<usize>) {
    match kind {
        Kind::Announce {
            event,
            num_want,
            url_data,
            extensions,
        } => {
            let extensions = extensions.as_ref().map(|e| {
                Box::new(LibtorrentExtensions {
                    auth: e.username.as_ref().map(|u| Authentication {
                        username: u.clone(),
                        password_sha1: [7; 20],
                    }),
                    request_string: e.request_string.clone(),
                })
            });
            let params = AnnounceParams {
                info_hash: InfoHash([1; 20]),
                peer_id: PeerId([2; 20]),
                downloaded: 1,
                left: 2,
                uploaded: 3,
                event: AnnounceEvent::from_u32(u32::from(event % 4)).unwrap(),
                ip: 0,
                key: 4,
                num_want: *num_want,
                port: 6881,
                url_data: url_data.clone(),
                extensions,
            };
            (RequestKind::Announce(params), None)
        }
        Kind::Scrape { hashes } => {
            // Up to 200: more than one batch.
            let n = usize::from(*hashes % 200) + 1;
            let hashes = (0..n).map(|i| InfoHash([i as u8; 20])).collect();
            (RequestKind::Scrape(hashes), Some(n))
        }
    }
}

struct Harness {
    session: Session,
    t0: Instant,
    now: Instant,
    /// Requests in flight by our count, with the hash count of a scrape.
    live: HashMap<RequestId, Option<usize>>,
    starts: u64,
    completions: u64,
    cancels: u64,
    /// With the generation of the owner's id when it was sent.
    sent: Vec<(Transmit, u64)>,
    /// How many times each id has been started.
    generation: HashMap<RequestId, u64>,
    sent_total: u64,
    /// Every transaction id the session has put in a datagram, and whose.
    tids: HashMap<[u8; 4], Owner>,
    /// Connect transaction ids: where the connect went, when last sent.
    connects: HashMap<[u8; 4], (SocketAddr, Instant)>,
    /// Connection ids a connect reply delivered, by the address the connect
    /// went to, with the latest time that connect was sent.
    issued: HashMap<(SocketAddr, [u8; 8]), Instant>,
    /// Set while the session handles a connect reply: the requests it sends
    /// then use the id just received, however long ago the connect went out
    /// (a slow reply is still the tracker's newest id; see README.md).
    answering_connect: bool,
    /// FUZZ_SESSION_DEBUG: print every step, datagram and completion.
    debug: bool,
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        Harness {
            session: Session::with_rng(rand::rngs::StdRng::seed_from_u64(15)),
            t0,
            now: t0,
            live: HashMap::new(),
            starts: 0,
            completions: 0,
            cancels: 0,
            sent: Vec::new(),
            generation: HashMap::new(),
            sent_total: 0,
            tids: HashMap::new(),
            connects: HashMap::new(),
            issued: HashMap::new(),
            answering_connect: false,
            debug: std::env::var_os("FUZZ_SESSION_DEBUG").is_some(),
        }
    }

    /// Collects what the session sent, checks the owners, returns them.
    fn drain_transmits(&mut self, live_before: &HashSet<RequestId>) -> Vec<Transmit> {
        let out: Vec<Transmit> = std::iter::from_fn(|| self.session.poll_transmit()).collect();
        for t in &out {
            if self.debug {
                eprintln!(
                    "{:?}: send {:?} to {} tid {:02x?} cid {:02x?}",
                    self.now - self.t0,
                    t.owner,
                    t.destination,
                    &t.payload[12..16],
                    &t.payload[..8]
                );
            }
            assert!(t.payload.len() >= 16, "a request is at least 16 bytes");
            if let Owner::Request { id, .. } = t.owner {
                assert!(
                    live_before.contains(&id) || self.live.contains_key(&id),
                    "datagram sent for request {id}, which is not in flight"
                );
            }
            let tid: [u8; 4] = t.payload[12..16].try_into().unwrap();
            self.tids.insert(tid, t.owner);
            match t.owner {
                Owner::Connect(TransactionId(owner)) => {
                    assert_eq!(
                        ConnectRequest::parse(&t.payload).map(|c| c.transaction_id.0),
                        Some(owner),
                        "a connect request under its owner's transaction id"
                    );
                    self.connects.insert(tid, (t.destination, self.now));
                }
                Owner::Request { .. } => {
                    let action = u32::from_be_bytes(t.payload[8..12].try_into().unwrap());
                    assert!(
                        action == Action::Announce.to_u32() || action == Action::Scrape.to_u32()
                    );
                    let cid: [u8; 8] = t.payload[..8].try_into().unwrap();
                    let Some(&at) = self.issued.get(&(t.destination, cid)) else {
                        panic!("{t:?} carries a connection id its destination never issued");
                    };
                    assert!(
                        self.answering_connect
                            || self.now.saturating_duration_since(at) < CONNECTION_ID_TTL,
                        "{t:?} carries a connection id issued {:?} ago",
                        self.now - at
                    );
                }
            }
            self.sent_total += 1;
            if self.sent.len() == LOG {
                self.sent.remove(0);
            }
            let generation = match t.owner {
                Owner::Request { id, .. } => self.generation.get(&id).copied().unwrap_or(0),
                Owner::Connect(_) => 0,
            };
            self.sent.push((t.clone(), generation));
        }
        out
    }

    fn drain_completions(&mut self) {
        while let Some(done) = self.session.poll_completion() {
            if self.debug {
                eprintln!("{:?}: completion {done:?}", self.now - self.t0);
            }
            let Some(scrape) = self.live.remove(&done.id) else {
                panic!(
                    "completion for {}, which is not in flight: {done:?}",
                    done.id
                );
            };
            self.completions += 1;
            match (&done.outcome, scrape) {
                (Outcome::Announced(_), None) | (Outcome::Failed(_), _) => {}
                (Outcome::Scraped(reply), Some(n)) => {
                    assert_eq!(reply.stats.len(), n, "one scrape entry per hash");
                }
                (outcome, _) => panic!("{outcome:?} for the wrong kind of request"),
            }
        }
    }

    fn check(&mut self) {
        let in_flight = self.session.in_flight();
        assert_eq!(in_flight, self.live.len());
        assert_eq!(
            in_flight as u64,
            self.starts - self.completions - self.cancels,
            "in_flight = starts - completions - cancels"
        );
        assert_eq!(
            self.session.poll_timeout().is_some(),
            in_flight > 0,
            "a timer exactly when requests are in flight"
        );
        assert_eq!(self.session.stats().sent, self.sent_total);
        assert!(
            self.session.queued() <= in_flight,
            "{} queued, {in_flight} in flight",
            self.session.queued()
        );
    }

    fn handle_timeout(&mut self) {
        self.session.handle_timeout(self.now);
        if let Some(at) = self.session.poll_timeout() {
            assert!(at > self.now, "handle_timeout left a timer due at {at:?}");
        }
    }

    fn datagram(&mut self, from: SocketAddr, bytes: &[u8]) {
        let live_before: HashSet<RequestId> = self.live.keys().copied().collect();
        // A well-formed connect reply to a connect we saw go out: its id is
        // now one that connect's destination issued (whether or not the
        // session takes it; that only makes the check above weaker).
        self.answering_connect = false;
        if bytes.len() == 16 && bytes[..4] == Action::Connect.to_u32().to_be_bytes() {
            let tid: [u8; 4] = bytes[4..8].try_into().unwrap();
            self.answering_connect = true;
            if let Some(&(to, sent_at)) = self.connects.get(&tid) {
                let cid: [u8; 8] = bytes[8..].try_into().unwrap();
                let at = self.issued.entry((to, cid)).or_insert(sent_at);
                *at = (*at).max(sent_at);
            }
        }
        self.session.handle_datagram(self.now, from, bytes);
        let out = self.drain_transmits(&live_before);
        self.answering_connect = false;
        let tid: Option<[u8; 4]> = bytes.get(4..8).map(|b| b.try_into().unwrap());
        let owner = tid.and_then(|tid| self.tids.get(&tid).copied());
        let mut owners = HashSet::new();
        for t in &out {
            if let Owner::Request { id, .. } = t.owner {
                assert!(
                    owners.insert(id),
                    "request {id} sent twice for one datagram"
                );
            }
        }
        // A reply to a request: its own next datagram (a scrape's next batch)
        // or up to two waiting for the tracker's window (the place it frees,
        // and one more as the window grows in slow start), and one the global
        // window lets in.
        let bound = match owner {
            None => 0,
            Some(Owner::Request { .. }) => 3,
            Some(Owner::Connect(_)) => live_before.len(),
        };
        assert!(
            out.len() <= bound.min(live_before.len()),
            "{} datagrams sent for one received ({owner:?}, {} in flight): {out:?}",
            out.len(),
            live_before.len()
        );
        self.drain_completions();
    }

    fn step(&mut self, op: &Op) {
        if self.debug {
            eprintln!("{:?}: {op:?}", self.now - self.t0);
        }
        let live_before: HashSet<RequestId> = self.live.keys().copied().collect();
        match op {
            Op::Start {
                id,
                tracker: t,
                fallback,
                kind: k,
                options,
            } => {
                // The rest of `id`: started together with the requests of
                // the last 0-225 ms (a JS tick handed over in parts,
                // `start_together`). Taken from `id` rather than a field of
                // its own so that the inputs in regressions/ decode as before.
                let tick = Duration::from_millis(u64::from(id / IDS) * 15);
                let id = RequestId::from(id % IDS);
                let (request, scrape) = kind(k);
                let options = RequestOptions {
                    timeout: Duration::from_millis(u64::from(options.timeout_ms)),
                    max_attempts: u32::from(options.max_attempts),
                    strict_source: options.strict_source,
                    reuse_connection_id: options.reuse_connection_id,
                    scope: Scope::from(options.scope % 3),
                };
                *self.generation.entry(id).or_insert(0) += 1;
                if self.live.insert(id, scrape).is_some() {
                    self.cancels += 1;
                }
                self.starts += 1;
                let since = self.now.checked_sub(tick).unwrap_or(self.now).max(self.t0);
                self.session.start_together(
                    self.now,
                    since,
                    id,
                    tracker(*t),
                    fallback.map(tracker),
                    request,
                    options,
                );
                let out = self.drain_transmits(&live_before);
                // Its own, or (replacing a request in flight) the ones the
                // replaced request lets in: one from its tracker's line, one
                // from the global queue.
                assert!(out.len() <= 2, "one start sends at most two datagrams");
            }
            Op::Cancel { id } => {
                let id = RequestId::from(id % IDS);
                self.session.cancel(id, self.now);
                if self.live.remove(&id).is_some() {
                    self.cancels += 1;
                }
                let out = self.drain_transmits(&live_before);
                assert!(
                    out.len() <= 2,
                    "cancel sends at most the requests it lets in (tracker line, global queue): {out:?}"
                );
            }
            Op::Datagram { from, bytes } => self.datagram(tracker(*from), bytes),
            Op::Reply { sent, from, reply } => {
                if self.sent.is_empty() {
                    return;
                }
                let (to, _) = &self.sent[usize::from(*sent) % self.sent.len()];
                let from = from.map_or(to.destination, tracker);
                let bytes = reply.bytes(to, from.is_ipv6());
                self.datagram(from, &bytes);
            }
            Op::Advance { ms } => {
                self.now += Duration::from_millis(u64::from(*ms));
                self.handle_timeout();
                self.drain_transmits(&live_before);
            }
            Op::AdvanceToTimeout => {
                if let Some(at) = self.session.poll_timeout() {
                    self.now = self.now.max(at);
                }
                self.handle_timeout();
                self.drain_transmits(&live_before);
            }
            Op::SendError { sent } => {
                if self.sent.is_empty() {
                    return;
                }
                let (transmit, generation) = &self.sent[usize::from(*sent) % self.sent.len()];
                // Also for an earlier request under a reused id, or an
                // earlier phase: the owner's transaction id tells them apart
                // (finding 3).
                let (owner, _) = (transmit.owner, generation);
                self.session
                    .handle_send_error(self.now, owner, "Network is unreachable");
                self.drain_transmits(&live_before);
            }
            Op::ForgetConnectionIds => {
                self.session.forget_connection_ids();
                assert!(self.drain_transmits(&live_before).is_empty());
            }
            Op::SetWindow { window } => {
                let queued = self.session.queued();
                self.session.set_window(usize::from(window % 5), self.now);
                let out = self.drain_transmits(&live_before);
                assert!(
                    out.len() <= queued,
                    "set_window sends only for queued requests"
                );
            }
        }
        self.drain_completions();
        self.check();
    }

    /// No more replies: the timers alone must finish every request.
    fn run_down(&mut self) {
        for _ in 0..100_000 {
            let Some(at) = self.session.poll_timeout() else {
                break;
            };
            self.now = self.now.max(at);
            self.step(&Op::AdvanceToTimeout);
        }
        assert_eq!(
            self.session.in_flight(),
            0,
            "requests still in flight after every timer ran ({:?} of fake time)",
            self.now - self.t0
        );
        self.check();
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut h = Harness::new();
    for op in ops.iter().take(512) {
        h.step(op);
    }
    h.run_down();
});
