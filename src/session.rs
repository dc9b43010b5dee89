//! The request state machine, with no I/O and no clock of its own.
//!
//! BEP 15's flow, for every request: connect → (connection id) → announce or
//! scrape → reply, each phase retransmitted `timeout · 2^k` after its k-th
//! send. The caller feeds in datagrams and the current time and polls for what
//! to send, what finished, and when to wake up next, in the style of
//! quinn-proto; so every rule here is tested with a fake clock.
//!
//! Two things are shared between requests:
//! - the connection id of each tracker address ([`ConnectionIdCache`]), reused
//!   for less than a minute (BEP 15: "a connection ID can be used for multiple
//!   requests ... for one minute");
//! - a connect exchange in progress: requests to one tracker that need an id at
//!   the same time wait on one connect instead of sending one each.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::proto::{
    peek_transaction_id, AnnounceEvent, AnnounceRequest, AnnounceResponse, ConnectRequest,
    ConnectionId, InfoHash, LibtorrentExtensions, ParseError, PeerId, Response, ScrapeRequest,
    ScrapeResponse, TransactionId,
};

/// A request's handle, chosen by the caller.
pub type RequestId = u32;

/// How long a connection id is reused, counted from the last send of the
/// connect request it answered (so never later than the tracker issued it).
pub const CONNECTION_ID_TTL: Duration = Duration::from_secs(60);
/// How long a finished transaction id is remembered, so a late duplicate reply
/// is recognised as such (and the id is not handed out again meanwhile).
pub const RETIRED_TID_TTL: Duration = Duration::from_secs(120);
/// BEP 15 stops at 15 · 2^8 seconds; more sends than this are never useful.
pub const MAX_ATTEMPTS: u32 = 8;
/// How long a tracker host that answered only on its other address family is
/// contacted on that family first.
pub const FAMILY_PREFERENCE_TTL: Duration = Duration::from_secs(600);
/// How many requests may be out at once (sent, not answered, first wait not
/// yet over) across all trackers before new ones wait their turn. Replies to
/// a burst arrive as fast as the tracker sends them; the window keeps them
/// within what the socket's receive buffer holds (a dropped reply costs a
/// retransmission 2·timeout later). A request leaves the window when it
/// finishes or its first wait passes, so a silent tracker delays the queue by
/// one wait per window's worth of requests, not by whole retransmit schedules.
pub const DEFAULT_WINDOW: usize = 4096;
/// A wait is never scheduled further out than this, whatever the options say.
const LONGEST_WAIT: Duration = Duration::from_secs(365 * 24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestOptions {
    /// The base retransmission timeout; the k-th wait is `timeout · 2^k`.
    pub timeout: Duration,
    /// Sends per phase before giving up (1..=8).
    pub max_attempts: u32,
    /// Accept replies only from the address the request was sent to.
    pub strict_source: bool,
    /// Use (and join) cached connection ids and shared connect exchanges.
    pub reuse_connection_id: bool,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            timeout: Duration::from_secs(15),
            max_attempts: MAX_ATTEMPTS,
            strict_source: true,
            reuse_connection_id: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceParams {
    pub info_hash: InfoHash,
    pub peer_id: PeerId,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    pub ip: u32,
    pub key: u32,
    pub num_want: i32,
    pub port: u16,
    pub url_data: Vec<u8>,
    /// libtorrent's authentication / request-string extensions (opt-in).
    pub extensions: Option<LibtorrentExtensions>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Announce(AnnounceParams),
    /// At most one packet's worth of hashes; the caller splits larger sets.
    Scrape(Vec<InfoHash>),
}

/// Why a request failed. `Display` gives the texts 1.2.0 emitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestError {
    /// The tracker answered with an error action; its message.
    Tracker(String),
    /// The reply matched the request but was not a valid answer to it.
    BadResponse(ParseError),
    /// No answer after every retransmission; the last wait in milliseconds.
    Timeout { waited_ms: u64 },
    /// The tracker's host name did not resolve (the resolver's message).
    Resolve(String),
    /// The datagram could not be sent (no route, no such family, ...).
    Send(String),
    /// The SOCKS5 proxy the request must go through is not usable (see
    /// `crate::proxy`); nothing was sent to the tracker directly.
    Proxy(String),
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestError::Tracker(message) => f.write_str(message),
            RequestError::BadResponse(e) => e.fmt(f),
            RequestError::Timeout { waited_ms } => {
                write!(f, "tracker is not responding after:{waited_ms}")
            }
            RequestError::Resolve(message)
            | RequestError::Send(message)
            | RequestError::Proxy(message) => f.write_str(message),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Announced(AnnounceResponse),
    Scraped(ScrapeResponse),
    Failed(RequestError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub id: RequestId,
    pub outcome: Outcome,
}

/// Who a datagram was sent for, so a send error reaches the right requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Request(RequestId),
    Connect(TransactionId),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
    pub owner: Owner,
}

/// What happened to received datagrams; dropped ones never reach a request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    /// Shorter than the 8 bytes of action and transaction id.
    pub dropped_short: u64,
    /// A transaction id no request has used recently.
    pub dropped_unknown: u64,
    /// A transaction id of a finished exchange: a late or duplicated reply.
    pub dropped_late: u64,
    /// From an address other than the tracker's, with strict source checks.
    pub dropped_wrong_source: u64,
}

/// Connection ids by tracker address. An id is only ever sent to the address
/// that issued it.
#[derive(Debug, Default)]
pub struct ConnectionIdCache {
    entries: HashMap<SocketAddr, (ConnectionId, Instant)>,
}

impl ConnectionIdCache {
    /// The id for `tracker` and when it was issued, if still fresh at `now`.
    pub fn get(&self, tracker: SocketAddr, now: Instant) -> Option<(ConnectionId, Instant)> {
        self.entries
            .get(&tracker)
            .copied()
            .filter(|&(_, issued)| is_fresh(issued, now))
    }

    pub fn insert(&mut self, tracker: SocketAddr, id: ConnectionId, issued: Instant) {
        let newer = self
            .entries
            .get(&tracker)
            .is_none_or(|&(_, current)| current <= issued);
        if newer {
            self.entries.insert(tracker, (id, issued));
        }
    }

    /// Forgets `id` for `tracker`, unless a newer id replaced it meanwhile.
    pub fn invalidate(&mut self, tracker: SocketAddr, id: ConnectionId) {
        if self.entries.get(&tracker).is_some_and(|&(c, _)| c == id) {
            self.entries.remove(&tracker);
        }
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn prune(&mut self, now: Instant) {
        self.entries
            .retain(|_, &mut (_, issued)| is_fresh(issued, now));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn is_fresh(issued: Instant, now: Instant) -> bool {
    now.saturating_duration_since(issued) < CONNECTION_ID_TTL
}

/// `timeout · 2^attempt`, capped so no arithmetic overflows.
pub fn retransmit_wait(timeout: Duration, attempt: u32) -> Duration {
    2u32.checked_pow(attempt)
        .and_then(|factor| timeout.checked_mul(factor))
        .map_or(LONGEST_WAIT, |wait| wait.min(LONGEST_WAIT))
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a place in the window; nothing sent yet.
    Queued,
    /// Waiting for the connect exchange `tid` (possibly shared) to answer.
    Connecting { tid: TransactionId },
    /// The announce or scrape is out under `tid`, using `connection_id`.
    Requesting {
        tid: TransactionId,
        connection_id: ConnectionId,
        issued: Instant,
        from_cache: bool,
    },
}

/// What a request asks: encoded once, at its start; each send patches in the
/// connection id and transaction id (BEP 15 puts them at the same offsets in
/// announces and scrapes), so the parameters need not be kept. The one
/// exception is libtorrent's authentication, whose hash covers those ids:
/// such an announce keeps its parameters and is encoded again for each id.
#[derive(Debug)]
struct Body {
    bytes: Vec<u8>,
    /// `Some(n)` for a scrape of n info hashes, `None` for an announce.
    scrape_hashes: Option<usize>,
    signed: Option<Box<AnnounceParams>>,
}

fn announce_request(
    p: &AnnounceParams,
    connection_id: ConnectionId,
    transaction_id: TransactionId,
) -> AnnounceRequest {
    AnnounceRequest {
        connection_id,
        transaction_id,
        info_hash: p.info_hash,
        peer_id: p.peer_id,
        downloaded: p.downloaded,
        left: p.left,
        uploaded: p.uploaded,
        event: p.event,
        ip: p.ip,
        key: p.key,
        num_want: p.num_want,
        port: p.port,
        url_data: p.url_data.clone(),
        extensions: p.extensions.clone(),
    }
}

impl Body {
    fn new(kind: RequestKind) -> Body {
        let mut bytes = Vec::with_capacity(AnnounceRequest::FIXED_LEN);
        let (cid, tid) = (ConnectionId(0), TransactionId(0));
        match kind {
            RequestKind::Announce(p) => {
                announce_request(&p, cid, tid).write(&mut bytes);
                let signed = p.extensions.as_ref().is_some_and(|e| e.auth.is_some());
                Body {
                    bytes,
                    scrape_hashes: None,
                    signed: signed.then(|| Box::new(p)),
                }
            }
            RequestKind::Scrape(info_hashes) => {
                let scrape_hashes = Some(info_hashes.len());
                ScrapeRequest {
                    connection_id: cid,
                    transaction_id: tid,
                    info_hashes,
                }
                .write(&mut bytes);
                Body {
                    bytes,
                    scrape_hashes,
                    signed: None,
                }
            }
        }
    }

    /// Sets the ids for the next send.
    fn set_ids(&mut self, connection_id: ConnectionId, tid: TransactionId) {
        if let Some(p) = &self.signed {
            self.bytes.clear();
            announce_request(p, connection_id, tid).write(&mut self.bytes);
            return;
        }
        if let Some(cid) = self.bytes.get_mut(0..8) {
            cid.copy_from_slice(&connection_id.0.to_be_bytes());
        }
        if let Some(t) = self.bytes.get_mut(12..16) {
            t.copy_from_slice(&tid.0.to_be_bytes());
        }
    }
}

#[derive(Debug)]
struct Request {
    body: Body,
    tracker: SocketAddr,
    options: RequestOptions,
    phase: Phase,
    deadline: Instant,
    connect_attempts: u32,
    request_attempts: u32,
    /// Set once a tracker error on a cached id has made us reconnect.
    retried_with_fresh_id: bool,
    /// The host's address in the other family, tried when `tracker` does not
    /// answer the first connect or cannot be sent to (happy eyeballs for UDP).
    fallback: Option<SocketAddr>,
    /// The address this request left for its fallback.
    switched_from: Option<SocketAddr>,
    /// Whether the request counts against the window.
    holds_slot: bool,
}

#[derive(Debug)]
struct ConnectExchange {
    tracker: SocketAddr,
    strict_source: bool,
    shared: bool,
    last_sent: Instant,
    waiters: Vec<RequestId>,
}

#[derive(Debug, Default)]
struct RetiredTids {
    order: VecDeque<(Instant, TransactionId)>,
    set: HashSet<TransactionId>,
}

impl RetiredTids {
    fn insert(&mut self, tid: TransactionId, now: Instant) {
        // Pruned here too, not only on timeouts: with trackers that always
        // answer at once no retransmit timer ever fires.
        self.prune(now);
        if self.set.insert(tid) {
            self.order.push_back((now, tid));
        }
    }

    fn contains(&self, tid: TransactionId) -> bool {
        self.set.contains(&tid)
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, tid)) = self.order.front() {
            if now.saturating_duration_since(at) < RETIRED_TID_TTL {
                break;
            }
            self.order.pop_front();
            self.set.remove(&tid);
        }
    }
}

pub struct Session {
    requests: HashMap<RequestId, Request>,
    request_tids: HashMap<TransactionId, RequestId>,
    connects: HashMap<TransactionId, ConnectExchange>,
    shared_connects: HashMap<(SocketAddr, bool), TransactionId>,
    retired: RetiredTids,
    cache: ConnectionIdCache,
    timers: BTreeSet<(Instant, RequestId)>,
    transmits: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    rng: StdRng,
    stats: Stats,
    /// Host addresses that did not answer, mapped to the other-family address
    /// of the same host that did, and when it did.
    preferred: HashMap<SocketAddr, (SocketAddr, Instant)>,
    window: usize,
    /// Requests holding a place in the window.
    admitted: usize,
    /// Requests waiting for a place, oldest first (cancelled ones are skipped).
    queue: VecDeque<RequestId>,
    /// How many requests are in `Phase::Queued`.
    waiting: usize,
}

impl Default for Session {
    fn default() -> Self {
        Self::new()
    }
}

impl Session {
    /// A session whose transaction ids come from the operating system's CSPRNG
    /// (through ChaCha), so they cannot be guessed from earlier ones.
    pub fn new() -> Self {
        Self::with_rng(StdRng::from_os_rng())
    }

    pub fn with_rng(rng: StdRng) -> Self {
        Session {
            requests: HashMap::new(),
            request_tids: HashMap::new(),
            connects: HashMap::new(),
            shared_connects: HashMap::new(),
            retired: RetiredTids::default(),
            cache: ConnectionIdCache::default(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
            rng,
            stats: Stats::default(),
            preferred: HashMap::new(),
            window: DEFAULT_WINDOW,
            admitted: 0,
            queue: VecDeque::new(),
            waiting: 0,
        }
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Requests started and not finished, queued ones included.
    pub fn in_flight(&self) -> usize {
        self.requests.len()
    }

    /// Requests waiting for a place in the window.
    pub fn queued(&self) -> usize {
        self.waiting
    }

    /// Sets the window (at least 1); see [`DEFAULT_WINDOW`].
    pub fn set_window(&mut self, window: usize, now: Instant) {
        self.window = window.max(1);
        self.admit_queued(now);
    }

    pub fn connection_ids(&self) -> &ConnectionIdCache {
        &self.cache
    }

    /// Forgets every cached connection id: the next request to each tracker connects.
    pub fn forget_connection_ids(&mut self) {
        self.cache.clear();
    }

    /// Starts a request; its first datagram is ready from `poll_transmit` at once.
    /// Starting an id that is in flight replaces that request.
    pub fn start(
        &mut self,
        now: Instant,
        id: RequestId,
        tracker: SocketAddr,
        kind: RequestKind,
        options: RequestOptions,
    ) {
        self.start_with_fallback(now, id, tracker, None, kind, options);
    }

    /// Like `start`, for a host name with an address in each family: `tracker`
    /// is tried first and `fallback` when the first connect gets no answer or
    /// cannot be sent. A host that answered on its fallback is tried there
    /// first for the next `FAMILY_PREFERENCE_TTL`.
    pub fn start_with_fallback(
        &mut self,
        now: Instant,
        id: RequestId,
        mut tracker: SocketAddr,
        mut fallback: Option<SocketAddr>,
        kind: RequestKind,
        mut options: RequestOptions,
    ) {
        self.cancel(id, now);
        options.max_attempts = options.max_attempts.clamp(1, MAX_ATTEMPTS);
        if let (Some(other), Some(&(preferred, since))) = (fallback, self.preferred.get(&tracker)) {
            if preferred == other && now.saturating_duration_since(since) < FAMILY_PREFERENCE_TTL {
                fallback = Some(tracker);
                tracker = other;
            }
        }
        let request = Request {
            body: Body::new(kind),
            tracker,
            options,
            phase: Phase::Queued,
            deadline: now,
            connect_attempts: 0,
            request_attempts: 0,
            retried_with_fresh_id: false,
            fallback,
            switched_from: None,
            holds_slot: false,
        };
        self.requests.insert(id, request);
        if self.admitted < self.window {
            self.admit(now, id);
        } else {
            self.waiting += 1;
            self.queue.push_back(id);
        }
    }

    fn admit(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.holds_slot = true;
        self.admitted += 1;
        self.obtain_connection_id(now, id);
    }

    /// Gives back `id`'s place in the window, if it holds one.
    fn release_slot(&mut self, id: RequestId) -> bool {
        match self.requests.get_mut(&id) {
            Some(request) if request.holds_slot => {
                request.holds_slot = false;
                self.admitted -= 1;
                true
            }
            _ => false,
        }
    }

    fn admit_queued(&mut self, now: Instant) {
        while self.admitted < self.window {
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            let waiting = self
                .requests
                .get(&id)
                .is_some_and(|r| matches!(r.phase, Phase::Queued));
            if waiting {
                self.waiting -= 1;
                self.admit(now, id);
            }
        }
    }

    /// Stops a request without a completion; late replies to it are dropped.
    pub fn cancel(&mut self, id: RequestId, now: Instant) {
        let released = self.release_slot(id);
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        self.timers.remove(&(request.deadline, id));
        if matches!(request.phase, Phase::Queued) {
            self.waiting -= 1;
        }
        self.leave_phase(now, id, request.phase);
        if released {
            self.admit_queued(now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Whether `poll_transmit` has something.
    pub fn has_transmits(&self) -> bool {
        !self.transmits.is_empty()
    }

    pub fn poll_completion(&mut self) -> Option<Completion> {
        self.completions.pop_front()
    }

    /// When `handle_timeout` next has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            self.on_retransmit_timer(now, id);
        }
        self.retired.prune(now);
        self.cache.prune(now);
        self.preferred.retain(|_, &mut (_, since)| {
            now.saturating_duration_since(since) < FAMILY_PREFERENCE_TTL
        });
    }

    /// A datagram the socket to `from`'s family received.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.handle_datagram_over(now, from, from.is_ipv6(), bytes);
    }

    /// Where the exchange with transaction id `tid` (connect or request) was
    /// sent, while it is in flight.
    pub fn destination_of(&self, tid: TransactionId) -> Option<SocketAddr> {
        if let Some(exchange) = self.connects.get(&tid) {
            return Some(exchange.tracker);
        }
        let id = self.request_tids.get(&tid)?;
        self.requests.get(id).map(|r| r.tracker)
    }

    /// A datagram from `from`, which reached us over IPv6 when `v6` (so its
    /// peers are 18-byte entries). The two differ only for a SOCKS5 relay
    /// (`crate::proxy`), which reports the tracker's address in its header.
    pub fn handle_datagram_over(&mut self, now: Instant, from: SocketAddr, v6: bool, bytes: &[u8]) {
        self.stats.received += 1;
        let Some(tid) = peek_transaction_id(bytes) else {
            self.stats.dropped_short += 1;
            return;
        };
        if let Some(exchange) = self.connects.get(&tid) {
            if exchange.strict_source && exchange.tracker != from {
                self.stats.dropped_wrong_source += 1;
                return;
            }
            let response = Response::parse(bytes, v6);
            self.on_connect_reply(now, tid, from, response);
        } else if let Some(&id) = self.request_tids.get(&tid) {
            let Some(request) = self.requests.get(&id) else {
                return;
            };
            if request.options.strict_source && request.tracker != from {
                self.stats.dropped_wrong_source += 1;
                return;
            }
            let response = Response::parse(bytes, v6);
            self.on_request_reply(now, id, response);
        } else if self.retired.contains(tid) {
            self.stats.dropped_late += 1;
        } else {
            self.stats.dropped_unknown += 1;
        }
    }

    /// A datagram in `transmit` could not be sent: its requests fail.
    pub fn handle_send_error(&mut self, now: Instant, owner: Owner, message: &str) {
        let ids = match owner {
            Owner::Request(id) => vec![id],
            Owner::Connect(tid) => self
                .connects
                .get(&tid)
                .map(|e| e.waiters.clone())
                .unwrap_or_default(),
        };
        for id in ids {
            // A queued request has sent nothing: the error is about a request
            // this id named before (the Rust API lets a caller reuse ids).
            let queued = self
                .requests
                .get(&id)
                .is_none_or(|r| matches!(r.phase, Phase::Queued));
            if queued {
                continue;
            }
            if !self.switch_to_fallback(now, id) {
                self.fail(now, id, RequestError::Send(message.to_owned()));
            }
        }
    }

    /// Moves request `id` to its fallback address, if it has one left.
    fn switch_to_fallback(&mut self, now: Instant, id: RequestId) -> bool {
        let Some(request) = self.requests.get_mut(&id) else {
            return false;
        };
        let Some(fallback) = request.fallback.take() else {
            return false;
        };
        request.switched_from = Some(request.tracker);
        request.tracker = fallback;
        request.connect_attempts = 0;
        request.request_attempts = 0;
        let (deadline, phase) = (request.deadline, request.phase);
        self.leave_phase(now, id, phase);
        self.timers.remove(&(deadline, id));
        self.obtain_connection_id(now, id);
        true
    }

    /// Gives up what request `id`'s `phase` holds: its place on a connect
    /// exchange, or its transaction id (retired, so late replies are known).
    fn leave_phase(&mut self, now: Instant, id: RequestId, phase: Phase) {
        match phase {
            Phase::Queued => {}
            Phase::Connecting { tid } => self.leave_connect(tid, id, now),
            Phase::Requesting { tid, .. } => {
                self.request_tids.remove(&tid);
                self.retired.insert(tid, now);
            }
        }
    }

    /// The tracker may have restarted and forgotten the cached id request
    /// `id` used: forget it too and get another (a newer one another request
    /// cached meanwhile, or a connect). Once per request.
    fn renew_connection_id(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let phase = request.phase;
        let Phase::Requesting { connection_id, .. } = phase else {
            return;
        };
        request.retried_with_fresh_id = true;
        let (tracker, deadline) = (request.tracker, request.deadline);
        self.cache.invalidate(tracker, connection_id);
        self.leave_phase(now, id, phase);
        self.timers.remove(&(deadline, id));
        self.obtain_connection_id(now, id);
    }

    fn obtain_connection_id(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        if request.options.reuse_connection_id {
            if let Some((connection_id, issued)) = self.cache.get(request.tracker, now) {
                self.send_request(now, id, connection_id, issued, true);
                return;
            }
        }
        self.join_connect(now, id);
    }

    fn join_connect(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        let tracker = request.tracker;
        let strict_source = request.options.strict_source;
        let shared = request.options.reuse_connection_id;
        let dedupe = request.options.timeout.min(Duration::from_secs(1));
        let existing = shared
            .then(|| self.shared_connects.get(&(tracker, strict_source)).copied())
            .flatten();
        let tid = match existing {
            Some(tid) => {
                if let Some(exchange) = self.connects.get_mut(&tid) {
                    exchange.waiters.push(id);
                    if now.saturating_duration_since(exchange.last_sent) >= dedupe {
                        self.send_connect(now, tid);
                    }
                }
                tid
            }
            None => {
                let tid = self.new_transaction_id();
                self.connects.insert(
                    tid,
                    ConnectExchange {
                        tracker,
                        strict_source,
                        shared,
                        last_sent: now,
                        waiters: vec![id],
                    },
                );
                if shared {
                    self.shared_connects.insert((tracker, strict_source), tid);
                }
                self.send_connect(now, tid);
                tid
            }
        };
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.phase = Phase::Connecting { tid };
        request.connect_attempts = 1;
        let wait = retransmit_wait(request.options.timeout, 1);
        self.schedule(id, now + wait);
    }

    fn send_connect(&mut self, now: Instant, tid: TransactionId) {
        let Some(exchange) = self.connects.get_mut(&tid) else {
            return;
        };
        exchange.last_sent = now;
        let mut payload = Vec::with_capacity(ConnectRequest::LEN);
        ConnectRequest {
            transaction_id: tid,
        }
        .write(&mut payload);
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            destination: exchange.tracker,
            payload,
            owner: Owner::Connect(tid),
        });
    }

    /// Request `id` leaves connect exchange `tid`; the last one out ends it.
    fn leave_connect(&mut self, tid: TransactionId, id: RequestId, now: Instant) {
        let Some(exchange) = self.connects.get_mut(&tid) else {
            return;
        };
        exchange.waiters.retain(|&w| w != id);
        if exchange.waiters.is_empty() {
            self.end_connect(tid, now);
        }
    }

    fn end_connect(&mut self, tid: TransactionId, now: Instant) -> Option<ConnectExchange> {
        let exchange = self.connects.remove(&tid)?;
        let key = (exchange.tracker, exchange.strict_source);
        if exchange.shared && self.shared_connects.get(&key) == Some(&tid) {
            self.shared_connects.remove(&key);
        }
        self.retired.insert(tid, now);
        Some(exchange)
    }

    fn send_request(
        &mut self,
        now: Instant,
        id: RequestId,
        connection_id: ConnectionId,
        issued: Instant,
        from_cache: bool,
    ) {
        let tid = self.new_transaction_id();
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.body.set_ids(connection_id, tid);
        request.request_attempts += 1;
        let wait = retransmit_wait(request.options.timeout, request.request_attempts);
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            destination: request.tracker,
            payload: request.body.bytes.clone(),
            owner: Owner::Request(id),
        });
        request.phase = Phase::Requesting {
            tid,
            connection_id,
            issued,
            from_cache,
        };
        self.request_tids.insert(tid, id);
        self.schedule(id, now + wait);
    }

    fn on_retransmit_timer(&mut self, now: Instant, id: RequestId) {
        // The first wait is over: whatever happens next, this request no
        // longer counts as a burst in flight.
        if self.release_slot(id) {
            self.admit_queued(now);
        }
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let timeout = request.options.timeout;
        let max_attempts = request.options.max_attempts;
        match &request.phase {
            // Queued requests have no timer.
            Phase::Queued => {}
            Phase::Connecting { tid } => {
                let tid = *tid;
                if request.fallback.is_some() {
                    // No answer to the first connect: try the other family.
                    self.switch_to_fallback(now, id);
                    return;
                }
                if request.connect_attempts >= max_attempts {
                    let waited = retransmit_wait(timeout, request.connect_attempts);
                    self.fail(now, id, timeout_error(waited));
                    return;
                }
                request.connect_attempts += 1;
                let wait = retransmit_wait(timeout, request.connect_attempts);
                let dedupe = timeout.min(Duration::from_secs(1));
                let due = self
                    .connects
                    .get(&tid)
                    .is_some_and(|e| now.saturating_duration_since(e.last_sent) >= dedupe);
                if due {
                    self.send_connect(now, tid);
                }
                self.schedule(id, now + wait);
            }
            &phase @ Phase::Requesting {
                issued, from_cache, ..
            } => {
                if request.request_attempts >= max_attempts {
                    let waited = retransmit_wait(timeout, request.request_attempts);
                    self.fail(now, id, timeout_error(waited));
                    return;
                }
                if from_cache && !request.retried_with_fresh_id {
                    // Silence to a request made with a cached id: some trackers
                    // (aquatic) drop unknown ids after a restart without an
                    // error reply. Renew the id once before retransmitting.
                    self.renew_connection_id(now, id);
                    return;
                }
                if !is_fresh(issued, now) {
                    // BEP 15: an expired id is renewed before the next send.
                    self.leave_phase(now, id, phase);
                    self.obtain_connection_id(now, id);
                    return;
                }
                request.request_attempts += 1;
                let wait = retransmit_wait(timeout, request.request_attempts);
                self.stats.sent += 1;
                self.transmits.push_back(Transmit {
                    destination: request.tracker,
                    payload: request.body.bytes.clone(),
                    owner: Owner::Request(id),
                });
                self.schedule(id, now + wait);
            }
        }
    }

    fn on_connect_reply(
        &mut self,
        now: Instant,
        tid: TransactionId,
        from: SocketAddr,
        response: Result<Response, ParseError>,
    ) {
        let Some(exchange) = self.end_connect(tid, now) else {
            return;
        };
        let connection_id = match response {
            Ok(Response::Connect(reply)) => reply.connection_id,
            Ok(Response::Error(reply)) => {
                for id in exchange.waiters {
                    self.fail(now, id, RequestError::Tracker(reply.message.clone()));
                }
                return;
            }
            Ok(other) => {
                let error = unexpected_action(&other);
                for id in exchange.waiters {
                    self.fail(now, id, error.clone());
                }
                return;
            }
            Err(e) => {
                for id in exchange.waiters {
                    self.fail(now, id, RequestError::BadResponse(e.clone()));
                }
                return;
            }
        };
        let issued = exchange.last_sent;
        // Only an id that came from the tracker's own address is shared: one
        // a non-strict request took from elsewhere serves that exchange only.
        if from == exchange.tracker {
            self.cache.insert(exchange.tracker, connection_id, issued);
        }
        for id in exchange.waiters {
            self.send_request(now, id, connection_id, issued, false);
        }
    }

    fn on_request_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        response: Result<Response, ParseError>,
    ) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let Phase::Requesting { from_cache, .. } = request.phase else {
            return;
        };
        let outcome = match (request.body.scrape_hashes, response) {
            (None, Ok(Response::Announce(reply))) => Outcome::Announced(reply),
            (Some(hashes), Ok(Response::Scrape(reply))) => {
                if reply.stats.len() == hashes {
                    Outcome::Scraped(reply)
                } else {
                    Outcome::Failed(RequestError::BadResponse(ParseError::ScrapeLength))
                }
            }
            (_, Ok(Response::Error(reply))) => {
                if from_cache && !request.retried_with_fresh_id {
                    // An error on a cached id: the retry gets a fresh schedule.
                    request.request_attempts = 0;
                    self.renew_connection_id(now, id);
                    return;
                }
                Outcome::Failed(RequestError::Tracker(reply.message))
            }
            (_, Ok(other)) => Outcome::Failed(unexpected_action(&other)),
            (_, Err(e)) => Outcome::Failed(RequestError::BadResponse(e)),
        };
        self.finish(now, id, outcome);
    }

    fn fail(&mut self, now: Instant, id: RequestId, error: RequestError) {
        self.finish(now, id, Outcome::Failed(error));
    }

    fn finish(&mut self, now: Instant, id: RequestId, outcome: Outcome) {
        if let Some(request) = self.requests.get(&id) {
            if let (Some(primary), false) =
                (request.switched_from, matches!(outcome, Outcome::Failed(_)))
            {
                self.preferred.insert(primary, (request.tracker, now));
                // It answered here: no longer an address to try second.
                self.preferred.remove(&request.tracker);
            }
            self.cancel(id, now);
            self.completions.push_back(Completion { id, outcome });
        }
    }

    fn schedule(&mut self, id: RequestId, at: Instant) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        self.timers.remove(&(request.deadline, id));
        request.deadline = at;
        self.timers.insert((at, id));
    }

    /// A random id not in use by any exchange in flight nor recently retired.
    fn new_transaction_id(&mut self) -> TransactionId {
        loop {
            let tid = TransactionId(self.rng.random());
            if !self.request_tids.contains_key(&tid)
                && !self.connects.contains_key(&tid)
                && !self.retired.contains(tid)
            {
                return tid;
            }
        }
    }
}

fn timeout_error(waited: Duration) -> RequestError {
    RequestError::Timeout {
        waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
    }
}

/// A well-formed reply of the wrong kind for the request it matched.
fn unexpected_action(response: &Response) -> RequestError {
    RequestError::BadResponse(ParseError::UnknownAction(response.action().to_u32()))
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fallback_tests;

#[cfg(test)]
mod window_tests;
