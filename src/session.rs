//! The request state machine, with no I/O and no clock of its own.
//!
//! BEP 15's flow, for every request: connect → (connection id) → announce or
//! scrape → reply, each phase retransmitted `timeout · 2^k` after its k-th
//! send. The caller feeds in datagrams and the current time and polls for what
//! to send, what finished, and when to wake up next, in the style of
//! quinn-proto; so every rule here is tested with a fake clock.
//!
//! Shared between requests:
//! - the connection ids of each tracker address ([`ConnectionIdCache`]),
//!   reused for less than a minute (BEP 15: "a connection ID can be used for
//!   multiple requests ... for one minute") by requests of the same scope;
//! - a connect exchange in progress: requests to one tracker that need an id at
//!   the same time wait on one connect instead of sending one each;
//! - what is known of each tracker address ([`TrackerState`]): its round-trip
//!   time (RFC 6298), which connection ids it answered lately, and how many
//!   info hashes it answers per scrape.

mod fast_hash;
mod line;
mod spare;
mod tracker;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use crate::proto::AnnounceParams;
use crate::proto::{
    peek_transaction_id, Action, AnnounceResponse, ConnectRequest, ConnectionId, InfoHash,
    ParseError, Response, ScrapeRequest, ScrapeResponse, ScrapeStats, TransactionId,
    MAX_SCRAPE_HASHES_V4, MAX_SCRAPE_HASHES_V6,
};
use fast_hash::{FastMap, FastSet};
use line::{Line, Seq};
pub use tracker::{ConnectionIdCache, RttEstimate, TrackerState, INITIAL_CWND, MIN_CWND};

/// A request's handle, chosen by the caller.
pub type RequestId = u32;

/// Which requests may reuse each other's cached connection ids: the 1.2.0
/// class gives each instance its own scope, the promise API shares scope 0.
pub type Scope = u32;

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
/// The shortest wait before silence to a request sent with a cached
/// connection id counts as the tracker having forgotten the id.
pub const PROBE_FLOOR: Duration = Duration::from_millis(250);
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
    /// Whose cached connection ids this request may reuse (see
    /// [`ConnectionIdCache`]); 0 is the scope shared by the promise API.
    pub scope: Scope,
}

impl Default for RequestOptions {
    fn default() -> Self {
        RequestOptions {
            timeout: Duration::from_secs(15),
            max_attempts: MAX_ATTEMPTS,
            strict_source: true,
            reuse_connection_id: true,
            scope: 0,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestKind {
    Announce(AnnounceParams),
    /// Any number of info hashes: sent in batches of at most 74 (60 to an
    /// IPv6 address), or fewer once the tracker has shown it answers fewer.
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
    /// One entry per info hash asked, in the order asked.
    Scraped(ScrapeResponse),
    Failed(RequestError),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completion {
    pub id: RequestId,
    pub outcome: Outcome,
}

/// Who a datagram was sent for, so a send error reaches the right requests
/// (and only while they still wait on that datagram's transaction id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Request { id: RequestId, tid: TransactionId },
    Connect(TransactionId),
}

impl Owner {
    /// The request an announce or scrape datagram was sent for.
    pub fn request_id(self) -> Option<RequestId> {
        match self {
            Owner::Request { id, .. } => Some(id),
            Owner::Connect(_) => None,
        }
    }
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
    /// Connection ids forgotten because a request sent with one went
    /// unanswered or got an error (the tracker may have restarted).
    pub renewed_connection_ids: u64,
    /// Datagrams sent again: after a wait, or at once when a loss was
    /// detected (later datagrams to the same tracker were answered).
    pub retransmits: u64,
    /// Losses detected that way (each cuts the tracker's window, at most
    /// once per congestion event).
    pub losses: u64,
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

/// An instant as nanoseconds since the session's [`Epoch`]: half the size of
/// an `Instant`, for the instants every request keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp(u64);

/// What a session's [`Stamp`]s count from: a year before the session was
/// made where the platform's clock allows it, so that any instant a caller
/// passes in comes after it and converts both ways exactly (u64
/// nanoseconds last 584 years).
#[derive(Clone, Copy, Debug)]
struct Epoch(Instant);

impl Epoch {
    fn new() -> Epoch {
        let now = Instant::now();
        let back = [365 * 24 * 3600, 24 * 3600, 3600].map(Duration::from_secs);
        Epoch(back.iter().find_map(|&d| now.checked_sub(d)).unwrap_or(now))
    }

    fn stamp(self, at: Instant) -> Stamp {
        let nanos = at.saturating_duration_since(self.0).as_nanos();
        Stamp(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    fn instant(self, stamp: Stamp) -> Instant {
        self.0 + Duration::from_nanos(stamp.0)
    }
}

#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a place in the window (`seq` is its place in the queue);
    /// nothing sent yet.
    Queued { seq: Seq },
    /// Waiting for the connect exchange `tid` (possibly shared) to answer,
    /// since `since` (its join or its last attempt); `checked` as in [`Sent`].
    Connecting {
        tid: TransactionId,
        since: Stamp,
        checked: bool,
    },
    /// Has a connection id, waits for room in the tracker's congestion
    /// window (`seq` is its place in that tracker's line).
    Waiting {
        seq: Seq,
        connection_id: ConnectionId,
        issued: Stamp,
        from_cache: bool,
    },
    /// The announce or scrape is out.
    Requesting(Sent),
}

/// An announce or scrape datagram out under `tid`.
#[derive(Clone, Copy, Debug)]
struct Sent {
    tid: TransactionId,
    connection_id: ConnectionId,
    /// When the connect that obtained `connection_id` was last sent.
    issued: Stamp,
    /// The id came from the cache rather than a connect made for this request.
    from_cache: bool,
    /// The last send of this phase.
    sent_at: Stamp,
    /// Whether the early check of this send is done (or not needed): a few
    /// round trips after it, silence says more than after 2·timeout (see
    /// `on_check_timeout`).
    checked: bool,
}

/// What a request asks: encoded once, at its start (a scrape: once per
/// batch); each send patches in the connection id and transaction id (BEP 15
/// puts them at the same offsets in announces and scrapes). The one
/// exception is libtorrent's authentication, whose hash covers those ids: such
/// an announce keeps its parameters and is encoded again for each id.
#[derive(Debug)]
enum Body {
    /// An announce with no options (no BEP 41 URL data, no extensions), the
    /// usual kind: its datagram after the 16 bytes of ids and action, kept
    /// in the request itself rather than in an allocation of its own.
    Plain([u8; PLAIN_ANNOUNCE_TAIL]),
    /// An announce with options: its whole datagram.
    Encoded(Box<[u8]>),
    /// An announce signed with libtorrent's authentication.
    Signed(Box<AnnounceParams>),
    /// Boxed: most requests are announces, and every request is as large as
    /// the largest body.
    Scrape(Box<ScrapeBody>),
}

/// The connection id, action and transaction id that start a request.
const REQUEST_HEADER: usize = 16;
/// BEP 15's announce is 98 bytes.
const PLAIN_ANNOUNCE_TAIL: usize = 98 - REQUEST_HEADER;

#[derive(Debug)]
struct ScrapeBody {
    hashes: Vec<InfoHash>,
    /// The counts answered so far, for `hashes[..stats.len()]`.
    stats: Vec<ScrapeStats>,
    /// How many hashes the batch in flight asks for.
    batch: usize,
    bytes: Vec<u8>,
}

impl Body {
    /// `scratch` is a buffer to encode into, kept by the caller.
    fn new(kind: RequestKind, scratch: &mut Vec<u8>) -> Body {
        match kind {
            RequestKind::Announce(params) => {
                if params.extensions.as_ref().is_some_and(|e| e.auth.is_some()) {
                    return Body::Signed(Box::new(params));
                }
                scratch.clear();
                params.write(ConnectionId(0), TransactionId(0), scratch);
                match scratch
                    .get(REQUEST_HEADER..)
                    .map(<[u8; PLAIN_ANNOUNCE_TAIL]>::try_from)
                {
                    Some(Ok(tail)) => Body::Plain(tail),
                    _ => Body::Encoded(scratch.as_slice().into()),
                }
            }
            RequestKind::Scrape(hashes) => Body::Scrape(Box::new(ScrapeBody {
                hashes,
                stats: Vec::new(),
                batch: 0,
                bytes: Vec::new(),
            })),
        }
    }

    /// A scrape's next batch: at most `limit` of the hashes not answered yet.
    fn next_batch(&mut self, limit: usize) {
        if let Body::Scrape(scrape) = self {
            let ScrapeBody {
                hashes,
                stats,
                batch,
                bytes,
            } = &mut **scrape;
            let rest = hashes.get(stats.len()..).unwrap_or(&[]);
            *batch = rest.len().min(limit.max(1));
            bytes.clear();
            ScrapeRequest {
                connection_id: ConnectionId(0),
                transaction_id: TransactionId(0),
                info_hashes: rest.get(..*batch).unwrap_or(&[]).to_vec(),
            }
            .write(bytes);
        }
    }

    /// The datagram to send with these ids.
    fn datagram(&self, connection_id: ConnectionId, tid: TransactionId) -> Vec<u8> {
        let mut out;
        match self {
            Body::Plain(tail) => {
                out = Vec::with_capacity(REQUEST_HEADER + tail.len());
                out.extend_from_slice(&[0; 8]);
                out.extend_from_slice(&Action::Announce.to_u32().to_be_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(tail);
            }
            Body::Encoded(bytes) => out = bytes.to_vec(),
            Body::Signed(params) => {
                out = Vec::new();
                params.write(connection_id, tid, &mut out);
                return out;
            }
            Body::Scrape(scrape) => out = scrape.bytes.clone(),
        }
        if let Some(cid) = out.get_mut(0..8) {
            cid.copy_from_slice(&connection_id.0.to_be_bytes());
        }
        if let Some(t) = out.get_mut(12..16) {
            t.copy_from_slice(&tid.0.to_be_bytes());
        }
        out
    }
}

/// A request in flight. Kept small (see `a_request_stays_small` in the tests):
/// a burst of N instances' announces holds N of these at once.
#[derive(Debug)]
struct Request {
    body: Body,
    tracker: SocketAddr,
    phase: Phase,
    /// When it started (or the tick it started in began): see
    /// `ConnectionIdCache::get`.
    started: Stamp,
    /// The request's options follow, field by field (so that they pack
    /// with the small fields below). The base retransmission timeout in
    /// nanoseconds, at most `LONGEST_WAIT` (no wait is longer, so none
    /// changes).
    timeout_ns: u64,
    scope: Scope,
    /// 1..=`MAX_ATTEMPTS`.
    max_attempts: u8,
    strict_source: bool,
    reuse_connection_id: bool,
    /// The host's address in the other family, boxed: few hosts have one.
    other_family: Option<Box<OtherFamily>>,
    /// Which entry of `Session::timers` is this request's timer (0: none).
    timer: u32,
    /// Sends of the current phase, at most `MAX_ATTEMPTS`.
    connect_attempts: u8,
    request_attempts: u8,
    /// Set once silence or an error on a cached id has made us renew it.
    retried_with_fresh_id: bool,
}

/// A request's address of the host in the other address family.
#[derive(Clone, Copy, Debug)]
enum OtherFamily {
    /// Tried when `tracker` does not answer the first connect or cannot be
    /// sent to (happy eyeballs for UDP).
    Fallback(SocketAddr),
    /// The address this request left for its fallback.
    SwitchedFrom(SocketAddr),
}

impl Request {
    /// The wait after the `attempt`-th send of a phase.
    fn wait(&self, attempt: u8) -> Duration {
        retransmit_wait(self.timeout(), attempt.into())
    }

    fn timeout(&self) -> Duration {
        Duration::from_nanos(self.timeout_ns)
    }

    fn fallback(&self) -> Option<SocketAddr> {
        match self.other_family.as_deref() {
            Some(&OtherFamily::Fallback(address)) => Some(address),
            _ => None,
        }
    }

    fn switched_from(&self) -> Option<SocketAddr> {
        match self.other_family.as_deref() {
            Some(&OtherFamily::SwitchedFrom(address)) => Some(address),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct ConnectExchange {
    tracker: SocketAddr,
    strict_source: bool,
    shared: bool,
    last_sent: Instant,
    /// How often the connect was sent: only a reply to a single send is a
    /// round-trip sample (Karn's rule).
    sends: u32,
    waiters: Vec<RequestId>,
}

/// The transaction ids of finished exchanges, each for `RETIRED_TID_TTL`.
/// A burst retires thousands at the same instant (one turn of the driver):
/// that instant is kept once per run of them, so an id costs its 4 bytes
/// in line and its place in the set.
#[derive(Debug, Default)]
struct RetiredTids {
    /// Oldest first.
    order: VecDeque<TransactionId>,
    /// When the ids of `order` were retired, as runs of ids retired at the
    /// same instant, oldest first: the instant and how many.
    runs: VecDeque<(Instant, usize)>,
    set: FastSet<TransactionId>,
}

impl RetiredTids {
    fn insert(&mut self, tid: TransactionId, now: Instant) {
        // Pruned here too, not only on timeouts: with trackers that always
        // answer at once no retransmit timer ever fires.
        self.prune(now);
        if self.set.insert(tid) {
            self.order.push_back(tid);
            match self.runs.back_mut() {
                Some((at, count)) if *at == now => *count += 1,
                _ => self.runs.push_back((now, 1)),
            }
        }
    }

    fn contains(&self, tid: TransactionId) -> bool {
        self.set.contains(&tid)
    }

    fn prune(&mut self, now: Instant) {
        while let Some(&(at, count)) = self.runs.front() {
            if now.saturating_duration_since(at) < RETIRED_TID_TTL {
                break;
            }
            self.runs.pop_front();
            for tid in self.order.drain(..count.min(self.order.len())) {
                self.set.remove(&tid);
            }
        }
        spare::give_back!(self.order);
        spare::give_back!(self.runs);
        spare::give_back!(self.set);
    }
}

pub struct Session {
    /// Boxed, so that the map's spare capacity costs a pointer per slot
    /// rather than a whole request.
    requests: FastMap<RequestId, Box<Request>>,
    request_tids: FastMap<TransactionId, RequestId>,
    connects: FastMap<TransactionId, ConnectExchange>,
    shared_connects: FastMap<(SocketAddr, bool), TransactionId>,
    retired: RetiredTids,
    cache: ConnectionIdCache,
    trackers: FastMap<SocketAddr, TrackerState>,
    /// Request timers, earliest first (ties by id), each numbered. An entry
    /// is live while its request's `timer` is still that number: a request
    /// rescheduled or gone leaves its old entry behind, skipped when it comes
    /// up, which costs less than taking it out of the middle (see `schedule`).
    timers: BinaryHeap<Reverse<(Instant, RequestId, u32)>>,
    /// The number of the last timer set (0 is none).
    timer_seq: u32,
    transmits: VecDeque<Transmit>,
    completions: VecDeque<Completion>,
    rng: StdRng,
    stats: Stats,
    /// Host addresses that did not answer, mapped to the other-family address
    /// of the same host that did, and when it did.
    preferred: FastMap<SocketAddr, (SocketAddr, Instant)>,
    window: usize,
    /// Requests holding a place in the window.
    in_window: FastSet<RequestId>,
    /// Requests waiting for a place, oldest first, by their `Phase::Queued` seq.
    queue: Line,
    next_seq: Seq,
    /// Where requests are encoded when they start (kept for its allocation).
    scratch: Vec<u8>,
    /// What the requests' instants count from.
    epoch: Epoch,
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
            requests: FastMap::default(),
            request_tids: FastMap::default(),
            connects: FastMap::default(),
            shared_connects: FastMap::default(),
            retired: RetiredTids::default(),
            cache: ConnectionIdCache::default(),
            trackers: FastMap::default(),
            timers: BinaryHeap::new(),
            timer_seq: 0,
            transmits: VecDeque::new(),
            completions: VecDeque::new(),
            rng,
            stats: Stats::default(),
            preferred: FastMap::default(),
            window: DEFAULT_WINDOW,
            in_window: FastSet::default(),
            queue: Line::default(),
            next_seq: 0,
            scratch: Vec::new(),
            epoch: Epoch::new(),
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
        self.queue.len()
    }

    /// Sets the window (at least 1); see [`DEFAULT_WINDOW`].
    pub fn set_window(&mut self, window: usize, now: Instant) {
        self.window = window.max(1);
        self.admit_queued(now);
    }

    pub fn connection_ids(&self) -> &ConnectionIdCache {
        &self.cache
    }

    /// What is known of the tracker at `address`, if it was used lately.
    pub fn tracker(&self, address: SocketAddr) -> Option<&TrackerState> {
        self.trackers.get(&address)
    }

    /// Every tracker address used lately, with what is known of it.
    pub fn trackers(&self) -> impl Iterator<Item = (SocketAddr, &TrackerState)> {
        self.trackers
            .iter()
            .map(|(&address, state)| (address, state))
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
        tracker: SocketAddr,
        fallback: Option<SocketAddr>,
        kind: RequestKind,
        options: RequestOptions,
    ) {
        self.start_together(now, now, id, tracker, fallback, kind, options);
    }

    /// Like `start_with_fallback`, for a request started together with the
    /// requests started since `since` (one JS tick, handed over in parts):
    /// it may use a connection id that their connect obtained.
    #[allow(clippy::too_many_arguments)]
    pub fn start_together(
        &mut self,
        now: Instant,
        since: Instant,
        id: RequestId,
        mut tracker: SocketAddr,
        mut fallback: Option<SocketAddr>,
        kind: RequestKind,
        options: RequestOptions,
    ) {
        self.cancel(id, now);
        let max_attempts = options.max_attempts.clamp(1, MAX_ATTEMPTS);
        if let (Some(other), Some(&(preferred, since))) = (fallback, self.preferred.get(&tracker)) {
            if preferred == other && now.saturating_duration_since(since) < FAMILY_PREFERENCE_TTL {
                fallback = Some(tracker);
                tracker = other;
            }
        }
        let mut request = Box::new(Request {
            body: Body::new(kind, &mut self.scratch),
            tracker,
            phase: Phase::Queued { seq: 0 },
            timeout_ns: u64::try_from(options.timeout.min(LONGEST_WAIT).as_nanos())
                .unwrap_or(u64::MAX),
            scope: options.scope,
            max_attempts: u8::try_from(max_attempts).unwrap_or(u8::MAX),
            strict_source: options.strict_source,
            reuse_connection_id: options.reuse_connection_id,
            started: self.epoch.stamp(since.min(now)),
            other_family: fallback.map(|address| Box::new(OtherFamily::Fallback(address))),
            timer: 0,
            connect_attempts: 0,
            request_attempts: 0,
            retried_with_fresh_id: false,
        });
        if self.in_window.len() < self.window {
            self.requests.insert(id, request);
            self.admit(now, id);
        } else {
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            request.phase = Phase::Queued { seq };
            self.requests.insert(id, request);
            let requests = &self.requests;
            self.queue
                .push(seq, id, |seq, id| queued(requests, seq, id));
        }
    }

    fn admit(&mut self, now: Instant, id: RequestId) {
        self.in_window.insert(id);
        self.obtain_connection_id(now, id);
    }

    /// Request `id` gives back its place in the window, if it holds one, and
    /// the oldest queued request takes it.
    fn leave_window(&mut self, now: Instant, id: RequestId) {
        if self.in_window.remove(&id) {
            self.admit_queued(now);
        }
    }

    fn admit_queued(&mut self, now: Instant) {
        while self.in_window.len() < self.window {
            let requests = &self.requests;
            let Some(id) = self.queue.pop(|seq, id| queued(requests, seq, id)) else {
                break;
            };
            self.admit(now, id);
        }
    }

    /// Stops a request without a completion; late replies to it are dropped.
    pub fn cancel(&mut self, id: RequestId, now: Instant) {
        let Some(request) = self.requests.remove(&id) else {
            return;
        };
        self.leave_phase(now, id, request.tracker, request.phase);
        self.leave_window(now, id);
        spare::give_back!(self.requests);
        spare::give_back!(self.request_tids);
        spare::give_back!(self.in_window);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front();
        if self.transmits.is_empty() {
            spare::give_back!(self.transmits);
        }
        transmit
    }

    /// Whether `poll_transmit` has something.
    pub fn has_transmits(&self) -> bool {
        !self.transmits.is_empty()
    }

    pub fn poll_completion(&mut self) -> Option<Completion> {
        let completion = self.completions.pop_front();
        if self.completions.is_empty() {
            spare::give_back!(self.completions);
        }
        completion
    }

    /// When `handle_timeout` next has work to do.
    pub fn poll_timeout(&mut self) -> Option<Instant> {
        let mut next = None;
        while let Some(&Reverse((at, id, timer))) = self.timers.peek() {
            if self.timer_is_live(id, timer) {
                next = Some(at);
                break;
            }
            self.timers.pop();
        }
        spare::give_back!(self.timers);
        next
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&Reverse((at, id, timer))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            if let Some(request) = self.requests.get_mut(&id) {
                if request.timer == timer {
                    request.timer = 0;
                    self.on_timeout(now, id);
                }
            }
        }
        self.retired.prune(now);
        self.cache.prune(now);
        self.trackers.retain(|_, state| state.is_recent(now));
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
            if request.strict_source && request.tracker != from {
                self.stats.dropped_wrong_source += 1;
                return;
            }
            let response = Response::parse(bytes, v6);
            self.on_request_reply(now, id, from, response);
        } else if self.retired.contains(tid) {
            self.stats.dropped_late += 1;
        } else {
            self.stats.dropped_unknown += 1;
        }
    }

    /// The datagram `owner` sent could not be sent: the requests still
    /// waiting on it move to their fallback address or fail. A datagram of a
    /// phase they have left since concerns them no longer.
    pub fn handle_send_error(&mut self, now: Instant, owner: Owner, message: &str) {
        let ids = match owner {
            Owner::Request { id, tid } => {
                if self.request_tids.get(&tid) == Some(&id) {
                    vec![id]
                } else {
                    Vec::new()
                }
            }
            Owner::Connect(tid) => self
                .connects
                .get(&tid)
                .map(|e| e.waiters.clone())
                .unwrap_or_default(),
        };
        for id in ids {
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
        let Some(fallback) = request.fallback() else {
            return false;
        };
        let (primary, phase) = (request.tracker, request.phase);
        request.other_family = Some(Box::new(OtherFamily::SwitchedFrom(primary)));
        request.connect_attempts = 0;
        request.request_attempts = 0;
        self.leave_phase(now, id, primary, phase);
        if let Some(request) = self.requests.get_mut(&id) {
            request.tracker = fallback;
            request.timer = 0;
        }
        self.obtain_connection_id(now, id);
        true
    }

    /// Gives up what request `id`'s `phase` with `tracker` holds: its place
    /// in a queue or on a connect exchange, or its transaction id (retired,
    /// so late replies are known) and its room in the tracker's window.
    fn leave_phase(&mut self, now: Instant, id: RequestId, tracker: SocketAddr, phase: Phase) {
        match phase {
            Phase::Queued { .. } => self.queue.leave(),
            Phase::Connecting { tid, .. } => self.leave_connect(tid, id, now),
            Phase::Waiting { .. } => {
                if let Some(state) = self.trackers.get_mut(&tracker) {
                    state.waiting.leave();
                }
            }
            Phase::Requesting(sent) => {
                self.request_tids.remove(&sent.tid);
                self.retired.insert(sent.tid, now);
                self.release_room(now, tracker);
            }
        }
    }

    /// A datagram expecting a reply from `tracker` is answered or given up:
    /// the requests waiting for room in its window get it, oldest first.
    fn release_room(&mut self, now: Instant, tracker: SocketAddr) {
        let Some(state) = self.trackers.get_mut(&tracker) else {
            return;
        };
        state.outstanding = state.outstanding.saturating_sub(1);
        self.send_waiting(now, tracker);
    }

    fn send_waiting(&mut self, now: Instant, tracker: SocketAddr) {
        loop {
            let Some(state) = self.trackers.get_mut(&tracker) else {
                return;
            };
            if !state.has_room() {
                return;
            }
            let requests = &self.requests;
            let Some(id) = state.waiting.pop(|seq, id| waiting(requests, seq, id)) else {
                return;
            };
            let Some(request) = self.requests.get(&id) else {
                continue;
            };
            if let Phase::Waiting {
                connection_id,
                issued,
                from_cache,
                ..
            } = request.phase
            {
                let issued = self.epoch.instant(issued);
                if is_fresh(issued, now) {
                    self.send_request(now, id, connection_id, issued, from_cache);
                } else {
                    // It waited past its id's minute: BEP 15 wants a new one.
                    self.obtain_connection_id(now, id);
                }
            }
        }
    }

    /// The tracker may have restarted and forgotten the cached id request
    /// `id` used: forget it too and get another (a newer one another request
    /// cached meanwhile, or a connect). Once per request; the renewed phase
    /// starts a fresh schedule (the lost send is not counted as an attempt).
    fn renew_connection_id(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let phase = request.phase;
        let Phase::Requesting(sent) = phase else {
            return;
        };
        request.retried_with_fresh_id = true;
        request.request_attempts = 0;
        request.timer = 0;
        let tracker = request.tracker;
        if self.cache.invalidate(tracker, sent.connection_id) {
            self.stats.renewed_connection_ids += 1;
        }
        self.leave_phase(now, id, tracker, phase);
        self.obtain_connection_id(now, id);
    }

    fn obtain_connection_id(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        if request.reuse_connection_id {
            let (tracker, scope) = (request.tracker, request.scope);
            if let Some((connection_id, issued)) =
                self.cache
                    .get(tracker, scope, self.epoch.instant(request.started), now)
            {
                self.cache.add_scope(tracker, connection_id, scope);
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
        let strict_source = request.strict_source;
        let shared = request.reuse_connection_id;
        let existing = shared
            .then(|| self.shared_connects.get(&(tracker, strict_source)).copied())
            .flatten();
        let tid = match existing {
            Some(tid) => {
                if let Some(exchange) = self.connects.get_mut(&tid) {
                    exchange.waiters.push(id);
                }
                self.resend_connect_if_due(now, tid, request.timeout());
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
                        sends: 0,
                        waiters: vec![id],
                    },
                );
                if shared {
                    self.shared_connects.insert((tracker, strict_source), tid);
                }
                // A connect is never held back (it is the first datagram of
                // a burst), but it counts against the window.
                self.tracker_state(tracker, now).outstanding += 1;
                self.send_connect(now, tid);
                tid
            }
        };
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.connect_attempts = 1;
        self.wait_for_connect(now, id, tid);
    }

    /// Request `id` waits on connect `tid` from `now`: until its ordinary
    /// wait, or first until the early check once the tracker's round trip
    /// is known (see `on_connect_check`).
    fn wait_for_connect(&mut self, now: Instant, id: RequestId, tid: TransactionId) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let wait = request.wait(request.connect_attempts);
        let attempt = request.connect_attempts;
        let check = self
            .trackers
            .get(&request.tracker)
            .filter(|s| s.rtt().is_some())
            .map(|s| s.check_wait(attempt.into()))
            .filter(|&check| check < wait);
        request.phase = Phase::Connecting {
            tid,
            since: self.epoch.stamp(now),
            checked: check.is_none(),
        };
        self.schedule(id, now + check.unwrap_or(wait));
    }

    /// Sends shared connect `tid` again unless it went out less than
    /// min(`timeout`, 1 s) ago: its waiters retransmit on their own
    /// schedules, and one send per such slot is enough for all of them.
    fn resend_connect_if_due(&mut self, now: Instant, tid: TransactionId, timeout: Duration) {
        let dedupe = timeout.min(Duration::from_secs(1));
        let due = self
            .connects
            .get(&tid)
            .is_some_and(|e| now.saturating_duration_since(e.last_sent) >= dedupe);
        if due {
            self.send_connect(now, tid);
        }
    }

    fn send_connect(&mut self, now: Instant, tid: TransactionId) {
        let Some(exchange) = self.connects.get_mut(&tid) else {
            return;
        };
        exchange.last_sent = now;
        exchange.sends += 1;
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
        self.release_room(now, exchange.tracker);
        Some(exchange)
    }

    /// The first send of a phase: the announce, or a scrape's next batch.
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
        let tracker = request.tracker;
        let state = self
            .trackers
            .entry(tracker)
            .or_insert_with(|| TrackerState::new(now));
        if !state.has_room() {
            // The tracker's window is full: wait in line, in order.
            let seq = self.next_seq;
            self.next_seq = self.next_seq.wrapping_add(1);
            request.phase = Phase::Waiting {
                seq,
                connection_id,
                issued: self.epoch.stamp(issued),
                from_cache,
            };
            request.timer = 0;
            let requests = &self.requests;
            state
                .waiting
                .push(seq, id, |seq, id| waiting(requests, seq, id));
            return;
        }
        state.outstanding += 1;
        if request.request_attempts == 0 {
            let limit = state.scrape_limit().unwrap_or(if tracker.is_ipv4() {
                MAX_SCRAPE_HASHES_V4
            } else {
                MAX_SCRAPE_HASHES_V6
            });
            request.body.next_batch(limit);
        }
        request.request_attempts = request.request_attempts.saturating_add(1);
        let wait = request.wait(request.request_attempts);
        // A few round trips after the send, silence says more than after
        // 2·timeout, once the tracker's round trip is known.
        let check = state.check_wait(request.request_attempts.into());
        let checked = check >= wait || state.rtt().is_none() && !from_cache;
        self.stats.sent += 1;
        self.transmits.push_back(Transmit {
            destination: tracker,
            payload: request.body.datagram(connection_id, tid),
            owner: Owner::Request { id, tid },
        });
        request.phase = Phase::Requesting(Sent {
            tid,
            connection_id,
            issued: self.epoch.stamp(issued),
            from_cache,
            sent_at: self.epoch.stamp(now),
            checked,
        });
        self.request_tids.insert(tid, id);
        self.schedule(id, now + if checked { wait } else { check });
    }

    /// A request's timer: the wait after its last send is over.
    fn on_timeout(&mut self, now: Instant, id: RequestId) {
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        match request.phase {
            // Queued and waiting requests have no timer.
            Phase::Queued { .. } | Phase::Waiting { .. } => {}
            Phase::Requesting(sent) if self.id_suspect(id, sent) => {
                self.renew_connection_id(now, id);
            }
            Phase::Requesting(sent) if !sent.checked => self.on_check_timeout(now, id, sent),
            Phase::Connecting {
                tid,
                since,
                checked: false,
            } => self.on_connect_check(now, id, tid, self.epoch.instant(since)),
            Phase::Connecting { tid, .. } => {
                // The first wait is over: whatever happens next, this request
                // no longer counts as a burst in flight.
                self.leave_window(now, id);
                self.on_connect_timeout(now, id, tid);
            }
            Phase::Requesting(sent) => {
                self.leave_window(now, id);
                self.on_request_timeout(now, id, sent);
            }
        }
    }

    /// No answer to the first connect of request `id`'s phase, or to a
    /// retransmission of it.
    fn on_connect_timeout(&mut self, now: Instant, id: RequestId, tid: TransactionId) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        if request.fallback().is_some() {
            // No answer to the first connect: try the other family.
            self.switch_to_fallback(now, id);
            return;
        }
        let attempts = request.connect_attempts;
        if attempts >= request.max_attempts {
            self.give_up(now, id, attempts);
            return;
        }
        request.connect_attempts = request.connect_attempts.saturating_add(1);
        let timeout = request.timeout();
        self.resend_connect_if_due(now, tid, timeout);
        self.wait_for_connect(now, id, tid);
    }

    /// No answer within max(250 ms, 4·SRTT) to connect `tid` that request
    /// `id` has waited on since `since`. If the tracker answered anything
    /// since the connect went out, it was lost (a full queue): send it again
    /// now, as the request's next attempt, and halve the window; else keep
    /// the BEP 15 schedule.
    fn on_connect_check(
        &mut self,
        now: Instant,
        id: RequestId,
        tid: TransactionId,
        since: Instant,
    ) {
        let Some(exchange) = self.connects.get(&tid) else {
            return;
        };
        let (tracker, last_sent) = (exchange.tracker, exchange.last_sent);
        let state = self.trackers.get(&tracker);
        let alive = state.is_some_and(|s| s.answered_anything_since(last_sent));
        let check = state.map_or(PROBE_FLOOR, TrackerState::probe_wait);
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        if alive && request.connect_attempts < request.max_attempts {
            request.connect_attempts = request.connect_attempts.saturating_add(1);
            if now.saturating_duration_since(last_sent) >= check {
                // Once per exchange, however many wait on it.
                self.stats.losses += 1;
                self.stats.retransmits += 1;
                let state = self.tracker_state(tracker, now);
                state.on_loss(last_sent, now);
                state.retransmits += 1;
                self.send_connect(now, tid);
            }
            self.wait_for_connect(now, id, tid);
            return;
        }
        request.phase = Phase::Connecting {
            tid,
            since: self.epoch.stamp(since),
            checked: true,
        };
        let wait = request.wait(request.connect_attempts);
        self.schedule(id, (since + wait).max(now));
    }

    /// No answer within max(250 ms, 4·SRTT) of a send (`sent`). What the
    /// tracker answered since tells why:
    /// - (checked first, in `on_timeout`, also when the ordinary wait ends)
    ///   a first send on a cached id, and nothing answered on that id since:
    ///   the tracker has probably forgotten the id (aquatic drops unknown ids
    ///   silently after a restart), so renew it now rather than after
    ///   2·timeout, without counting the lost send;
    /// - the tracker answered other datagrams since (sent later, or earlier
    ///   ones it was still working through): this one, overdue by several
    ///   round trips, was lost (a full queue at the tracker drops the
    ///   excess): send it again now, within `max_attempts`, and halve the
    ///   tracker's window (once per congestion event);
    /// - nothing: the tracker is slow or silent; keep the BEP 15 schedule.
    fn on_check_timeout(&mut self, now: Instant, id: RequestId, sent: Sent) {
        let epoch = self.epoch;
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let tracker = request.tracker;
        let state = self.trackers.get_mut(&tracker);
        // Answers since this send (to datagrams sent later, or earlier ones
        // the tracker was still working through) while this one is overdue
        // by several round trips: it was lost. None at all: silence.
        let silent = !state
            .as_ref()
            .is_some_and(|s| s.answered_anything_since(epoch.instant(sent.sent_at)));
        let lost = !silent;
        if let (true, Some(state)) = (silent, state) {
            // Nothing at all for a few round trips: the tracker stalled or
            // died; the window must not hold its other requests back.
            state.on_silence();
        }
        let sent = Sent {
            checked: true,
            ..sent
        };
        request.phase = Phase::Requesting(sent);
        if silent {
            self.send_waiting(now, tracker);
        }
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        if lost && request.request_attempts < request.max_attempts {
            self.stats.losses += 1;
            self.tracker_state(tracker, now)
                .on_loss(epoch.instant(sent.sent_at), now);
            self.send_again(now, id, tracker, sent);
            return;
        }
        let wait = request.wait(request.request_attempts);
        self.schedule(id, (epoch.instant(sent.sent_at) + wait).max(now));
    }

    /// Whether request `id`'s first send `sent` on a cached id went
    /// unanswered while the tracker answered nothing else on that id.
    fn id_suspect(&self, id: RequestId, sent: Sent) -> bool {
        let epoch = self.epoch;
        self.requests.get(&id).is_some_and(|request| {
            sent.from_cache
                && !request.retried_with_fresh_id
                && !self.trackers.get(&request.tracker).is_some_and(|s| {
                    s.answered_since(sent.connection_id, epoch.instant(sent.sent_at))
                })
        })
    }

    /// No answer to request `id`'s announce or scrape `sent` within its wait.
    fn on_request_timeout(&mut self, now: Instant, id: RequestId, sent: Sent) {
        let epoch = self.epoch;
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let tracker = request.tracker;
        let (attempts, max_attempts) = (request.request_attempts, request.max_attempts);
        if let Some(state) = self.trackers.get_mut(&tracker) {
            if !state.answered_anything_since(epoch.instant(sent.sent_at)) {
                state.on_silence();
                self.send_waiting(now, tracker);
            }
        }
        if attempts >= max_attempts {
            self.give_up(now, id, attempts);
            return;
        }
        self.send_again(now, id, tracker, sent);
    }

    /// Sends request `id`'s datagram `sent` to `tracker` again, or, when its
    /// connection id has expired meanwhile (BEP 15: one minute; the process
    /// may also have been asleep), renews the id first.
    fn send_again(&mut self, now: Instant, id: RequestId, tracker: SocketAddr, sent: Sent) {
        let epoch = self.epoch;
        if is_fresh(epoch.instant(sent.issued), now) {
            self.retransmit(now, id, sent);
        } else {
            self.leave_phase(now, id, tracker, Phase::Requesting(sent));
            self.obtain_connection_id(now, id);
        }
    }

    /// Sends request `id`'s datagram `sent` again, as the next attempt.
    fn retransmit(&mut self, now: Instant, id: RequestId, sent: Sent) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        request.request_attempts = request.request_attempts.saturating_add(1);
        let wait = request.wait(request.request_attempts);
        let tracker = request.tracker;
        self.stats.sent += 1;
        self.stats.retransmits += 1;
        self.transmits.push_back(Transmit {
            destination: tracker,
            payload: request.body.datagram(sent.connection_id, sent.tid),
            owner: Owner::Request { id, tid: sent.tid },
        });
        let state = self.tracker_state(tracker, now);
        state.retransmits += 1;
        let attempts = self.requests.get(&id).map_or(1, |r| r.request_attempts);
        let state = self.tracker_state(tracker, now);
        let check = state.check_wait(attempts.into());
        let checked = check >= wait;
        if let Some(request) = self.requests.get_mut(&id) {
            request.phase = Phase::Requesting(Sent {
                sent_at: self.epoch.stamp(now),
                checked,
                ..sent
            });
        }
        self.schedule(id, now + if checked { wait } else { check });
    }

    /// Request `id` failed after `attempts` sends of its phase, each
    /// unanswered: the error names the last wait.
    fn give_up(&mut self, now: Instant, id: RequestId, attempts: u8) {
        let Some(request) = self.requests.get(&id) else {
            return;
        };
        let waited = request.wait(attempts);
        self.fail(now, id, timeout_error(waited));
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
            let state = self.tracker_state(from, now);
            state.on_answer(now);
            if exchange.sends == 1 {
                state.rtt_sample(now.saturating_duration_since(issued));
            }
            let scopes = exchange
                .waiters
                .iter()
                .filter_map(|id| self.requests.get(id))
                .map(|r| r.scope);
            let scopes: Vec<Scope> = scopes.collect();
            self.cache
                .insert(exchange.tracker, connection_id, issued, now, scopes);
        }
        for id in exchange.waiters {
            self.send_request(now, id, connection_id, issued, false);
        }
    }

    fn on_request_reply(
        &mut self,
        now: Instant,
        id: RequestId,
        from: SocketAddr,
        response: Result<Response, ParseError>,
    ) {
        let epoch = self.epoch;
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let Phase::Requesting(sent) = request.phase else {
            return;
        };
        let is_scrape = matches!(request.body, Body::Scrape(_));
        let answered = matches!(response, Ok(Response::Announce(_) | Response::Scrape(_)));
        if answered && from == request.tracker {
            let single_send = request.request_attempts == 1;
            let state = self.tracker_state(from, now);
            state.answered(sent.connection_id, now);
            state.on_answer(now);
            if single_send {
                state.rtt_sample(now.saturating_duration_since(epoch.instant(sent.sent_at)));
            }
        }
        let outcome = match response {
            Ok(Response::Announce(reply)) if !is_scrape => Outcome::Announced(reply),
            Ok(Response::Scrape(reply)) if is_scrape => {
                self.on_scrape_reply(now, id, sent, reply);
                return;
            }
            Ok(Response::Error(reply)) => {
                let retry = self
                    .requests
                    .get(&id)
                    .is_some_and(|r| sent.from_cache && !r.retried_with_fresh_id);
                if retry {
                    // An error on a cached id: the retry gets a fresh schedule.
                    self.renew_connection_id(now, id);
                    return;
                }
                Outcome::Failed(RequestError::Tracker(reply.message))
            }
            Ok(other) => Outcome::Failed(unexpected_action(&other)),
            Err(e) => Outcome::Failed(RequestError::BadResponse(e)),
        };
        self.finish(now, id, outcome);
    }

    /// A scrape reply: whole entries for the batch asked, or for its first
    /// part (the tracker answers fewer hashes per scrape than we sent: ask
    /// again for the rest, and send it no larger batches from now on).
    fn on_scrape_reply(&mut self, now: Instant, id: RequestId, sent: Sent, reply: ScrapeResponse) {
        let epoch = self.epoch;
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        let Body::Scrape(scrape) = &mut request.body else {
            return;
        };
        let ScrapeBody {
            hashes,
            stats,
            batch,
            ..
        } = &mut **scrape;
        let answered = reply.stats.len();
        if answered == 0 || answered > *batch {
            let error = RequestError::BadResponse(ParseError::ScrapeLength);
            self.fail(now, id, error);
            return;
        }
        let partial = answered < *batch;
        stats.extend(reply.stats);
        if stats.len() >= hashes.len() {
            let stats = std::mem::take(stats);
            let response = ScrapeResponse {
                transaction_id: reply.transaction_id,
                stats,
            };
            self.finish(now, id, Outcome::Scraped(response));
            return;
        }
        request.request_attempts = 0;
        let tracker = request.tracker;
        if partial {
            self.tracker_state(tracker, now)
                .learn_scrape_limit(answered);
        }
        self.leave_phase(now, id, tracker, Phase::Requesting(sent));
        if is_fresh(epoch.instant(sent.issued), now) {
            self.send_request(
                now,
                id,
                sent.connection_id,
                epoch.instant(sent.issued),
                false,
            );
        } else {
            self.obtain_connection_id(now, id);
        }
    }

    fn tracker_state(&mut self, tracker: SocketAddr, now: Instant) -> &mut TrackerState {
        let state = self
            .trackers
            .entry(tracker)
            .or_insert_with(|| TrackerState::new(now));
        state.touch(now);
        state
    }

    fn fail(&mut self, now: Instant, id: RequestId, error: RequestError) {
        self.finish(now, id, Outcome::Failed(error));
    }

    fn finish(&mut self, now: Instant, id: RequestId, outcome: Outcome) {
        if let Some(request) = self.requests.get(&id) {
            if let (Some(primary), false) = (
                request.switched_from(),
                matches!(outcome, Outcome::Failed(_)),
            ) {
                self.preferred.insert(primary, (request.tracker, now));
                // It answered here: no longer an address to try second.
                self.preferred.remove(&request.tracker);
            }
            self.cancel(id, now);
            self.completions.push_back(Completion { id, outcome });
        }
    }

    /// Sets request `id`'s timer to `at`, replacing the one it had.
    fn schedule(&mut self, id: RequestId, at: Instant) {
        let Some(request) = self.requests.get_mut(&id) else {
            return;
        };
        self.timer_seq = self.timer_seq.wrapping_add(1).max(1);
        request.timer = self.timer_seq;
        self.timers.push(Reverse((at, id, self.timer_seq)));
        // Dead entries wait for their instant to be skipped; should they
        // ever outnumber the live ones (long waits, quick answers), sweep.
        if self.timers.len() > 2 * self.requests.len() + 1024 {
            let mut timers = std::mem::take(&mut self.timers);
            timers.retain(|&Reverse((_, id, timer))| self.timer_is_live(id, timer));
            self.timers = timers;
        }
    }

    fn timer_is_live(&self, id: RequestId, timer: u32) -> bool {
        self.requests.get(&id).is_some_and(|r| r.timer == timer)
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

/// Whether request `id` stands in the window's queue under `seq`.
fn queued(requests: &FastMap<RequestId, Box<Request>>, seq: Seq, id: RequestId) -> bool {
    requests
        .get(&id)
        .is_some_and(|r| matches!(r.phase, Phase::Queued { seq: s } if s == seq))
}

/// Whether request `id` stands in its tracker's line under `seq`.
fn waiting(requests: &FastMap<RequestId, Box<Request>>, seq: Seq, id: RequestId) -> bool {
    requests
        .get(&id)
        .is_some_and(|r| matches!(r.phase, Phase::Waiting { seq: s, .. } if s == seq))
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
pub(crate) mod tests;

#[cfg(test)]
mod fallback_tests;

#[cfg(test)]
mod window_tests;
