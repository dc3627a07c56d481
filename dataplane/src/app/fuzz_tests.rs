//! Fuzzing of the dispatcher's whole per-packet decision as a proptest corpus that runs in CI in
//! bounded time (a few thousand cases): a request frame with a random payload length (up to a
//! full 2048-byte buffer), special and random type ids, random header bytes and a random frame
//! cut goes through the frame parser, both classifiers, the scheduler's type lookup and every
//! application's in-place response. Nothing may panic; a frame the parser accepts must have its
//! payload inside the frame, classify to a registered type or UNKNOWN, and turn into a response
//! that fits its buffer and that the client's parser accepts.

use std::net::Ipv4Addr;

use proptest::prelude::*;
use psp_scheduler::{Policy, RequestTypeSpec, Scheduler, SchedulerConfig, TypeIndex};

use super::{respond_in_place, AppConfig, AppFactory, AppKind, Classifier};
use crate::wire::{
    build_udp_frame, parse_request, parse_response_with, psp, Endpoint, MacAddr, ParseOptions,
    RequestRepr, PAYLOAD_OFFSET,
};

const SERVER: Endpoint = Endpoint::new(
    MacAddr([0x42, 0, 0, 0, 0, 0x01]),
    Ipv4Addr::new(10, 0, 0, 1),
    6789,
);
const CLIENT: Endpoint = Endpoint::new(
    MacAddr([0x42, 0, 0, 0, 0, 0x02]),
    Ipv4Addr::new(10, 0, 0, 2),
    40_000,
);
/// A port buffer's capacity (the UDP and in-memory ports' default).
const BUF_CAPACITY: usize = crate::port::pool::DEFAULT_BUF_CAPACITY;

/// Type ids that matter: UNKNOWN, the registered ones, GET/SCAN, the original's LAST, extremes.
fn type_id() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        Just(1),
        Just(2),
        Just(10),
        Just(11),
        Just(12),
        Just(u32::MAX),
        any::<u32>(),
    ]
}

/// A scheduler registering SHORT (1), LONG (2), GET (10) and SCAN (11).
fn scheduler() -> Scheduler {
    let types = [("SHORT", 1), ("LONG", 2), ("GET", 10), ("SCAN", 11)]
        .map(|(name, id)| RequestTypeSpec::new(name, id));
    Scheduler::new(SchedulerConfig::new(2, types.to_vec(), Policy::Cfcfs)).expect("valid")
}

/// One factory per application, built once (spin calibration is fixed, kv is small).
fn factories() -> Vec<AppFactory> {
    [AppKind::Spin, AppKind::Kv, AppKind::Echo]
        .into_iter()
        .map(|kind| {
            let config = AppConfig {
                kind,
                kv_keys: 64,
                kv_scan_len: 64,
                spin_max_run_ns: 1_000,
                ..AppConfig::default()
            };
            AppFactory::with_calibration(
                &config,
                Some(super::SpinCalibration::from_iterations_per_ns(0.0)),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn parse_classify_respond_never_panics(
        req_id: u32,
        req_type in type_id(),
        req_size: u32,
        run_ns in 0u32..2_000,
        payload_len in 0usize..=BUF_CAPACITY - PAYLOAD_OFFSET,
        edits in proptest::collection::vec((0usize..PAYLOAD_OFFSET + 32, any::<u8>()), 0..3),
        cut in proptest::option::of(0usize..BUF_CAPACITY),
    ) {
        let mut frame = vec![0u8; BUF_CAPACITY];
        let len = build_udp_frame(&mut frame, &CLIENT, &SERVER, payload_len).expect("fits");
        let request = RequestRepr { req_id, req_type, req_size, run_ns };
        if payload_len >= psp::REQUEST_LEN {
            request
                .emit(&mut psp::Message::new_unchecked(
                    &mut frame[PAYLOAD_OFFSET..PAYLOAD_OFFSET + psp::REQUEST_LEN],
                ))
                .expect("room");
        }
        for (at, value) in edits {
            frame[at] = value;
        }
        let len = cut.map_or(len, |c| c.min(len));
        let scheduler = scheduler();
        let Ok(view) = parse_request(&frame[..len], &SERVER) else {
            return Ok(());
        };
        let payload_end = PAYLOAD_OFFSET + view.payload_len;
        prop_assert!(payload_end <= len, "payload inside the frame");
        let payload = &frame[PAYLOAD_OFFSET..payload_end];
        for factory in factories() {
            let wire_type = factory.classifier().classify(&view, payload);
            let ty = scheduler.classify(wire_type);
            prop_assert!(ty == TypeIndex::UNKNOWN || ty.index().is_some_and(|i| i < 4));
            // Respond in a copy of the whole buffer, as the worker does.
            let mut buf = frame.clone();
            let mut app = factory.make();
            let out = respond_in_place(&mut app, &view, &mut buf);
            prop_assert!(out <= BUF_CAPACITY);
            if out != 0 {
                let lenient = ParseOptions {
                    check_dst_mac: false,
                    check_dst_ip: false,
                    verify_ip_checksum: true,
                    verify_udp_checksum: false,
                };
                let response = parse_response_with(&buf[..out], &view.src, &lenient);
                prop_assert_eq!(response.map(|r| r.req_id), Ok(view.req_id));
            }
        }
    }
}
