//! The whole `#[napi]` surface. `index.js` validates arguments and wraps this
//! in the 1.2.0 EventEmitter API; this layer checks again where a bad value
//! could reach the wire, and never panics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use napi::bindgen_prelude::{BigInt, Buffer, BufferSlice, Either, Function};
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi::{Error, Result, Status};
use napi_derive::napi;

use crate::driver::{Command, Driver, Family, StartRequest, Target};
use crate::proxy::{ProxyConfig, ProxyKey, ProxyStats};
use sha1::{Digest, Sha1};

use crate::proto::{AnnounceEvent, Authentication, InfoHash, LibtorrentExtensions, PeerId};
use crate::session::{
    AnnounceParams, Completion, Outcome, RequestError, RequestKind, RequestOptions, MAX_ATTEMPTS,
};

/// Where requests go and how: registered once per tracker URL and options
/// (`Engine.target`), then named by its handle in every request.
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
    /// ... and password (hashed here, never sent).
    pub auth_password: Option<Buffer>,
    /// libtorrent request-string extension (at most 255 bytes).
    pub request_string: Option<Buffer>,
    /// A SOCKS5 proxy every request goes through (`opts.proxy`).
    pub proxy: Option<ProxyArgs>,
}

/// `opts.proxy`, parsed by `index.js`: `socks5://[user:password@]host:port`,
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

/// Registered targets by handle; released handles are reused.
#[derive(Default)]
struct Targets {
    slots: Vec<Option<Arc<Registered>>>,
    free: Vec<u32>,
}

impl Targets {
    fn insert(&mut self, target: Arc<Registered>) -> Result<u32> {
        if let Some(handle) = self.free.pop() {
            if let Some(slot) = self.slots.get_mut(handle as usize) {
                *slot = Some(target);
                return Ok(handle);
            }
        }
        let handle = u32::try_from(self.slots.len())
            .map_err(|_| Error::from_reason("too many tracker targets"))?;
        self.slots.push(Some(target));
        Ok(handle)
    }

    fn get(&self, handle: u32) -> Option<Arc<Registered>> {
        self.slots.get(handle as usize).and_then(Clone::clone)
    }

    fn remove(&mut self, handle: u32) {
        if let Some(slot) = self.slots.get_mut(handle as usize) {
            if slot.take().is_some() {
                self.free.push(handle);
            }
        }
    }
}

struct Registered {
    target: Arc<Target>,
    url_data: Vec<u8>,
    extensions: Option<LibtorrentExtensions>,
}

#[napi(object)]
pub struct ScrapeStatsJs {
    pub complete: u32,
    pub downloaded: u32,
    pub incomplete: u32,
}

/// One finished request, as handed to the engine's callback.
#[napi(object)]
pub struct CompletionJs {
    pub id: u32,
    /// Set when the request failed: the 1.2.0 error text.
    pub error: Option<String>,
    /// With `error`: ERR_TRACKER_ERROR, ERR_BAD_RESPONSE, ERR_TRACKER_TIMEOUT,
    /// ERR_DNS, ERR_SEND or ERR_PROXY.
    pub code: Option<String>,
    pub interval: Option<u32>,
    pub leechers: Option<u32>,
    pub seeders: Option<u32>,
    /// `'a.b.c.d:port'` or `'[v6]:port'`.
    pub peers: Option<Vec<String>>,
    pub scrape: Option<Vec<ScrapeStatsJs>>,
}

#[napi(object)]
pub struct EngineStats {
    pub sent: f64,
    pub received: f64,
    pub dropped_short: f64,
    pub dropped_unknown: f64,
    pub dropped_late: f64,
    pub dropped_wrong_source: f64,
    pub in_flight: u32,
    /// Requests waiting for a place in the window (not sent yet).
    pub queued: u32,
    pub sockets: u32,
    pub cached_connection_ids: u32,
    /// Requests through SOCKS5 proxies (`opts.proxy`), not counted above.
    pub proxy: ProxyStatsJs,
}

/// The process's (more exactly, the JS realm's) tracker client: one socket
/// per address family, one driver thread.
#[napi]
pub struct Engine {
    driver: Driver,
    targets: Mutex<Targets>,
}

#[napi]
impl Engine {
    /// `onComplete` is called with arrays of finished requests. It does not
    /// keep Node alive by itself; `index.js` holds a handle while requests
    /// are in flight.
    #[napi(constructor)]
    pub fn new(on_complete: Function<'_, Vec<CompletionJs>, ()>) -> Result<Self> {
        let callback = on_complete
            .build_threadsafe_function::<Vec<CompletionJs>>()
            .weak::<true>()
            .build()?;
        let driver = Driver::spawn(Box::new(move |batch: Vec<Completion>| {
            let batch = batch.into_iter().map(completion_to_js).collect();
            // A closing environment refuses the call; nothing is left to tell.
            let _ = callback.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
        }))
        .map_err(|e| Error::from_reason(format!("cannot start the tracker driver: {e}")))?;
        Ok(Engine {
            driver,
            targets: Mutex::new(Targets::default()),
        })
    }

    /// Registers a tracker and request options; returns the handle requests name.
    #[napi]
    pub fn target(&self, args: TargetArgs) -> Result<u32> {
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
        };
        let port = port(args.port, "announceUrl port")?;
        let registered = Registered {
            extensions: extensions(&args)?,
            url_data: args.url_data.to_vec(),
            target: Arc::new(with_proxy(
                Target::new(args.host, port, family, options),
                args.proxy,
            )?),
        };
        self.targets()?.insert(Arc::new(registered))
    }

    /// Forgets a target; requests already started with it are not affected.
    #[napi]
    pub fn release_target(&self, handle: u32) -> Result<()> {
        self.targets()?.remove(handle);
        Ok(())
    }

    /// Starts announce `id` to `target`. Counters are numbers (safe integers)
    /// or BigInt; positional arguments keep this call cheap.
    #[allow(clippy::too_many_arguments)]
    #[napi]
    pub fn announce(
        &self,
        id: u32,
        target: u32,
        info_hash: BufferSlice,
        peer_id: BufferSlice,
        downloaded: Either<f64, BigInt>,
        left: Either<f64, BigInt>,
        uploaded: Either<f64, BigInt>,
        event: u32,
        key: u32,
        num_want: i32,
        ip: u32,
        port_announced: u32,
    ) -> Result<()> {
        let registered = self.registered(target)?;
        let event = AnnounceEvent::from_u32(event)
            .ok_or_else(|| range_error("event must be 0, 1, 2 or 3"))?;
        let params = AnnounceParams {
            info_hash: InfoHash(twenty_bytes(&info_hash, "infoHash")?),
            peer_id: PeerId(twenty_bytes(&peer_id, "peerId")?),
            downloaded: counter(&downloaded, "downloaded")?,
            left: counter(&left, "left")?,
            uploaded: counter(&uploaded, "uploaded")?,
            event,
            ip,
            key,
            num_want,
            port: port(port_announced, "port")?,
            url_data: registered.url_data.clone(),
            extensions: registered.extensions.clone(),
        };
        self.start(id, &registered, RequestKind::Announce(params))
    }

    /// Scrapes the info hashes concatenated in `info_hashes` (1 to 74 of them;
    /// the caller splits larger sets).
    #[napi]
    pub fn scrape(&self, id: u32, target: u32, info_hashes: BufferSlice) -> Result<()> {
        let registered = self.registered(target)?;
        let limit = crate::proto::MAX_SCRAPE_HASHES_V4;
        let count = info_hashes.len() / 20;
        if !info_hashes.len().is_multiple_of(20) || count == 0 || count > limit {
            return Err(range_error(&format!(
                "infoHashes must hold 1 to {limit} 20-byte hashes per request"
            )));
        }
        let hashes = info_hashes
            .chunks_exact(20)
            .map(|h| twenty_bytes(h, "infoHashes").map(InfoHash))
            .collect::<Result<Vec<_>>>()?;
        self.start(id, &registered, RequestKind::Scrape(hashes))
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
            in_flight: u32::try_from(s.in_flight).unwrap_or(u32::MAX),
            queued: u32::try_from(s.queued).unwrap_or(u32::MAX),
            sockets: u32::try_from(s.sockets).unwrap_or(u32::MAX),
            cached_connection_ids: u32::try_from(s.cached_connection_ids).unwrap_or(u32::MAX),
            proxy: proxy_stats(&s.proxy),
        })
    }

    fn targets(&self) -> Result<std::sync::MutexGuard<'_, Targets>> {
        self.targets
            .lock()
            .map_err(|_| Error::from_reason("tracker targets lock poisoned"))
    }

    fn registered(&self, handle: u32) -> Result<Arc<Registered>> {
        self.targets()?
            .get(handle)
            .ok_or_else(|| range_error("unknown tracker target"))
    }

    fn start(&self, id: u32, registered: &Registered, kind: RequestKind) -> Result<()> {
        let start = StartRequest {
            id,
            target: Arc::clone(&registered.target),
            kind,
        };
        if self.driver.send(Command::Start(start)) {
            Ok(())
        } else {
            Err(Error::from_reason("the tracker driver has stopped"))
        }
    }
}

fn extensions(args: &TargetArgs) -> Result<Option<LibtorrentExtensions>> {
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
    Ok(Some(LibtorrentExtensions {
        auth,
        request_string,
    }))
}

fn short_string(bytes: &[u8], name: &str) -> Result<Vec<u8>> {
    if bytes.len() > 255 {
        return Err(range_error(&format!("{name} must be at most 255 bytes")));
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

/// 2^53: above it a JS number is no longer an exact integer.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_992.0;

fn counter(value: &Either<f64, BigInt>, name: &str) -> Result<u64> {
    match value {
        Either::A(n) if n.fract() == 0.0 && (0.0..MAX_SAFE_INTEGER).contains(n) => {
            // Checked above: a non-negative integer below 2^53 converts exactly.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            Ok(*n as u64)
        }
        Either::B(big) => match big.get_u64() {
            (false, n, true) => Ok(n),
            _ => Err(range_error(&format!("{name} must be from 0 to 2^64-1"))),
        },
        Either::A(_) => Err(range_error(&format!(
            "{name} must be a non-negative safe integer or a BigInt"
        ))),
    }
}

fn port(value: u32, name: &str) -> Result<u16> {
    u16::try_from(value).map_err(|_| range_error(&format!("{name} must be from 0 to 65535")))
}

fn completion_to_js(completion: Completion) -> CompletionJs {
    let mut js = CompletionJs {
        id: completion.id,
        error: None,
        code: None,
        interval: None,
        leechers: None,
        seeders: None,
        peers: None,
        scrape: None,
    };
    match completion.outcome {
        Outcome::Announced(reply) => {
            js.interval = Some(reply.interval);
            js.leechers = Some(reply.leechers);
            js.seeders = Some(reply.seeders);
            js.peers = Some(reply.peers.iter().map(|p| p.to_string()).collect());
        }
        Outcome::Scraped(reply) => {
            js.scrape = Some(
                reply
                    .stats
                    .iter()
                    .map(|s| ScrapeStatsJs {
                        complete: s.seeders,
                        downloaded: s.completed,
                        incomplete: s.leechers,
                    })
                    .collect(),
            );
        }
        Outcome::Failed(error) => {
            js.code = Some(error_code(&error).to_owned());
            js.error = Some(error.to_string());
        }
    }
    js
}

fn error_code(error: &RequestError) -> &'static str {
    match error {
        RequestError::Tracker(_) => "ERR_TRACKER_ERROR",
        RequestError::BadResponse(_) => "ERR_BAD_RESPONSE",
        RequestError::Timeout { .. } => "ERR_TRACKER_TIMEOUT",
        RequestError::Resolve(_) => "ERR_DNS",
        RequestError::Send(_) => "ERR_SEND",
        RequestError::Proxy(_) => "ERR_PROXY",
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
