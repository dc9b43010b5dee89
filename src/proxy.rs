//! Tracker traffic through a SOCKS5 proxy (RFC 1928 UDP ASSOCIATE, RFC 1929
//! username/password). Part of the driver layer: like `driver.rs`, it touches
//! sockets, DNS and timers; the bytes come from `proto::socks5`.
//!
//! Each proxy (host, port and credentials) gets one task on the driver's
//! runtime owning:
//! - one TCP control connection and one UDP relay socket, shared by every
//!   request through that proxy;
//! - its own [`Session`], so connection ids, transaction ids and retransmit
//!   timers of proxied requests are kept apart from direct ones: an id
//!   obtained through the proxy is never used directly, and the other way
//!   round (connection ids are per (proxy, tracker));
//! - a map from `socks5h://` host names to placeholder addresses in the
//!   discard-only prefix `100::/64` (RFC 6666), which is how its session keys
//!   a tracker the proxy resolves. Those names are never resolved here.
//!
//! **Fail closed.** A proxied request only ever becomes a datagram on the
//! relay socket, wrapped in the §7 header. While the association is being set
//! up, requests wait for it; when it cannot be set up, or its control
//! connection closes, they fail with [`RequestError::Proxy`]. After a close
//! the next request reconnects at once; after a failed attempt, requests fail
//! at once for a backoff of 1 s, doubling to 60 s, then the next one tries
//! again. Nothing of a proxied request is ever sent from the direct sockets.
//!
//! Replies: only datagrams from the relay's address (IP and port) are read;
//! fragments (FRAG ≠ 0) and malformed headers are dropped and counted. The
//! header's source address is then checked by the session like a direct
//! reply's (`strictSource`), except for a tracker addressed by name, whose
//! address only the proxy knows: its replies are matched by transaction id.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::driver::{bind_udp, sleep_until, Command, StartRequest};
use crate::proto::peek_transaction_id;
use crate::proto::socks5::{self, Address, Socks5Error};
use crate::session::{Completion, Outcome, RequestError, RequestId, Session, Stats};

/// How long connecting, greeting, authenticating and associating may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after the first failed attempt; it doubles up to `LONGEST_BACKOFF`.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
pub const LONGEST_BACKOFF: Duration = Duration::from_secs(60);
/// An association with no request for this long is closed (the next request
/// sets up another).
pub const IDLE_CLOSE: Duration = Duration::from_secs(300);
/// Requests out at once through one proxy (see `session::DEFAULT_WINDOW`): a
/// proxy relays every datagram through one socket of its own, whose buffer a
/// burst overflows long before a tracker's does (danted drops beyond a few
/// hundred, and a drop costs a retransmission 2·timeout later).
pub const WINDOW: usize = 128;
const READ_BATCH: usize = 1024;
const SEND_BATCH: usize = 128;

/// Which proxy: one association per distinct value.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ProxyKey {
    /// Host name or address literal (IPv6 with or without brackets).
    pub host: String,
    pub port: u16,
    /// RFC 1929 user name (1–255 bytes) and password (0–255 bytes).
    pub credentials: Option<(Vec<u8>, Vec<u8>)>,
}

impl ProxyKey {
    /// `SOCKS5 proxy host:port`, for messages; never the credentials.
    pub fn label(&self) -> String {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        if host.contains(':') {
            format!("SOCKS5 proxy [{host}]:{}", self.port)
        } else {
            format!("SOCKS5 proxy {host}:{}", self.port)
        }
    }
}

impl fmt::Debug for ProxyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyKey")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials.as_ref().map(|_| "…"))
            .finish()
    }
}

/// A target's proxy: `socks5://` resolves tracker names locally,
/// `socks5h://` (`remote_dns`) hands them to the proxy (ATYP 3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    pub key: ProxyKey,
    pub remote_dns: bool,
}

/// Counters of every proxy together.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProxyStats {
    /// The proxied requests' sessions: sent, received and dropped datagrams.
    pub session: Stats,
    pub in_flight: usize,
    pub cached_connection_ids: usize,
    /// Associations up (one control connection and one relay socket each).
    pub associations: usize,
    /// Datagrams on a relay socket from another address than the relay's.
    pub dropped_relay_source: u64,
    /// Datagram fragments (FRAG ≠ 0), never reassembled.
    pub dropped_fragments: u64,
    /// Datagrams whose §7 header could not be read.
    pub dropped_malformed: u64,
}

impl ProxyStats {
    fn add(&mut self, other: &ProxyStats) {
        let (s, o) = (&mut self.session, &other.session);
        s.sent += o.sent;
        s.received += o.received;
        s.dropped_short += o.dropped_short;
        s.dropped_unknown += o.dropped_unknown;
        s.dropped_late += o.dropped_late;
        s.dropped_wrong_source += o.dropped_wrong_source;
        self.in_flight += other.in_flight;
        self.cached_connection_ids += other.cached_connection_ids;
        self.associations += other.associations;
        self.dropped_relay_source += other.dropped_relay_source;
        self.dropped_fragments += other.dropped_fragments;
        self.dropped_malformed += other.dropped_malformed;
    }
}

enum Order {
    Start(Box<StartRequest>, Address),
    Cancel(RequestId),
    ForgetConnectionIds,
}

struct Handle {
    orders: mpsc::UnboundedSender<Order>,
    stats: Arc<Mutex<ProxyStats>>,
}

/// The driver's view: one task per proxy, started on first use.
pub struct Proxies {
    tasks: HashMap<ProxyKey, Handle>,
    driver: mpsc::WeakUnboundedSender<Command>,
}

impl Proxies {
    /// Completions go back to the driver as `Command::ProxyCompleted`.
    pub fn new(driver: mpsc::WeakUnboundedSender<Command>) -> Proxies {
        Proxies {
            tasks: HashMap::new(),
            driver,
        }
    }

    /// Starts a request through its target's proxy, to `destination`: the
    /// tracker's address, or its host name for `socks5h://`.
    pub fn start(&mut self, start: StartRequest, destination: Address) {
        let Some(config) = start.target.proxy() else {
            return;
        };
        let key = config.key.clone();
        let mut order = Order::Start(Box::new(start), destination);
        // A task ends only when its channel closes; try a fresh one if so.
        for _ in 0..2 {
            let handle = self
                .tasks
                .entry(key.clone())
                .or_insert_with(|| spawn(key.clone(), self.driver.clone()));
            match handle.orders.send(order) {
                Ok(()) => return,
                Err(mpsc::error::SendError(back)) => {
                    order = back;
                    self.tasks.remove(&key);
                }
            }
        }
    }

    pub fn cancel(&self, id: RequestId) {
        for handle in self.tasks.values() {
            let _ = handle.orders.send(Order::Cancel(id));
        }
    }

    pub fn forget_connection_ids(&self) {
        for handle in self.tasks.values() {
            let _ = handle.orders.send(Order::ForgetConnectionIds);
        }
    }

    pub fn stats(&self) -> ProxyStats {
        let mut total = ProxyStats::default();
        for handle in self.tasks.values() {
            let stats = handle.stats.lock().unwrap_or_else(|e| e.into_inner());
            total.add(&stats);
        }
        total
    }
}

fn spawn(key: ProxyKey, driver: mpsc::WeakUnboundedSender<Command>) -> Handle {
    let (orders, rx) = mpsc::unbounded_channel();
    let stats = Arc::new(Mutex::new(ProxyStats::default()));
    let task = Task {
        label: key.label(),
        key: Arc::new(key),
        session: {
            let mut session = Session::new();
            session.set_window(WINDOW, Instant::now());
            session
        },
        link: Link::Down,
        waiting: Vec::new(),
        live: HashSet::new(),
        names: Names::default(),
        failures: 0,
        retry_at: None,
        last_error: String::new(),
        idle_since: None,
        counters: ProxyStats::default(),
        shared: Arc::clone(&stats),
        driver,
        done: Vec::new(),
        out: Vec::new(),
    };
    tokio::spawn(task.run(rx));
    Handle { orders, stats }
}

struct Association {
    control: TcpStream,
    relay: UdpSocket,
    relay_addr: SocketAddr,
}

type Handshake = Pin<Box<dyn Future<Output = Result<Association, String>> + Send>>;

enum Link {
    Down,
    Connecting(Handshake),
    Up(Association),
}

enum LinkEvent {
    Associated(Result<Association, String>),
    Readable,
    Closed(String),
}

async fn link_event(link: &mut Link) -> LinkEvent {
    match link {
        Link::Down => std::future::pending().await,
        Link::Connecting(handshake) => LinkEvent::Associated(handshake.as_mut().await),
        Link::Up(association) => tokio::select! {
            _ = association.relay.readable() => LinkEvent::Readable,
            reason = control_closed(&association.control) => LinkEvent::Closed(reason),
        },
    }
}

/// Waits until the proxy closes the control connection (RFC 1928 §7: the
/// association ends with it). Nothing else is expected on it.
async fn control_closed(control: &TcpStream) -> String {
    let mut buf = [0u8; 256];
    loop {
        if let Err(e) = control.readable().await {
            return format!("control connection closed: {e}");
        }
        match control.try_read(&mut buf) {
            Ok(0) => return "control connection closed".to_owned(),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return format!("control connection closed: {e}"),
        }
    }
}

/// `socks5h://` host names and the placeholder addresses their requests
/// carry in the session: `100::/64` (RFC 6666, discard only), never routed.
#[derive(Default)]
struct Names {
    by_name: HashMap<(Vec<u8>, u16), SocketAddr>,
    by_addr: HashMap<SocketAddr, Vec<u8>>,
}

impl Names {
    fn placeholder(&mut self, name: Vec<u8>, port: u16) -> SocketAddr {
        let next = self.by_addr.len() as u128;
        let key = (name, port);
        if let Some(&addr) = self.by_name.get(&key) {
            return addr;
        }
        let ip = Ipv6Addr::from((0x0100_u128 << 112) | next);
        let addr = SocketAddr::new(IpAddr::V6(ip), port);
        self.by_addr.insert(addr, key.0.clone());
        self.by_name.insert(key, addr);
        addr
    }

    fn name_of(&self, addr: SocketAddr) -> Option<&[u8]> {
        self.by_addr.get(&addr).map(Vec::as_slice)
    }
}

struct Task {
    key: Arc<ProxyKey>,
    label: String,
    session: Session,
    link: Link,
    /// Requests waiting for the association to come up.
    waiting: Vec<(Box<StartRequest>, Address)>,
    /// Requests started in `session` and not finished.
    live: HashSet<RequestId>,
    names: Names,
    /// Failed attempts since the last association came up.
    failures: u32,
    /// Until then, new requests fail at once with `last_error`.
    retry_at: Option<Instant>,
    last_error: String,
    idle_since: Option<Instant>,
    counters: ProxyStats,
    shared: Arc<Mutex<ProxyStats>>,
    driver: mpsc::WeakUnboundedSender<Command>,
    /// Requests failed by the proxy, sent to the driver with the next batch.
    done: Vec<Completion>,
    out: Vec<u8>,
}

impl Task {
    async fn run(mut self, mut orders: mpsc::UnboundedReceiver<Order>) {
        let mut buf = vec![0u8; 65536];
        loop {
            let wake = earliest(
                self.session.poll_timeout(),
                self.idle_since.map(|t| t + IDLE_CLOSE),
            );
            let sends_waiting = self.session.has_transmits();
            tokio::select! {
                order = orders.recv() => {
                    let Some(order) = order else { break };
                    self.handle(order);
                    while let Ok(order) = orders.try_recv() {
                        self.handle(order);
                    }
                }
                event = link_event(&mut self.link) => match event {
                    LinkEvent::Associated(result) => self.associated(result),
                    LinkEvent::Readable => self.read_relay(&mut buf),
                    LinkEvent::Closed(reason) => self.closed(&reason),
                },
                () = sleep_until(wake) => self.on_timer(),
                () = std::future::ready(()), if sends_waiting => {}
            }
            self.flush().await;
            self.read_relay(&mut buf);
            self.report();
        }
    }

    fn handle(&mut self, order: Order) {
        let now = Instant::now();
        match order {
            Order::Start(start, destination) => {
                self.forget_request(start.id, now);
                match &self.link {
                    Link::Up(_) => self.begin(now, *start, destination),
                    Link::Connecting(_) => self.waiting.push((start, destination)),
                    Link::Down => match self.retry_at {
                        Some(at) if at > now => {
                            let wait = at.saturating_duration_since(now).as_millis();
                            let message =
                                format!("{} (next attempt in {wait} ms)", self.last_error);
                            self.fail(start.id, message);
                        }
                        _ => {
                            self.waiting.push((start, destination));
                            self.link =
                                Link::Connecting(Box::pin(associate(Arc::clone(&self.key))));
                        }
                    },
                }
            }
            Order::Cancel(id) => self.forget_request(id, now),
            Order::ForgetConnectionIds => self.session.forget_connection_ids(),
        }
    }

    fn forget_request(&mut self, id: RequestId, now: Instant) {
        if self.live.remove(&id) {
            self.session.cancel(id, now);
        }
        self.waiting.retain(|(s, _)| s.id != id);
    }

    fn begin(&mut self, now: Instant, start: StartRequest, destination: Address) {
        let tracker = match destination {
            Address::Ip(addr) => addr,
            Address::Name(name, port) => self.names.placeholder(name, port),
        };
        self.idle_since = None;
        self.live.insert(start.id);
        // Connection ids follow the request's scope, as direct ones do.
        let options = start.options();
        self.session.start_together(
            now,
            start.tick_started,
            start.id,
            tracker,
            None,
            start.kind,
            options,
        );
    }

    fn associated(&mut self, result: Result<Association, String>) {
        let now = Instant::now();
        match result {
            Ok(association) => {
                self.link = Link::Up(association);
                // A new association may reach trackers from another address
                // or port, which ids issued through the old one may be tied to.
                self.session.forget_connection_ids();
                self.failures = 0;
                self.retry_at = None;
                for (start, destination) in std::mem::take(&mut self.waiting) {
                    self.begin(now, *start, destination);
                }
                if self.live.is_empty() {
                    self.idle_since = Some(now);
                }
            }
            Err(reason) => {
                self.link = Link::Down;
                self.failures = self.failures.saturating_add(1);
                let backoff = FIRST_BACKOFF
                    .checked_mul(1 << (self.failures - 1).min(16))
                    .map_or(LONGEST_BACKOFF, |b| b.min(LONGEST_BACKOFF));
                self.retry_at = Some(now + backoff);
                self.last_error = format!("{}: {reason}", self.label);
                for (start, _) in std::mem::take(&mut self.waiting) {
                    self.fail(start.id, self.last_error.clone());
                }
            }
        }
    }

    /// The control connection closed: the association is gone, and every
    /// request through it fails. The next request reconnects at once.
    fn closed(&mut self, reason: &str) {
        let now = Instant::now();
        self.link = Link::Down;
        self.retry_at = None;
        self.idle_since = None;
        let message = format!("{}: {reason}", self.label);
        let mut live: Vec<RequestId> = self.live.drain().collect();
        live.sort_unstable();
        for id in live {
            self.session.cancel(id, now);
            self.fail(id, message.clone());
        }
        // What the cancelled requests had queued must never go anywhere.
        while self.session.poll_transmit().is_some() {}
    }

    fn on_timer(&mut self) {
        let now = Instant::now();
        self.session.handle_timeout(now);
        let idle_over = self
            .idle_since
            .is_some_and(|since| now.saturating_duration_since(since) >= IDLE_CLOSE);
        if idle_over && self.live.is_empty() {
            self.link = Link::Down;
            self.idle_since = None;
        }
    }

    fn fail(&mut self, id: RequestId, message: String) {
        self.done.push(Completion {
            id,
            outcome: Outcome::Failed(RequestError::Proxy(message)),
        });
    }

    /// Sends up to a batch of the session's datagrams through the relay.
    async fn flush(&mut self) {
        let Link::Up(association) = &self.link else {
            // Only possible for datagrams of requests that were cancelled.
            while self.session.poll_transmit().is_some() {}
            return;
        };
        for _ in 0..SEND_BATCH {
            let Some(transmit) = self.session.poll_transmit() else {
                break;
            };
            let destination = match self.names.name_of(transmit.destination) {
                Some(name) => Address::Name(name.to_vec(), transmit.destination.port()),
                None => Address::Ip(transmit.destination),
            };
            self.out.clear();
            let result = match socks5::write_udp_header(&destination, &mut self.out) {
                Ok(()) => {
                    self.out.extend_from_slice(&transmit.payload);
                    send(&association.relay, &self.out, association.relay_addr).await
                }
                Err(e) => Err(io::Error::other(e)),
            };
            if let Err(e) = result {
                let message = format!("{}: cannot send to the relay: {e}", self.label);
                self.session
                    .handle_send_error(Instant::now(), transmit.owner, &message);
            }
        }
    }

    /// Reads what the relay socket holds, up to a batch.
    fn read_relay(&mut self, buf: &mut [u8]) {
        let Link::Up(association) = &self.link else {
            return;
        };
        let now = Instant::now();
        for _ in 0..READ_BATCH {
            let Ok((len, from)) = association.relay.try_recv_from(buf) else {
                break;
            };
            if from != association.relay_addr {
                self.counters.dropped_relay_source += 1;
                continue;
            }
            let bytes = buf.get(..len).unwrap_or(&[]);
            match socks5::parse_udp_datagram(bytes) {
                Ok((source, payload)) => {
                    deliver(&mut self.session, &self.names, now, &source, payload);
                }
                Err(Socks5Error::Fragment(_)) => self.counters.dropped_fragments += 1,
                Err(_) => self.counters.dropped_malformed += 1,
            }
        }
    }

    /// Hands finished requests to the driver and publishes the counters.
    fn report(&mut self) {
        let mut done = std::mem::take(&mut self.done);
        while let Some(completion) = self.session.poll_completion() {
            self.live.remove(&completion.id);
            done.push(completion);
        }
        if self.live.is_empty() && self.idle_since.is_none() && matches!(self.link, Link::Up(_)) {
            self.idle_since = Some(Instant::now());
        }
        if !done.is_empty() {
            if let Some(driver) = self.driver.upgrade() {
                let _ = driver.send(Command::ProxyCompleted(done));
            }
        }
        let mut stats = self.counters;
        stats.session = self.session.stats();
        stats.in_flight = self.session.in_flight() + self.waiting.len();
        stats.cached_connection_ids = self.session.connection_ids().len();
        stats.associations = usize::from(matches!(self.link, Link::Up(_)));
        *self.shared.lock().unwrap_or_else(|e| e.into_inner()) = stats;
    }
}

/// Passes a relayed reply to the session, as coming from `source`, the
/// address the relay reports (checked by the session's `strictSource`) — or,
/// for a request addressed by host name, from that name's placeholder.
fn deliver(session: &mut Session, names: &Names, now: Instant, source: &Address, payload: &[u8]) {
    let sent_to = peek_transaction_id(payload).and_then(|tid| session.destination_of(tid));
    let (from, v6) = match source {
        Address::Ip(addr) => match sent_to {
            Some(to) if names.name_of(to).is_some() => (to, addr.is_ipv6()),
            _ => (*addr, addr.is_ipv6()),
        },
        // Some proxies echo the name: it must be the one the request named.
        Address::Name(name, port) => match sent_to {
            Some(to) if names.name_of(to) == Some(name.as_slice()) && to.port() == *port => {
                (to, false)
            }
            _ => (SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0), false),
        },
    };
    session.handle_datagram_over(now, from, v6, payload);
}

async fn send(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) -> io::Result<()> {
    loop {
        match socket.try_send_to(bytes, to) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await?,
            other => return other.map(|_| ()),
        }
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Connects to the proxy and sets up a UDP association, within `HANDSHAKE_TIMEOUT`.
async fn associate(key: Arc<ProxyKey>) -> Result<Association, String> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake(&key)).await {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {} ms",
            HANDSHAKE_TIMEOUT.as_millis()
        )),
    }
}

async fn handshake(key: &ProxyKey) -> Result<Association, String> {
    let mut control = connect(key).await?;
    let _ = control.set_nodelay(true);
    let mut out = Vec::new();
    socks5::write_greeting(key.credentials.is_some(), &mut out);
    control.write_all(&out).await.map_err(io_error)?;
    let mut reply = [0u8; socks5::SHORT_REPLY_LEN];
    read(&mut control, &mut reply).await?;
    match socks5::parse_method_selection(&reply).map_err(protocol_error)? {
        socks5::METHOD_NO_AUTH => {}
        socks5::METHOD_USERNAME_PASSWORD => {
            let Some((username, password)) = &key.credentials else {
                return Err("it asked for a user name and password, and none was given".into());
            };
            out.clear();
            socks5::write_credentials(username, password, &mut out).map_err(protocol_error)?;
            control.write_all(&out).await.map_err(io_error)?;
            read(&mut control, &mut reply).await?;
            let status = socks5::parse_auth_status(&reply).map_err(protocol_error)?;
            if status != 0 {
                return Err(format!(
                    "authentication rejected (RFC 1929 status {status})"
                ));
            }
        }
        socks5::METHOD_NONE_ACCEPTABLE => {
            return Err(if key.credentials.is_some() {
                "no acceptable authentication method".into()
            } else {
                "no acceptable authentication method (does it need a user name and password?)"
                    .into()
            });
        }
        other => {
            return Err(format!(
                "it chose authentication method {other}, not offered"
            ))
        }
    }
    let local = control.local_addr().map_err(io_error)?;
    let relay = bind_udp(SocketAddr::new(local.ip(), 0)).map_err(io_error)?;
    let relay_local = relay.local_addr().map_err(io_error)?;
    out.clear();
    socks5::write_request(
        socks5::COMMAND_UDP_ASSOCIATE,
        &Address::Ip(relay_local),
        &mut out,
    )
    .map_err(protocol_error)?;
    control.write_all(&out).await.map_err(io_error)?;
    let mut answer = vec![0u8; socks5::REPLY_PREFIX_LEN];
    read(&mut control, &mut answer).await?;
    let len = socks5::reply_len(&answer).map_err(protocol_error)?;
    answer.resize(len, 0);
    read(
        &mut control,
        answer
            .get_mut(socks5::REPLY_PREFIX_LEN..)
            .unwrap_or(&mut []),
    )
    .await?;
    let reply = socks5::parse_reply(&answer).map_err(protocol_error)?;
    if reply.code != 0 {
        return Err(format!(
            "UDP ASSOCIATE refused: {} (reply {})",
            socks5::reply_text(reply.code),
            reply.code
        ));
    }
    let Address::Ip(bound) = reply.bound else {
        return Err("UDP ASSOCIATE named its relay by host name".into());
    };
    // RFC 1928 leaves BND.ADDR 0.0.0.0 / :: to mean "the proxy's own address".
    let relay_addr = if bound.ip().is_unspecified() {
        let proxy = control.peer_addr().map_err(io_error)?;
        SocketAddr::new(proxy.ip(), bound.port())
    } else {
        bound
    };
    if relay_addr.is_ipv4() != relay_local.is_ipv4() || relay_addr.port() == 0 {
        return Err(format!(
            "UDP ASSOCIATE gave an unusable relay address {relay_addr}"
        ));
    }
    Ok(Association {
        control,
        relay,
        relay_addr,
    })
}

async fn connect(key: &ProxyKey) -> Result<TcpStream, String> {
    let host = key.host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, key.port)],
        Err(_) => tokio::net::lookup_host((host, key.port))
            .await
            .map_err(|e| format!("cannot resolve its host name: {e}"))?
            .collect(),
    };
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = Some(e),
        }
    }
    Err(match last {
        Some(e) => format!("cannot connect: {e}"),
        None => "cannot resolve its host name: no address".into(),
    })
}

async fn read(control: &mut TcpStream, buf: &mut [u8]) -> Result<(), String> {
    match control.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
            Err("it closed the connection during the handshake".into())
        }
        Err(e) => Err(io_error(e)),
    }
}

fn io_error(e: io::Error) -> String {
    format!("connection error: {e}")
}

fn protocol_error(e: Socks5Error) -> String {
    format!("protocol error: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_name_the_proxy_never_the_password() {
        let key = ProxyKey {
            host: "[::1]".into(),
            port: 1080,
            credentials: Some((b"user".to_vec(), b"hunter2".to_vec())),
        };
        assert_eq!(key.label(), "SOCKS5 proxy [::1]:1080");
        assert!(!format!("{key:?}").contains("hunter2"));
        let plain = ProxyKey {
            host: "127.0.0.1".into(),
            port: 9,
            credentials: None,
        };
        assert_eq!(plain.label(), "SOCKS5 proxy 127.0.0.1:9");
    }

    #[test]
    fn host_names_get_distinct_unroutable_placeholders() {
        let mut names = Names::default();
        let a = names.placeholder(b"a.example".to_vec(), 6969);
        let b = names.placeholder(b"b.example".to_vec(), 6969);
        let a_other_port = names.placeholder(b"a.example".to_vec(), 80);
        assert_ne!(a, b);
        assert_ne!(a, a_other_port);
        assert_eq!(names.placeholder(b"a.example".to_vec(), 6969), a);
        for addr in [a, b, a_other_port] {
            let IpAddr::V6(ip) = addr.ip() else {
                panic!("placeholder {addr} is not IPv6")
            };
            assert_eq!(
                ip.segments()[..4],
                [0x0100, 0, 0, 0],
                "{addr} is in 100::/64"
            );
        }
        assert_eq!(names.name_of(b), Some(&b"b.example"[..]));
        assert_eq!(names.name_of("127.0.0.1:6969".parse().unwrap()), None);
    }

    use crate::proto::{
        AnnounceResponse, ConnectResponse, ConnectionId, InfoHash, Response, ScrapeResponse,
        ScrapeStats,
    };
    use crate::session::tests::announce_kind;
    use crate::session::{RequestKind, RequestOptions};

    fn reply_to(
        session: &mut Session,
        response: impl FnOnce(crate::proto::TransactionId) -> Response,
    ) -> Vec<u8> {
        let sent = session.poll_transmit().expect("a datagram to answer");
        // Requests carry their transaction id at bytes 12..16 (BEP 15).
        let tid = sent
            .payload
            .get(12..16)
            .and_then(|b| b.try_into().ok())
            .map(|b| crate::proto::TransactionId(u32::from_be_bytes(b)))
            .expect("a transaction id");
        let mut bytes = Vec::new();
        response(tid).write(&mut bytes);
        bytes
    }

    /// The relay reports the IPv6 address the proxy resolved a name to: the
    /// reply is matched by transaction id, and its peers are 18-byte entries.
    #[test]
    fn replies_for_a_host_name_are_parsed_in_the_family_the_relay_reports() {
        let mut names = Names::default();
        let placeholder = names.placeholder(b"tracker.example".to_vec(), 6969);
        let mut session = Session::new();
        let now = Instant::now();
        session.start(
            now,
            1,
            placeholder,
            announce_kind(),
            RequestOptions::default(),
        );
        let resolved = Address::Ip("[2001:db8::1]:6969".parse().unwrap());
        let connect = reply_to(&mut session, |transaction_id| {
            Response::Connect(ConnectResponse {
                transaction_id,
                connection_id: ConnectionId(7),
            })
        });
        deliver(&mut session, &names, now, &resolved, &connect);
        assert_eq!(session.connection_ids().len(), 1, "cached for the name");
        let peer: SocketAddr = "[2001:db8::2]:51413".parse().unwrap();
        let reply = reply_to(&mut session, |transaction_id| {
            Response::Announce(AnnounceResponse {
                transaction_id,
                interval: 60,
                leechers: 1,
                seeders: 0,
                peers: vec![peer],
            })
        });
        deliver(&mut session, &names, now, &resolved, &reply);
        let done = session.poll_completion().expect("answered");
        let Outcome::Announced(reply) = done.outcome else {
            panic!("{:?}", done.outcome)
        };
        assert_eq!(reply.peers, vec![peer]);
    }

    /// A tracker addressed by IP: the relay's reported source is checked
    /// like a direct reply's (strictSource), so another address is dropped.
    #[test]
    fn replies_for_an_address_must_come_from_it() {
        let names = Names::default();
        let tracker: SocketAddr = "127.0.0.1:6969".parse().unwrap();
        let mut session = Session::new();
        let now = Instant::now();
        session.start(
            now,
            1,
            tracker,
            RequestKind::Scrape(vec![InfoHash([3; 20])]),
            RequestOptions::default(),
        );
        let connect = reply_to(&mut session, |transaction_id| {
            Response::Connect(ConnectResponse {
                transaction_id,
                connection_id: ConnectionId(9),
            })
        });
        let elsewhere = Address::Ip("127.0.0.9:6969".parse().unwrap());
        deliver(&mut session, &names, now, &elsewhere, &connect);
        assert_eq!(session.stats().dropped_wrong_source, 1);
        let echoed_name = Address::Name(b"tracker.example".to_vec(), 6969);
        deliver(&mut session, &names, now, &echoed_name, &connect);
        assert_eq!(session.stats().dropped_wrong_source, 2);
        deliver(&mut session, &names, now, &Address::Ip(tracker), &connect);
        let scrape = reply_to(&mut session, |transaction_id| {
            Response::Scrape(ScrapeResponse {
                transaction_id,
                stats: vec![ScrapeStats {
                    seeders: 1,
                    completed: 2,
                    leechers: 3,
                }],
            })
        });
        deliver(&mut session, &names, now, &Address::Ip(tracker), &scrape);
        assert!(matches!(
            session.poll_completion().map(|c| c.outcome),
            Some(Outcome::Scraped(_))
        ));
    }
}
