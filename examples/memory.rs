//! What the engine holds per request, in bytes on the heap, counted by a
//! global allocator (exact and independent of the machine's load, unlike
//! RSS).
//!
//! The session part starts N announces at once through a `Session`, each
//! instance with a connection-id scope of its own as the 1.2.0 class gives
//! them, to one tracker, and reports the heap it holds per request at each
//! stage:
//! - `started`: every request started, the shared connect out (the window's
//!   4,096 wait on it, the rest are queued behind the window);
//! - `connected`: the connect answered, the tracker silent since: 64 requests
//!   out (the tracker's first congestion window), the rest of the window's
//!   waiting in the tracker's line, the others still queued;
//! - `in_flight`: every request out (window and congestion window opened to
//!   N), no reply yet;
//! - `finished`: every request answered (what is left are the retired
//!   transaction ids, the connection-id cache's scopes, the maps' capacity).
//!
//! The driver part goes through the driver thread (`Driver`, the same
//! `StartRequest`s `src/binding.rs` decodes, in parts of 700 as
//! `lib/engine.js` hands over a large tick) to a loopback tracker, so its
//! figures include the tokio thread, the socket, the commands not handled
//! yet and the datagrams not sent yet (see `driver_stage`):
//! - `burst`: right after the last part, to a tracker answering everything,
//!   the moment `bench/run.js` takes its RSS per live instance;
//!   `burst_finished`: once every request has finished;
//! - `silent`: two seconds into a burst to a tracker that answered the
//!   first connect only.
//!
//! ```sh
//! cargo run --release --example memory -- 20000
//! ```
//! Prints one JSON line per stage: live bytes (as asked of the allocator) and
//! allocations per request, and `chunk_bytes`, the same rounded up as glibc's
//! malloc lays them out (8 bytes of header, 16-byte steps, 32 at least).

use std::alloc::{GlobalAlloc, Layout, System};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent_udp_tracker::driver::{Command, Driver, Family, StartRequest, Target};
use bittorrent_udp_tracker::session::{Outcome, RequestKind, RequestOptions, Session};

#[path = "../benches/common/mod.rs"]
mod common;
use common::{params, reply};

struct Counting;

static BYTES: AtomicIsize = AtomicIsize::new(0);
static CHUNKS: AtomicIsize = AtomicIsize::new(0);
static COUNT: AtomicIsize = AtomicIsize::new(0);

/// What glibc's malloc uses for `size` bytes asked.
fn chunk(size: usize) -> isize {
    isize::try_from(((size + 8 + 15) & !15).max(32)).unwrap_or(isize::MAX)
}

fn add(size: usize, sign: isize) {
    BYTES.fetch_add(sign * isize::try_from(size).unwrap_or(0), Ordering::Relaxed);
    CHUNKS.fetch_add(sign * chunk(size), Ordering::Relaxed);
    COUNT.fetch_add(sign, Ordering::Relaxed);
}

// SAFETY: every call is passed on to the system allocator unchanged; the
// counters only observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size(), 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(layout.size(), -1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(layout.size(), -1);
        add(new_size, 1);
        // SAFETY: the caller's contract, passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy)]
struct Heap {
    bytes: isize,
    chunks: isize,
    count: isize,
}

fn heap() -> Heap {
    Heap {
        bytes: BYTES.load(Ordering::Relaxed),
        chunks: CHUNKS.load(Ordering::Relaxed),
        count: COUNT.load(Ordering::Relaxed),
    }
}

/// One JSON line: what is held now beyond `base`, per request.
fn report(part: &str, stage: &str, n: u32, base: Heap) {
    let now = heap();
    let per = |x: isize| x as f64 / f64::from(n);
    println!(
        "{{\"part\":\"{part}\",\"stage\":\"{stage}\",\"n\":{n},\"bytes\":{:.1},\"chunk_bytes\":{:.1},\"allocations\":{:.2}}}",
        per(now.bytes - base.bytes),
        per(now.chunks - base.chunks),
        per(now.count - base.count),
    );
}

/// A tracker's reply to `datagram` (a connect or an announce): its length
/// and bytes, on the stack so that keeping replies costs no allocation.
fn reply_bytes(datagram: &[u8], out: &mut Vec<u8>) -> (usize, [u8; 20]) {
    reply(datagram, out);
    let mut bytes = [0u8; 20];
    let len = out.len().min(20);
    bytes[..len].copy_from_slice(&out[..len]);
    (len, bytes)
}

/// The tracker address of request `i` in the `in_flight` stage: one per
/// 64 requests, so that each tracker's first congestion window lets its
/// requests out with no reply.
fn tracker_of(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + u16::try_from(i / 64).unwrap_or(0)))
}

fn start_all(session: &mut Session, now: Instant, n: u32, tracker: impl Fn(u32) -> SocketAddr) {
    for i in 1..=n {
        let options = RequestOptions {
            scope: i,
            ..RequestOptions::default()
        };
        session.start(
            now,
            i,
            tracker(i),
            RequestKind::Announce(params(i)),
            options,
        );
    }
}

fn session_stages(n: u32) {
    let now = Instant::now();
    let mut out = Vec::with_capacity(64);
    let one = tracker_of(0);
    let base = heap();
    let mut session = Session::new();
    start_all(&mut session, now, n, |_| one);
    // The driver sends what is ready at once; the connect is the only one.
    let connect = session
        .poll_transmit()
        .map(|t| reply_bytes(&t.payload, &mut out));
    report("session", "started", n, base);

    if let Some((len, bytes)) = connect {
        session.handle_datagram(now, one, &bytes[..len]);
    }
    // What the driver holds of the datagrams is gone once they are sent.
    let mut sent = 0;
    while session.poll_transmit().is_some() {
        sent += 1;
    }
    report("session", "connected", n, base);
    eprintln!(
        "session: {sent} announces out after the connect, {} waiting, {} queued",
        session.tracker(one).map_or(0, |s| s.waiting()),
        session.queued()
    );
    drop(session);

    // Every request out: no window, and 64 requests per tracker address.
    let mut replies: Vec<(SocketAddr, usize, [u8; 20])> = Vec::with_capacity(n as usize);
    let base = heap();
    let mut session = Session::new();
    session.set_window(n as usize + 1, now);
    start_all(&mut session, now, n, tracker_of);
    // The connects first, then each tracker's announces as its connect is
    // answered (so that no more datagrams pile up than the driver's would).
    let connects: Vec<_> = std::iter::from_fn(|| session.poll_transmit()).collect();
    for connect in connects {
        let (len, bytes) = reply_bytes(&connect.payload, &mut out);
        session.handle_datagram(now, connect.destination, &bytes[..len]);
        while let Some(t) = session.poll_transmit() {
            let (len, bytes) = reply_bytes(&t.payload, &mut out);
            replies.push((t.destination, len, bytes));
        }
    }
    assert_eq!(replies.len(), n as usize, "every announce out");
    report("session", "in_flight", n, base);

    let later = now + Duration::from_millis(1);
    let mut finished = 0;
    for (from, len, bytes) in replies.drain(..) {
        session.handle_datagram(later, from, &bytes[..len]);
        while let Some(c) = session.poll_completion() {
            assert!(matches!(c.outcome, Outcome::Announced(_)));
            finished += 1;
        }
    }
    assert_eq!(finished, n, "every announce answered");
    // As the driver asks after each turn.
    assert_eq!(session.poll_timeout(), None);
    report("session", "finished", n, base);
}

/// A loopback tracker on a thread of its own: it answers every datagram
/// as aquatic would, or (`silent`) the first connect only.
fn tracker(silent: bool) -> std::io::Result<u16> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    let port = socket.local_addr()?.port();
    std::thread::spawn(move || {
        let (mut buf, mut out) = ([0u8; 2048], Vec::new());
        let mut answered = 0;
        while let Ok((len, from)) = socket.recv_from(&mut buf) {
            if !silent || (len == 16 && answered == 0) {
                reply(&buf[..len], &mut out);
                let _ = socket.send_to(&out, from);
                answered += 1;
            }
        }
    });
    Ok(port)
}

/// Through the driver thread: N announces handed over in parts of 700 (as
/// `lib/engine.js` hands over a large tick), one part every `pace`.
/// - `burst`: to a tracker that answers everything, a part every 10 ms
///   (about the benchmark's pace): what is held right after the last part,
///   as `bench/run.js` measures its RSS per live instance, then once every
///   request has finished;
/// - `silent`: to a tracker that answers the first connect only, with a
///   100 ms timeout, two seconds on: the first requests out and
///   retransmitted, the later ones waiting on a new connect (silence on the
///   cached id made it suspect) or queued behind the window; none finished.
fn driver_stage(n: u32, silent: bool) -> std::io::Result<()> {
    let port = tracker(silent)?;
    let done = Arc::new(AtomicIsize::new(0));
    let finished = Arc::clone(&done);
    let base = heap();
    let driver = Driver::spawn(Box::new(move |batch| {
        finished.fetch_add(isize::try_from(batch.len()).unwrap_or(0), Ordering::Relaxed);
    }))?;
    let options = RequestOptions {
        timeout: Duration::from_millis(if silent { 100 } else { 15_000 }),
        ..RequestOptions::default()
    };
    let target = Arc::new(Target::new("127.0.0.1".into(), port, Family::Auto, options));
    let tick_started = Instant::now();
    let ids: Vec<u32> = (1..=n).collect();
    for part in ids.chunks(700) {
        let starts = part
            .iter()
            .map(|&i| StartRequest {
                id: i,
                target: Arc::clone(&target),
                kind: RequestKind::Announce(params(i)),
                scope: i,
                tick_started,
            })
            .collect();
        driver.send(Command::Start(starts));
        if !silent {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(target);
    drop(ids);
    let stage = if silent { "silent" } else { "burst" };
    if silent {
        std::thread::sleep(Duration::from_secs(2));
    }
    let stats = driver.stats().unwrap_or_default();
    eprintln!(
        "driver {stage}: {} in flight, {} queued, {} sent, {} retransmits, {} ids renewed, {} finished",
        stats.in_flight,
        stats.queued,
        stats.session.sent,
        stats.session.retransmits,
        stats.session.renewed_connection_ids,
        done.load(Ordering::Relaxed)
    );
    report("driver", stage, n, base);
    if !silent {
        let deadline = Instant::now() + Duration::from_secs(20);
        while done.load(Ordering::Relaxed) < isize::try_from(n).unwrap_or(0)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A turn of the driver after the last completion.
        std::thread::sleep(Duration::from_millis(100));
        report("driver", "burst_finished", n, base);
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000u32);
    session_stages(n);
    driver_stage(n, false)?;
    driver_stage(n, true)
}
