//! Sans-IO codec for the parts of SOCKS5 a UDP tracker client needs.
//!
//! - RFC 1928 §3: the greeting (methods offered) and the method selection;
//! - RFC 1929: the username/password sub-negotiation and its status reply;
//! - RFC 1928 §4–§6: the UDP ASSOCIATE request and the server's reply;
//! - RFC 1928 §7: the header every datagram through the relay carries
//!   (`RSV RSV FRAG ATYP DST.ADDR DST.PORT`), with IPv4 (ATYP 1), domain name
//!   (ATYP 3) and IPv6 (ATYP 4) addresses. Fragments (FRAG ≠ 0) are refused:
//!   a client need not reassemble them (§7: "an implementation that does not
//!   support fragmentation MUST drop any datagram whose FRAG field is other
//!   than X'00'").
//!
//! Every parser takes a byte slice and returns `Result`; no input panics.
//! The I/O (TCP control connection, relay socket) is in `crate::proxy`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::Reader;

pub const VERSION: u8 = 5;
/// RFC 1929's sub-negotiation version.
pub const AUTH_VERSION: u8 = 1;
pub const METHOD_NO_AUTH: u8 = 0;
pub const METHOD_USERNAME_PASSWORD: u8 = 2;
pub const METHOD_NONE_ACCEPTABLE: u8 = 0xff;
pub const COMMAND_UDP_ASSOCIATE: u8 = 3;
const ATYP_IPV4: u8 = 1;
const ATYP_DOMAIN: u8 = 3;
const ATYP_IPV6: u8 = 4;

/// Length of the method selection and of the RFC 1929 status reply.
pub const SHORT_REPLY_LEN: usize = 2;
/// Bytes of a request reply needed to know its whole length (up to the domain
/// name's length byte).
pub const REPLY_PREFIX_LEN: usize = 5;
/// The longest §7 header: 4 bytes, a 255-byte name with its length, a port.
pub const MAX_UDP_HEADER_LEN: usize = 4 + 1 + 255 + 2;

/// A destination or bound address: an IP address, or a host name for the
/// proxy to resolve (ATYP 3, `socks5h://`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Address {
    Ip(SocketAddr),
    /// 1 to 255 bytes, sent as given.
    Name(Vec<u8>, u16),
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Ip(addr) => addr.fmt(f),
            Address::Name(name, port) => write!(f, "{}:{port}", String::from_utf8_lossy(name)),
        }
    }
}

/// Why bytes from a proxy could not be read, or a message could not be written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Socks5Error {
    /// Fewer bytes than the message needs.
    Truncated,
    /// A version byte other than 5 (or 1 for RFC 1929's status).
    Version(u8),
    /// RSV bytes that are not zero where RFC 1928 requires it.
    Reserved,
    AddressType(u8),
    /// A datagram fragment (FRAG ≠ 0): dropped, never reassembled.
    Fragment(u8),
    /// A host name that is empty or longer than 255 bytes (ATYP 3).
    NameLength(usize),
    /// A user name (1–255 bytes) or password (0–255 bytes) of a bad length.
    CredentialLength,
}

impl fmt::Display for Socks5Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Socks5Error::Truncated => f.write_str("truncated SOCKS5 message"),
            Socks5Error::Version(v) => write!(f, "unexpected SOCKS version {v}"),
            Socks5Error::Reserved => f.write_str("reserved SOCKS5 field is not zero"),
            Socks5Error::AddressType(t) => write!(f, "unknown SOCKS5 address type {t}"),
            Socks5Error::Fragment(n) => write!(f, "SOCKS5 datagram fragment {n} (not supported)"),
            Socks5Error::NameLength(n) => {
                write!(f, "host name of {n} bytes (SOCKS5 allows 1 to 255)")
            }
            Socks5Error::CredentialLength => f.write_str(
                "SOCKS5 user name must be 1 to 255 bytes and password at most 255 bytes",
            ),
        }
    }
}

impl std::error::Error for Socks5Error {}

/// RFC 1928 §3: version 5 and the methods the client offers.
pub fn write_greeting(with_password: bool, out: &mut Vec<u8>) {
    if with_password {
        out.extend_from_slice(&[VERSION, 2, METHOD_NO_AUTH, METHOD_USERNAME_PASSWORD]);
    } else {
        out.extend_from_slice(&[VERSION, 1, METHOD_NO_AUTH]);
    }
}

/// The method the server selected (`METHOD_NONE_ACCEPTABLE` when none).
pub fn parse_method_selection(bytes: &[u8]) -> Result<u8, Socks5Error> {
    let [version, method] = Reader::new(bytes).array().ok_or(Socks5Error::Truncated)?;
    if version != VERSION {
        return Err(Socks5Error::Version(version));
    }
    Ok(method)
}

/// RFC 1929 §2: the username/password request.
pub fn write_credentials(
    username: &[u8],
    password: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), Socks5Error> {
    let (Ok(ulen), Ok(plen)) = (u8::try_from(username.len()), u8::try_from(password.len())) else {
        return Err(Socks5Error::CredentialLength);
    };
    if ulen == 0 {
        return Err(Socks5Error::CredentialLength);
    }
    out.extend_from_slice(&[AUTH_VERSION, ulen]);
    out.extend_from_slice(username);
    out.push(plen);
    out.extend_from_slice(password);
    Ok(())
}

/// RFC 1929 §2: true when the server accepted the credentials (status 0).
/// Some servers answer with version 5 instead of 1; that is tolerated.
pub fn parse_auth_status(bytes: &[u8]) -> Result<u8, Socks5Error> {
    let [version, status] = Reader::new(bytes).array().ok_or(Socks5Error::Truncated)?;
    if version != AUTH_VERSION && version != VERSION {
        return Err(Socks5Error::Version(version));
    }
    Ok(status)
}

/// RFC 1928 §4: a request (`COMMAND_UDP_ASSOCIATE` here) for `address`.
pub fn write_request(command: u8, address: &Address, out: &mut Vec<u8>) -> Result<(), Socks5Error> {
    out.extend_from_slice(&[VERSION, command, 0]);
    write_address(address, out)
}

fn write_address(address: &Address, out: &mut Vec<u8>) -> Result<(), Socks5Error> {
    match address {
        Address::Ip(SocketAddr::V4(a)) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Address::Ip(SocketAddr::V6(a)) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&a.ip().octets());
            out.extend_from_slice(&a.port().to_be_bytes());
        }
        Address::Name(name, port) => {
            let len = u8::try_from(name.len())
                .ok()
                .filter(|&n| n > 0)
                .ok_or(Socks5Error::NameLength(name.len()))?;
            out.push(ATYP_DOMAIN);
            out.push(len);
            out.extend_from_slice(name);
            out.extend_from_slice(&port.to_be_bytes());
        }
    }
    Ok(())
}

fn read_address(r: &mut Reader<'_>) -> Result<Address, Socks5Error> {
    let [atyp] = r.array().ok_or(Socks5Error::Truncated)?;
    let address = match atyp {
        ATYP_IPV4 => {
            let ip: [u8; 4] = r.array().ok_or(Socks5Error::Truncated)?;
            let port = r.u16().ok_or(Socks5Error::Truncated)?;
            Address::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        ATYP_IPV6 => {
            let ip: [u8; 16] = r.array().ok_or(Socks5Error::Truncated)?;
            let port = r.u16().ok_or(Socks5Error::Truncated)?;
            Address::Ip(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        ATYP_DOMAIN => {
            let [len] = r.array().ok_or(Socks5Error::Truncated)?;
            if len == 0 {
                return Err(Socks5Error::NameLength(0));
            }
            let name = r.take(usize::from(len)).ok_or(Socks5Error::Truncated)?;
            let port = r.u16().ok_or(Socks5Error::Truncated)?;
            Address::Name(name.to_vec(), port)
        }
        other => return Err(Socks5Error::AddressType(other)),
    };
    Ok(address)
}

/// The whole length of a request reply, from its first `REPLY_PREFIX_LEN` bytes.
pub fn reply_len(prefix: &[u8]) -> Result<usize, Socks5Error> {
    let [version, _, _, atyp, first]: [u8; REPLY_PREFIX_LEN] =
        Reader::new(prefix).array().ok_or(Socks5Error::Truncated)?;
    if version != VERSION {
        return Err(Socks5Error::Version(version));
    }
    match atyp {
        ATYP_IPV4 => Ok(4 + 4 + 2),
        ATYP_IPV6 => Ok(4 + 16 + 2),
        ATYP_DOMAIN => Ok(4 + 1 + usize::from(first) + 2),
        other => Err(Socks5Error::AddressType(other)),
    }
}

/// RFC 1928 §6: the server's reply to a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// 0 succeeded; see [`reply_text`] for the others.
    pub code: u8,
    /// BND.ADDR and BND.PORT: for UDP ASSOCIATE, where to send datagrams.
    pub bound: Address,
}

pub fn parse_reply(bytes: &[u8]) -> Result<Reply, Socks5Error> {
    let mut r = Reader::new(bytes);
    let [version, code, reserved] = r.array().ok_or(Socks5Error::Truncated)?;
    if version != VERSION {
        return Err(Socks5Error::Version(version));
    }
    if reserved != 0 {
        return Err(Socks5Error::Reserved);
    }
    let bound = read_address(&mut r)?;
    Ok(Reply { code, bound })
}

/// RFC 1928 §6's meaning of a reply code.
pub fn reply_text(code: u8) -> &'static str {
    match code {
        0 => "succeeded",
        1 => "general SOCKS server failure",
        2 => "connection not allowed by ruleset",
        3 => "network unreachable",
        4 => "host unreachable",
        5 => "connection refused",
        6 => "TTL expired",
        7 => "command not supported",
        8 => "address type not supported",
        _ => "unassigned reply code",
    }
}

/// RFC 1928 §7: the header for a datagram to `destination` (FRAG 0), to be
/// followed by the payload.
pub fn write_udp_header(destination: &Address, out: &mut Vec<u8>) -> Result<(), Socks5Error> {
    out.extend_from_slice(&[0, 0, 0]);
    write_address(destination, out)
}

/// A datagram from the relay: where it came from, and its payload.
/// Fragments and malformed headers are errors (the caller drops them).
pub fn parse_udp_datagram(bytes: &[u8]) -> Result<(Address, &[u8]), Socks5Error> {
    let mut r = Reader::new(bytes);
    let [rsv1, rsv2, frag] = r.array().ok_or(Socks5Error::Truncated)?;
    if frag != 0 {
        return Err(Socks5Error::Fragment(frag));
    }
    if rsv1 != 0 || rsv2 != 0 {
        return Err(Socks5Error::Reserved);
    }
    let source = read_address(&mut r)?;
    Ok((source, r.rest()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn v4(s: &str) -> Address {
        Address::Ip(s.parse().unwrap())
    }

    #[test]
    fn greeting_offers_username_password_only_with_credentials() {
        let mut out = Vec::new();
        write_greeting(false, &mut out);
        assert_eq!(out, [5, 1, 0]);
        out.clear();
        write_greeting(true, &mut out);
        assert_eq!(out, [5, 2, 0, 2]);
    }

    #[test]
    fn method_selection() {
        assert_eq!(parse_method_selection(&[5, 0]), Ok(0));
        assert_eq!(
            parse_method_selection(&[5, 0xff]),
            Ok(METHOD_NONE_ACCEPTABLE)
        );
        assert_eq!(
            parse_method_selection(&[4, 0]),
            Err(Socks5Error::Version(4))
        );
        assert_eq!(parse_method_selection(&[5]), Err(Socks5Error::Truncated));
    }

    #[test]
    fn rfc1929_request_and_status() {
        let mut out = Vec::new();
        write_credentials(b"alice", b"secret", &mut out).unwrap();
        assert_eq!(out, b"\x01\x05alice\x06secret");
        out.clear();
        write_credentials(b"bob", b"", &mut out).unwrap();
        assert_eq!(out, b"\x01\x03bob\x00");
        assert_eq!(
            write_credentials(b"", b"x", &mut Vec::new()),
            Err(Socks5Error::CredentialLength)
        );
        assert_eq!(
            write_credentials(&[b'a'; 256], b"x", &mut Vec::new()),
            Err(Socks5Error::CredentialLength)
        );
        assert_eq!(
            write_credentials(b"a", &[b'x'; 256], &mut Vec::new()),
            Err(Socks5Error::CredentialLength)
        );
        assert_eq!(parse_auth_status(&[1, 0]), Ok(0));
        assert_eq!(parse_auth_status(&[1, 1]), Ok(1));
        assert_eq!(parse_auth_status(&[5, 0]), Ok(0));
        assert_eq!(parse_auth_status(&[2, 0]), Err(Socks5Error::Version(2)));
        assert_eq!(parse_auth_status(&[]), Err(Socks5Error::Truncated));
    }

    #[test]
    fn udp_associate_request_bytes() {
        let mut out = Vec::new();
        write_request(COMMAND_UDP_ASSOCIATE, &v4("127.0.0.1:4660"), &mut out).unwrap();
        assert_eq!(out, [5, 3, 0, 1, 127, 0, 0, 1, 0x12, 0x34]);
        out.clear();
        let v6 = Address::Ip("[::1]:1".parse().unwrap());
        write_request(COMMAND_UDP_ASSOCIATE, &v6, &mut out).unwrap();
        assert_eq!(out.len(), 3 + 1 + 16 + 2);
        assert_eq!(out[3], 4);
        assert_eq!(out[19], 1);
    }

    #[test]
    fn replies_of_every_address_type() {
        let bytes = [5, 0, 0, 1, 127, 0, 0, 1, 0x99, 0x9c];
        assert_eq!(reply_len(&bytes[..5]), Ok(10));
        assert_eq!(
            parse_reply(&bytes),
            Ok(Reply {
                code: 0,
                bound: v4("127.0.0.1:39324")
            })
        );
        let mut v6 = vec![5, 0, 0, 4];
        v6.extend_from_slice(&[0; 16]);
        v6.extend_from_slice(&[0, 80]);
        assert_eq!(reply_len(&v6[..5]), Ok(22));
        assert_eq!(
            parse_reply(&v6).unwrap().bound,
            Address::Ip("[::]:80".parse().unwrap())
        );
        let name = b"\x05\x00\x00\x03\x05proxy\x00\x50";
        assert_eq!(reply_len(&name[..5]), Ok(name.len()));
        assert_eq!(
            parse_reply(name).unwrap().bound,
            Address::Name(b"proxy".to_vec(), 80)
        );
        let refused = [5, 2, 0, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(parse_reply(&refused).unwrap().code, 2);
        assert_eq!(reply_text(2), "connection not allowed by ruleset");
        assert_eq!(reply_text(200), "unassigned reply code");
    }

    #[test]
    fn bad_replies_are_errors() {
        assert_eq!(reply_len(&[5, 0, 0, 1]), Err(Socks5Error::Truncated));
        assert_eq!(
            reply_len(&[5, 0, 0, 9, 0]),
            Err(Socks5Error::AddressType(9))
        );
        assert_eq!(reply_len(&[4, 0, 0, 1, 0]), Err(Socks5Error::Version(4)));
        assert_eq!(
            parse_reply(&[5, 0, 1, 1, 0, 0, 0, 0, 0, 0]),
            Err(Socks5Error::Reserved)
        );
        assert_eq!(
            parse_reply(&[5, 0, 0, 1, 0, 0, 0, 0, 0]),
            Err(Socks5Error::Truncated)
        );
        assert_eq!(
            parse_reply(&[5, 0, 0, 3, 0, 0, 80]),
            Err(Socks5Error::NameLength(0))
        );
    }

    #[test]
    fn udp_header_for_each_address_type() {
        let mut out = Vec::new();
        write_udp_header(&v4("10.0.0.1:6969"), &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 1, 10, 0, 0, 1, 0x1b, 0x39]);
        out.clear();
        let name = Address::Name(b"tracker.example".to_vec(), 6969);
        write_udp_header(&name, &mut out).unwrap();
        assert_eq!(&out[..5], [0, 0, 0, 3, 15]);
        assert_eq!(&out[5..20], b"tracker.example");
        assert_eq!(&out[20..], [0x1b, 0x39]);
        out.extend_from_slice(b"payload");
        assert_eq!(parse_udp_datagram(&out), Ok((name, &b"payload"[..])));
        let empty = Address::Name(Vec::new(), 1);
        assert_eq!(
            write_udp_header(&empty, &mut Vec::new()),
            Err(Socks5Error::NameLength(0))
        );
        let long = Address::Name(vec![b'a'; 256], 1);
        assert_eq!(
            write_udp_header(&long, &mut Vec::new()),
            Err(Socks5Error::NameLength(256))
        );
    }

    #[test]
    fn fragments_and_bad_headers_are_dropped() {
        let mut frag = vec![0, 0, 1, 1, 127, 0, 0, 1, 0, 80];
        frag.extend_from_slice(b"x");
        assert_eq!(parse_udp_datagram(&frag), Err(Socks5Error::Fragment(1)));
        frag[2] = 0x81; // the last fragment of a sequence
        assert_eq!(parse_udp_datagram(&frag), Err(Socks5Error::Fragment(0x81)));
        assert_eq!(
            parse_udp_datagram(&[0, 1, 0, 1, 127, 0, 0, 1, 0, 80]),
            Err(Socks5Error::Reserved)
        );
        assert_eq!(
            parse_udp_datagram(&[0, 0, 0, 7]),
            Err(Socks5Error::AddressType(7))
        );
        for len in 0..10 {
            let ok = [0, 0, 0, 1, 127, 0, 0, 1, 0, 80];
            assert_eq!(
                parse_udp_datagram(&ok[..len]),
                Err(Socks5Error::Truncated),
                "{len} bytes"
            );
        }
    }

    fn address() -> impl Strategy<Value = Address> {
        prop_oneof![
            (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Address::Ip(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(ip)),
                port
            ))),
            (any::<[u8; 16]>(), any::<u16>()).prop_map(|(ip, port)| Address::Ip(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                port
            ))),
            (vec(any::<u8>(), 1..=255), any::<u16>()).prop_map(|(n, port)| Address::Name(n, port)),
        ]
    }

    proptest! {
        #[test]
        fn udp_header_round_trips(a in address(), payload in vec(any::<u8>(), 0..100)) {
            let mut out = Vec::new();
            write_udp_header(&a, &mut out).unwrap();
            prop_assert!(out.len() <= MAX_UDP_HEADER_LEN);
            out.extend_from_slice(&payload);
            let (source, rest) = parse_udp_datagram(&out).unwrap();
            prop_assert_eq!(source, a);
            prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn reply_round_trips(code in any::<u8>(), a in address()) {
            let mut out = vec![VERSION, code, 0];
            let mut addr = Vec::new();
            write_udp_header(&a, &mut addr).unwrap();
            out.extend_from_slice(&addr[3..]);
            prop_assert_eq!(reply_len(&out[..REPLY_PREFIX_LEN]), Ok(out.len()));
            prop_assert_eq!(parse_reply(&out), Ok(Reply { code, bound: a }));
        }

        #[test]
        fn parsers_never_panic(bytes in vec(any::<u8>(), 0..300)) {
            let _ = parse_udp_datagram(&bytes);
            let _ = parse_reply(&bytes);
            let _ = reply_len(&bytes);
            let _ = parse_method_selection(&bytes);
            let _ = parse_auth_status(&bytes);
        }

        #[test]
        fn every_truncation_of_a_datagram_header_is_refused(a in address()) {
            let mut out = Vec::new();
            write_udp_header(&a, &mut out).unwrap();
            for len in 0..out.len() {
                prop_assert_eq!(parse_udp_datagram(&out[..len]), Err(Socks5Error::Truncated));
            }
        }
    }
}
