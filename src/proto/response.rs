//! Replies a tracker sends (BEP 15). `Response::parse` checks a datagram the way
//! bittorrent-udp-tracker 1.2.0 did: by its action first, then its length.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use super::{Action, ConnectionId, ParseError, Reader, TransactionId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectResponse {
    pub transaction_id: TransactionId,
    pub connection_id: ConnectionId,
}

/// The compact peer list of an announce reply: 6-byte entries over IPv4,
/// 18-byte entries when the reply came over IPv6 (BEP 15).
pub type Peers = Vec<SocketAddr>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse {
    pub transaction_id: TransactionId,
    /// Seconds until the next regular announce.
    pub interval: u32,
    pub leechers: u32,
    pub seeders: u32,
    pub peers: Peers,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrapeStats {
    pub seeders: u32,
    pub completed: u32,
    pub leechers: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeResponse {
    pub transaction_id: TransactionId,
    /// One entry per requested info hash, in request order.
    pub stats: Vec<ScrapeStats>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorResponse {
    pub transaction_id: TransactionId,
    /// The tracker's text, trailing NULs stripped, invalid UTF-8 replaced.
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    Connect(ConnectResponse),
    Announce(AnnounceResponse),
    Scrape(ScrapeResponse),
    Error(ErrorResponse),
}

impl Response {
    /// Reads one datagram. `ipv6` says which family it arrived over, which
    /// decides the size of announce peer entries.
    pub fn parse(bytes: &[u8], ipv6: bool) -> Result<Response, ParseError> {
        let mut r = Reader::new(bytes);
        let (Some(action), Some(tid)) = (r.u32(), r.u32()) else {
            return Err(ParseError::TooShort);
        };
        let transaction_id = TransactionId(tid);
        match action {
            a if a == Action::Connect.to_u32() => {
                if bytes.len() != 16 {
                    return Err(ParseError::ConnectLength);
                }
                let connection_id = ConnectionId(r.u64().ok_or(ParseError::ConnectLength)?);
                Ok(Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id,
                }))
            }
            a if a == Action::Announce.to_u32() => {
                let (Some(interval), Some(leechers), Some(seeders)) = (r.u32(), r.u32(), r.u32())
                else {
                    return Err(ParseError::AnnounceLength);
                };
                let peers = parse_peers(r.rest(), ipv6)?;
                Ok(Response::Announce(AnnounceResponse {
                    transaction_id,
                    interval,
                    leechers,
                    seeders,
                    peers,
                }))
            }
            a if a == Action::Scrape.to_u32() => {
                let body = r.rest();
                if !body.len().is_multiple_of(12) {
                    return Err(ParseError::ScrapeLength);
                }
                let stats = body
                    .chunks_exact(12)
                    .filter_map(|entry| {
                        let mut e = Reader::new(entry);
                        Some(ScrapeStats {
                            seeders: e.u32()?,
                            completed: e.u32()?,
                            leechers: e.u32()?,
                        })
                    })
                    .collect();
                Ok(Response::Scrape(ScrapeResponse {
                    transaction_id,
                    stats,
                }))
            }
            a if a == Action::Error.to_u32() => {
                let text = r.rest();
                if text.is_empty() {
                    return Err(ParseError::ErrorLength);
                }
                let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                Ok(Response::Error(ErrorResponse {
                    transaction_id,
                    message: String::from_utf8_lossy(&text[..end]).into_owned(),
                }))
            }
            other => Err(ParseError::UnknownAction(other)),
        }
    }

    pub fn transaction_id(&self) -> TransactionId {
        match self {
            Response::Connect(r) => r.transaction_id,
            Response::Announce(r) => r.transaction_id,
            Response::Scrape(r) => r.transaction_id,
            Response::Error(r) => r.transaction_id,
        }
    }

    pub fn action(&self) -> Action {
        match self {
            Response::Connect(_) => Action::Connect,
            Response::Announce(_) => Action::Announce,
            Response::Scrape(_) => Action::Scrape,
            Response::Error(_) => Action::Error,
        }
    }

    /// Writes the reply as a tracker would; peers are written in their own
    /// family's compact form, so a list mixing families is not a valid reply.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.action().to_u32().to_be_bytes());
        out.extend_from_slice(&self.transaction_id().0.to_be_bytes());
        match self {
            Response::Connect(r) => out.extend_from_slice(&r.connection_id.0.to_be_bytes()),
            Response::Announce(r) => {
                for n in [r.interval, r.leechers, r.seeders] {
                    out.extend_from_slice(&n.to_be_bytes());
                }
                for peer in &r.peers {
                    match peer.ip() {
                        std::net::IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
                        std::net::IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
                    }
                    out.extend_from_slice(&peer.port().to_be_bytes());
                }
            }
            Response::Scrape(r) => {
                for s in &r.stats {
                    for n in [s.seeders, s.completed, s.leechers] {
                        out.extend_from_slice(&n.to_be_bytes());
                    }
                }
            }
            Response::Error(r) => {
                out.extend_from_slice(r.message.as_bytes());
                if r.message.is_empty() {
                    // A bare 8-byte header is not a valid error reply; one NUL
                    // is, and it reads back as the empty message.
                    out.push(0);
                }
            }
        }
    }
}

fn parse_peers(bytes: &[u8], ipv6: bool) -> Result<Peers, ParseError> {
    let entry = if ipv6 { 18 } else { 6 };
    if !bytes.len().is_multiple_of(entry) {
        return Err(ParseError::AnnouncePeersLength);
    }
    Ok(bytes
        .chunks_exact(entry)
        .filter_map(|chunk| {
            let mut r = Reader::new(chunk);
            if ipv6 {
                let ip = Ipv6Addr::from(r.array::<16>()?);
                Some(SocketAddr::V6(SocketAddrV6::new(ip, r.u16()?, 0, 0)))
            } else {
                let ip = Ipv4Addr::from(r.array::<4>()?);
                Some(SocketAddr::V4(SocketAddrV4::new(ip, r.u16()?)))
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(response: Response, ipv6: bool) {
        let mut out = Vec::new();
        response.write(&mut out);
        assert_eq!(Response::parse(&out, ipv6), Ok(response));
    }

    #[test]
    fn every_response_round_trips() {
        round_trip(
            Response::Connect(ConnectResponse {
                transaction_id: TransactionId(1),
                connection_id: ConnectionId(u64::MAX),
            }),
            false,
        );
        round_trip(
            Response::Announce(AnnounceResponse {
                transaction_id: TransactionId(2),
                interval: 1800,
                leechers: 3,
                seeders: 4,
                peers: vec![
                    "10.0.0.1:6881".parse().unwrap(),
                    "1.2.3.4:1".parse().unwrap(),
                ],
            }),
            false,
        );
        round_trip(
            Response::Announce(AnnounceResponse {
                transaction_id: TransactionId(2),
                interval: 1800,
                leechers: 3,
                seeders: 4,
                peers: vec!["[2001:db8::1]:6881".parse().unwrap()],
            }),
            true,
        );
        round_trip(
            Response::Scrape(ScrapeResponse {
                transaction_id: TransactionId(3),
                stats: vec![
                    ScrapeStats {
                        seeders: 1,
                        completed: 2,
                        leechers: 3,
                    };
                    74
                ],
            }),
            false,
        );
        round_trip(
            Response::Error(ErrorResponse {
                transaction_id: TransactionId(4),
                message: "unregistered torrent".into(),
            }),
            false,
        );
    }

    #[test]
    fn connect_response_must_be_exactly_16_bytes() {
        let mut ok = vec![0, 0, 0, 0, 0, 0, 0, 9];
        ok.extend_from_slice(&[7; 8]);
        assert!(matches!(
            Response::parse(&ok, false),
            Ok(Response::Connect(_))
        ));
        for len in 8..16 {
            assert_eq!(
                Response::parse(&ok[..len], false),
                Err(ParseError::ConnectLength)
            );
        }
        ok.push(0);
        assert_eq!(Response::parse(&ok, false), Err(ParseError::ConnectLength));
    }

    #[test]
    fn announce_response_needs_20_bytes() {
        let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0; 12]);
        for len in 8..20 {
            assert_eq!(
                Response::parse(&bytes[..len], false),
                Err(ParseError::AnnounceLength)
            );
        }
        let Ok(Response::Announce(r)) = Response::parse(&bytes, false) else {
            panic!("20 bytes is a valid announce reply");
        };
        assert!(r.peers.is_empty());
    }

    #[test]
    fn announce_peer_size_depends_on_the_family() {
        let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0; 12]);
        bytes.extend_from_slice(&[0; 18]);
        let Ok(Response::Announce(v4)) = Response::parse(&bytes, false) else {
            panic!("18 bytes is three IPv4 peers");
        };
        assert_eq!(v4.peers.len(), 3);
        let Ok(Response::Announce(v6)) = Response::parse(&bytes, true) else {
            panic!("18 bytes is one IPv6 peer");
        };
        assert_eq!(v6.peers.len(), 1);
        bytes.push(0);
        assert_eq!(
            Response::parse(&bytes, false),
            Err(ParseError::AnnouncePeersLength)
        );
    }

    #[test]
    fn error_response_strips_trailing_nuls_and_replaces_bad_utf8() {
        let mut bytes = vec![0, 0, 0, 3, 0, 0, 0, 9];
        assert_eq!(Response::parse(&bytes, false), Err(ParseError::ErrorLength));
        bytes.extend_from_slice(b"bad\xff torrent\0\0");
        let Ok(Response::Error(e)) = Response::parse(&bytes, false) else {
            panic!("an error reply with text");
        };
        assert_eq!(e.message, "bad\u{fffd} torrent");
        let only_nuls = [0, 0, 0, 3, 0, 0, 0, 9, 0, 0];
        let Ok(Response::Error(e)) = Response::parse(&only_nuls, false) else {
            panic!("an error reply of NULs is still an error reply");
        };
        assert_eq!(e.message, "");
    }

    #[test]
    fn scrape_response_must_be_whole_entries() {
        let mut bytes = vec![0, 0, 0, 2, 0, 0, 0, 9];
        bytes.extend_from_slice(&[0; 13]);
        assert_eq!(
            Response::parse(&bytes, false),
            Err(ParseError::ScrapeLength)
        );
    }

    #[test]
    fn unknown_actions_and_short_datagrams_are_errors() {
        assert_eq!(
            Response::parse(&[0, 0, 0, 9, 0, 0, 0, 0], false),
            Err(ParseError::UnknownAction(9))
        );
        for len in 0..8 {
            assert_eq!(
                Response::parse(&[0u8; 8][..len], false),
                Err(ParseError::TooShort)
            );
        }
    }
}
