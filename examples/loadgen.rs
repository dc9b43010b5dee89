//! The ceiling for `bench/run.js`: the same N announces as the Node benchmark,
//! written with this crate's codec and pushed through one blocking
//! `std::net::UdpSocket`, with no Node, no napi and no tokio in the way.
//!
//! One connect, then N announces (event `started`, distinct random info hashes
//! and peer ids, counters 0, num_want 50) with at most `--window` in flight;
//! a request without a reply after `--rto-ms` is sent again (up to
//! `--max-attempts` sends). Prints one JSON line.
//!
//! ```sh
//! cargo run --release --example loadgen -- --tracker 127.0.0.1:3000 --n 20000
//! ```
//!
//! Only point it at a tracker you run yourself on loopback.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bittorrent_udp_tracker::proto::{
    AnnounceEvent, AnnounceParams, ConnectRequest, ConnectionId, InfoHash, PeerId, Response,
    TransactionId,
};
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};

/// The socket buffer sizes the engine asks for (src/driver.rs); the kernel
/// caps them at net.core.rmem_max / wmem_max.
const RECEIVE_BUFFER: usize = 8 << 20;
const SEND_BUFFER: usize = 4 << 20;

struct Options {
    tracker: SocketAddr,
    n: usize,
    window: usize,
    rto: Duration,
    max_attempts: u32,
    deadline: Duration,
}

fn usage() -> String {
    "usage: loadgen --tracker HOST:PORT [--n 20000] [--window 256] [--rto-ms 250] \
     [--max-attempts 8] [--deadline-s 60]"
        .to_string()
}

fn parse_args() -> Result<Options, String> {
    let mut tracker = None;
    let mut n = 20_000usize;
    let mut window = 256usize;
    let mut rto_ms = 250u64;
    let mut max_attempts = 8u32;
    let mut deadline_s = 60u64;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{flag} needs a value\n{}", usage()))
        };
        let bad = |e: &dyn std::fmt::Display| format!("bad value for {flag}: {e}");
        match flag.as_str() {
            "--tracker" => tracker = Some(value()?.parse().map_err(|e| bad(&e))?),
            "--n" => n = value()?.parse().map_err(|e| bad(&e))?,
            "--window" => window = value()?.parse().map_err(|e| bad(&e))?,
            "--rto-ms" => rto_ms = value()?.parse().map_err(|e| bad(&e))?,
            "--max-attempts" => max_attempts = value()?.parse().map_err(|e| bad(&e))?,
            "--deadline-s" => deadline_s = value()?.parse().map_err(|e| bad(&e))?,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    let tracker: SocketAddr = tracker.ok_or_else(usage)?;
    if !tracker.ip().is_loopback() {
        return Err(format!(
            "--tracker must be a loopback address (127.0.0.0/8 or ::1), got {tracker}"
        ));
    }
    if window == 0 || max_attempts == 0 || rto_ms == 0 {
        return Err("--window, --rto-ms and --max-attempts must be at least 1".to_string());
    }
    Ok(Options {
        tracker,
        n,
        window,
        rto: Duration::from_millis(rto_ms),
        max_attempts,
        deadline: Duration::from_secs(deadline_s),
    })
}

/// One announce in flight.
struct InFlight {
    index: usize,
    first_sent: Instant,
    last_sent: Instant,
    attempts: u32,
}

#[derive(Default)]
struct Counts {
    ok: usize,
    errors: usize,
    timeouts: usize,
    sent: u64,
    received: u64,
    retransmits: u64,
    stray: u64,
    unparsable: u64,
    reconnects: u64,
}

struct Loadgen {
    socket: UdpSocket,
    ipv6: bool,
    opts: Options,
    buf: Vec<u8>,
    recv_buf: Vec<u8>,
    counts: Counts,
}

impl Loadgen {
    fn send(&mut self) -> std::io::Result<()> {
        self.counts.sent += 1;
        match self.socket.send(&self.buf) {
            Ok(_) => Ok(()),
            // A full socket buffer or a refused port (ICMP from an earlier
            // send): the datagram counts as lost and is retransmitted.
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Receives one datagram, or `None` when the read timeout passes first.
    fn recv(&mut self) -> std::io::Result<Option<Response>> {
        match self.socket.recv(&mut self.recv_buf) {
            Ok(len) => {
                self.counts.received += 1;
                match Response::parse(&self.recv_buf[..len], self.ipv6) {
                    Ok(response) => Ok(Some(response)),
                    Err(_) => {
                        self.counts.unparsable += 1;
                        Ok(None)
                    }
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn connect(&mut self, started: Instant) -> Result<ConnectionId, String> {
        let tid = TransactionId(rand::rng().random());
        self.buf.clear();
        ConnectRequest {
            transaction_id: tid,
        }
        .write(&mut self.buf);
        for attempt in 0..self.opts.max_attempts {
            if attempt > 0 {
                self.counts.retransmits += 1;
            }
            self.send().map_err(|e| format!("send connect: {e}"))?;
            let sent = Instant::now();
            while sent.elapsed() < self.opts.rto {
                if started.elapsed() > self.opts.deadline {
                    return Err("deadline passed while connecting".to_string());
                }
                match self.recv().map_err(|e| format!("recv: {e}"))? {
                    Some(Response::Connect(c)) if c.transaction_id == tid => {
                        return Ok(c.connection_id)
                    }
                    Some(Response::Error(e)) if e.transaction_id == tid => {
                        return Err(format!("tracker refused the connect: {}", e.message))
                    }
                    Some(_) => self.counts.stray += 1,
                    None => {}
                }
            }
        }
        Err(format!(
            "no connect response after {} attempts",
            self.opts.max_attempts
        ))
    }

    fn write_announce(
        &mut self,
        connection_id: ConnectionId,
        tid: TransactionId,
        info_hash: [u8; 20],
        peer_id: [u8; 20],
        key: u32,
    ) {
        self.buf.clear();
        AnnounceParams {
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
            downloaded: 0,
            left: 0,
            uploaded: 0,
            event: AnnounceEvent::Started,
            ip: 0,
            key,
            num_want: 50,
            port: 6881,
            url_data: Vec::new(),
            extensions: None,
        }
        .write(connection_id, tid, &mut self.buf);
    }

    fn run(&mut self) -> Result<(Duration, Vec<f64>), String> {
        let started = Instant::now();
        let mut connection_id = self.connect(started)?;
        let mut rng = rand::rng();
        // The requests, made up front so that generating them is not timed
        // per send: (info hash, peer id, key).
        let requests: Vec<([u8; 20], [u8; 20], u32)> = (0..self.opts.n)
            .map(|_| (rng.random(), rng.random(), rng.random()))
            .collect();
        let mut in_flight: HashMap<u32, InFlight> = HashMap::with_capacity(self.opts.window * 2);
        let mut latencies_ms = Vec::with_capacity(self.opts.n);
        let mut next = 0usize;
        let mut done = 0usize;
        let mut last_scan = Instant::now();
        // Short read timeouts so that retransmissions are not late.
        let tick = (self.opts.rto / 4).max(Duration::from_millis(1));
        self.socket
            .set_read_timeout(Some(tick))
            .map_err(|e| format!("set_read_timeout: {e}"))?;

        while done < self.opts.n {
            if started.elapsed() > self.opts.deadline {
                self.counts.timeouts += in_flight.len() + (self.opts.n - next);
                break;
            }
            // Fill the window.
            while in_flight.len() < self.opts.window && next < self.opts.n {
                let tid = loop {
                    let t: u32 = rng.random();
                    if !in_flight.contains_key(&t) {
                        break t;
                    }
                };
                let (info_hash, peer_id, key) = requests[next];
                self.write_announce(connection_id, TransactionId(tid), info_hash, peer_id, key);
                self.send().map_err(|e| format!("send announce: {e}"))?;
                let now = Instant::now();
                in_flight.insert(
                    tid,
                    InFlight {
                        index: next,
                        first_sent: now,
                        last_sent: now,
                        attempts: 1,
                    },
                );
                next += 1;
            }
            match self.recv().map_err(|e| format!("recv: {e}"))? {
                Some(Response::Announce(a)) => match in_flight.remove(&a.transaction_id.0) {
                    Some(req) => {
                        self.counts.ok += 1;
                        done += 1;
                        latencies_ms.push(req.first_sent.elapsed().as_secs_f64() * 1e3);
                    }
                    None => self.counts.stray += 1,
                },
                Some(Response::Error(e)) => match in_flight.remove(&e.transaction_id.0) {
                    Some(req) => {
                        // The tracker forgot our connection id: reconnect
                        // and put the request back in flight (a few times at
                        // most; after that an error reply is an error).
                        if self.counts.reconnects < 8 {
                            self.counts.reconnects += 1;
                            connection_id = self.connect(started)?;
                            let (info_hash, peer_id, key) = requests[req.index];
                            let tid = e.transaction_id;
                            self.write_announce(connection_id, tid, info_hash, peer_id, key);
                            self.send().map_err(|e| format!("send announce: {e}"))?;
                            in_flight.insert(
                                tid.0,
                                InFlight {
                                    last_sent: Instant::now(),
                                    attempts: req.attempts + 1,
                                    ..req
                                },
                            );
                        } else {
                            self.counts.errors += 1;
                            done += 1;
                        }
                    }
                    None => self.counts.stray += 1,
                },
                Some(_) => self.counts.stray += 1,
                None => {}
            }
            // Retransmit what has waited longer than the RTO.
            if last_scan.elapsed() >= tick {
                last_scan = Instant::now();
                let expired: Vec<u32> = in_flight
                    .iter()
                    .filter(|(_, r)| r.last_sent.elapsed() >= self.opts.rto)
                    .map(|(&tid, _)| tid)
                    .collect();
                for tid in expired {
                    let Some(req) = in_flight.get_mut(&tid) else {
                        continue;
                    };
                    if req.attempts >= self.opts.max_attempts {
                        in_flight.remove(&tid);
                        self.counts.timeouts += 1;
                        done += 1;
                        continue;
                    }
                    req.attempts += 1;
                    req.last_sent = Instant::now();
                    let index = req.index;
                    let (info_hash, peer_id, key) = requests[index];
                    self.write_announce(connection_id, TransactionId(tid), info_hash, peer_id, key);
                    self.counts.retransmits += 1;
                    self.send().map_err(|e| format!("send announce: {e}"))?;
                }
            }
        }
        Ok((started.elapsed(), latencies_ms))
    }
}

/// Nearest-rank percentile as a JSON number, `null` when there is no sample.
fn percentile(sorted: &[f64], p: f64) -> String {
    if sorted.is_empty() {
        return "null".to_string();
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    format!("{:.3}", sorted[rank.clamp(1, sorted.len()) - 1])
}

/// One blocking std socket, bound on loopback and connected to the tracker,
/// with the engine's buffer sizes.
fn open_socket(tracker: SocketAddr) -> std::io::Result<UdpSocket> {
    let (domain, bind): (Domain, SocketAddr) = if tracker.is_ipv6() {
        (Domain::IPV6, "[::1]:0".parse().expect("a socket address"))
    } else {
        (
            Domain::IPV4,
            "127.0.0.1:0".parse().expect("a socket address"),
        )
    };
    let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    let _ = socket.set_send_buffer_size(SEND_BUFFER);
    socket.bind(&bind.into())?;
    let socket: UdpSocket = socket.into();
    socket.connect(tracker)?;
    Ok(socket)
}

/// This process's CPU time (user + system) in ms, from /proc/self/stat
/// (in USER_HZ = 100 ticks a second on Linux); `None` elsewhere.
fn cpu_ms() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * 10.0)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let socket = match open_socket(opts.tracker) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cannot open a socket to {}: {e}", opts.tracker);
            return ExitCode::FAILURE;
        }
    };
    let mut gen = Loadgen {
        ipv6: opts.tracker.is_ipv6(),
        socket,
        opts,
        buf: Vec::with_capacity(128),
        recv_buf: vec![0; 2048],
        counts: Counts::default(),
    };
    let (wall, mut latencies) = match gen.run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    latencies.sort_by(f64::total_cmp);
    let c = &gen.counts;
    let wall_ms = wall.as_secs_f64() * 1e3;
    println!(
        "{{\"impl\":\"ceiling\",\"n\":{},\"window\":{},\"ok\":{},\"errors\":{},\"timeouts\":{},\
         \"wall_ms\":{:.1},\"announces_per_s\":{:.0},\"p50_ms\":{},\"p99_ms\":{},\
         \"sent\":{},\"received\":{},\"retransmits\":{},\"stray\":{},\"unparsable\":{},\"reconnects\":{},\
         \"cpu_process_total_ms\":{}}}",
        gen.opts.n,
        gen.opts.window,
        c.ok,
        c.errors,
        c.timeouts,
        wall_ms,
        c.ok as f64 / wall.as_secs_f64(),
        percentile(&latencies, 50.0),
        percentile(&latencies, 99.0),
        c.sent,
        c.received,
        c.retransmits,
        c.stray,
        c.unparsable,
        c.reconnects,
        cpu_ms().map_or("null".to_string(), |ms| format!("{ms:.0}"))
    );
    if c.ok == gen.opts.n {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
