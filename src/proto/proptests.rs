//! Property tests for the codec: every writer is undone by its parser, and the
//! reply parser neither panics nor mislabels a truncated datagram.
//!
//! The regression tests at the end come from the fuzz targets in `fuzz/`.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use proptest::collection::vec;
use proptest::prelude::*;

use super::*;

fn written<F: FnOnce(&mut Vec<u8>)>(write: F) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out);
    out
}

fn transaction_id() -> impl Strategy<Value = TransactionId> {
    any::<u32>().prop_map(TransactionId)
}

fn connection_id() -> impl Strategy<Value = ConnectionId> {
    any::<u64>().prop_map(ConnectionId)
}

fn info_hash() -> impl Strategy<Value = InfoHash> {
    any::<[u8; 20]>().prop_map(InfoHash)
}

fn event() -> impl Strategy<Value = AnnounceEvent> {
    prop_oneof![
        Just(AnnounceEvent::None),
        Just(AnnounceEvent::Completed),
        Just(AnnounceEvent::Started),
        Just(AnnounceEvent::Stopped),
    ]
}

fn announce_request() -> impl Strategy<Value = AnnounceRequest> {
    (
        (connection_id(), transaction_id(), info_hash()),
        any::<[u8; 20]>().prop_map(PeerId),
        (any::<u64>(), any::<u64>(), any::<u64>(), event()),
        (any::<u32>(), any::<u32>(), any::<i32>(), any::<u16>()),
        vec(any::<u8>(), 0..=1000),
    )
        .prop_map(
            |(
                (connection_id, transaction_id, info_hash),
                peer_id,
                (downloaded, left, uploaded, event),
                (ip, key, num_want, port),
                url_data,
            )| AnnounceRequest {
                connection_id,
                transaction_id,
                params: AnnounceParams {
                    info_hash,
                    peer_id,
                    downloaded,
                    left,
                    uploaded,
                    event,
                    ip,
                    key,
                    num_want,
                    port,
                    url_data,
                    extensions: None,
                },
            },
        )
}

fn peer_v4() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(ip), port)))
}

/// Flow info and scope id are 0: the compact form has no room for them.
fn peer_v6() -> impl Strategy<Value = SocketAddr> {
    (any::<[u8; 16]>(), any::<u16>())
        .prop_map(|(ip, port)| SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)))
}

/// An announce reply whose peers all belong to the family `ipv6` says.
fn announce_response(ipv6: bool) -> impl Strategy<Value = Response> {
    let peer = if ipv6 {
        peer_v6().boxed()
    } else {
        peer_v4().boxed()
    };
    (
        transaction_id(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        vec(peer, 0..=200),
    )
        .prop_map(|(transaction_id, interval, leechers, seeders, peers)| {
            Response::Announce(AnnounceResponse {
                transaction_id,
                interval,
                leechers,
                seeders,
                peers,
            })
        })
}

/// A message `Response::parse` can give back unchanged: valid UTF-8 (a
/// `String`) and no trailing NUL.
fn error_message() -> impl Strategy<Value = String> {
    (
        any::<String>(),
        any::<char>().prop_filter("not NUL", |&c| c != '\0'),
    )
        .prop_map(|(mut message, last)| {
            message.push(last);
            message
        })
}

/// Every reply variant, with the family its announce peers need.
fn response() -> impl Strategy<Value = (Response, bool)> {
    prop_oneof![
        (transaction_id(), connection_id(), any::<bool>()).prop_map(
            |(transaction_id, connection_id, ipv6)| (
                Response::Connect(ConnectResponse {
                    transaction_id,
                    connection_id,
                }),
                ipv6
            )
        ),
        announce_response(false).prop_map(|r| (r, false)),
        announce_response(true).prop_map(|r| (r, true)),
        (
            transaction_id(),
            vec(
                (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(
                    |(seeders, completed, leechers)| ScrapeStats {
                        seeders,
                        completed,
                        leechers,
                    }
                ),
                0..=100,
            ),
            any::<bool>(),
        )
            .prop_map(|(transaction_id, stats, ipv6)| (
                Response::Scrape(ScrapeResponse {
                    transaction_id,
                    stats,
                }),
                ipv6
            )),
        (transaction_id(), error_message(), any::<bool>()).prop_map(
            |(transaction_id, message, ipv6)| (
                Response::Error(ErrorResponse {
                    transaction_id,
                    message,
                }),
                ipv6
            )
        ),
    ]
}

/// Arbitrary datagrams, half of them starting with a known action so that the
/// per-action length checks are reached.
fn datagram() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..=2000),
        (0u32..=4, vec(any::<u8>(), 0..=1996)).prop_map(|(action, rest)| {
            let mut bytes = action.to_be_bytes().to_vec();
            bytes.extend_from_slice(&rest);
            bytes
        }),
    ]
}

/// Parse, and when that succeeds check that writing the reply back and parsing
/// again gives the same reply (the first parse has already normalised an
/// error message, so only other replies must come back byte for byte).
fn check_parse(bytes: &[u8], ipv6: bool) -> Result<(), TestCaseError> {
    let Ok(first) = Response::parse(bytes, ipv6) else {
        return Ok(());
    };
    let rewritten = written(|out| first.write(out));
    if !matches!(first, Response::Error(_)) {
        // Nothing but an error message is normalised: the bytes come back.
        prop_assert_eq!(&rewritten[..], bytes);
    }
    prop_assert_eq!(Response::parse(&rewritten, ipv6), Ok(first));
    Ok(())
}

proptest! {
    #[test]
    fn connect_request_round_trips(transaction_id in transaction_id()) {
        let request = ConnectRequest { transaction_id };
        let bytes = written(|out| request.write(out));
        prop_assert_eq!(bytes.len(), ConnectRequest::LEN);
        prop_assert_eq!(ConnectRequest::parse(&bytes), Some(request));
    }

    #[test]
    fn announce_request_round_trips(request in announce_request()) {
        let bytes = written(|out| request.write(out));
        let options = if request.params.url_data.is_empty() {
            0
        } else {
            // Two bytes per 255-byte URLData option, the data, EndOfOptions.
            2 * request.params.url_data.len().div_ceil(255) + request.params.url_data.len() + 1
        };
        prop_assert_eq!(bytes.len(), AnnounceRequest::FIXED_LEN + options);
        prop_assert_eq!(AnnounceRequest::parse(&bytes), Some(request));
    }

    #[test]
    fn scrape_request_round_trips(
        connection_id in connection_id(),
        transaction_id in transaction_id(),
        info_hashes in vec(info_hash(), 1..=MAX_SCRAPE_HASHES_V4),
    ) {
        let request = ScrapeRequest { connection_id, transaction_id, info_hashes };
        let bytes = written(|out| request.write(out));
        prop_assert_eq!(bytes.len(), 16 + 20 * request.info_hashes.len());
        prop_assert_eq!(ScrapeRequest::parse(&bytes), Some(request));
    }

    #[test]
    fn every_response_round_trips((response, ipv6) in response()) {
        let bytes = written(|out| response.write(out));
        prop_assert_eq!(Response::parse(&bytes, ipv6), Ok(response));
    }

    #[test]
    fn announce_peers_are_read_in_the_family_they_arrived_over(
        response in prop_oneof![announce_response(false), announce_response(true)],
    ) {
        let bytes = written(|out| response.write(out));
        for ipv6 in [false, true] {
            if let Ok(Response::Announce(reply)) = Response::parse(&bytes, ipv6) {
                prop_assert!(reply.peers.iter().all(|p| p.is_ipv6() == ipv6));
            }
        }
    }

    #[test]
    fn response_parse_never_panics_and_is_stable(bytes in datagram()) {
        check_parse(&bytes, false)?;
        check_parse(&bytes, true)?;
    }

    #[test]
    fn every_truncation_of_an_announce_response_is_rejected(
        (response, ipv6) in prop_oneof![
            announce_response(false).prop_map(|r| (r, false)),
            announce_response(true).prop_map(|r| (r, true)),
        ],
    ) {
        let bytes = written(|out| response.write(out));
        let entry = if ipv6 { 18 } else { 6 };
        for len in 0..bytes.len() {
            let expected = match len {
                0..8 => Err(ParseError::TooShort),
                8..20 => Err(ParseError::AnnounceLength),
                _ if (len - 20) % entry != 0 => Err(ParseError::AnnouncePeersLength),
                _ => Ok(()),
            };
            let got = Response::parse(&bytes[..len], ipv6).map(|_| ());
            prop_assert_eq!(got, expected, "length {}", len);
        }
    }

    #[test]
    fn a_connect_response_of_any_other_length_than_16_is_rejected(
        transaction_id in transaction_id(),
        body in vec(any::<u8>(), 0..=2000).prop_filter("not 8 bytes", |b| b.len() != 8),
        ipv6 in any::<bool>(),
    ) {
        let mut bytes = Action::Connect.to_u32().to_be_bytes().to_vec();
        bytes.extend_from_slice(&transaction_id.0.to_be_bytes());
        bytes.extend_from_slice(&body);
        prop_assert_eq!(Response::parse(&bytes, ipv6), Err(ParseError::ConnectLength));
    }

    #[test]
    fn request_parsers_never_panic_and_round_trip(bytes in vec(any::<u8>(), 0..=2000)) {
        if let Some(request) = ConnectRequest::parse(&bytes) {
            prop_assert_eq!(written(|out| request.write(out)), bytes.clone());
        }
        if let Some(request) = AnnounceRequest::parse(&bytes) {
            let again = written(|out| request.write(out));
            prop_assert_eq!(AnnounceRequest::parse(&again), Some(request));
        }
        if let Some(request) = ScrapeRequest::parse(&bytes) {
            prop_assert_eq!(written(|out| request.write(out)), bytes.clone());
        }
    }
}

// Regression tests: inputs the fuzz targets in fuzz/ reported, minimised.

/// An error reply whose text is all NULs parses to an empty message, and
/// writing that back must give a reply that parses to the same: an empty
/// message is written as one NUL (a bare 8-byte header would be
/// `ErrorLength`). Found by `fuzz/fuzz_targets/parse_response.rs`.
#[test]
fn an_empty_error_message_round_trips() {
    // fuzz/regressions/parse_response/empty-error-message
    let input = [0x00, 0x00, 0x00, 0x03, 0x01, 0x00, 0x00, 0x3d, 0x00];
    let first = Response::parse(&input, false).unwrap();
    assert_eq!(
        first,
        Response::Error(ErrorResponse {
            transaction_id: TransactionId(0x0100_003d),
            message: String::new(),
        })
    );
    let rewritten = written(|out| first.write(out));
    assert_eq!(rewritten, input);
    assert_eq!(Response::parse(&rewritten, false), Ok(first));
}
