//! Datagrams in batches: on Linux one `sendmmsg` or `recvmmsg` system call
//! moves up to [`BATCH`] of them; elsewhere each takes its own `send_to` or
//! `recv_from`, behind the same two calls. (build.rs sets `cfg(mmsg)` for
//! the first; the `portable-io` feature builds the second on Linux too, for
//! its tests: `cargo test --features portable-io`.)
//!
//! Where the kernel has UDP segmentation offload (Linux 4.18, probed once
//! per socket), consecutive datagrams of one size to one address (a burst of
//! announces to one tracker) go as one message that the kernel splits: one
//! buffer, one route lookup and one trip down the stack for up to 64 of
//! them. On the wire they are the same datagrams. A message the kernel
//! refuses is sent again one datagram at a time, so an error still belongs
//! to the one datagram it concerns; EIO or EINVAL (no checksum offload, a
//! path MTU below the size) turn segmentation off for that socket.
//!
//! The only `unsafe` code of the crate is here, for those system calls:
//! every pointer handed to the kernel points into buffers that outlive the
//! call, with their true lengths.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::session::Transmit;

/// Datagrams per system call at most.
pub(super) const BATCH: usize = 32;
/// Room for any UDP datagram, so that none is ever cut.
const DATAGRAM_MAX: usize = 65536;

/// Sends the datagrams of `transmits` in order, as many as the socket takes
/// in one call: how many left (at least one), or the first one's error
/// (`WouldBlock` when the socket's buffer is full). `segment`: whether the
/// socket may use segmentation offload (see [`can_segment`]); cleared when
/// the kernel refuses it.
pub(super) fn send(
    socket: &UdpSocket,
    transmits: &[Transmit],
    segment: &mut bool,
) -> io::Result<usize> {
    imp::send(socket, transmits, segment)
}

/// Whether `socket` can send several datagrams as one segmented message.
pub(super) fn can_segment(socket: &UdpSocket) -> bool {
    imp::can_segment(socket)
}

/// Room for the datagrams one call receives.
pub(super) struct Received {
    buffers: Vec<Vec<u8>>,
    lens: Vec<usize>,
    from: Vec<Option<SocketAddr>>,
    count: usize,
    #[cfg(mmsg)]
    names: Vec<libc::sockaddr_storage>,
}

impl Received {
    pub(super) fn new() -> Received {
        let slots = if cfg!(mmsg) { BATCH } else { 1 };
        Received {
            // Zeroed allocations: pages are only touched as datagrams fill them.
            buffers: (0..slots).map(|_| vec![0u8; DATAGRAM_MAX]).collect(),
            lens: vec![0; slots],
            from: vec![None; slots],
            count: 0,
            #[cfg(mmsg)]
            // SAFETY: sockaddr_storage is plain data; all zeroes is valid.
            names: vec![unsafe { std::mem::zeroed() }; slots],
        }
    }

    /// Reads what is waiting on `socket`, up to a batch: how many datagrams
    /// (then in [`Received::datagrams`]), or the error (`WouldBlock` when
    /// there were none).
    pub(super) fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.count = 0;
        self.count = imp::recv(socket, self)?;
        Ok(self.count)
    }

    /// The datagrams the last `recv` read, with their senders.
    pub(super) fn datagrams(&self) -> impl Iterator<Item = (SocketAddr, &[u8])> {
        (0..self.count).filter_map(|i| {
            let from = (*self.from.get(i)?)?;
            let len = *self.lens.get(i)?;
            Some((from, self.buffers.get(i)?.get(..len)?))
        })
    }
}

#[cfg(mmsg)]
mod imp {
    use std::io;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::AsRawFd;

    use socket2::SockAddr;
    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    use super::{Received, BATCH};
    use crate::session::Transmit;

    fn header() -> libc::mmsghdr {
        // SAFETY: mmsghdr is plain data (null pointers, zero lengths).
        unsafe { std::mem::zeroed() }
    }

    /// Linux's UDP_SEGMENT (4.18): one message carries several datagrams
    /// of one size to one address, split by the kernel (UDP GSO).
    const UDP_SEGMENT: libc::c_int = 103;
    /// The kernel's limit of segments per message.
    const MAX_SEGMENTS: usize = 64;
    /// What one message may carry in all.
    const MAX_GSO_BYTES: usize = 65000;

    /// A control message giving the segment size.
    #[repr(C)]
    struct SegmentSize {
        header: libc::cmsghdr,
        size: u16,
        pad: [u8; 6],
    }

    /// The largest datagram sent segmented: one that fits the IPv6 minimum
    /// MTU (1280) with its headers, so that segmentation, which refuses
    /// datagrams larger than the path MTU, does not trip on the ordinary
    /// 1500-byte paths (a scrape of 74 hashes is 1496 bytes).
    const MAX_SEGMENT: usize = 1232;

    pub(super) fn can_segment(socket: &UdpSocket) -> bool {
        let off: libc::c_int = 0;
        // SAFETY: a plain setsockopt with an int it only reads. Setting the
        // socket's default segment size to 0 (none) changes nothing; it
        // fails (ENOPROTOOPT) where the kernel has no UDP segmentation.
        let result = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_UDP,
                UDP_SEGMENT,
                (&off as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        result == 0
    }

    pub(super) fn send(
        socket: &UdpSocket,
        transmits: &[Transmit],
        segment: &mut bool,
    ) -> io::Result<usize> {
        if !*segment {
            return send_with(socket, transmits, false);
        }
        let groups = groups(transmits, true);
        match send_groups(socket, transmits, &groups) {
            Err(e)
                if e.kind() != io::ErrorKind::WouldBlock
                    && groups.first().is_some_and(|g| g.1 > 1) =>
            {
                if matches!(e.raw_os_error(), Some(libc::EIO | libc::EINVAL)) {
                    *segment = false;
                }
                send_with(socket, transmits, false)
            }
            other => other,
        }
    }

    /// Cuts `transmits` into messages, `(first, count)`: runs of datagrams
    /// of one size to one address when `segment`, else one each; at most
    /// a batch of messages.
    pub(super) fn groups(transmits: &[Transmit], segment: bool) -> Vec<(usize, usize)> {
        let mut groups = Vec::new();
        let mut start = 0;
        while let Some(first) = transmits.get(start) {
            let len = first.payload.len();
            let max = if segment && (1..=MAX_SEGMENT).contains(&len) {
                (MAX_GSO_BYTES / len).clamp(1, MAX_SEGMENTS)
            } else {
                1
            };
            let count = transmits
                .iter()
                .skip(start)
                .take(max)
                .take_while(|t| t.destination == first.destination && t.payload.len() == len)
                .count()
                .max(1);
            groups.push((start, count));
            start += count;
            if groups.len() == BATCH {
                break;
            }
        }
        groups
    }

    fn send_with(socket: &UdpSocket, transmits: &[Transmit], segment: bool) -> io::Result<usize> {
        send_groups(socket, transmits, &groups(transmits, segment))
    }

    /// Sends each group of `transmits` as one message, in one call: how many
    /// datagrams left.
    fn send_groups(
        socket: &UdpSocket,
        transmits: &[Transmit],
        groups: &[(usize, usize)],
    ) -> io::Result<usize> {
        let firsts: Vec<&Transmit> = groups
            .iter()
            .filter_map(|&(start, _)| transmits.get(start))
            .collect();
        let names: Vec<SockAddr> = firsts
            .iter()
            .map(|t| SockAddr::from(t.destination))
            .collect();
        let mut iovecs: Vec<libc::iovec> = transmits
            .iter()
            .map(|t| libc::iovec {
                // The kernel only reads through it.
                iov_base: t.payload.as_ptr().cast_mut().cast(),
                iov_len: t.payload.len(),
            })
            .collect();
        let mut controls: Vec<SegmentSize> = firsts
            .iter()
            .map(|first| {
                // SAFETY: cmsghdr is plain data.
                let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
                header.cmsg_len = (std::mem::size_of::<libc::cmsghdr>() + 2) as _;
                header.cmsg_level = libc::SOL_UDP;
                header.cmsg_type = UDP_SEGMENT;
                SegmentSize {
                    header,
                    // Only attached to runs of datagrams of at most MAX_SEGMENT bytes.
                    size: u16::try_from(first.payload.len()).unwrap_or(u16::MAX),
                    pad: [0; 6],
                }
            })
            .collect();
        let iovec_base = iovecs.as_mut_ptr();
        let mut headers: Vec<libc::mmsghdr> = groups
            .iter()
            .zip(names.iter())
            .zip(controls.iter_mut())
            .map(|((&(start, count), name), control)| {
                let mut h = header();
                h.msg_hdr.msg_name = name.as_ptr().cast_mut().cast();
                h.msg_hdr.msg_namelen = name.len();
                // In bounds: groups cover `transmits`, one iovec each.
                h.msg_hdr.msg_iov = iovec_base.wrapping_add(start);
                h.msg_hdr.msg_iovlen = count as _;
                if count > 1 {
                    h.msg_hdr.msg_control = (control as *mut SegmentSize).cast();
                    h.msg_hdr.msg_controllen = std::mem::size_of::<SegmentSize>() as _;
                }
                h
            })
            .collect();
        let fd = socket.as_raw_fd();
        let count = u32::try_from(headers.len()).unwrap_or(1);
        let sent = socket.try_io(Interest::WRITABLE, || {
            // SAFETY: `headers` holds `count` initialised entries whose names,
            // iovecs and control messages point into `names`, `iovecs`,
            // `controls` and the payloads, all alive and unmoved for the call.
            let sent = unsafe { libc::sendmmsg(fd, headers.as_mut_ptr(), count, 0) };
            usize::try_from(sent).map_err(|_| io::Error::last_os_error())
        })?;
        Ok(groups.iter().take(sent).map(|&(_, count)| count).sum())
    }

    pub(super) fn recv(socket: &UdpSocket, into: &mut Received) -> io::Result<usize> {
        let slots = into.buffers.len().min(into.names.len()).min(BATCH);
        let mut iovecs: Vec<libc::iovec> = into
            .buffers
            .iter_mut()
            .take(slots)
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: b.len(),
            })
            .collect();
        let name_len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let mut headers: Vec<libc::mmsghdr> = into
            .names
            .iter_mut()
            .zip(iovecs.iter_mut())
            .map(|(name, iovec)| {
                let mut h = header();
                h.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                h.msg_hdr.msg_namelen = name_len;
                h.msg_hdr.msg_iov = iovec;
                h.msg_hdr.msg_iovlen = 1;
                h
            })
            .collect();
        let fd = socket.as_raw_fd();
        let count = u32::try_from(headers.len()).unwrap_or(1);
        let received = socket.try_io(Interest::READABLE, || {
            // SAFETY: `headers` holds `count` entries, each pointing at one
            // whole buffer of `into.buffers` and one sockaddr_storage of
            // `into.names` with its true size; none moves during the call.
            let n =
                unsafe { libc::recvmmsg(fd, headers.as_mut_ptr(), count, 0, std::ptr::null_mut()) };
            usize::try_from(n).map_err(|_| io::Error::last_os_error())
        })?;
        for (i, h) in headers.iter().enumerate().take(received) {
            if let (Some(len), Some(from), Some(name)) = (
                into.lens.get_mut(i),
                into.from.get_mut(i),
                into.names.get(i),
            ) {
                *len = usize::try_from(h.msg_len).unwrap_or(0);
                *from = socket_addr(name, h.msg_hdr.msg_namelen);
            }
        }
        Ok(received)
    }

    /// The sender's address the kernel wrote into `name`.
    fn socket_addr(name: &libc::sockaddr_storage, len: libc::socklen_t) -> Option<SocketAddr> {
        let len = usize::try_from(len).ok()?;
        match libc::c_int::from(name.ss_family) {
            libc::AF_INET if len >= std::mem::size_of::<libc::sockaddr_in>() => {
                // SAFETY: the family says the kernel wrote a sockaddr_in, and
                // sockaddr_storage is large and aligned enough for one.
                let v4 = unsafe {
                    &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>()
                };
                let ip = Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr));
                Some(SocketAddrV4::new(ip, u16::from_be(v4.sin_port)).into())
            }
            libc::AF_INET6 if len >= std::mem::size_of::<libc::sockaddr_in6>() => {
                // SAFETY: as above, for sockaddr_in6.
                let v6 = unsafe {
                    &*(name as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
                };
                let ip = Ipv6Addr::from(v6.sin6_addr.s6_addr);
                let port = u16::from_be(v6.sin6_port);
                Some(SocketAddrV6::new(ip, port, v6.sin6_flowinfo, v6.sin6_scope_id).into())
            }
            _ => None,
        }
    }
}

#[cfg(not(mmsg))]
mod imp {
    use std::io;

    use tokio::net::UdpSocket;

    use super::Received;
    use crate::session::Transmit;

    pub(super) fn can_segment(_socket: &UdpSocket) -> bool {
        false
    }

    pub(super) fn send(
        socket: &UdpSocket,
        transmits: &[Transmit],
        _segment: &mut bool,
    ) -> io::Result<usize> {
        let Some(t) = transmits.first() else {
            return Ok(0);
        };
        socket.try_send_to(&t.payload, t.destination).map(|_| 1)
    }

    pub(super) fn recv(socket: &UdpSocket, into: &mut Received) -> io::Result<usize> {
        let (Some(buffer), Some(len), Some(from)) = (
            into.buffers.first_mut(),
            into.lens.first_mut(),
            into.from.first_mut(),
        ) else {
            return Ok(0);
        };
        let (n, sender) = socket.try_recv_from(buffer)?;
        *len = n;
        *from = Some(sender);
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::TransactionId;
    use crate::session::Owner;
    use std::net::UdpSocket as StdSocket;

    fn transmit(destination: SocketAddr, payload: Vec<u8>) -> Transmit {
        Transmit {
            destination,
            payload,
            owner: Owner::Connect(TransactionId(0)),
        }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn pair(local: &str) -> (UdpSocket, StdSocket) {
        let ours = std::net::UdpSocket::bind(local).unwrap();
        ours.set_nonblocking(true).unwrap();
        let theirs = StdSocket::bind(local).unwrap();
        theirs
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        (UdpSocket::from_std(ours).unwrap(), theirs)
    }

    /// Sends `transmits` in order through `send`, as the driver does,
    /// segmented if `segment` and the kernel can.
    async fn send_all(
        socket: &UdpSocket,
        transmits: &[Transmit],
        segment: bool,
    ) -> Vec<io::ErrorKind> {
        let mut segment = segment && can_segment(socket);
        let (mut sent, mut errors) = (0, Vec::new());
        while let Some(rest) = transmits.get(sent..).filter(|r| !r.is_empty()) {
            match send(socket, rest, &mut segment) {
                Ok(count) => sent += count,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => socket.writable().await.unwrap(),
                Err(e) => {
                    errors.push(e.kind());
                    sent += 1;
                }
            }
        }
        errors
    }

    #[test]
    fn a_batch_arrives_whole_and_in_order_and_replies_come_back_with_their_sender() {
        for (local, segment) in [
            ("127.0.0.1:0", true),
            ("[::1]:0", true),
            ("127.0.0.1:0", false),
        ] {
            runtime().block_on(async {
                let (ours, theirs) = pair(local);
                let to = theirs.local_addr().unwrap();
                // More than one system call's worth, and one datagram of 60,000 bytes.
                let mut transmits: Vec<Transmit> = (0..BATCH as u32 + 5)
                    .map(|i| transmit(to, i.to_be_bytes().to_vec()))
                    .collect();
                transmits[3].payload = vec![7; 60_000];
                assert!(send_all(&ours, &transmits, segment).await.is_empty());
                let mut buf = vec![0u8; 65536];
                for t in &transmits {
                    let (len, from) = theirs.recv_from(&mut buf).unwrap();
                    assert_eq!(&buf[..len], t.payload.as_slice());
                    assert_eq!(from, ours.local_addr().unwrap());
                    theirs.send_to(&buf[..len], from).unwrap();
                }
                let mut received = Received::new();
                let mut echoed = Vec::new();
                while echoed.len() < transmits.len() {
                    ours.readable().await.unwrap();
                    match received.recv(&ours) {
                        Ok(_) => echoed.extend(received.datagrams().map(|(from, bytes)| {
                            assert_eq!(from, to);
                            bytes.to_vec()
                        })),
                        Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                    }
                }
                let sent: Vec<Vec<u8>> = transmits.into_iter().map(|t| t.payload).collect();
                assert_eq!(echoed, sent);
                let drained = received.recv(&ours).unwrap_err();
                assert_eq!(drained.kind(), io::ErrorKind::WouldBlock);
                assert_eq!(received.datagrams().count(), 0);
            });
        }
    }

    #[cfg(mmsg)]
    #[test]
    fn only_runs_of_one_size_to_one_address_are_segmented() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut transmits: Vec<Transmit> = (0..3).map(|_| transmit(a, vec![0; 98])).collect();
        transmits.push(transmit(b, vec![0; 98]));
        transmits.push(transmit(b, vec![0; 99]));
        transmits.push(transmit(b, vec![0; 1496]));
        transmits.push(transmit(b, vec![0; 1496]));
        transmits.extend((0..70).map(|_| transmit(a, vec![0; 16])));
        assert_eq!(
            imp::groups(&transmits, true),
            vec![(0, 3), (3, 1), (4, 1), (5, 1), (6, 1), (7, 64), (71, 6)]
        );
        let singles: Vec<(usize, usize)> = (0..BATCH).map(|i| (i, 1)).collect();
        assert_eq!(imp::groups(&transmits, false), singles);
    }

    // Linux's error for port 0 (EINVAL); other systems differ.
    #[cfg(mmsg)]
    #[test]
    fn a_refused_segmented_message_is_sent_again_one_datagram_at_a_time() {
        runtime().block_on(async {
            let (ours, theirs) = pair("127.0.0.1:0");
            // Port 0 is refused (EINVAL) whether segmented or not: each of
            // the three gets its own error, and the datagram after them goes.
            let nowhere: SocketAddr = "127.0.0.1:0".parse().unwrap();
            let mut transmits: Vec<Transmit> =
                (0..3).map(|_| transmit(nowhere, vec![1; 20])).collect();
            transmits.push(transmit(theirs.local_addr().unwrap(), b"after".to_vec()));
            let errors = send_all(&ours, &transmits, true).await;
            assert_eq!(errors, vec![io::ErrorKind::InvalidInput; 3]);
            let mut buf = [0u8; 16];
            let (len, _) = theirs.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"after");
        });
    }

    #[test]
    fn a_datagram_that_cannot_be_sent_fails_alone() {
        runtime().block_on(async {
            let (ours, theirs) = pair("127.0.0.1:0");
            let to = theirs.local_addr().unwrap();
            // Too large for UDP: the kernel refuses it (EMSGSIZE), and only it.
            let transmits = vec![
                transmit(to, b"first".to_vec()),
                transmit(to, vec![0; 70_000]),
                transmit(to, b"third".to_vec()),
            ];
            let errors = send_all(&ours, &transmits, true).await;
            assert_eq!(errors.len(), 1, "{errors:?}");
            let mut buf = [0u8; 16];
            let (len, _) = theirs.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"first");
            let (len, _) = theirs.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..len], b"third");
        });
    }
}
