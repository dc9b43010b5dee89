//! The only place that touches sockets, DNS and timers.
//!
//! One thread runs a current-thread tokio runtime with one UDP socket per
//! address family, created on first use and shared by every request of the
//! process. Commands arrive on a channel; finished requests leave in batches
//! through the `Sink`, one call per turn of the loop rather than per datagram.

mod batch;

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::proto::socks5::Address;
use crate::proxy::{Proxies, ProxyConfig, ProxyStats};
use crate::session::{
    Completion, Outcome, RequestError, RequestId, RequestKind, RequestOptions, Scope, Session,
    Stats, Transmit,
};
use batch::Received;

/// Which address family to use for a tracker host name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Family {
    /// IPv4 when the name has an IPv4 address, else IPv6.
    #[default]
    Auto,
    V4,
    V6,
}

/// Where and how requests go: shared by every request to one tracker URL
/// with the same options.
#[derive(Debug)]
pub struct Target {
    /// Host name or address literal (IPv6 with or without brackets).
    pub host: String,
    pub port: u16,
    pub family: Family,
    pub options: RequestOptions,
    /// `host` parsed as an address, when it is one.
    literal: Option<IpAddr>,
    /// The SOCKS5 proxy every request to this target goes through (`proxy.rs`).
    proxy: Option<ProxyConfig>,
}

impl Target {
    pub fn new(host: String, port: u16, family: Family, options: RequestOptions) -> Target {
        let literal = strip_brackets(&host).parse().ok();
        Target {
            host,
            port,
            family,
            options,
            literal,
            proxy: None,
        }
    }

    /// Sends every request to this target through `proxy`, never directly.
    pub fn with_proxy(mut self, proxy: ProxyConfig) -> Target {
        self.proxy = Some(proxy);
        self
    }

    pub fn proxy(&self) -> Option<&ProxyConfig> {
        self.proxy.as_ref()
    }
}

#[derive(Debug)]
pub struct StartRequest {
    pub id: RequestId,
    pub target: Arc<Target>,
    pub kind: RequestKind,
    /// Whose cached connection ids the request may reuse: the instance's
    /// own (class API, never 0), or 0, shared by every promise-API call.
    pub scope: Scope,
    /// When the JS tick that started it began handing requests over: the
    /// requests of one tick count as started together.
    pub tick_started: Instant,
}

impl StartRequest {
    /// The target's options with this request's connection-id scope.
    pub fn options(&self) -> RequestOptions {
        RequestOptions {
            scope: self.scope,
            ..self.target.options.clone()
        }
    }
}

#[derive(Debug)]
pub enum Command {
    /// The requests JS started in one tick, handled in one go: requests
    /// started together see each other (they share a connect) before the
    /// driver reads any reply.
    Start(Vec<StartRequest>),
    Cancel(RequestId),
    ForgetConnectionIds,
    Resolved {
        host: String,
        port: u16,
        result: Result<Vec<SocketAddr>, String>,
    },
    /// Requests through a proxy that finished (sent by its task in `proxy.rs`).
    ProxyCompleted(Vec<Completion>),
}

#[derive(Clone, Copy, Debug, Default)]
pub struct DriverStats {
    pub session: Stats,
    pub in_flight: usize,
    pub queued: usize,
    pub sockets: usize,
    pub cached_connection_ids: usize,
    /// Requests through SOCKS5 proxies (not counted above).
    pub proxy: ProxyStats,
}

/// One tracker address's congestion state, as `stats()` shows it.
#[derive(Clone, Debug)]
pub struct TrackerStats {
    pub address: SocketAddr,
    pub window: usize,
    pub outstanding: usize,
    pub waiting: usize,
    pub srtt: Option<Duration>,
    pub rttvar: Option<Duration>,
    pub retransmits: u64,
    pub losses: u64,
}

/// How often the per-tracker view is refreshed (it is a copy of every
/// tracker's state, too much for every turn of the loop).
const TRACKER_STATS_EVERY: Duration = Duration::from_millis(100);

/// Receives each batch of finished requests, on the driver's thread.
pub type Sink = Box<dyn FnMut(Vec<Completion>) + Send>;

/// Size asked of the kernel for each socket's receive buffer, so that a burst
/// of replies to many requests is not dropped (a drop costs a retransmit).
const RECEIVE_BUFFER: usize = 8 << 20;
const SEND_BUFFER: usize = 4 << 20;
/// Datagrams read per socket per turn of the loop before timers and commands
/// get their turn again.
const READ_BATCH: usize = 1024;
/// Datagrams sent per turn of the loop before the sockets are read again.
const SEND_BATCH: usize = 128;
/// Host name lookups are reused for this long.
const DNS_TTL: Duration = Duration::from_secs(60);
/// A name that did not resolve fails at once for this long (libtorrent's
/// figure), instead of being looked up again for every request.
const DNS_FAILURE_TTL: Duration = Duration::from_secs(150);

/// The driver's counters, published after every turn of its loop so that
/// reading them never waits for the driver thread.
#[derive(Debug, Default)]
struct SharedStats {
    sent: AtomicU64,
    received: AtomicU64,
    dropped_short: AtomicU64,
    dropped_unknown: AtomicU64,
    dropped_late: AtomicU64,
    dropped_wrong_source: AtomicU64,
    renewed_connection_ids: AtomicU64,
    retransmits: AtomicU64,
    losses: AtomicU64,
    in_flight: AtomicU64,
    queued: AtomicU64,
    sockets: AtomicU64,
    cached_connection_ids: AtomicU64,
    /// Starts and cancels sent and not yet handled by the driver, so that
    /// `in_flight` counts what the caller did before it asked.
    unhandled_starts: AtomicI64,
    unhandled_cancels: AtomicI64,
    trackers: Mutex<Vec<TrackerStats>>,
    proxy: Mutex<ProxyStats>,
}

impl SharedStats {
    fn publish(&self, s: &DriverStats) {
        let store = |cell: &AtomicU64, value: u64| cell.store(value, Ordering::Relaxed);
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        store(&self.sent, s.session.sent);
        store(&self.received, s.session.received);
        store(&self.dropped_short, s.session.dropped_short);
        store(&self.dropped_unknown, s.session.dropped_unknown);
        store(&self.dropped_late, s.session.dropped_late);
        store(&self.dropped_wrong_source, s.session.dropped_wrong_source);
        store(
            &self.renewed_connection_ids,
            s.session.renewed_connection_ids,
        );
        store(&self.retransmits, s.session.retransmits);
        store(&self.losses, s.session.losses);
        store(&self.in_flight, count(s.in_flight));
        store(&self.queued, count(s.queued));
        store(&self.sockets, count(s.sockets));
        store(&self.cached_connection_ids, count(s.cached_connection_ids));
        if let Ok(mut proxy) = self.proxy.lock() {
            *proxy = s.proxy;
        }
    }

    fn publish_trackers(&self, session: &Session) {
        let trackers = session
            .trackers()
            .map(|(address, t)| TrackerStats {
                address,
                window: t.window(),
                outstanding: t.outstanding(),
                waiting: t.waiting(),
                srtt: t.rtt().map(|r| r.srtt),
                rttvar: t.rtt().map(|r| r.rttvar),
                retransmits: t.retransmits(),
                losses: t.losses(),
            })
            .collect();
        if let Ok(mut published) = self.trackers.lock() {
            *published = trackers;
        }
    }

    /// Counts a command the caller sends (+1) or takes back (−1).
    fn unhandled(&self, command: &Command, delta: i64) {
        match command {
            Command::Start(starts) => self
                .unhandled_starts
                .fetch_add(delta * count(starts), Ordering::Relaxed),
            Command::Cancel(_) => self.unhandled_cancels.fetch_add(delta, Ordering::Relaxed),
            _ => 0,
        };
    }

    fn read(&self) -> DriverStats {
        let load = |cell: &AtomicU64| cell.load(Ordering::Relaxed);
        let count = |cell: &AtomicU64| usize::try_from(load(cell)).unwrap_or(usize::MAX);
        let in_flight = i64::try_from(load(&self.in_flight)).unwrap_or(i64::MAX)
            + self.unhandled_starts.load(Ordering::Relaxed)
            - self.unhandled_cancels.load(Ordering::Relaxed);
        DriverStats {
            session: Stats {
                sent: load(&self.sent),
                received: load(&self.received),
                dropped_short: load(&self.dropped_short),
                dropped_unknown: load(&self.dropped_unknown),
                dropped_late: load(&self.dropped_late),
                dropped_wrong_source: load(&self.dropped_wrong_source),
                renewed_connection_ids: load(&self.renewed_connection_ids),
                retransmits: load(&self.retransmits),
                losses: load(&self.losses),
            },
            in_flight: usize::try_from(in_flight.max(0)).unwrap_or(usize::MAX),
            queued: count(&self.queued),
            sockets: count(&self.sockets),
            cached_connection_ids: count(&self.cached_connection_ids),
            proxy: self.proxy.lock().map(|p| *p).unwrap_or_default(),
        }
    }
}

/// How many requests a start command carries, as the counters take it.
fn count(starts: &[StartRequest]) -> i64 {
    i64::try_from(starts.len()).unwrap_or(i64::MAX)
}

/// Starts and cancels the driver handled in one turn of its loop.
#[derive(Default)]
struct Handled {
    starts: i64,
    cancels: i64,
}

impl Handled {
    fn push(&mut self, command: &Command) {
        match command {
            Command::Start(starts) => self.starts += count(starts),
            Command::Cancel(_) => self.cancels += 1,
            _ => {}
        }
    }

    fn settle(&mut self, stats: &SharedStats) {
        if self.starts != 0 {
            stats
                .unhandled_starts
                .fetch_sub(self.starts, Ordering::Relaxed);
        }
        if self.cancels != 0 {
            stats
                .unhandled_cancels
                .fetch_sub(self.cancels, Ordering::Relaxed);
        }
        *self = Handled::default();
    }
}

/// A handle to the driver thread; dropping every handle stops it.
#[derive(Clone)]
pub struct Driver {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<SharedStats>,
}

impl Driver {
    pub fn spawn(sink: Sink) -> io::Result<Driver> {
        let (tx, rx) = mpsc::unbounded_channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let resolver_tx = tx.downgrade();
        let stats = Arc::new(SharedStats::default());
        let published = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("udp-tracker".into())
            .spawn(move || runtime.block_on(run(rx, resolver_tx, sink, &published)))?;
        Ok(Driver {
            commands: tx,
            stats,
        })
    }

    /// Queues a command; false when the driver has stopped.
    pub fn send(&self, command: Command) -> bool {
        self.stats.unhandled(&command, 1);
        match self.commands.send(command) {
            Ok(()) => true,
            Err(mpsc::error::SendError(command)) => {
                self.stats.unhandled(&command, -1);
                false
            }
        }
    }

    /// The counters as of the driver's last turn; `None` once it has stopped.
    /// Never waits for the driver thread.
    pub fn stats(&self) -> Option<DriverStats> {
        (!self.commands.is_closed()).then(|| self.stats.read())
    }

    /// Each tracker address's congestion state, at most 100 ms old.
    pub fn tracker_stats(&self) -> Vec<TrackerStats> {
        self.stats
            .trackers
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default()
    }
}

type HostPort = (String, u16);

enum Lookup {
    Pending(Vec<StartRequest>),
    Done { addrs: Vec<SocketAddr>, at: Instant },
    Failed { message: String, at: Instant },
}

impl Lookup {
    /// Whether this is a finished lookup too old to reuse at `now`.
    fn expired(&self, now: Instant) -> bool {
        match self {
            Lookup::Pending(_) => false,
            Lookup::Done { at, .. } => now.saturating_duration_since(*at) >= DNS_TTL,
            Lookup::Failed { at, .. } => now.saturating_duration_since(*at) >= DNS_FAILURE_TTL,
        }
    }
}

struct State {
    session: Session,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    lookups: HashMap<HostPort, Lookup>,
    /// The lookup each request waiting on a name waits for, so a cancel
    /// finds it without scanning every lookup.
    waiting_on: HashMap<RequestId, HostPort>,
    /// When `lookups` was last pruned of expired entries.
    pruned: Instant,
    resolver_tx: mpsc::WeakUnboundedSender<Command>,
    done: Vec<Completion>,
    proxies: Proxies,
    /// The datagrams of the send in progress (kept for its allocation).
    outgoing: Vec<Transmit>,
    /// Whether each socket (IPv4, IPv6) sends runs of equal datagrams as
    /// one segmented message (`batch.rs`).
    segment: [bool; 2],
}

async fn run(
    mut commands: mpsc::UnboundedReceiver<Command>,
    resolver_tx: mpsc::WeakUnboundedSender<Command>,
    mut sink: Sink,
    stats: &SharedStats,
) {
    let mut state = State {
        session: Session::new(),
        v4: None,
        v6: None,
        lookups: HashMap::new(),
        waiting_on: HashMap::new(),
        pruned: Instant::now(),
        proxies: Proxies::new(resolver_tx.clone()),
        resolver_tx,
        done: Vec::new(),
        outgoing: Vec::with_capacity(batch::BATCH),
        segment: [false; 2],
    };
    let mut buf = Received::new();
    let mut handled = Handled::default();
    let mut trackers_published = Instant::now();
    let mut trackers_changed = false;
    loop {
        let wake = state.session.poll_timeout();
        let sends_waiting = state.session.has_transmits();
        let publish_at = trackers_published + TRACKER_STATS_EVERY;
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                handled.push(&command);
                state.handle(command);
                while let Ok(command) = commands.try_recv() {
                    handled.push(&command);
                    state.handle(command);
                }
            }
            _ = readable(state.v4.as_ref()) => state.read_all(true, &mut buf),
            _ = readable(state.v6.as_ref()) => state.read_all(false, &mut buf),
            _ = sleep_until(wake) => state.session.handle_timeout(Instant::now()),
            // The last changes of a burst reach the per-tracker view too.
            _ = sleep_until(Some(publish_at)), if trackers_changed => {}
            () = std::future::ready(()), if sends_waiting => {}
        }
        // Send a slice of what is queued, then read what has arrived, so that
        // a burst of requests never lets replies pile up in the kernel until
        // it drops them (a dropped reply costs a 2·timeout retransmit).
        state.flush(SEND_BATCH).await;
        state.read_all(true, &mut buf);
        state.read_all(false, &mut buf);
        while let Some(completion) = state.session.poll_completion() {
            state.done.push(completion);
        }
        // The snapshot first, then the commands it reflects leave the
        // unhandled counts: a reader never misses a start or a cancel.
        stats.publish(&state.stats());
        handled.settle(stats);
        trackers_changed = true;
        if trackers_published.elapsed() >= TRACKER_STATS_EVERY {
            trackers_published = Instant::now();
            stats.publish_trackers(&state.session);
            trackers_changed = false;
        }
        if !state.done.is_empty() {
            sink(std::mem::take(&mut state.done));
        }
    }
}

async fn readable(socket: Option<&UdpSocket>) {
    match socket {
        Some(socket) => {
            // An error here resurfaces from try_recv_from, where it is handled.
            let _ = socket.readable().await;
        }
        None => std::future::pending().await,
    }
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

impl State {
    fn handle(&mut self, command: Command) {
        match command {
            Command::Start(starts) => {
                for start in starts {
                    self.start(start);
                }
            }
            Command::Cancel(id) => {
                self.session.cancel(id, Instant::now());
                self.proxies.cancel(id);
                if let Some(key) = self.waiting_on.remove(&id) {
                    if let Some(Lookup::Pending(waiting)) = self.lookups.get_mut(&key) {
                        waiting.retain(|s| s.id != id);
                    }
                }
            }
            Command::ForgetConnectionIds => {
                self.session.forget_connection_ids();
                self.proxies.forget_connection_ids();
            }
            Command::Resolved { host, port, result } => self.resolved(host, port, result),
            Command::ProxyCompleted(batch) => self.done.extend(batch),
        }
    }

    fn stats(&self) -> DriverStats {
        DriverStats {
            session: self.session.stats(),
            in_flight: self.session.in_flight() + self.waiting_on.len(),
            queued: self.session.queued(),
            sockets: usize::from(self.v4.is_some()) + usize::from(self.v6.is_some()),
            cached_connection_ids: self.session.connection_ids().len(),
            proxy: self.proxies.stats(),
        }
    }

    fn start(&mut self, start: StartRequest) {
        let remote_dns = start.target.proxy.as_ref().is_some_and(|p| p.remote_dns);
        if remote_dns && start.target.literal.is_none() {
            // socks5h://: the proxy resolves the name; it is never looked up here.
            let name = strip_brackets(&start.target.host).as_bytes().to_vec();
            let port = start.target.port;
            self.proxies.start(start, Address::Name(name, port));
            return;
        }
        if let Some(ip) = start.target.literal {
            let tracker = SocketAddr::new(ip, start.target.port);
            self.begin(start, tracker, None);
            return;
        }
        let now = Instant::now();
        self.prune_lookups(now);
        let key = (start.target.host.clone(), start.target.port);
        match self.lookups.get_mut(&key) {
            Some(lookup) if lookup.expired(now) => {
                self.lookups.remove(&key);
                self.lookup(key, start);
            }
            Some(Lookup::Done { addrs, .. }) => {
                let addrs = addrs.clone();
                self.begin_resolved(start, &addrs);
            }
            Some(Lookup::Failed { message, .. }) => {
                let error = RequestError::Resolve(message.clone());
                self.fail_now(start.id, error);
            }
            Some(Lookup::Pending(waiting)) => {
                self.waiting_on.insert(start.id, key);
                waiting.push(start);
            }
            None => self.lookup(key, start),
        }
    }

    /// Looks `key` up for `start` (and whoever asks for it meanwhile).
    fn lookup(&mut self, key: HostPort, start: StartRequest) {
        self.waiting_on.insert(start.id, key.clone());
        self.lookups
            .insert(key.clone(), Lookup::Pending(vec![start]));
        self.spawn_lookup(key.0, key.1);
    }

    /// Drops expired lookups, at most once per `DNS_TTL`: a long-running
    /// process that named many hosts does not keep them all.
    fn prune_lookups(&mut self, now: Instant) {
        if now.saturating_duration_since(self.pruned) >= DNS_TTL {
            self.pruned = now;
            self.lookups.retain(|_, lookup| !lookup.expired(now));
        }
    }

    fn spawn_lookup(&self, host: String, port: u16) {
        let tx = self.resolver_tx.clone();
        tokio::spawn(async move {
            let result = match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(addrs) => Ok(addrs.collect::<Vec<_>>()),
                Err(e) => Err(format!("cannot resolve {host}: {e}")),
            };
            if let Some(tx) = tx.upgrade() {
                let _ = tx.send(Command::Resolved { host, port, result });
            }
        });
    }

    fn resolved(&mut self, host: String, port: u16, result: Result<Vec<SocketAddr>, String>) {
        let key = (host, port);
        let waiting = match self.lookups.remove(&key) {
            Some(Lookup::Pending(waiting)) => waiting,
            Some(done) => {
                self.lookups.insert(key, done);
                return;
            }
            None => return,
        };
        for start in &waiting {
            self.waiting_on.remove(&start.id);
        }
        let at = Instant::now();
        match result {
            Ok(addrs) => {
                for start in waiting {
                    self.begin_resolved(start, &addrs);
                }
                self.lookups.insert(key, Lookup::Done { addrs, at });
            }
            Err(message) => {
                for start in waiting {
                    self.fail_now(start.id, RequestError::Resolve(message.clone()));
                }
                self.lookups.insert(key, Lookup::Failed { message, at });
            }
        }
    }

    fn begin_resolved(&mut self, start: StartRequest, addrs: &[SocketAddr]) {
        let target = &start.target;
        match pick_address(addrs, target.family) {
            Some((tracker, fallback)) => self.begin(start, tracker, fallback),
            None => {
                let message = match target.family {
                    Family::V6 => format!("no IPv6 address for {}", target.host),
                    Family::V4 => format!("no IPv4 address for {}", target.host),
                    Family::Auto => format!("no address for {}", target.host),
                };
                self.fail_now(start.id, RequestError::Resolve(message));
            }
        }
    }

    fn begin(&mut self, start: StartRequest, tracker: SocketAddr, fallback: Option<SocketAddr>) {
        let family_ok = match start.target.family {
            Family::Auto => true,
            Family::V4 => tracker.is_ipv4(),
            Family::V6 => tracker.is_ipv6(),
        };
        if !family_ok {
            let message = format!("{} is not an address of the requested family", tracker.ip());
            self.fail_now(start.id, RequestError::Send(message));
            return;
        }
        if start.target.proxy.is_some() {
            self.proxies.start(start, Address::Ip(tracker));
            return;
        }
        let options = start.options();
        self.session.start_together(
            Instant::now(),
            start.tick_started,
            start.id,
            tracker,
            fallback,
            start.kind,
            options,
        );
    }

    fn fail_now(&mut self, id: RequestId, error: RequestError) {
        self.done.push(Completion {
            id,
            outcome: Outcome::Failed(error),
        });
    }

    /// Reads every datagram waiting on one socket, up to `READ_BATCH`.
    fn read_all(&mut self, v4: bool, buf: &mut Received) {
        let socket = if v4 { &self.v4 } else { &self.v6 };
        let Some(socket) = socket else { return };
        let now = Instant::now();
        let mut read = 0;
        while read < READ_BATCH {
            match buf.recv(socket) {
                Ok(count) => {
                    for (from, bytes) in buf.datagrams() {
                        self.session.handle_datagram(now, from, bytes);
                    }
                    read += count.max(1);
                }
                // WouldBlock: drained. Anything else (an ICMP error queued on
                // the socket) says nothing about which request it concerns;
                // those requests run into their timeouts.
                Err(_) => break,
            }
        }
    }

    /// Sends up to `limit` of the datagrams the session has queued, a batch
    /// per system call where the platform allows. Each chunk is grouped by
    /// destination and then by size (in the session's order within each
    /// group), so that the datagrams of many torrents to a few trackers,
    /// which the session queues interleaved, leave as a few segmented
    /// messages rather than one message each.
    async fn flush(&mut self, limit: usize) {
        let mut outgoing = std::mem::take(&mut self.outgoing);
        let mut left = limit;
        while left > 0 {
            outgoing.clear();
            outgoing.extend(std::iter::from_fn(|| self.session.poll_transmit()).take(left));
            if outgoing.is_empty() {
                break;
            }
            left -= outgoing.len();
            // A stable sort: the datagrams of one destination and size keep
            // their order (a shorter one to the same tracker may go first).
            outgoing.sort_by_key(|t| (t.destination.is_ipv6(), t.destination, t.payload.len()));
            // Runs of one address family, each through its socket.
            let mut rest = outgoing.as_slice();
            while let Some(first) = rest.first() {
                let v4 = first.destination.is_ipv4();
                let run = rest.iter().take_while(|t| t.destination.is_ipv4() == v4);
                let (now, later) = rest.split_at(run.count());
                self.send_run(v4, now).await;
                rest = later;
            }
        }
        self.outgoing = outgoing;
    }

    /// Sends `run`, datagrams to addresses of one family, in order; each
    /// that cannot be sent is reported to the session.
    async fn send_run(&mut self, v4: bool, run: &[Transmit]) {
        let (slot, segment) = if v4 {
            (&mut self.v4, &mut self.segment[0])
        } else {
            (&mut self.v6, &mut self.segment[1])
        };
        let socket = match socket(slot, segment, v4) {
            Ok(socket) => socket,
            Err(e) => {
                let message = format!("cannot open a UDP socket: {e}");
                for transmit in run {
                    self.session
                        .handle_send_error(Instant::now(), transmit.owner, &message);
                }
                return;
            }
        };
        let mut sent = 0;
        while let Some(rest) = run.get(sent..).filter(|rest| !rest.is_empty()) {
            let error = match batch::send(socket, rest, segment) {
                Ok(count) => {
                    sent += count.max(1);
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match socket.writable().await {
                    Ok(()) => continue,
                    Err(e) => e,
                },
                Err(e) => e,
            };
            // The first datagram of `rest` could not be sent; the next ones
            // may well be (another destination).
            if let Some(transmit) = rest.first() {
                self.session
                    .handle_send_error(Instant::now(), transmit.owner, &error.to_string());
            }
            sent += 1;
        }
    }
}

/// The socket in `slot`, bound first if it is not yet (and `segment` set
/// to whether it can send segmented messages).
fn socket<'a>(
    slot: &'a mut Option<UdpSocket>,
    segment: &mut bool,
    v4: bool,
) -> io::Result<&'a UdpSocket> {
    if slot.is_none() {
        let socket = bind(v4)?;
        *segment = batch::can_segment(&socket);
        *slot = Some(socket);
    }
    slot.as_ref()
        .ok_or_else(|| io::Error::other("socket missing after bind"))
}

fn bind(v4: bool) -> io::Result<UdpSocket> {
    let any = if v4 {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    bind_udp(SocketAddr::new(any, 0))
}

/// A non-blocking UDP socket bound to `local`, with large buffers; also the
/// relay socket of a SOCKS5 association (`proxy.rs`).
pub(crate) fn bind_udp(local: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if local.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: the kernel caps these at net.core.rmem_max / wmem_max.
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    let _ = socket.set_send_buffer_size(SEND_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&local.into())?;
    UdpSocket::from_std(socket.into())
}

fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// The address to try first and, for `Auto` with both families, the other
/// family's address to fall back on.
fn pick_address(addrs: &[SocketAddr], family: Family) -> Option<(SocketAddr, Option<SocketAddr>)> {
    let v4 = addrs.iter().copied().find(SocketAddr::is_ipv4);
    let v6 = addrs.iter().copied().find(SocketAddr::is_ipv6);
    match family {
        Family::Auto => v4.map(|a| (a, v6)).or(v6.map(|a| (a, None))),
        Family::V4 => v4.map(|a| (a, None)),
        Family::V6 => v6.map(|a| (a, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_addresses_lose_their_brackets() {
        assert_eq!(strip_brackets("[::1]"), "::1");
        assert_eq!(strip_brackets("127.0.0.1"), "127.0.0.1");
    }

    #[test]
    fn auto_prefers_ipv4_and_forced_families_never_cross() {
        let addrs: Vec<SocketAddr> =
            vec!["[::1]:1".parse().unwrap(), "127.0.0.1:1".parse().unwrap()];
        assert_eq!(
            pick_address(&addrs, Family::Auto),
            Some((addrs[1], Some(addrs[0])))
        );
        assert_eq!(
            pick_address(&addrs[..1], Family::Auto),
            Some((addrs[0], None))
        );
        assert_eq!(pick_address(&addrs, Family::V6), Some((addrs[0], None)));
        assert_eq!(pick_address(&addrs[..1], Family::V4), None);
    }
}
