//! What the session remembers per tracker address between requests: the
//! connection ids it issued, its round-trip time, and how many info hashes it
//! answers per scrape.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::fast_hash::{FastMap, FastSet};
use super::line::Line;
use super::{is_fresh, Scope, CONNECTION_ID_TTL, DEFAULT_WINDOW, PROBE_FLOOR};
use crate::proto::ConnectionId;

/// A tracker's congestion window at first, and after it fell silent: a burst
/// of this many datagrams goes out at once.
pub const INITIAL_CWND: usize = 64;
/// The smallest window a loss can leave.
pub const MIN_CWND: usize = 4;

/// RFC 6298's initial retransmission timeout: the probe wait for a tracker
/// whose round-trip time is not known yet.
const INITIAL_RTO: Duration = Duration::from_secs(1);
/// How long an answer on a connection id is remembered: longer than any id
/// is used.
const ANSWERED_KEPT: Duration = CONNECTION_ID_TTL.saturating_mul(2);
/// What is known of a tracker address is forgotten after this long unused.
pub const TRACKER_STATE_TTL: Duration = Duration::from_secs(3600);

#[derive(Debug)]
struct CachedId {
    id: ConnectionId,
    /// When the connect that obtained it was last sent.
    issued: Instant,
    /// When its reply arrived.
    obtained: Instant,
    /// The scopes whose requests used it.
    scopes: FastSet<Scope>,
}

/// Connection ids by tracker address. An id is only ever sent to the address
/// that issued it, and reused only by a request of a scope that used it
/// before, or by one started before it was obtained (it was waiting for one
/// while that connect was in flight: requests started together share one
/// connect even when the window queues some of them).
#[derive(Debug, Default)]
pub struct ConnectionIdCache {
    /// Oldest first.
    entries: FastMap<SocketAddr, Vec<CachedId>>,
}

impl ConnectionIdCache {
    /// The newest id for `tracker` that a request of `scope`, started at
    /// `started`, may use at `now`, and when it was issued.
    pub fn get(
        &self,
        tracker: SocketAddr,
        scope: Scope,
        started: Instant,
        now: Instant,
    ) -> Option<(ConnectionId, Instant)> {
        self.entries
            .get(&tracker)?
            .iter()
            .rev()
            .filter(|c| is_fresh(c.issued, now))
            .find(|c| started <= c.obtained || c.scopes.contains(&scope))
            .map(|c| (c.id, c.issued))
    }

    /// Caches `id`, issued by `tracker` in reply to a connect last sent at
    /// `issued` and received at `obtained`, for `scopes`.
    pub fn insert(
        &mut self,
        tracker: SocketAddr,
        id: ConnectionId,
        issued: Instant,
        obtained: Instant,
        scopes: impl IntoIterator<Item = Scope>,
    ) {
        let ids = self.entries.entry(tracker).or_default();
        if let Some(at) = ids.iter().position(|c| c.id == id) {
            let mut known = ids.remove(at);
            known.issued = known.issued.max(issued);
            known.obtained = known.obtained.max(obtained);
            known.scopes.extend(scopes);
            ids.push(known);
        } else {
            ids.push(CachedId {
                id,
                issued,
                obtained,
                scopes: scopes.into_iter().collect(),
            });
        }
    }

    /// Records that a request of `scope` uses `id`.
    pub fn add_scope(&mut self, tracker: SocketAddr, id: ConnectionId, scope: Scope) {
        let known = self
            .entries
            .get_mut(&tracker)
            .and_then(|ids| ids.iter_mut().find(|c| c.id == id));
        if let Some(known) = known {
            known.scopes.insert(scope);
        }
    }

    /// Forgets `id` for `tracker`; true if it was cached.
    pub fn invalidate(&mut self, tracker: SocketAddr, id: ConnectionId) -> bool {
        let Some(ids) = self.entries.get_mut(&tracker) else {
            return false;
        };
        let before = ids.len();
        ids.retain(|c| c.id != id);
        let removed = ids.len() < before;
        if ids.is_empty() {
            self.entries.remove(&tracker);
        }
        removed
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn prune(&mut self, now: Instant) {
        self.entries.retain(|_, ids| {
            ids.retain(|c| is_fresh(c.issued, now));
            !ids.is_empty()
        });
    }

    /// How many ids are cached, over all addresses.
    pub fn len(&self) -> usize {
        self.entries.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A smoothed round-trip time and its variation (RFC 6298, section 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEstimate {
    pub srtt: Duration,
    pub rttvar: Duration,
}

impl RttEstimate {
    fn first(sample: Duration) -> RttEstimate {
        RttEstimate {
            srtt: sample,
            rttvar: sample / 2,
        }
    }

    /// RTTVAR ← 3/4 RTTVAR + 1/4 |SRTT − R'|, then SRTT ← 7/8 SRTT + 1/8 R'.
    fn update(&mut self, sample: Duration) {
        let deviation = self.srtt.abs_diff(sample);
        self.rttvar = (self.rttvar * 3 + deviation) / 4;
        self.srtt = (self.srtt * 7 + sample) / 8;
    }
}

/// What the session knows of one tracker address.
#[derive(Debug)]
pub struct TrackerState {
    rtt: Option<RttEstimate>,
    /// Datagrams expecting a reply this tracker may have out at once (AIMD).
    cwnd: usize,
    ssthresh: usize,
    /// Replies counted towards the next +1 in congestion avoidance.
    acked: usize,
    /// Datagrams out that expect a reply: connect exchanges and request
    /// phases (each counted once, however often retransmitted).
    pub(super) outstanding: usize,
    /// Requests with a datagram ready that wait for room in the window,
    /// oldest first, by their `Phase::Waiting` seq.
    pub(super) waiting: Line,
    /// Whether the first wait of a request passed with no reply from the
    /// tracker at all since it was sent: the window is not applied (BEP 15's
    /// schedule alone) until the tracker answers again.
    silent: bool,
    /// When the window was last cut: losses of datagrams sent before then
    /// belong to the same congestion event and do not cut it again.
    recovery_start: Option<Instant>,
    last_answer: Option<Instant>,
    /// Datagrams sent again (after a wait or a detected loss), and losses
    /// detected early because later datagrams were answered.
    pub(super) retransmits: u64,
    pub(super) losses: u64,
    /// When a request on each connection id was last answered.
    answered: Vec<(ConnectionId, Instant)>,
    /// The most info hashes one scrape reply of this tracker held, learned
    /// from a reply that answered fewer than were asked.
    scrape_limit: Option<usize>,
    used: Instant,
}

impl TrackerState {
    pub(super) fn new(now: Instant) -> TrackerState {
        TrackerState {
            rtt: None,
            cwnd: INITIAL_CWND,
            ssthresh: DEFAULT_WINDOW,
            acked: 0,
            outstanding: 0,
            waiting: Line::default(),
            silent: false,
            recovery_start: None,
            last_answer: None,
            retransmits: 0,
            losses: 0,
            answered: Vec::new(),
            scrape_limit: None,
            used: now,
        }
    }

    pub fn rtt(&self) -> Option<RttEstimate> {
        self.rtt
    }

    pub fn scrape_limit(&self) -> Option<usize> {
        self.scrape_limit
    }

    /// The congestion window: datagrams expecting a reply allowed out at once.
    pub fn window(&self) -> usize {
        self.cwnd
    }

    /// Datagrams out that expect a reply.
    pub fn outstanding(&self) -> usize {
        self.outstanding
    }

    /// Requests waiting for room in the window.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    pub fn retransmits(&self) -> u64 {
        self.retransmits
    }

    /// Losses detected because later datagrams were answered first.
    pub fn losses(&self) -> u64 {
        self.losses
    }

    /// Whether another datagram expecting a reply may go out now.
    pub(super) fn has_room(&self) -> bool {
        self.silent || self.outstanding < self.cwnd
    }

    /// The tracker answered a datagram, at `now`: the window grows (by one
    /// per reply in slow start, by one per window's worth of replies after),
    /// while it limits what is sent.
    pub(super) fn on_answer(&mut self, now: Instant) {
        self.last_answer = self.last_answer.max(Some(now));
        if self.silent {
            self.silent = false;
            self.cwnd = INITIAL_CWND;
        }
        let limited = !self.waiting.is_empty() || self.outstanding + 1 >= self.cwnd;
        if !limited || self.cwnd >= DEFAULT_WINDOW {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd += 1;
        } else {
            self.acked += 1;
            if self.acked >= self.cwnd {
                self.acked = 0;
                self.cwnd += 1;
            }
        }
    }

    /// Whether the tracker answered anything after `since`.
    pub(super) fn answered_anything_since(&self, since: Instant) -> bool {
        self.last_answer.is_some_and(|t| t > since)
    }

    /// A datagram sent at `sent_at` was lost while later ones were
    /// answered: halve the window, once per congestion event.
    pub(super) fn on_loss(&mut self, sent_at: Instant, now: Instant) {
        self.losses += 1;
        if self.recovery_start.is_some_and(|start| sent_at < start) {
            return;
        }
        self.recovery_start = Some(now);
        self.ssthresh = (self.cwnd / 2).max(MIN_CWND);
        self.cwnd = self.ssthresh;
        self.acked = 0;
    }

    /// A whole first wait passed with no answer from the tracker since the
    /// datagram was sent: it is down or unreachable. Its requests then keep
    /// the plain BEP 15 schedule, unthrottled, until it answers again.
    pub(super) fn on_silence(&mut self) {
        self.silent = true;
    }

    /// How long silence to a first send on a cached id is awaited before the
    /// id is suspected: max(250 ms, 4 · SRTT), or RFC 6298's initial 1 s
    /// while no round trip has been measured.
    pub fn probe_wait(&self) -> Duration {
        self.rtt
            .map_or(INITIAL_RTO, |r| (r.srtt * 4).max(PROBE_FLOOR))
    }

    /// When the `attempt`-th send of a phase (from 1) is checked for a
    /// loss: the probe wait, doubled for each send before it (as TCP backs
    /// its RTO off), so that a tracker that is merely slow to answer one
    /// request while it answers others gets few extra datagrams.
    pub fn check_wait(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(16);
        self.probe_wait().saturating_mul(1 << doublings)
    }

    pub(super) fn touch(&mut self, now: Instant) {
        self.used = self.used.max(now);
    }

    pub(super) fn is_recent(&self, now: Instant) -> bool {
        self.outstanding > 0
            || !self.waiting.is_empty()
            || now.saturating_duration_since(self.used) < TRACKER_STATE_TTL
    }

    pub(super) fn rtt_sample(&mut self, sample: Duration) {
        match &mut self.rtt {
            Some(rtt) => rtt.update(sample),
            None => self.rtt = Some(RttEstimate::first(sample)),
        }
    }

    /// A request on `id` was answered at `now`.
    pub(super) fn answered(&mut self, id: ConnectionId, now: Instant) {
        self.answered.retain(|&(other, at)| {
            other != id && now.saturating_duration_since(at) < ANSWERED_KEPT
        });
        self.answered.push((id, now));
    }

    /// Whether a request on `id` was answered at or after `since`.
    pub(super) fn answered_since(&self, id: ConnectionId, since: Instant) -> bool {
        self.answered
            .iter()
            .any(|&(other, at)| other == id && at >= since)
    }

    /// A scrape reply held `entries`, fewer than asked: the tracker's limit.
    pub(super) fn learn_scrape_limit(&mut self, entries: usize) {
        self.scrape_limit = Some(entries);
    }
}
