//! The whole `#[napi]` surface. `lib/` validates arguments and wraps this in
//! the 1.2.0 EventEmitter API and the promise API; this layer checks again
//! where a bad value could reach the wire, and never panics.
//!
//! The boundary is shaped for a cheap call per tick rather than per request:
//! - a tracker and its request options are a [`TrackerTarget`], an object the
//!   JS side holds and Rust frees when it is garbage collected;
//! - every request started in one tick arrives in one [`Engine::start`] call,
//!   encoded as fixed-layout records in one buffer (see `START_*` below and
//!   `lib/engine.js`);
//! - finished requests leave in one callback per driver turn (or fewer: turns
//!   that end while a callback waits for JS join it), as flat `u32` records,
//!   one string of every peer and one array of error messages.

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use napi::bindgen_prelude::{BigInt, Buffer, BufferSlice, FnArgs, Function, Uint32Array};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::driver::{Command, Driver, Family, StartRequest, Target};
use crate::proxy::{ProxyConfig, ProxyKey, ProxyStats};
use sha1::{Digest, Sha1};

use crate::proto::{AnnounceEvent, Authentication, InfoHash, LibtorrentExtensions, PeerId};
use crate::session::{
    AnnounceParams, Completion, Outcome, RequestError, RequestKind, RequestOptions,
};

// Limits and defaults, defined here once and read by `lib/validate.js`.

/// Sends per request phase (BEP 15 stops at 15 · 2^8 seconds).
#[napi]
pub const MAX_ATTEMPTS: u32 = crate::session::MAX_ATTEMPTS;
/// The default base retransmission timeout (`_timeout`), in milliseconds.
#[napi]
pub const DEFAULT_TIMEOUT_MS: u32 = 15_000;
/// Info hashes per scrape packet over IPv4 (BEP 15's bound).
#[napi]
pub const SCRAPE_HASHES_V4: u32 = 74;
/// Info hashes per scrape packet when the tracker may be IPv6: 16 + 60 · 20 =
/// 1216 bytes stays within the 1280-byte minimum MTU.
#[napi]
pub const SCRAPE_HASHES_V6: u32 = 60;
/// Info hashes in one scrape request (the start record's u16 count); the
/// session sends them in packets of at most the two numbers above, or fewer
/// when a tracker answers fewer.
#[napi]
pub const MAX_SCRAPE_HASHES_PER_REQUEST: u32 = u16::MAX as u32;
/// The longest authentication user name and request string (a u8 length).
#[napi]
pub const MAX_SHORT_STRING: u32 = 255;

/// Where requests go and how, as `new TrackerTarget(args)` takes it.
#[napi(object)]
pub struct TargetArgs {
    /// Host name or address literal (IPv6 with or without brackets).
    pub host: String,
    pub port: u32,
    /// 0 auto, 4 or 6.
    pub family: u32,
    /// Base retransmission timeout in milliseconds.
    pub timeout_ms: f64,
    pub max_attempts: u32,
    pub strict_source: bool,
    pub reuse_connection_id: bool,
    /// BEP 41 URL data: the announce URL's path and query.
    pub url_data: Buffer,
    /// libtorrent authentication extension: user name (at most 255 bytes) ...
    pub auth_user: Option<Buffer>,
    /// ... and password: hashed here at once; neither side keeps it.
    pub auth_password: Option<Buffer>,
    /// libtorrent request-string extension (at most 255 bytes).
    pub request_string: Option<Buffer>,
    /// A SOCKS5 proxy every request goes through (`opts.proxy`).
    pub proxy: Option<ProxyArgs>,
}

/// `opts.proxy`, parsed by `lib/validate.js`: `socks5://[user:password@]host:port`,
/// or `socks5h://…` (`remote_dns`: tracker host names go to the proxy).
#[napi(object)]
pub struct ProxyArgs {
    pub host: String,
    pub port: u32,
    pub remote_dns: bool,
    /// RFC 1929: 1 to 255 bytes, with `password` (0 to 255 bytes).
    pub username: Option<Buffer>,
    pub password: Option<Buffer>,
}

/// Counters of the requests through SOCKS5 proxies.
#[napi(object)]
pub struct ProxyStatsJs {
    /// Associations up: one TCP control connection and one UDP relay socket each.
    pub associations: u32,
    pub sent: f64,
    pub received: f64,
    pub in_flight: u32,
    pub cached_connection_ids: u32,
    /// Replies from the relay with another source than the tracker's (strictSource).
    pub dropped_wrong_source: f64,
    /// Datagrams on a relay socket from another address than the relay's.
    pub dropped_relay_source: f64,
    /// Datagram fragments (FRAG ≠ 0), never reassembled.
    pub dropped_fragments: f64,
    pub dropped_malformed: f64,
}

/// A tracker and the options of the requests sent to it. JS holds it (shared
/// by every instance with the same URL and options); Rust drops it when it is
/// garbage collected. Requests already started keep what they need.
#[napi]
pub struct TrackerTarget {
    target: Arc<Target>,
    url_data: Vec<u8>,
    extensions: Option<Box<LibtorrentExtensions>>,
}

#[napi]
impl TrackerTarget {
    #[napi(constructor)]
    pub fn new(args: TargetArgs) -> Result<Self> {
        let family = match args.family {
            0 => Family::Auto,
            4 => Family::V4,
            6 => Family::V6,
            _ => return Err(range_error("family must be 4, 6 or 0 (auto)")),
        };
        if !(args.timeout_ms.is_finite() && args.timeout_ms > 0.0) {
            return Err(range_error(
                "_timeout must be a positive number of milliseconds",
            ));
        }
        if !(1..=MAX_ATTEMPTS).contains(&args.max_attempts) {
            return Err(range_error("maxAttempts must be an integer from 1 to 8"));
        }
        let options = RequestOptions {
            timeout: Duration::from_secs_f64(args.timeout_ms / 1000.0),
            max_attempts: args.max_attempts,
            strict_source: args.strict_source,
            reuse_connection_id: args.reuse_connection_id,
            scope: 0, // per request: the driver sets StartRequest::scope
        };
        let port = port(args.port, "announceUrl port")?;
        Ok(TrackerTarget {
            extensions: extensions(&args)?,
            url_data: args.url_data.to_vec(),
            target: Arc::new(with_proxy(
                Target::new(args.host, port, family, options),
                args.proxy,
            )?),
        })
    }
}

/// Byte layout of one request in [`Engine::start`]'s buffer, in the machine's
/// byte order (JS writes it with typed arrays on the same machine).
/// Every record starts with the same 16-byte header.
const START_KIND: usize = 0; // u8: START_ANNOUNCE, START_SCRAPE or START_SKIPPED
const START_EVENT: usize = 1; // u8: the announce event, 0-3
const START_COUNT: usize = 2; // u16: the announced port, or the scrape's hash count
const START_ID: usize = 4; // u32: the request id
const START_SCOPE: usize = 8; // u32: the connection-id scope (0 = shared)
const START_TARGET: usize = 12; // u32: index into the call's targets
const START_HEADER: usize = 16;
// Announce: key, numWant, ip, three u64 counters, info hash, peer id.
const ANNOUNCE_KEY: usize = 16;
const ANNOUNCE_NUM_WANT: usize = 20;
const ANNOUNCE_IP: usize = 24;
const ANNOUNCE_COUNTERS: usize = 28;
const ANNOUNCE_INFO_HASH: usize = 52;
const ANNOUNCE_PEER_ID: usize = 72;
const ANNOUNCE_RECORD: usize = 92;
// Scrape: `count` info hashes follow the header.
const START_ANNOUNCE: u8 = 0;
const START_SCRAPE: u8 = 1;
/// A request cancelled before its tick ended: never started.
const START_SKIPPED: u8 = 2;

/// The record layout, for `lib/engine.js` (which writes it): defined here only.
#[napi(object)]
pub struct StartLayout {
    pub event: u32,
    pub count: u32,
    pub id: u32,
    pub scope: u32,
    pub target: u32,
    pub key: u32,
    pub num_want: u32,
    pub ip: u32,
    pub counters: u32,
    pub info_hash: u32,
    pub peer_id: u32,
    pub announce_record: u32,
    pub scrape_header: u32,
    pub announce: u32,
    pub scrape: u32,
    pub skipped: u32,
}

#[napi]
pub fn start_layout() -> StartLayout {
    // Every offset is below 256: the casts are exact.
    #[allow(clippy::cast_possible_truncation)]
    let at = |offset: usize| offset as u32;
    StartLayout {
        event: at(START_EVENT),
        count: at(START_COUNT),
        id: at(START_ID),
        scope: at(START_SCOPE),
        target: at(START_TARGET),
        key: at(ANNOUNCE_KEY),
        num_want: at(ANNOUNCE_NUM_WANT),
        ip: at(ANNOUNCE_IP),
        counters: at(ANNOUNCE_COUNTERS),
        info_hash: at(ANNOUNCE_INFO_HASH),
        peer_id: at(ANNOUNCE_PEER_ID),
        announce_record: at(ANNOUNCE_RECORD),
        scrape_header: at(START_HEADER),
        announce: u32::from(START_ANNOUNCE),
        scrape: u32::from(START_SCRAPE),
        skipped: u32::from(START_SKIPPED),
    }
}

/// Status of one completion record (see `Batch`).
const DONE_ANNOUNCED: u32 = 0;
const DONE_SCRAPED: u32 = 1;
/// Failed: `DONE_FAILED + ` the index of its code in `ERROR_CODES`.
const DONE_FAILED: u32 = 2;
const ERROR_CODES: [&str; 6] = [
    "ERR_TRACKER_ERROR",
    "ERR_BAD_RESPONSE",
    "ERR_TRACKER_TIMEOUT",
    "ERR_DNS",
    "ERR_SEND",
    "ERR_PROXY",
];

/// Error codes by failure status minus 2, for `lib/engine.js`.
#[napi]
pub fn error_codes() -> Vec<&'static str> {
    ERROR_CODES.to_vec()
}

/// Finished requests, flat. `records` holds, per request,
/// `[id, status, n, ...]`: announced: `n` peers (the next `n` of `peers`,
/// comma-separated), then interval, leechers, seeders; scraped: `n` entries,
/// then complete, downloaded, incomplete for each; failed: `n` = 0 and the
/// next of `messages`.
#[derive(Default)]
struct Batch {
    records: Vec<u32>,
    peers: String,
    messages: Vec<String>,
}

/// Finished requests encoded for JS and not yet taken, and whether a call
/// to take them is queued.
#[derive(Default)]
struct Waiting {
    batch: Batch,
    queued: bool,
}

impl Waiting {
    /// Adds a turn's completions; true when a call must be queued to take them.
    fn add(&mut self, done: Vec<Completion>) -> bool {
        encode(&mut self.batch, done);
        !std::mem::replace(&mut self.queued, true)
    }

    /// Everything waiting (the queued call runs): later completions queue a new call.
    fn take(&mut self) -> Batch {
        self.queued = false;
        std::mem::take(&mut self.batch)
    }
}

/// The lock, also after a panic elsewhere (nothing panics while holding it:
/// what is waiting stays whole).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The process's (more exactly, the JS realm's) tracker client: one socket
/// per address family, one driver thread.
#[napi]
pub struct Engine {
    driver: Driver,
    /// When the current tick's first requests reached the engine: requests
    /// of one tick count as started together (they share a connect), also
    /// when a large tick hands them over in several calls.
    tick_started: Cell<Instant>,
}

#[napi]
impl Engine {
    /// `onComplete(records, peers, messages)` is called with the requests
    /// finished since its last call (see `Batch`): once per driver turn, or
    /// once for several while JS is busy. It does not keep Node
    /// alive by itself; `lib/engine.js` holds a handle while requests are out.
    #[napi(constructor)]
    pub fn new(
        on_complete: Function<'_, FnArgs<(Uint32Array, String, Vec<String>)>, ()>,
    ) -> Result<Self> {
        // Completions wait here until JS takes them: one call is queued at
        // a time, and turns that finish while JS is busy (or before it runs
        // the call) join the waiting batch rather than queue calls of their
        // own. Under load JS makes a few large calls instead of one per turn.
        let waiting = Arc::new(Mutex::new(Waiting::default()));
        let taken = Arc::clone(&waiting);
        let callback = on_complete
            .build_threadsafe_function::<()>()
            .weak::<true>()
            .build_callback(move |_ctx| {
                let Batch {
                    records,
                    peers,
                    messages,
                } = lock(&taken).take();
                Ok(FnArgs::from((Uint32Array::new(records), peers, messages)))
            })?;
        let driver = Driver::spawn(Box::new(move |done: Vec<Completion>| {
            let call = lock(&waiting).add(done);
            if call {
                // A closing environment refuses the call; nothing is left to tell.
                let _ = callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
            }
        }))
        .map_err(|e| Error::from_reason(format!("cannot start the tracker driver: {e}")))?;
        Ok(Engine {
            driver,
            tick_started: Cell::new(Instant::now()),
        })
    }

    /// Starts every request in `records` (the layout above), in order;
    /// `targets[i]` is the target a record's index `i` names. Checks every
    /// record before starting any. `continues`: these requests belong to the
    /// same tick as the previous call's.
    #[napi]
    pub fn start(
        &self,
        records: BufferSlice,
        targets: Vec<&TrackerTarget>,
        continues: bool,
    ) -> Result<()> {
        if !continues {
            self.tick_started.set(Instant::now());
        }
        let tick_started = self.tick_started.get();
        // Records are at least a scrape header long: room for them all at once.
        let mut starts = Vec::with_capacity(records.len() / START_HEADER);
        let mut at = 0;
        while at < records.len() {
            let (start, len) = decode(&records[at..], &targets, tick_started)?;
            starts.extend(start);
            at += len;
        }
        // One command for the whole tick: the driver takes every request of
        // it before it reads a reply, so requests started together share a
        // connect (N instances, N + 1 datagrams).
        if starts.is_empty() || self.driver.send(Command::Start(starts)) {
            Ok(())
        } else {
            Err(Error::from_reason("the tracker driver has stopped"))
        }
    }

    #[napi]
    pub fn cancel(&self, id: u32) {
        self.driver.send(Command::Cancel(id));
    }

    /// Forgets every cached connection id (the next request to each tracker connects).
    #[napi]
    pub fn forget_connection_ids(&self) {
        self.driver.send(Command::ForgetConnectionIds);
    }

    #[napi]
    pub fn stats(&self) -> Result<EngineStats> {
        let s = self
            .driver
            .stats()
            .ok_or_else(|| Error::from_reason("the tracker driver has stopped"))?;
        // Counters are exact in a JS number up to 2^53.
        #[allow(clippy::cast_precision_loss)]
        Ok(EngineStats {
            sent: s.session.sent as f64,
            received: s.session.received as f64,
            dropped_short: s.session.dropped_short as f64,
            dropped_unknown: s.session.dropped_unknown as f64,
            dropped_late: s.session.dropped_late as f64,
            dropped_wrong_source: s.session.dropped_wrong_source as f64,
            renewed_connection_ids: s.session.renewed_connection_ids as f64,
            retransmits: s.session.retransmits as f64,
            losses: s.session.losses as f64,
            in_flight: u32::try_from(s.in_flight).unwrap_or(u32::MAX),
            queued: u32::try_from(s.queued).unwrap_or(u32::MAX),
            sockets: u32::try_from(s.sockets).unwrap_or(u32::MAX),
            cached_connection_ids: u32::try_from(s.cached_connection_ids).unwrap_or(u32::MAX),
            trackers: self
                .driver
                .tracker_stats()
                .into_iter()
                .map(|t| TrackerStatsJs {
                    address: t.address.to_string(),
                    window: u32::try_from(t.window).unwrap_or(u32::MAX),
                    outstanding: u32::try_from(t.outstanding).unwrap_or(u32::MAX),
                    waiting: u32::try_from(t.waiting).unwrap_or(u32::MAX),
                    srtt_ms: t.srtt.map(|d| d.as_secs_f64() * 1000.0),
                    rttvar_ms: t.rttvar.map(|d| d.as_secs_f64() * 1000.0),
                    retransmits: t.retransmits as f64,
                    losses: t.losses as f64,
                })
                .collect(),
            proxy: proxy_stats(&s.proxy),
        })
    }
}

/// One tracker address's congestion control (refreshed every 100 ms).
#[napi(object)]
pub struct TrackerStatsJs {
    /// `'ip:port'` or `'[v6]:port'`.
    pub address: String,
    /// Datagrams expecting a reply it may have out at once.
    pub window: u32,
    pub outstanding: u32,
    /// Requests waiting for room in the window.
    pub waiting: u32,
    /// Smoothed round-trip time and its variation (RFC 6298), once measured.
    pub srtt_ms: Option<f64>,
    pub rttvar_ms: Option<f64>,
    pub retransmits: f64,
    /// Losses detected early (drops at the tracker).
    pub losses: f64,
}

#[napi(object)]
pub struct EngineStats {
    pub sent: f64,
    pub received: f64,
    pub dropped_short: f64,
    pub dropped_unknown: f64,
    pub dropped_late: f64,
    pub dropped_wrong_source: f64,
    /// Cached connection ids forgotten after silence or an error.
    pub renewed_connection_ids: f64,
    /// Datagrams sent again, after a wait or a detected loss.
    pub retransmits: f64,
    /// Losses detected early: later datagrams to the tracker were answered.
    pub losses: f64,
    pub in_flight: u32,
    /// Requests waiting for a place in the window (not sent yet).
    pub queued: u32,
    pub sockets: u32,
    pub cached_connection_ids: u32,
    pub trackers: Vec<TrackerStatsJs>,
    /// Requests through SOCKS5 proxies (`opts.proxy`), not counted above.
    pub proxy: ProxyStatsJs,
}

/// Reads one record at the start of `bytes`: the request (None when it was
/// skipped) and the record's length.
fn decode(
    bytes: &[u8],
    targets: &[&TrackerTarget],
    tick_started: Instant,
) -> Result<(Option<StartRequest>, usize)> {
    let malformed = || range_error("malformed start record");
    let header = bytes.get(..START_HEADER).ok_or_else(malformed)?;
    let u8_at = |at: usize| header[at];
    let count = usize::from(u16_at(header, START_COUNT));
    let id = u32_at(header, START_ID);
    let scope = u32_at(header, START_SCOPE);
    let index = u32_at(header, START_TARGET) as usize;
    let (kind, len) = match u8_at(START_KIND) {
        START_ANNOUNCE | START_SKIPPED if bytes.len() >= ANNOUNCE_RECORD => {
            (u8_at(START_KIND), ANNOUNCE_RECORD)
        }
        START_SCRAPE => (START_SCRAPE, START_HEADER + count * 20),
        _ => return Err(malformed()),
    };
    let record = bytes.get(..len).ok_or_else(malformed)?;
    if kind == START_SKIPPED {
        return Ok((None, len));
    }
    let registered = targets
        .get(index)
        .ok_or_else(|| range_error("unknown tracker target"))?;
    let kind = if kind == START_ANNOUNCE {
        RequestKind::Announce(announce_params(record, registered)?)
    } else {
        // Any number: the session sends them in batches the tracker answers.
        if count == 0 {
            return Err(range_error(
                "infoHashes must hold one or more 20-byte hashes",
            ));
        }
        let hashes = record[START_HEADER..]
            .chunks_exact(20)
            .map(|h| twenty_bytes(h, "infoHashes").map(InfoHash))
            .collect::<Result<Vec<_>>>()?;
        RequestKind::Scrape(hashes)
    };
    let start = StartRequest {
        id,
        scope,
        target: Arc::clone(&registered.target),
        kind,
        tick_started,
    };
    Ok((Some(start), len))
}

fn announce_params(record: &[u8], registered: &TrackerTarget) -> Result<AnnounceParams> {
    let event = AnnounceEvent::from_u32(u32::from(record[START_EVENT]))
        .ok_or_else(|| range_error("event must be 0, 1, 2 or 3"))?;
    let counter = |i: usize| u64_at(record, ANNOUNCE_COUNTERS + 8 * i);
    Ok(AnnounceParams {
        info_hash: InfoHash(twenty_bytes(
            &record[ANNOUNCE_INFO_HASH..ANNOUNCE_PEER_ID],
            "infoHash",
        )?),
        peer_id: PeerId(twenty_bytes(
            &record[ANNOUNCE_PEER_ID..ANNOUNCE_RECORD],
            "peerId",
        )?),
        downloaded: counter(0),
        left: counter(1),
        uploaded: counter(2),
        event,
        ip: u32_at(record, ANNOUNCE_IP),
        key: u32_at(record, ANNOUNCE_KEY),
        num_want: i32::from_ne_bytes(ne_bytes(record, ANNOUNCE_NUM_WANT)),
        port: u16_at(record, START_COUNT),
        url_data: registered.url_data.clone(),
        extensions: registered.extensions.clone(),
    })
}

/// `N` bytes at `at`; callers index within a record whose length was checked.
fn ne_bytes<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0; N];
    if let Some(src) = bytes.get(at..at + N) {
        out.copy_from_slice(src);
    }
    out
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_ne_bytes(ne_bytes(bytes, at))
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes(ne_bytes(bytes, at))
}

/// A counter: two 32-bit words, the low one first (JS writes words, not u64s).
fn u64_at(bytes: &[u8], at: usize) -> u64 {
    u64::from(u32_at(bytes, at)) | u64::from(u32_at(bytes, at + 4)) << 32
}

/// Appends `done` to `batch`.
fn encode(batch: &mut Batch, done: Vec<Completion>) {
    use std::fmt::Write;
    for completion in done {
        let records = &mut batch.records;
        records.push(completion.id);
        match completion.outcome {
            Outcome::Announced(reply) => {
                records.push(DONE_ANNOUNCED);
                records.push(u32::try_from(reply.peers.len()).unwrap_or(u32::MAX));
                records.extend([reply.interval, reply.leechers, reply.seeders]);
                for peer in &reply.peers {
                    if !batch.peers.is_empty() {
                        batch.peers.push(',');
                    }
                    // Writing to a String cannot fail.
                    let _ = write!(batch.peers, "{peer}");
                }
            }
            Outcome::Scraped(reply) => {
                records.push(DONE_SCRAPED);
                records.push(u32::try_from(reply.stats.len()).unwrap_or(u32::MAX));
                for s in &reply.stats {
                    records.extend([s.seeders, s.completed, s.leechers]);
                }
            }
            Outcome::Failed(error) => {
                records.push(DONE_FAILED + error_code(&error));
                records.push(0);
                batch.messages.push(error.to_string());
            }
        }
    }
}

fn error_code(error: &RequestError) -> u32 {
    match error {
        RequestError::Tracker(_) => 0,
        RequestError::BadResponse(_) => 1,
        RequestError::Timeout { .. } => 2,
        RequestError::Resolve(_) => 3,
        RequestError::Send(_) => 4,
        RequestError::Proxy(_) => 5,
    }
}

fn with_proxy(target: Target, proxy: Option<ProxyArgs>) -> Result<Target> {
    let Some(p) = proxy else {
        return Ok(target);
    };
    let credentials =
        match (p.username, p.password) {
            (None, None) => None,
            (Some(user), Some(password))
                if (1..=255).contains(&user.len()) && password.len() <= 255 =>
            {
                Some((user.to_vec(), password.to_vec()))
            }
            _ => return Err(range_error(
                "opts.proxy user name must be 1 to 255 bytes, with a password of at most 255 bytes",
            )),
        };
    if p.host.is_empty() || p.port == 0 {
        return Err(range_error(
            "opts.proxy needs a host and a port from 1 to 65535",
        ));
    }
    let key = ProxyKey {
        host: p.host,
        port: port(p.port, "opts.proxy port")?,
        credentials,
    };
    Ok(target.with_proxy(ProxyConfig {
        key,
        remote_dns: p.remote_dns,
    }))
}

#[allow(clippy::cast_precision_loss)]
fn proxy_stats(s: &ProxyStats) -> ProxyStatsJs {
    let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    ProxyStatsJs {
        associations: count(s.associations),
        sent: s.session.sent as f64,
        received: s.session.received as f64,
        in_flight: count(s.in_flight),
        cached_connection_ids: count(s.cached_connection_ids),
        dropped_wrong_source: s.session.dropped_wrong_source as f64,
        dropped_relay_source: s.dropped_relay_source as f64,
        dropped_fragments: s.dropped_fragments as f64,
        dropped_malformed: s.dropped_malformed as f64,
    }
}

fn extensions(args: &TargetArgs) -> Result<Option<Box<LibtorrentExtensions>>> {
    let auth = match (&args.auth_user, &args.auth_password) {
        (None, None) => None,
        (Some(user), Some(password)) => Some(Authentication {
            username: short_string(user, "opts.auth.user")?,
            password_sha1: Sha1::digest(password.as_ref()).into(),
        }),
        _ => return Err(range_error("opts.auth needs both user and password")),
    };
    let request_string = args
        .request_string
        .as_ref()
        .map(|r| short_string(r, "opts.requestString"))
        .transpose()?;
    if auth.is_none() && request_string.is_none() {
        return Ok(None);
    }
    Ok(Some(Box::new(LibtorrentExtensions {
        auth,
        request_string,
    })))
}

fn short_string(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    if bytes.len() > MAX_SHORT_STRING as usize {
        return Err(range_error(&format!(
            "{name} must be at most {MAX_SHORT_STRING} bytes"
        )));
    }
    Ok(bytes.to_vec())
}

fn range_error(message: &str) -> Error {
    Error::new(Status::InvalidArg, message.to_owned())
}

fn twenty_bytes(bytes: &[u8], name: &str) -> Result<[u8; 20]> {
    bytes
        .try_into()
        .map_err(|_| range_error(&format!("{name} must be 20 bytes")))
}

fn port(value: u32, name: &str) -> Result<u16> {
    u16::try_from(value).map_err(|_| range_error(&format!("{name} must be from 0 to 65535")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_limits_match_the_engine() {
        assert_eq!(
            Duration::from_millis(u64::from(DEFAULT_TIMEOUT_MS)),
            RequestOptions::default().timeout
        );
        assert_eq!(
            SCRAPE_HASHES_V4 as usize,
            crate::proto::MAX_SCRAPE_HASHES_V4
        );
        assert_eq!(
            SCRAPE_HASHES_V6 as usize,
            crate::proto::MAX_SCRAPE_HASHES_V6
        );
        // A start record counts its hashes in a u16.
        assert_eq!(MAX_SCRAPE_HASHES_PER_REQUEST, u32::from(u16::MAX));
    }

    #[test]
    fn the_layout_and_codes_js_reads_are_the_ones_used_here() {
        let layout = start_layout();
        assert_eq!(layout.peer_id as usize + 20, ANNOUNCE_RECORD);
        assert_eq!(layout.announce_record as usize, ANNOUNCE_RECORD);
        assert_eq!(layout.scrape_header as usize, START_HEADER);
        assert_eq!(layout.skipped, u32::from(START_SKIPPED));
        // JS writes the header's count as a 16-bit word and the rest as
        // 32-bit words of the machine's byte order: each at its own alignment.
        assert_eq!(START_COUNT % 2, 0);
        for word in [
            START_ID,
            START_SCOPE,
            START_TARGET,
            ANNOUNCE_KEY,
            ANNOUNCE_NUM_WANT,
            ANNOUNCE_IP,
            ANNOUNCE_COUNTERS,
            ANNOUNCE_INFO_HASH,
            ANNOUNCE_RECORD,
        ] {
            assert_eq!(word % 4, 0, "offset {word}");
        }
        let mut counters = [0u8; 8];
        counters[..4].copy_from_slice(&0x89ab_cdefu32.to_ne_bytes());
        counters[4..].copy_from_slice(&0x0123_4567u32.to_ne_bytes());
        assert_eq!(u64_at(&counters, 0), 0x0123_4567_89ab_cdef);
        let codes = error_codes();
        assert_eq!(
            codes[error_code(&RequestError::Timeout { waited_ms: 1 }) as usize],
            "ERR_TRACKER_TIMEOUT"
        );
        assert_eq!(
            codes[error_code(&RequestError::Send(String::new())) as usize],
            "ERR_SEND"
        );
        assert_eq!(
            codes[error_code(&RequestError::Proxy(String::new())) as usize],
            "ERR_PROXY"
        );
    }

    #[test]
    fn completions_are_flat_records() {
        use crate::proto::{AnnounceResponse, ScrapeResponse, ScrapeStats, TransactionId};
        let done = vec![
            Completion {
                id: 7,
                outcome: Outcome::Announced(AnnounceResponse {
                    transaction_id: TransactionId(1),
                    interval: 1800,
                    leechers: 2,
                    seeders: 3,
                    peers: vec![
                        "10.0.0.1:6881".parse().unwrap(),
                        "[::1]:80".parse().unwrap(),
                    ],
                }),
            },
            Completion {
                id: 8,
                outcome: Outcome::Scraped(ScrapeResponse {
                    transaction_id: TransactionId(2),
                    stats: vec![ScrapeStats {
                        seeders: 4,
                        completed: 5,
                        leechers: 6,
                    }],
                }),
            },
            Completion {
                id: 9,
                outcome: Outcome::Failed(RequestError::Timeout { waited_ms: 30 }),
            },
        ];
        let mut batch = Batch::default();
        encode(&mut batch, done);
        assert_eq!(
            batch.records,
            [7, 0, 2, 1800, 2, 3, 8, 1, 1, 4, 5, 6, 9, 4, 0]
        );
        assert_eq!(batch.peers, "10.0.0.1:6881,[::1]:80");
        assert_eq!(batch.messages, ["tracker is not responding after:30"]);
    }

    #[test]
    fn turns_finished_before_js_takes_them_join_one_call() {
        use crate::proto::{AnnounceResponse, TransactionId};
        let failed = |id| Completion {
            id,
            outcome: Outcome::Failed(RequestError::Timeout { waited_ms: 30 }),
        };
        let announced = |id, peer: &str| Completion {
            id,
            outcome: Outcome::Announced(AnnounceResponse {
                transaction_id: TransactionId(1),
                interval: 60,
                leechers: 0,
                seeders: 1,
                peers: vec![peer.parse().unwrap()],
            }),
        };
        let mut waiting = Waiting::default();
        assert!(
            waiting.add(vec![announced(1, "10.0.0.1:1")]),
            "the first turn queues a call"
        );
        assert!(!waiting.add(vec![failed(2)]), "a second turn joins it");
        assert!(!waiting.add(vec![announced(3, "10.0.0.3:3")]));
        let batch = waiting.take();
        assert_eq!(
            batch.records,
            [1, 0, 1, 60, 0, 1, 2, 4, 0, 3, 0, 1, 60, 0, 1]
        );
        assert_eq!(batch.peers, "10.0.0.1:1,10.0.0.3:3");
        assert_eq!(batch.messages.len(), 1);
        // Taken: the next turn queues a call of its own, with only its own records.
        assert!(waiting.add(vec![failed(4)]));
        assert_eq!(waiting.take().records, [4, 4, 0]);
        assert!(waiting.take().records.is_empty());
    }

    #[test]
    fn short_and_unknown_records_are_errors_not_panics() {
        let now = Instant::now();
        assert!(decode(&[0; 15], &[], now).is_err());
        assert!(decode(&[0; 40], &[], now).is_err());
        assert!(decode(&[9; 92], &[], now).is_err());
        let mut scrape = [0u8; 16];
        scrape[START_KIND] = START_SCRAPE;
        scrape[START_COUNT] = 1;
        assert!(decode(&scrape, &[], now).is_err());
        let mut skipped = [0u8; ANNOUNCE_RECORD];
        skipped[START_KIND] = START_SKIPPED;
        assert!(matches!(
            decode(&skipped, &[], now),
            Ok((None, ANNOUNCE_RECORD))
        ));
    }
}

// ===========================================================================
// The test tracker (`testing.js`, `udp-tracker serve`): everything below is
// its napi surface, kept apart from the client's. `testing.js` checks the
// options and names them in its errors; this layer checks again what could
// reach the socket or the tracker's arithmetic.

use std::net::IpAddr;

use crate::tracker::server::{self, Server, ServerOptions};
use crate::tracker::{Config as TrackerConfig, Faults, Stats as TrackerStats, MAX_PEERS_LIMIT};

#[napi(object)]
pub struct TestTrackerOptions {
    /// An IP address literal.
    pub host: String,
    pub port: u32,
    /// Must be true to bind an address that is not loopback.
    pub allow_non_loopback: bool,
    /// Reply from a second socket on this port (0: any free port).
    pub reply_from: Option<u32>,
    pub interval: u32,
    pub max_scrape: u32,
    pub max_peers: u32,
    pub loss: f64,
    pub duplicate: f64,
    pub delay_min_ms: f64,
    pub delay_max_ms: f64,
    pub error_for: Vec<TestTrackerRefusal>,
    pub silent_for: Vec<Buffer>,
    /// Seeds peer selection and the faults (a safe integer).
    pub seed: Option<f64>,
}

#[napi(object)]
pub struct TestTrackerRefusal {
    pub info_hash: Buffer,
    pub message: String,
}

#[napi(object)]
pub struct TestTrackerRequests {
    pub connect: f64,
    pub announce: f64,
    pub scrape: f64,
    pub invalid: f64,
}

#[napi(object)]
pub struct TestTrackerDrops {
    pub loss: f64,
    pub silent: f64,
    pub connection_id: f64,
    pub malformed: f64,
}

#[napi(object)]
pub struct TestTrackerStats {
    pub requests: TestTrackerRequests,
    pub replies: f64,
    pub errors: f64,
    pub duplicates: f64,
    pub dropped: TestTrackerDrops,
    pub swarms: u32,
    pub peers: u32,
}

#[napi(object)]
pub struct TestTrackerPeer {
    pub peer_id: Buffer,
    /// `'a.b.c.d:port'` or `'[v6]:port'`: the source address, announced port.
    pub address: String,
    pub downloaded: BigInt,
    pub left: BigInt,
    pub uploaded: BigInt,
    /// `'none'`, `'completed'`, `'started'` or `'stopped'`: the last event.
    pub event: String,
    pub key: u32,
    /// The request's `ip` field as a dotted quad, when it was not 0.
    pub ip: Option<String>,
    /// BEP 41 URL data of the last announce (lossy UTF-8).
    pub url_data: String,
}

#[napi(object)]
pub struct TestTrackerSwarm {
    pub complete: u32,
    pub incomplete: u32,
    pub downloaded: u32,
    pub peers: Vec<TestTrackerPeer>,
}

/// A BEP 15 tracker on its own thread; closed by `close()` or when collected.
#[napi]
pub struct TestTracker {
    server: Server,
    tracker: Arc<Mutex<crate::tracker::Tracker>>,
}

#[napi]
impl TestTracker {
    #[napi(constructor)]
    pub fn new(options: TestTrackerOptions) -> Result<Self> {
        let host: IpAddr = options
            .host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| range_error("host must be an IP address"))?;
        if !host.is_loopback() && !options.allow_non_loopback {
            return Err(range_error(
                "host is not a loopback address: pass allowNonLoopback: true to bind it",
            ));
        }
        let server = Server::start(ServerOptions {
            host,
            port: port(options.port, "port")?,
            reply_from: options
                .reply_from
                .map(|p| port(p, "replyFrom"))
                .transpose()?,
            config: tracker_config(&options)?,
            seed: options.seed.map(|s| s.abs() as u64),
        })
        .map_err(|e| {
            Error::from_reason(format!("cannot bind {host} port {}: {e}", options.port))
        })?;
        let tracker = server.tracker();
        Ok(TestTracker { server, tracker })
    }

    #[napi(getter)]
    pub fn port(&self) -> u32 {
        u32::from(self.server.local_addr().port())
    }

    #[napi(getter)]
    pub fn reply_port(&self) -> Option<u32> {
        self.server.reply_addr().map(|a| u32::from(a.port()))
    }

    #[napi]
    pub fn close(&mut self) {
        self.server.close();
    }

    #[napi]
    pub fn restart(&self) {
        server::lock(&self.tracker).restart(server::secret(), std::time::Instant::now());
    }

    #[napi]
    pub fn stats(&self) -> TestTrackerStats {
        let tracker = server::lock(&self.tracker);
        let (swarms, peers) = tracker.size();
        tracker_stats_to_js(tracker.stats(), swarms, peers)
    }

    #[napi]
    pub fn swarm(&self, info_hash: BufferSlice) -> Result<Option<TestTrackerSwarm>> {
        let hash = InfoHash(twenty_bytes(&info_hash, "infoHash")?);
        let tracker = server::lock(&self.tracker);
        Ok(tracker.swarm(&hash).map(|swarm| {
            let (complete, incomplete) = swarm.counts();
            TestTrackerSwarm {
                complete,
                incomplete,
                downloaded: swarm.downloaded,
                peers: swarm
                    .peers()
                    .map(|p| TestTrackerPeer {
                        peer_id: p.peer_id.0.to_vec().into(),
                        address: p.addr.to_string(),
                        downloaded: BigInt::from(p.downloaded),
                        left: BigInt::from(p.left),
                        uploaded: BigInt::from(p.uploaded),
                        event: event_name(p.event).to_owned(),
                        key: p.key,
                        ip: (p.ip != 0).then(|| std::net::Ipv4Addr::from(p.ip).to_string()),
                        url_data: String::from_utf8_lossy(&p.url_data).into_owned(),
                    })
                    .collect(),
            }
        }))
    }
}

fn tracker_config(options: &TestTrackerOptions) -> Result<TrackerConfig> {
    let probability = |p: f64, name: &str| {
        if (0.0..=1.0).contains(&p) {
            Ok(p)
        } else {
            Err(range_error(&format!(
                "{name} must be a probability from 0 to 1"
            )))
        }
    };
    let delay = |ms: f64| {
        Duration::try_from_secs_f64(ms / 1000.0)
            .map_err(|_| range_error("delay must be a non-negative number of milliseconds"))
    };
    let (min, max) = (delay(options.delay_min_ms)?, delay(options.delay_max_ms)?);
    if min > max {
        return Err(range_error("delay must be [min, max] with min <= max"));
    }
    let max_scrape = options.max_scrape as usize;
    if !(1..=crate::tracker::MAX_SCRAPE_LIMIT).contains(&max_scrape) {
        return Err(range_error("maxScrape must be from 1 to 3274"));
    }
    let max_peers = options.max_peers as usize;
    if max_peers > MAX_PEERS_LIMIT {
        return Err(range_error("maxPeers must be from 0 to 3638"));
    }
    let mut faults = Faults {
        loss: probability(options.loss, "loss")?,
        duplicate: probability(options.duplicate, "duplicate")?,
        delay: (min, max),
        ..Faults::default()
    };
    for refusal in &options.error_for {
        let hash = InfoHash(twenty_bytes(&refusal.info_hash, "errorFor")?);
        faults.error_for.insert(hash, refusal.message.clone());
    }
    for hash in &options.silent_for {
        faults
            .silent_for
            .insert(InfoHash(twenty_bytes(hash, "silentFor")?));
    }
    Ok(TrackerConfig {
        interval: options.interval,
        max_scrape,
        max_peers,
        faults,
    })
}

fn event_name(event: AnnounceEvent) -> &'static str {
    match event {
        AnnounceEvent::None => "none",
        AnnounceEvent::Completed => "completed",
        AnnounceEvent::Started => "started",
        AnnounceEvent::Stopped => "stopped",
    }
}

// Counters are exact in a JS number up to 2^53.
#[allow(clippy::cast_precision_loss)]
fn tracker_stats_to_js(s: TrackerStats, swarms: usize, peers: usize) -> TestTrackerStats {
    TestTrackerStats {
        requests: TestTrackerRequests {
            connect: s.connect as f64,
            announce: s.announce as f64,
            scrape: s.scrape as f64,
            invalid: s.invalid as f64,
        },
        replies: s.replies as f64,
        errors: s.errors as f64,
        duplicates: s.duplicates as f64,
        dropped: TestTrackerDrops {
            loss: s.dropped_loss as f64,
            silent: s.dropped_silent as f64,
            connection_id: s.dropped_connection_id as f64,
            malformed: s.dropped_malformed as f64,
        },
        swarms: u32::try_from(swarms).unwrap_or(u32::MAX),
        peers: u32::try_from(peers).unwrap_or(u32::MAX),
    }
}
