//! A small BEP 15 tracker for tests and for trying the CLI, sans-IO.
//!
//! [`Tracker::handle`] reads one request datagram and decides the reply: time
//! (`now`) and randomness (`rng`, for peer selection and the injected faults)
//! are arguments, so every decision can be tested without a socket.
//! [`server`] puts it on a UDP socket.
//!
//! What it does, after BEP 15 and BEP 41:
//! - connection ids are a MAC of the client's IP address and an expiry two
//!   minutes ahead, under a random secret: unguessable, useless from another
//!   address, and checked without keeping any state. Requests with an unknown
//!   or expired id are dropped, as aquatic and opentracker do;
//! - announce keeps one swarm per info hash (peers keyed by peer id; `stopped`
//!   removes, `completed` counts a download once per peer) and answers with
//!   peers of the requester's address family, never the requester itself;
//! - scrape answers the first `max_scrape` hashes (as aquatic does);
//! - a request it cannot read, with a valid connection id, gets an error reply.

pub mod server;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::seq::IteratorRandom;
use rand::Rng;
use sha1::{Digest, Sha1};

use crate::proto::{
    AnnounceEvent, AnnounceRequest, AnnounceResponse, ConnectResponse, ConnectionId, ErrorResponse,
    InfoHash, PeerId, Request, RequestHeader, Response, ScrapeRequest, ScrapeResponse, ScrapeStats,
    TransactionId,
};

/// How long a connection id is accepted after the connect that issued it
/// (BEP 15: clients use it for one minute, trackers accept it for two).
pub const CONNECTION_ID_LIFETIME: Duration = Duration::from_secs(120);

/// Largest scrape a datagram can carry: (65,507 − 16) / 20 hashes.
pub const MAX_SCRAPE_LIMIT: usize = 3274;
/// Largest peer list a datagram can carry over IPv6: (65,507 − 20) / 18 peers.
pub const MAX_PEERS_LIMIT: usize = 3638;

#[derive(Clone, Debug)]
pub struct Config {
    /// Seconds, sent in every announce reply.
    pub interval: u32,
    /// Hashes answered per scrape; the rest of a longer request is ignored.
    pub max_scrape: usize,
    /// Peers per announce reply at most, and the number sent for `num_want` −1.
    pub max_peers: usize,
    pub faults: Faults,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            interval: 1800,
            max_scrape: crate::proto::MAX_SCRAPE_HASHES_V4,
            max_peers: 50,
            faults: Faults::default(),
        }
    }
}

/// Faults injected on purpose, for testing clients' retry logic.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Probability that a request is dropped unread, and (independently)
    /// that its reply is dropped.
    pub loss: f64,
    /// Probability that a reply is sent twice.
    pub duplicate: f64,
    /// Each reply waits a time drawn uniformly from this range (inclusive).
    pub delay: (Duration, Duration),
    /// Info hashes answered with an error reply carrying this text.
    pub error_for: HashMap<InfoHash, String>,
    /// Info hashes never answered.
    pub silent_for: HashSet<InfoHash>,
}

/// A reply to send: `copies` times (2 when duplicated), after `delay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub to: SocketAddr,
    pub bytes: Vec<u8>,
    pub delay: Duration,
    pub copies: u8,
}

/// Counters since the tracker was created (`restart` keeps them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub connect: u64,
    pub announce: u64,
    pub scrape: u64,
    /// Datagrams that are no request: too short, unknown action, bad body.
    pub invalid: u64,
    /// Datagrams sent, duplicates included.
    pub replies: u64,
    /// Error replies among them.
    pub errors: u64,
    /// Second copies sent by the `duplicate` fault.
    pub duplicates: u64,
    /// Requests or replies dropped by the `loss` fault.
    pub dropped_loss: u64,
    /// Requests not answered because of `silent_for`.
    pub dropped_silent: u64,
    /// Requests with an unknown, expired or foreign connection id.
    pub dropped_connection_id: u64,
    /// Datagrams too short or malformed to answer (no valid connection id).
    pub dropped_malformed: u64,
}

/// One peer of a swarm, as it last announced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer {
    pub peer_id: PeerId,
    /// The datagram's source address with the announced port.
    pub addr: SocketAddr,
    pub downloaded: u64,
    pub left: u64,
    pub uploaded: u64,
    pub event: AnnounceEvent,
    pub key: u32,
    /// The `ip` field of the request (host order; 0 when none). Recorded, not used.
    pub ip: u32,
    /// BEP 41 URL data of the last announce.
    pub url_data: Vec<u8>,
    last_seen: Instant,
    counted_download: bool,
}

impl Peer {
    pub fn is_seeder(&self) -> bool {
        self.left == 0
    }
}

#[derive(Clone, Debug, Default)]
pub struct Swarm {
    peers: HashMap<PeerId, Peer>,
    /// `completed` events seen (once per peer).
    pub downloaded: u32,
}

impl Swarm {
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values()
    }

    /// (seeders, leechers).
    pub fn counts(&self) -> (u32, u32) {
        let seeders = self.peers.values().filter(|p| p.is_seeder()).count();
        let leechers = self.peers.len() - seeders;
        (saturate(seeders), saturate(leechers))
    }

    fn scrape_stats(&self) -> ScrapeStats {
        let (seeders, leechers) = self.counts();
        ScrapeStats {
            seeders,
            completed: self.downloaded,
            leechers,
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Issues and checks connection ids without keeping state: the high 32 bits
/// are the expiry (seconds since `epoch`), the low 32 the first four bytes of
/// SHA-1(secret ‖ expiry ‖ client IP ‖ secret).
struct ConnectionIds {
    secret: [u8; 32],
    epoch: Instant,
}

impl ConnectionIds {
    fn issue(&self, ip: IpAddr, now: Instant) -> ConnectionId {
        let lifetime = CONNECTION_ID_LIFETIME.as_secs() as u32;
        let expires = self.seconds(now).saturating_add(lifetime);
        ConnectionId((u64::from(expires) << 32) | u64::from(self.mac(ip, expires)))
    }

    fn is_valid(&self, id: ConnectionId, ip: IpAddr, now: Instant) -> bool {
        let expires = (id.0 >> 32) as u32;
        let now = self.seconds(now);
        let lifetime = CONNECTION_ID_LIFETIME.as_secs() as u32;
        now < expires
            && expires <= now.saturating_add(lifetime)
            && (id.0 & 0xffff_ffff) as u32 == self.mac(ip, expires)
    }

    fn seconds(&self, now: Instant) -> u32 {
        u32::try_from(now.saturating_duration_since(self.epoch).as_secs()).unwrap_or(u32::MAX)
    }

    fn mac(&self, ip: IpAddr, expires: u32) -> u32 {
        let ip = match ip {
            IpAddr::V4(v4) => v4.to_ipv6_mapped(),
            IpAddr::V6(v6) => v6,
        };
        let digest = Sha1::new()
            .chain_update(self.secret)
            .chain_update(expires.to_be_bytes())
            .chain_update(ip.octets())
            .chain_update(self.secret)
            .finalize();
        u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
    }
}

pub struct Tracker {
    config: Config,
    ids: ConnectionIds,
    swarms: HashMap<InfoHash, Swarm>,
    stats: Stats,
    /// When every swarm was last cleared of peers gone quiet.
    last_sweep: Instant,
}

/// How often all swarms are swept (a swarm is also cleaned whenever it is announced to).
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// What a request leads to before the faults on the reply are applied.
enum Decision {
    Reply(Response),
    Drop,
}

impl Tracker {
    /// `secret` keys the connection ids: give it 32 bytes from a CSPRNG.
    pub fn new(config: Config, secret: [u8; 32], now: Instant) -> Tracker {
        Tracker {
            config,
            ids: ConnectionIds { secret, epoch: now },
            swarms: HashMap::new(),
            stats: Stats::default(),
            last_sweep: now,
        }
    }

    /// Peers that have not announced for two intervals are gone.
    fn peer_expiry(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.interval) * 2)
    }

    /// Drops expired peers from every swarm, and swarms left with nothing
    /// to tell, so that a long run with many torrents stays bounded.
    fn sweep(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < SWEEP_EVERY {
            return;
        }
        self.last_sweep = now;
        let expiry = self.peer_expiry();
        self.swarms.retain(|_, swarm| {
            swarm
                .peers
                .retain(|_, p| now.saturating_duration_since(p.last_seen) <= expiry);
            !swarm.peers.is_empty() || swarm.downloaded > 0
        });
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn swarm(&self, info_hash: &InfoHash) -> Option<&Swarm> {
        self.swarms.get(info_hash)
    }

    /// (swarms, peers in all of them).
    pub fn size(&self) -> (usize, usize) {
        let peers = self.swarms.values().map(|s| s.peers.len()).sum();
        (self.swarms.len(), peers)
    }

    /// Forgets every connection id (a new secret) and every swarm, as a
    /// tracker process restarting would; the counters stay.
    pub fn restart(&mut self, secret: [u8; 32], now: Instant) {
        self.ids = ConnectionIds { secret, epoch: now };
        self.swarms.clear();
    }

    /// Reads one datagram from `from` and returns the reply to send, if any.
    pub fn handle<R: Rng + ?Sized>(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        rng: &mut R,
    ) -> Option<Reply> {
        self.sweep(now);
        let reply_to = from;
        let from = canonical(from);
        let faults = &self.config.faults;
        if chance(rng, faults.loss) {
            self.stats.dropped_loss += 1;
            return None;
        }
        let response = match self.decide(datagram, from, now, rng) {
            Decision::Reply(response) => response,
            Decision::Drop => return None,
        };
        let faults = &self.config.faults;
        if chance(rng, faults.loss) {
            self.stats.dropped_loss += 1;
            return None;
        }
        let copies = if chance(rng, faults.duplicate) { 2 } else { 1 };
        let (min, max) = faults.delay;
        let delay = if max > min {
            rng.random_range(min..=max)
        } else {
            min
        };
        if matches!(response, Response::Error(_)) {
            self.stats.errors += 1;
        }
        self.stats.replies += u64::from(copies);
        self.stats.duplicates += u64::from(copies - 1);
        let mut bytes = Vec::new();
        response.write(&mut bytes);
        Some(Reply {
            to: reply_to,
            bytes,
            delay,
            copies,
        })
    }

    fn decide<R: Rng + ?Sized>(
        &mut self,
        datagram: &[u8],
        from: SocketAddr,
        now: Instant,
        rng: &mut R,
    ) -> Decision {
        let Some(header) = RequestHeader::parse(datagram) else {
            self.stats.invalid += 1;
            self.stats.dropped_malformed += 1;
            return Decision::Drop;
        };
        let request = Request::parse(datagram);
        match &request {
            Some(Request::Connect(_)) => self.stats.connect += 1,
            Some(Request::Announce(_)) => self.stats.announce += 1,
            Some(Request::Scrape(_)) => self.stats.scrape += 1,
            None => self.stats.invalid += 1,
        }
        if let Some(Request::Connect(connect)) = request {
            return Decision::Reply(Response::Connect(ConnectResponse {
                transaction_id: connect.transaction_id,
                connection_id: self.ids.issue(from.ip(), now),
            }));
        }
        if !self.ids.is_valid(header.connection_id, from.ip(), now) {
            if request.is_some() {
                self.stats.dropped_connection_id += 1;
            } else {
                self.stats.dropped_malformed += 1;
            }
            return Decision::Drop;
        }
        match request {
            Some(Request::Announce(announce)) => self.announce(announce, from, now, rng),
            Some(Request::Scrape(scrape)) => self.scrape(&scrape),
            // A connect was answered above.
            Some(Request::Connect(_)) | None => {
                Decision::Reply(error(header.transaction_id, "malformed request"))
            }
        }
    }

    /// `silent_for` wins over `error_for`; the first listed hash decides.
    fn refusal(&mut self, hashes: &[InfoHash], transaction_id: TransactionId) -> Option<Decision> {
        let faults = &self.config.faults;
        if hashes.iter().any(|h| faults.silent_for.contains(h)) {
            self.stats.dropped_silent += 1;
            return Some(Decision::Drop);
        }
        hashes
            .iter()
            .find_map(|h| faults.error_for.get(h))
            .map(|text| Decision::Reply(error(transaction_id, text)))
    }

    fn announce<R: Rng + ?Sized>(
        &mut self,
        announce: AnnounceRequest,
        from: SocketAddr,
        now: Instant,
        rng: &mut R,
    ) -> Decision {
        let transaction_id = announce.transaction_id;
        let request = announce.params;
        if let Some(refused) = self.refusal(&[request.info_hash], transaction_id) {
            return refused;
        }
        let expiry = self.peer_expiry();
        let swarm = self.swarms.entry(request.info_hash).or_default();
        swarm
            .peers
            .retain(|_, p| now.saturating_duration_since(p.last_seen) <= expiry);
        let addr = SocketAddr::new(from.ip(), request.port);
        if request.event == AnnounceEvent::Stopped {
            swarm.peers.remove(&request.peer_id);
        } else {
            let peer = swarm.peers.entry(request.peer_id).or_insert_with(|| Peer {
                peer_id: request.peer_id,
                addr,
                downloaded: 0,
                left: 0,
                uploaded: 0,
                event: AnnounceEvent::None,
                key: 0,
                ip: 0,
                url_data: Vec::new(),
                last_seen: now,
                counted_download: false,
            });
            peer.addr = addr;
            peer.downloaded = request.downloaded;
            peer.left = request.left;
            peer.uploaded = request.uploaded;
            peer.event = request.event;
            peer.key = request.key;
            peer.ip = request.ip;
            peer.url_data = request.url_data;
            peer.last_seen = now;
            if request.event == AnnounceEvent::Completed && !peer.counted_download {
                peer.counted_download = true;
                swarm.downloaded = swarm.downloaded.saturating_add(1);
            }
        }
        let (seeders, leechers) = swarm.counts();
        let wanted = usize::try_from(request.num_want)
            .map_or(self.config.max_peers, |n| n.min(self.config.max_peers));
        let peers = if request.event == AnnounceEvent::Stopped {
            Vec::new()
        } else {
            let mut candidates: Vec<SocketAddr> = swarm
                .peers
                .values()
                .filter(|p| {
                    p.peer_id != request.peer_id
                        && p.addr != addr
                        && p.addr.is_ipv4() == addr.is_ipv4()
                })
                .map(|p| p.addr)
                .collect();
            // A HashMap's order differs from run to run: sorted, the same
            // seed picks the same peers.
            candidates.sort_unstable();
            candidates.into_iter().choose_multiple(rng, wanted)
        };
        Decision::Reply(Response::Announce(AnnounceResponse {
            transaction_id,
            interval: self.config.interval,
            leechers,
            seeders,
            peers,
        }))
    }

    fn scrape(&mut self, request: &ScrapeRequest) -> Decision {
        let hashes = &request.info_hashes[..request.info_hashes.len().min(self.config.max_scrape)];
        if let Some(refused) = self.refusal(hashes, request.transaction_id) {
            return refused;
        }
        let stats = hashes
            .iter()
            .map(|h| {
                self.swarms.get(h).map_or(
                    ScrapeStats {
                        seeders: 0,
                        completed: 0,
                        leechers: 0,
                    },
                    Swarm::scrape_stats,
                )
            })
            .collect();
        Decision::Reply(Response::Scrape(ScrapeResponse {
            transaction_id: request.transaction_id,
            stats,
        }))
    }
}

fn error(transaction_id: TransactionId, message: &str) -> Response {
    Response::Error(ErrorResponse {
        transaction_id,
        message: message.to_owned(),
    })
}

/// An IPv4 client reaching a dual-stack socket is still an IPv4 client: its
/// replies carry 6-byte peers.
fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => addr,
        },
        SocketAddr::V4(_) => addr,
    }
}

/// True with probability `p`; draws nothing when `p` is 0, so a tracker
/// without faults uses no randomness for them.
fn chance<R: Rng + ?Sized>(rng: &mut R, p: f64) -> bool {
    p > 0.0 && rng.random_bool(p.min(1.0))
}

#[cfg(test)]
mod tests;
