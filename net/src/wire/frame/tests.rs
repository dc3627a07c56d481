//! Tests of the frame-level entry points: round trips, every drop reason, truncation at every
//! byte offset, response addressing, ARP, and never-panic proptests.

use super::*;
use crate::wire::checksum;
use proptest::prelude::*;

const SERVER: Endpoint = Endpoint::new(
    MacAddr([0x42, 0, 0, 0, 0, 0x01]),
    Ipv4Addr::new(192, 168, 10, 10),
    6789,
);
const CLIENT: Endpoint = Endpoint::new(
    MacAddr([0x42, 0, 0, 0, 0, 0x02]),
    Ipv4Addr::new(192, 168, 10, 11),
    32768,
);
const REQUEST: RequestRepr = RequestRepr {
    req_id: 0x0800_0007,
    req_type: 2,
    req_size: psp::DEFAULT_REQ_SIZE,
    run_ns: 100_000,
};

fn request_frame() -> [u8; REQUEST_FRAME_LEN] {
    let mut buf = [0u8; REQUEST_FRAME_LEN];
    let len = build_request(&mut buf, &REQUEST, &CLIENT, &SERVER).unwrap();
    assert_eq!(len, REQUEST_FRAME_LEN);
    buf
}

/// Recomputes the IPv4 header checksum after a test mutated the header.
fn refresh_ip_checksum(frame: &mut [u8]) {
    let mut ip = ipv4::Packet::new_unchecked(&mut frame[IPV4_OFFSET..UDP_OFFSET]);
    ip.fill_checksum();
}

/// A request frame as the original C++ client builds it (client.hh/context.cc, master):
/// 58 B of headers and payload, padded to 60, IPv4 checksum filled, UDP checksum 0, ident 0,
/// DF not set, TTL 64. Built byte by byte, independently of this module's emitters.
fn original_client_frame() -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&SERVER.mac.0);
    f.extend_from_slice(&CLIENT.mac.0);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0x00, 0x00, 44, 0x00, 0x00, 0x00, 0x00, 64, 17, 0, 0]);
    f.extend_from_slice(&CLIENT.ip.octets());
    f.extend_from_slice(&SERVER.ip.octets());
    let ip_sum = checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
    f.extend_from_slice(&CLIENT.port.to_be_bytes());
    f.extend_from_slice(&SERVER.port.to_be_bytes());
    f.extend_from_slice(&24u16.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    for word in [
        REQUEST.req_id,
        REQUEST.req_type,
        REQUEST.req_size,
        REQUEST.run_ns,
    ] {
        f.extend_from_slice(&word.to_le_bytes());
    }
    f.resize(60, 0);
    f
}

#[test]
fn request_round_trip() {
    let frame = request_frame();
    let view = parse_request(&frame, &SERVER).unwrap();
    assert_eq!(view.repr(), REQUEST);
    assert_eq!(view.src, CLIENT);
    assert_eq!(view.payload_len, psp::REQUEST_LEN);
    assert!(frame[PAYLOAD_OFFSET + psp::REQUEST_LEN..]
        .iter()
        .all(|&b| b == 0));
}

#[test]
fn accepts_the_original_clients_frame() {
    let frame = original_client_frame();
    let view = parse_request(&frame, &SERVER).unwrap();
    assert_eq!(view.repr(), REQUEST);
    assert_eq!(view.src, CLIENT);
}

/// Header bytes pinned against a hand-computed vector: our emitter sets DF (0x4000), so the
/// checksum differs from the original client's by exactly that word.
#[test]
fn emitted_ip_header_has_known_checksum() {
    let frame = request_frame();
    let header = &frame[IPV4_OFFSET..UDP_OFFSET];
    assert_eq!(
        header,
        &[
            0x45, 0x00, 0x00, 44, 0x00, 0x00, 0x40, 0x00, 64, 17, 0xa5, 0x5b, 192, 168, 10, 11,
            192, 168, 10, 10
        ]
    );
    assert!(checksum::verify(header));
}

#[test]
fn unpadded_and_padded_lengths_both_parse() {
    let frame = request_frame();
    // 58 B: no Ethernet padding (e.g. a loopback test port).
    assert!(parse_request(&frame[..PAYLOAD_OFFSET + psp::REQUEST_LEN], &SERVER).is_ok());
    // Extra trailing padding is fine.
    let mut long = frame.to_vec();
    long.extend_from_slice(&[0; 40]);
    assert!(parse_request(&long, &SERVER).is_ok());
}

#[test]
fn truncated_at_every_offset_is_refused_with_the_right_reason() {
    let frame = request_frame();
    let full = PAYLOAD_OFFSET + psp::REQUEST_LEN;
    for cut in 0..full {
        let reason = parse_request(&frame[..cut], &SERVER).unwrap_err();
        let expected = if cut < ethernet::HEADER_LEN {
            DropReason::TooShort
        } else {
            // The IPv4 total length (44) no longer fits.
            DropReason::TruncatedIp
        };
        assert_eq!(reason, expected, "cut at {cut}");
    }
}

#[test]
fn every_malformed_case_has_its_reason() {
    type Mutation = fn(&mut [u8]);
    let cases: [(DropReason, Mutation); 16] = [
        (DropReason::NotIpv4, |f| {
            f[12..14].copy_from_slice(&[0x86, 0xdd])
        }),
        (DropReason::Arp, |f| {
            f[12..14].copy_from_slice(&[0x08, 0x06])
        }),
        (DropReason::WrongDstMac, |f| f[0] ^= 1),
        (DropReason::BadIpVersion, |f| f[14] = 0x65),
        (DropReason::BadHeaderLength, |f| f[14] = 0x44),
        (DropReason::IpOptions, |f| f[14] = 0x46),
        (DropReason::BadIpLength, |f| {
            f[16..18].copy_from_slice(&19u16.to_be_bytes());
            refresh_ip_checksum(f)
        }),
        (DropReason::TruncatedIp, |f| {
            f[16..18].copy_from_slice(&47u16.to_be_bytes());
            refresh_ip_checksum(f)
        }),
        (DropReason::BadIpChecksum, |f| f[24] ^= 0x55),
        (DropReason::Fragmented, |f| {
            f[20..22].copy_from_slice(&0x2000u16.to_be_bytes());
            refresh_ip_checksum(f)
        }),
        (DropReason::NotUdp, |f| {
            f[23] = 6;
            refresh_ip_checksum(f)
        }),
        (DropReason::WrongDstIp, |f| {
            f[33] ^= 1;
            refresh_ip_checksum(f)
        }),
        (DropReason::TruncatedUdp, |f| {
            f[16..18].copy_from_slice(&27u16.to_be_bytes());
            refresh_ip_checksum(f)
        }),
        (DropReason::BadUdpLength, |f| {
            f[38..40].copy_from_slice(&23u16.to_be_bytes())
        }),
        (DropReason::WrongDstPort, |f| f[37] ^= 1),
        (DropReason::TruncatedPayload, |f| {
            f[16..18].copy_from_slice(&43u16.to_be_bytes());
            f[38..40].copy_from_slice(&23u16.to_be_bytes());
            refresh_ip_checksum(f)
        }),
    ];
    for (expected, mutate) in cases {
        let mut frame = request_frame();
        mutate(&mut frame);
        assert_eq!(parse_request(&frame, &SERVER), Err(expected), "{expected}");
    }
}

#[test]
fn lenient_options_skip_the_optional_checks() {
    let lenient = ParseOptions {
        verify_ip_checksum: false,
        verify_udp_checksum: false,
        check_dst_mac: false,
        check_dst_ip: false,
    };
    let mut frame = request_frame();
    frame[0] ^= 1; // dst MAC
    frame[33] ^= 1; // dst IP, checksum now stale as well
    assert!(parse_request(&frame, &SERVER).is_err());
    assert_eq!(
        parse_request_with(&frame, &SERVER, &lenient)
            .unwrap()
            .repr(),
        REQUEST
    );
}

#[test]
fn udp_checksum_is_verified_only_when_asked() {
    let options = ParseOptions {
        verify_udp_checksum: true,
        ..ParseOptions::STRICT
    };
    let mut frame = request_frame();
    // Zero = none: accepted.
    assert!(parse_request_with(&frame, &SERVER, &options).is_ok());
    {
        let mut datagram =
            udp::Packet::new_unchecked(&mut frame[UDP_OFFSET..PAYLOAD_OFFSET + psp::REQUEST_LEN]);
        datagram.fill_checksum(CLIENT.ip, SERVER.ip);
    }
    assert!(parse_request_with(&frame, &SERVER, &options).is_ok());
    frame[PAYLOAD_OFFSET] ^= 1;
    assert_eq!(
        parse_request_with(&frame, &SERVER, &options),
        Err(DropReason::BadUdpChecksum)
    );
    assert!(parse_request(&frame, &SERVER).is_ok());
}

#[test]
fn response_in_place_swaps_addresses_and_keeps_12_bytes() {
    let mut frame = request_frame();
    let len = build_response_in_place(&mut frame);
    assert_eq!(len, RESPONSE_FRAME_LEN);
    let response = parse_response(&frame[..len], &CLIENT).unwrap();
    assert_eq!(
        response.repr(),
        ResponseRepr {
            req_id: REQUEST.req_id,
            req_type: REQUEST.req_type,
            req_size: REQUEST.req_size,
        }
    );
    assert_eq!(response.src, SERVER, "source is the server's address");
    assert_eq!(response.payload_len, psp::RESPONSE_LEN);
    let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
    assert_eq!(eth.dst_addr(), CLIENT.mac);
    let ip = ipv4::Packet::new_checked(&frame[IPV4_OFFSET..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.total_len(), 20 + 8 + 12);
    assert_eq!(ip.dst_addr(), CLIENT.ip);
    let datagram = udp::Packet::new_checked(ip.payload()).unwrap();
    assert_eq!(datagram.dst_port(), CLIENT.port);
    assert_eq!(datagram.len(), 8 + 12);
    // run_ns is gone: the padding after the 12 B is zero.
    assert!(frame[PAYLOAD_OFFSET + psp::RESPONSE_LEN..]
        .iter()
        .all(|&b| b == 0));
    // The server would refuse its own response.
    assert!(parse_request(&frame, &SERVER).is_err());
}

#[test]
fn response_from_an_original_client_frame() {
    let mut frame = original_client_frame();
    let len = build_response_in_place(&mut frame);
    let response = parse_response(&frame[..len], &CLIENT).unwrap();
    assert_eq!(response.req_id, REQUEST.req_id);
    assert_eq!(response.src, SERVER);
}

#[test]
fn reply_of_other_lengths() {
    let mut frame = request_frame();
    // Echo: the whole 16 B payload; 58 B padded to 60.
    let len = build_reply_in_place(&mut frame, psp::REQUEST_LEN);
    assert_eq!(len, REQUEST_FRAME_LEN);
    let ip = ipv4::Packet::new_checked(&frame[IPV4_OFFSET..len]).unwrap();
    assert_eq!(ip.total_len(), 20 + 8 + 16);
    // A payload that does not fit the slice builds nothing.
    assert_eq!(build_reply_in_place(&mut frame, 19), 0);
    let mut short = [0u8; PAYLOAD_OFFSET + 11];
    assert_eq!(build_response_in_place(&mut short), 0);
    assert_eq!(build_reply_in_place(&mut frame, usize::MAX), 0);
}

#[test]
fn response_parser_validates_destination() {
    let mut frame = request_frame();
    let len = build_response_in_place(&mut frame);
    let other_port = Endpoint {
        port: CLIENT.port + 1,
        ..CLIENT
    };
    assert_eq!(
        parse_response(&frame[..len], &other_port),
        Err(DropReason::WrongDstPort)
    );
    let other_ip = Endpoint {
        ip: Ipv4Addr::new(10, 0, 0, 1),
        ..CLIENT
    };
    assert_eq!(
        parse_response(&frame[..len], &other_ip),
        Err(DropReason::WrongDstIp)
    );
    let other_mac = Endpoint {
        mac: MacAddr([2; 6]),
        ..CLIENT
    };
    assert_eq!(
        parse_response(&frame[..len], &other_mac),
        Err(DropReason::WrongDstMac)
    );
}

#[test]
fn build_request_needs_room() {
    let mut small = [0u8; REQUEST_FRAME_LEN - 1];
    assert_eq!(
        build_request(&mut small, &REQUEST, &CLIENT, &SERVER),
        Err(Error::Truncated)
    );
    let mut huge = [0u8; 64];
    assert_eq!(
        build_udp_frame(&mut huge, &CLIENT, &SERVER, 70_000),
        Err(Error::Truncated)
    );
}

#[test]
fn arp_request_gets_a_reply() {
    let mut frame = [0u8; MIN_FRAME_LEN];
    let len = build_arp_request(&mut frame, &CLIENT, SERVER.ip).unwrap();
    assert_eq!(len, MIN_FRAME_LEN);
    assert_eq!(parse_request(&frame, &SERVER), Err(DropReason::Arp));
    let len = build_arp_reply(&mut frame, &SERVER).unwrap();
    assert_eq!(len, MIN_FRAME_LEN);
    let eth = ethernet::Frame::new_checked(&frame[..]).unwrap();
    assert_eq!(eth.dst_addr(), CLIENT.mac);
    assert_eq!(eth.src_addr(), SERVER.mac);
    let reply = parse_arp(&frame).unwrap();
    assert_eq!(reply.operation, arp::Operation::Reply);
    assert_eq!(reply.source_hardware_addr, SERVER.mac);
    assert_eq!(reply.source_protocol_addr, SERVER.ip);
    assert_eq!(reply.target_hardware_addr, CLIENT.mac);
    assert_eq!(reply.target_protocol_addr, CLIENT.ip);
    // A reply is not answered.
    let before = frame;
    assert_eq!(
        build_arp_reply(&mut frame, &SERVER),
        Err(DropReason::ArpNotForUs)
    );
    assert_eq!(frame, before, "refused frames are left unchanged");
}

#[test]
fn arp_for_someone_else_or_malformed() {
    let mut frame = [0u8; MIN_FRAME_LEN];
    build_arp_request(&mut frame, &CLIENT, Ipv4Addr::new(1, 2, 3, 4)).unwrap();
    assert_eq!(
        build_arp_reply(&mut frame, &SERVER),
        Err(DropReason::ArpNotForUs)
    );
    for cut in ethernet::HEADER_LEN..ethernet::HEADER_LEN + arp::PACKET_LEN {
        assert_eq!(
            build_arp_reply(&mut frame[..cut], &SERVER),
            Err(DropReason::ArpMalformed)
        );
    }
    frame[15] = 6; // hardware type 6 (IEEE 802)
    assert_eq!(parse_arp(&frame), Err(DropReason::ArpMalformed));
    let ip_frame = request_frame();
    assert_eq!(parse_arp(&ip_frame), Err(DropReason::NotIpv4));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Random bytes never panic any entry point, whatever the length.
    #[test]
    fn random_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
        let _ = parse_request(&bytes, &SERVER);
        let _ = parse_response(&bytes, &CLIENT);
        let _ = parse_arp(&bytes);
        let lenient = ParseOptions { verify_ip_checksum: false, verify_udp_checksum: true,
            check_dst_mac: false, check_dst_ip: false };
        let _ = parse_request_with(&bytes, &SERVER, &lenient);
        let _ = build_arp_reply(&mut bytes.clone(), &SERVER);
        let _ = build_response_in_place(&mut bytes.clone());
        let _ = build_reply_in_place(&mut bytes, 16);
    }

    /// Valid frames with a few random byte changes and a random length never panic, and
    /// whatever parses as a request turns into a response the client accepts.
    #[test]
    fn mutated_frames_never_panic(
        edits in proptest::collection::vec((0usize..REQUEST_FRAME_LEN, any::<u8>()), 0..4),
        len in 0usize..=REQUEST_FRAME_LEN,
        fix_checksum in any::<bool>(),
    ) {
        let mut frame = request_frame();
        for (at, value) in edits {
            frame[at] = value;
        }
        if fix_checksum {
            refresh_ip_checksum(&mut frame);
        }
        let frame = &mut frame[..len];
        let lenient = ParseOptions { check_dst_mac: false, check_dst_ip: false,
            verify_ip_checksum: false, verify_udp_checksum: false };
        if let Ok(view) = parse_request(frame, &SERVER) {
            let out = build_response_in_place(frame);
            prop_assert!(out >= PAYLOAD_OFFSET + psp::RESPONSE_LEN);
            let end = out.min(frame.len());
            let response = parse_response_with(&frame[..end], &view.src, &lenient);
            prop_assert_eq!(response.map(|r| r.req_id), Ok(view.req_id));
        }
        let _ = build_arp_reply(frame, &SERVER);
    }

    /// Any request fields and addresses survive a build/parse round trip.
    #[test]
    fn request_fields_round_trip(id: u32, ty: u32, size: u32, run: u32, port in 1u16.., ip: u32) {
        let request = RequestRepr { req_id: id, req_type: ty, req_size: size, run_ns: run };
        let client = Endpoint { port, ip: Ipv4Addr::from(ip), ..CLIENT };
        let mut buf = [0u8; 128];
        let len = build_request(&mut buf, &request, &client, &SERVER).unwrap();
        let view = parse_request(&buf[..len], &SERVER).unwrap();
        prop_assert_eq!(view.repr(), request);
        prop_assert_eq!(view.src, client);
    }
}
