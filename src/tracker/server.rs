//! The test tracker's I/O: one UDP socket (two with `reply_from`) on a
//! current-thread tokio runtime of its own thread, like `driver.rs` for the
//! client. Everything it decides is in [`super::Tracker`].

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::{Config, Reply, Tracker};

/// Kernel buffers asked for, so that a burst of requests is not dropped.
const BUFFER: usize = 4 << 20;

pub struct ServerOptions {
    pub host: IpAddr,
    pub port: u16,
    /// Send replies from a second socket bound to this port (0: any free
    /// port) instead of the one requests arrive on.
    pub reply_from: Option<u16>,
    pub config: Config,
    /// Seeds peer selection and the faults; the connection-id secret is
    /// always drawn from the OS.
    pub seed: Option<u64>,
}

/// A running tracker; dropping it stops the thread.
pub struct Server {
    tracker: Arc<Mutex<Tracker>>,
    local: SocketAddr,
    reply_local: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds the sockets here, so that a port in use is an error to the
    /// caller, then starts serving on a new thread.
    pub fn start(options: ServerOptions) -> io::Result<Server> {
        let socket = bind(SocketAddr::new(options.host, options.port))?;
        let local = socket.local_addr()?;
        let reply = options
            .reply_from
            .map(|port| bind(SocketAddr::new(options.host, port)))
            .transpose()?;
        let reply_local = reply.as_ref().map(|s| s.local_addr()).transpose()?;
        let tracker = Arc::new(Mutex::new(Tracker::new(
            options.config,
            secret(),
            Instant::now(),
        )));
        let rng = match options.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        // Registered with the runtime here, so that a failure is the caller's error.
        let (socket, reply) = {
            let _entered = runtime.enter();
            let socket = UdpSocket::from_std(socket)?;
            (socket, reply.map(UdpSocket::from_std).transpose()?)
        };
        let (shutdown, stop) = oneshot::channel();
        let shared = Arc::clone(&tracker);
        let thread = std::thread::Builder::new()
            .name("udp-test-tracker".into())
            .spawn(move || runtime.block_on(serve(socket, reply, shared, stop, rng)))?;
        Ok(Server {
            tracker,
            local,
            reply_local,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address replies come from with `reply_from`.
    pub fn reply_addr(&self) -> Option<SocketAddr> {
        self.reply_local
    }

    /// The tracker's state, shared with the serving thread; it outlives
    /// `close` so that counters can be read afterwards.
    pub fn tracker(&self) -> Arc<Mutex<Tracker>> {
        Arc::clone(&self.tracker)
    }

    /// Stops serving and closes the sockets; replies still waiting for
    /// their delay are not sent. Safe to call twice.
    pub fn close(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

/// 32 bytes from the OS's CSPRNG, to key connection ids.
pub fn secret() -> [u8; 32] {
    StdRng::from_os_rng().random()
}

/// Locks the shared tracker; a panic elsewhere cannot poison it for good
/// because nothing holding the lock panics, but recover anyway.
pub fn lock(tracker: &Mutex<Tracker>) -> MutexGuard<'_, Tracker> {
    tracker
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Buffers are a wish: the kernel caps them.
    let _ = socket.set_recv_buffer_size(BUFFER);
    let _ = socket.set_send_buffer_size(BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

async fn serve(
    socket: UdpSocket,
    reply: Option<UdpSocket>,
    tracker: Arc<Mutex<Tracker>>,
    mut stop: oneshot::Receiver<()>,
    mut rng: StdRng,
) {
    let socket = Arc::new(socket);
    let out = reply.map_or_else(|| Arc::clone(&socket), Arc::new);
    let mut buf = vec![0u8; 65_536];
    loop {
        let received = tokio::select! {
            _ = &mut stop => return,
            received = socket.recv_from(&mut buf) => received,
        };
        // Errors such as an ICMP port-unreachable from an earlier send
        // concern one datagram, not the socket: keep serving.
        let Ok((len, from)) = received else { continue };
        let Some(reply) = lock(&tracker).handle(&buf[..len], from, Instant::now(), &mut rng) else {
            continue;
        };
        if reply.delay.is_zero() {
            send(&out, &reply).await;
        } else {
            let out = Arc::clone(&out);
            tokio::spawn(async move {
                tokio::time::sleep(reply.delay).await;
                send(&out, &reply).await;
            });
        }
    }
}

async fn send(socket: &UdpSocket, reply: &Reply) {
    for _ in 0..reply.copies {
        // A reply that cannot be sent is lost, as on any network.
        let _ = socket.send_to(&reply.bytes, reply.to).await;
    }
}
