//! # Applications: what a worker does with a request, in place
//!
//! An [`Application`] serves one request at a time on a worker thread. The worker hands it the
//! request's parsed fields and the request's UDP payload **inside the received frame**; the
//! application writes its response payload at the start of that slice and returns its length.
//! [`respond_in_place`] then turns the frame into the response (addresses swapped, lengths and
//! IPv4 checksum fixed: [`crate::wire::build_reply_in_place`]), so no buffer is allocated or
//! copied per request (the original's zero-copy design, docs/design.md §3.1).
//!
//! Applications: [`SpinApp`] (calibrated busy work for `run_ns`, the original's MbWorker),
//! [`KvApp`] (an ordered in-memory store with GET/SCAN, standing in for RocksDB) and
//! [`EchoApp`] (the payload back, unchanged).
//!
//! A [`Classifier`] runs on the dispatcher and returns the wire type id the scheduler
//! classifies by: [`WireTypeClassifier`] reads the type field (the original's only
//! behaviour, docs/design.md §3.4); an application can supply its own from its payload
//! ([`KvClassifier`]).
//!
//! Invariants: `handle` never allocates and never panics on any request (a forged `run_ns` is
//! capped); the length it returns is at most the payload slice's length.
//! Tests: per application (payload produced, work done: scan counts, key lookups, spin
//! duration lower bound) and end to end through [`respond_in_place`] on real frames.

pub mod kv;
pub mod spin;

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::clock::Clock;
use crate::wire::{self, RequestView, PAYLOAD_OFFSET};

pub use kv::{KvApp, KvClassifier, KvStore};
pub use spin::{SpinApp, SpinCalibration, SpinMode};

/// Serves requests on one worker thread.
pub trait Application: Send + 'static {
    /// Short name (`spin`, `kv`, `echo`).
    fn name(&self) -> &'static str;

    /// Serves `request`. `payload` is the request's UDP payload in the frame, writable: the
    /// request is `payload[..request.payload_len]` (at least 16 B); the slice may extend to the
    /// end of the buffer. Write the response payload at its start and return the response
    /// payload's length (≤ `payload.len()`; 12 for a Perséphone response, whose first 12 B
    /// are already `req_id`, `req_type`, size word).
    fn handle(&mut self, request: &RequestView, payload: &mut [u8]) -> usize;

    /// Whether [`Application::handle_preemptible`] stops when asked (live time sharing, `ts`,
    /// runs only applications that do).
    fn supports_preemption(&self) -> bool {
        false
    }

    /// Serves `request` like [`Application::handle`], but stops early once `preempt` is set
    /// (checked at least every [`PREEMPT_CHECK_NS`] of work) and says where it stopped.
    /// `resume` is `None` for a fresh request, or what the last slice's
    /// [`Outcome::Preempted`] returned. The default runs [`Application::handle`] to the end.
    fn handle_preemptible(
        &mut self,
        request: &RequestView,
        payload: &mut [u8],
        preempt: &AtomicBool,
        resume: Option<Resume>,
    ) -> Outcome {
        let _ = (preempt, resume);
        Outcome::Done(self.handle(request, payload))
    }
}

/// Longest stretch of work an application that supports preemption may do between two
/// checks of its preempt flag (Concord's cooperative preemption checks at this scale).
pub const PREEMPT_CHECK_NS: u64 = 1_000;

/// Where a preempted request stands: what its application needs to continue it.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Resume {
    /// Work left, ns (spin: the service time left; kv SCAN: an estimate).
    pub remaining_ns: u64,
    /// Application-defined progress (kv SCAN: entries already visited).
    pub progress: u64,
}

/// What one slice of [`Application::handle_preemptible`] did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Finished: the response payload's length, as [`Application::handle`] returns.
    Done(usize),
    /// Stopped at the preempt flag; nothing was written. Call again with this to continue.
    Preempted(Resume),
}

/// Returns the wire type id the scheduler classifies a request by. Runs on the dispatcher,
/// once per request: no allocation, no panic.
pub trait Classifier: Send + 'static {
    /// The wire type of `request`; `payload` is its UDP payload.
    fn classify(&self, request: &RequestView, payload: &[u8]) -> u32;
}

/// The default classifier: the request's type field.
#[derive(Copy, Clone, Debug, Default)]
pub struct WireTypeClassifier;

impl Classifier for WireTypeClassifier {
    #[inline]
    fn classify(&self, request: &RequestView, _payload: &[u8]) -> u32 {
        request.req_type
    }
}

/// The `echo` application: the response payload is the request payload as it is (all of it,
/// `run_ns` included), like Shenango's `psp_fakework` (docs/design.md §4.5).
#[derive(Copy, Clone, Debug, Default)]
pub struct EchoApp;

impl Application for EchoApp {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn handle(&mut self, request: &RequestView, payload: &mut [u8]) -> usize {
        request.payload_len.min(payload.len())
    }
}

/// Runs `app` on the request in `frame` (as accepted by [`wire::parse_request`], whose
/// `request` view it is) and turns the frame into the response in place. Returns the
/// response frame's length (≥ 60: set the buffer's length to it), or 0 if `frame` does not
/// hold the request's payload (drop it). The application may write a response as long as the
/// frame's room after the headers ([`respond_in_place_with`], what the server's workers run).
///
/// For fully zeroed padding, give `frame` at least [`wire::MIN_FRAME_LEN`] bytes.
pub fn respond_in_place<A: Application + ?Sized>(
    app: &mut A,
    request: &RequestView,
    frame: &mut [u8],
) -> usize {
    let holds_request = PAYLOAD_OFFSET
        .checked_add(request.payload_len)
        .is_some_and(|end| end <= frame.len());
    if !holds_request {
        return 0;
    }
    let answer: Result<usize, std::convert::Infallible> =
        respond_in_place_with(frame, |payload| Ok(app.handle(request, payload)));
    answer.unwrap_or_else(|never| match never {})
}

/// The one response step: `handle` writes the response into the frame's payload room (from
/// [`PAYLOAD_OFFSET`] to the frame's end) and returns its length, clipped to that room; the
/// frame then becomes the reply in place (addresses swapped, lengths and IPv4 checksum fixed:
/// [`wire::build_reply_in_place`]). Returns the frame length (0: drop it), or `handle`'s `Err`
/// untouched (a preempted request: nothing is built).
pub fn respond_in_place_with<E>(
    frame: &mut [u8],
    handle: impl FnOnce(&mut [u8]) -> Result<usize, E>,
) -> Result<usize, E> {
    let Some(payload) = frame.get_mut(PAYLOAD_OFFSET..) else {
        return Ok(0);
    };
    let room = payload.len();
    let response_len = handle(payload)?.min(room);
    Ok(wire::build_reply_in_place(frame, response_len))
}

/// Which application the server runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum AppKind {
    /// Calibrated busy work for `run_ns` (default; the original's `MB` and `TPCC` workers).
    #[default]
    Spin,
    /// Ordered key-value store (the original's `ROCKSDB` worker).
    Kv,
    /// Payload echoed back.
    Echo,
}

impl AppKind {
    /// Every accepted name.
    pub const NAMES: [&'static str; 3] = ["spin", "kv", "echo"];

    /// The name.
    pub fn name(self) -> &'static str {
        match self {
            AppKind::Spin => "spin",
            AppKind::Kv => "kv",
            AppKind::Echo => "echo",
        }
    }
}

impl fmt::Display for AppKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An application name that is not one of [`AppKind::NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown application {0:?} (expected one of: spin, kv, echo)")]
pub struct UnknownApp(pub String);

impl FromStr for AppKind {
    type Err = UnknownApp;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name.trim().to_ascii_lowercase().as_str() {
            "spin" => Ok(AppKind::Spin),
            "kv" => Ok(AppKind::Kv),
            "echo" => Ok(AppKind::Echo),
            _ => Err(UnknownApp(name.to_string())),
        }
    }
}

/// Application settings (the server config's `psp.app`, `psp.kv`, `psp.spin`).
#[derive(Clone, Debug, PartialEq)]
pub struct AppConfig {
    /// Which application.
    pub kind: AppKind,
    /// `kv`: keys preloaded (default [`kv::DEFAULT_KEYS`]).
    pub kv_keys: usize,
    /// `kv`: entries per SCAN (default: all keys, like the original).
    pub kv_scan_len: usize,
    /// `spin`: cap on `run_ns` (default [`spin::DEFAULT_MAX_RUN_NS`]).
    pub spin_max_run_ns: u32,
    /// `spin`: calibration rounds of 1 ms (default [`spin::DEFAULT_CALIBRATION_ROUNDS`]),
    /// `iterations` mode only.
    pub spin_calibration_rounds: u32,
    /// `spin`: how service time is made (default [`SpinMode::Clock`]).
    pub spin_mode: SpinMode,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            kind: AppKind::Spin,
            kv_keys: kv::DEFAULT_KEYS,
            kv_scan_len: kv::DEFAULT_KEYS,
            spin_max_run_ns: spin::DEFAULT_MAX_RUN_NS,
            spin_calibration_rounds: spin::DEFAULT_CALIBRATION_ROUNDS,
            spin_mode: SpinMode::Clock,
        }
    }
}

/// One worker's application, as an enum so the worker loop dispatches statically.
#[derive(Clone, Debug)]
pub enum AnyApp {
    /// [`SpinApp`].
    Spin(SpinApp),
    /// [`KvApp`].
    Kv(KvApp),
    /// [`EchoApp`].
    Echo(EchoApp),
}

impl Application for AnyApp {
    fn name(&self) -> &'static str {
        match self {
            AnyApp::Spin(app) => app.name(),
            AnyApp::Kv(app) => app.name(),
            AnyApp::Echo(app) => app.name(),
        }
    }

    #[inline]
    fn handle(&mut self, request: &RequestView, payload: &mut [u8]) -> usize {
        match self {
            AnyApp::Spin(app) => app.handle(request, payload),
            AnyApp::Kv(app) => app.handle(request, payload),
            AnyApp::Echo(app) => app.handle(request, payload),
        }
    }

    fn supports_preemption(&self) -> bool {
        match self {
            AnyApp::Spin(app) => app.supports_preemption(),
            AnyApp::Kv(app) => app.supports_preemption(),
            AnyApp::Echo(app) => app.supports_preemption(),
        }
    }

    #[inline]
    fn handle_preemptible(
        &mut self,
        request: &RequestView,
        payload: &mut [u8],
        preempt: &AtomicBool,
        resume: Option<Resume>,
    ) -> Outcome {
        match self {
            AnyApp::Spin(app) => app.handle_preemptible(request, payload, preempt, resume),
            AnyApp::Kv(app) => app.handle_preemptible(request, payload, preempt, resume),
            AnyApp::Echo(app) => app.handle_preemptible(request, payload, preempt, resume),
        }
    }
}

/// The dispatcher's classifier for an application.
#[derive(Copy, Clone, Debug)]
pub enum AnyClassifier {
    /// [`WireTypeClassifier`].
    WireType(WireTypeClassifier),
    /// [`KvClassifier`].
    Kv(KvClassifier),
}

impl Classifier for AnyClassifier {
    #[inline]
    fn classify(&self, request: &RequestView, payload: &[u8]) -> u32 {
        match self {
            AnyClassifier::WireType(c) => c.classify(request, payload),
            AnyClassifier::Kv(c) => c.classify(request, payload),
        }
    }
}

/// Builds the per-worker applications once: calibrates `spin`, loads the `kv` store (shared
/// by every worker through an `Arc`), then hands out one [`AnyApp`] per worker.
#[derive(Clone, Debug)]
pub struct AppFactory {
    config: AppConfig,
    calibration: Option<SpinCalibration>,
    clock: Clock,
    store: Option<Arc<KvStore>>,
}

impl AppFactory {
    /// Does the start-up work of `config.kind` (spin in `iterations` mode:
    /// ~`spin_calibration_rounds` ms).
    pub fn new(config: &AppConfig) -> Self {
        Self::with_calibration(config, None)
    }

    /// Like [`AppFactory::new`] with a known spin calibration (tests, or measured elsewhere);
    /// `None` measures it if needed (spin in `iterations` mode only).
    pub fn with_calibration(config: &AppConfig, calibration: Option<SpinCalibration>) -> Self {
        let iterations = config.kind == AppKind::Spin && config.spin_mode == SpinMode::Iterations;
        let calibration = match (iterations, calibration) {
            (true, None) => Some(SpinCalibration::measure(config.spin_calibration_rounds)),
            (_, given) => given,
        };
        let store =
            (config.kind == AppKind::Kv).then(|| Arc::new(KvStore::with_keys(config.kv_keys)));
        AppFactory {
            config: config.clone(),
            calibration,
            clock: Clock::start(),
            store,
        }
    }

    /// The settings.
    pub fn config(&self) -> &AppConfig {
        &self.config
    }

    /// The spin calibration, if the application spins.
    pub fn calibration(&self) -> Option<SpinCalibration> {
        self.calibration
    }

    /// A fresh application for one worker.
    pub fn make(&self) -> AnyApp {
        match self.config.kind {
            AppKind::Spin => match (self.config.spin_mode, self.calibration) {
                (SpinMode::Clock, _) => AnyApp::Spin(SpinApp::with_clock(
                    self.clock.clone(),
                    self.config.spin_max_run_ns,
                )),
                (SpinMode::Iterations, calibration) => AnyApp::Spin(SpinApp::new(
                    calibration.unwrap_or_else(|| SpinCalibration::from_iterations_per_ns(0.0)),
                    self.config.spin_max_run_ns,
                )),
            },
            AppKind::Kv => AnyApp::Kv(KvApp::new(
                self.store
                    .clone()
                    .unwrap_or_else(|| Arc::new(KvStore::with_keys(self.config.kv_keys))),
                self.config.kv_scan_len,
            )),
            AppKind::Echo => AnyApp::Echo(EchoApp),
        }
    }

    /// The dispatcher's classifier for this application.
    pub fn classifier(&self) -> AnyClassifier {
        match self.config.kind {
            AppKind::Kv => AnyClassifier::Kv(KvClassifier),
            AppKind::Spin | AppKind::Echo => AnyClassifier::WireType(WireTypeClassifier),
        }
    }
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::wire::{
        build_request, parse_request, parse_response, psp, Endpoint, MacAddr, RequestRepr,
    };
    use std::net::Ipv4Addr;

    const SERVER: Endpoint = Endpoint::new(
        MacAddr([0x42, 0, 0, 0, 0, 1]),
        Ipv4Addr::new(10, 0, 0, 1),
        6789,
    );
    const CLIENT: Endpoint = Endpoint::new(
        MacAddr([0x42, 0, 0, 0, 0, 2]),
        Ipv4Addr::new(10, 0, 0, 2),
        40000,
    );

    /// A request view with these fields, from the test client.
    pub(crate) fn request(req_id: u32, req_type: u32, run_ns: u32) -> RequestView {
        RequestView {
            req_id,
            req_type,
            req_size: psp::DEFAULT_REQ_SIZE,
            run_ns,
            src: CLIENT,
            payload_len: psp::REQUEST_LEN,
        }
    }

    fn frame(req_id: u32, req_type: u32, run_ns: u32) -> [u8; 64] {
        let mut buf = [0u8; 64];
        let repr = RequestRepr {
            req_id,
            req_type,
            req_size: psp::DEFAULT_REQ_SIZE,
            run_ns,
        };
        build_request(&mut buf, &repr, &CLIENT, &SERVER).unwrap();
        buf
    }

    fn serve(app: &mut dyn Application, frame: &mut [u8]) -> usize {
        let view = parse_request(frame, &SERVER).unwrap();
        respond_in_place(app, &view, frame)
    }

    #[test]
    fn spin_responds_in_place_with_12_bytes() {
        let factory = AppFactory::with_calibration(
            &AppConfig::default(),
            Some(SpinCalibration::from_iterations_per_ns(1.0)),
        );
        let mut app = factory.make();
        assert_eq!(app.name(), "spin");
        let mut buf = frame(9, 1, 1_000);
        let len = serve(&mut app, &mut buf);
        assert_eq!(len, wire::RESPONSE_FRAME_LEN);
        let response = parse_response(&buf[..len], &CLIENT).unwrap();
        assert_eq!(
            (response.req_id, response.req_type, response.req_size),
            (9, 1, 4)
        );
        assert_eq!(response.payload_len, psp::RESPONSE_LEN);
        assert_eq!(response.src, SERVER);
    }

    #[test]
    fn echo_returns_the_whole_payload() {
        let mut app = EchoApp;
        let mut buf = frame(5, 3, 777);
        let len = serve(&mut app, &mut buf);
        let response = parse_response(&buf[..len], &CLIENT).unwrap();
        assert_eq!(response.payload_len, psp::REQUEST_LEN);
        let run_ns = psp::Message::new_unchecked(&buf[PAYLOAD_OFFSET..]).run_ns();
        assert_eq!(run_ns, 777);
        // A payload slice running to the end of the buffer: only the request is echoed.
        let mut area = [0u8; 40];
        assert_eq!(
            EchoApp.handle(&request(1, 1, 0), &mut area),
            psp::REQUEST_LEN
        );
    }

    #[test]
    fn kv_through_the_factory_counts_the_scan() {
        let config = AppConfig {
            kind: AppKind::Kv,
            kv_keys: 50,
            kv_scan_len: 50,
            ..AppConfig::default()
        };
        let factory = AppFactory::new(&config);
        assert!(factory.calibration().is_none(), "kv does not calibrate");
        let mut app = factory.make();
        let mut buf = frame(1, kv::SCAN_TYPE, 0);
        let len = serve(&mut app, &mut buf);
        assert_eq!(parse_response(&buf[..len], &CLIENT).unwrap().req_size, 50);
        let classifier = factory.classifier();
        assert_eq!(classifier.classify(&request(0, 99, 0), &[]), kv::GET_TYPE);
    }

    #[test]
    fn default_classifier_reads_the_type_field() {
        let factory = AppFactory::new(&AppConfig {
            kind: AppKind::Echo,
            ..AppConfig::default()
        });
        assert_eq!(factory.classifier().classify(&request(0, 42, 0), &[]), 42);
        assert_eq!(WireTypeClassifier.classify(&request(0, 7, 0), &[]), 7);
    }

    /// An application claiming more bytes than the frame has room for is clamped to that room
    /// (the room after the headers: a response may be longer than its request, as the workers
    /// allow).
    #[test]
    fn respond_clamps_a_greedy_application() {
        struct Greedy;
        impl Application for Greedy {
            fn name(&self) -> &'static str {
                "greedy"
            }
            fn handle(&mut self, _: &RequestView, _: &mut [u8]) -> usize {
                usize::MAX
            }
        }
        let mut buf = frame(1, 1, 0);
        let room = buf.len() - PAYLOAD_OFFSET;
        assert!(room >= psp::REQUEST_LEN);
        let len = serve(&mut Greedy, &mut buf);
        assert_eq!(
            parse_response(&buf[..len], &CLIENT).unwrap().payload_len,
            room
        );
        // A view claiming a payload the frame does not have builds nothing.
        let mut view = parse_request(&buf, &CLIENT).map_or(request(1, 1, 0), |v| v);
        view.payload_len = 1000;
        assert_eq!(respond_in_place(&mut Greedy, &view, &mut buf), 0);
    }

    #[test]
    fn app_names_parse() {
        for name in AppKind::NAMES {
            assert_eq!(name.parse::<AppKind>().unwrap().name(), name);
        }
        assert_eq!("KV".parse::<AppKind>(), Ok(AppKind::Kv));
        let err = "rocksdb".parse::<AppKind>().unwrap_err();
        assert!(err.to_string().contains("\"rocksdb\""));
    }
}
