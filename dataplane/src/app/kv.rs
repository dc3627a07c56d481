//! `kv`: a real in-memory ordered key-value store standing in for the original's RocksDB
//! worker (docs/design.md §6.3): keys `"key0"`..`"key{n-1}"`, value `"value"`, built once at
//! start-up and shared read-only by every worker (no lock, no allocation per request).
//!
//! Operations, chosen by the wire type (the original's ids):
//! - **GET** ([`GET_TYPE`] = 10, and any other type): a point lookup of key
//!   `"key{req_id mod n_keys}"`, formatted on the stack. (The original's GET read the first
//!   key of an iterator instead; a point lookup is what a GET is.) Size word of the response =
//!   length of the value found, or [`NOT_FOUND`].
//! - **SCAN** ([`SCAN_TYPE`] = 11): iterates `scan_len` entries in key order, starting at the
//!   first key when `scan_len` covers the whole store (the original: all 5000 keys from
//!   `seek_to_first`), else at the GET key (and stopping at the end). Size word = entries
//!   visited, so a client can check the work was done. Under live time sharing (`ts`) a SCAN
//!   checks its preempt flag every [`SCAN_CHECK_ENTRIES`] entries; a preempted SCAN hands back
//!   the entries visited so far and resumes after them (GET is too short to preempt).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::{Application, Classifier, Outcome, Resume};
use crate::wire::{psp, RequestView};

/// Wire type of GET (original `ReqType` GET = 10, docs/design.md §6.2).
pub const GET_TYPE: u32 = psp_scheduler::wire_type::GET;
/// Wire type of SCAN (original `ReqType` SCAN = 11).
pub const SCAN_TYPE: u32 = psp_scheduler::wire_type::SCAN;
/// Keys in the original's database (shinjuku `db/create_db.c`, docs/design.md §6.3).
pub const DEFAULT_KEYS: usize = 5000;
/// Prefix of every key, as in the original database.
pub const KEY_PREFIX: &[u8] = b"key";
/// The value of every key, as in the original database.
pub const VALUE: &[u8] = b"value";
/// Size word of a GET that found nothing.
pub const NOT_FOUND: u32 = u32::MAX;

/// Entries a preemptible SCAN visits between two checks of its preempt flag: 64 entries of
/// an in-memory B-tree walk take well under [`super::PREEMPT_CHECK_NS`] (1 µs).
pub const SCAN_CHECK_ENTRIES: usize = 64;

/// Longest formatted key: the prefix and the 20 digits of `u64::MAX`.
pub const KEY_BUF_LEN: usize = 3 + 20;

/// Writes `"key{index}"` into `buf`; returns the key's bytes.
pub fn format_key(index: u64, buf: &mut [u8; KEY_BUF_LEN]) -> &[u8] {
    let mut digits = [0u8; 20];
    let mut n = index;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[..KEY_PREFIX.len()].copy_from_slice(KEY_PREFIX);
    for (slot, digit) in buf[KEY_PREFIX.len()..]
        .iter_mut()
        .zip(digits[..len].iter().rev())
    {
        *slot = *digit;
    }
    &buf[..KEY_PREFIX.len() + len]
}

/// The result of a scan.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Default)]
pub struct ScanSummary {
    /// Entries visited.
    pub entries: u64,
    /// Sum of the lengths of their keys and values.
    pub bytes: u64,
}

/// The ordered store.
#[derive(Debug)]
pub struct KvStore {
    map: BTreeMap<Box<[u8]>, Box<[u8]>>,
}

impl KvStore {
    /// The original's database with `n_keys` keys.
    pub fn with_keys(n_keys: usize) -> Self {
        let mut buf = [0u8; KEY_BUF_LEN];
        let map = (0..n_keys as u64)
            .map(|index| (Box::from(format_key(index, &mut buf)), Box::from(VALUE)))
            .collect();
        KvStore { map }
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Point lookup.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        self.map.get(key).map(|value| &**value)
    }

    /// Like [`KvStore::scan`], skipping the first `skip` entries and stopping early once
    /// `preempt` is set (checked every [`SCAN_CHECK_ENTRIES`] entries). Returns the entries
    /// visited (skipped ones not included) and whether it stopped early.
    pub fn scan_preemptible(
        &self,
        start: Option<&[u8]>,
        skip: usize,
        limit: usize,
        preempt: &AtomicBool,
    ) -> (ScanSummary, bool) {
        match start {
            None => scan_entries(self.map.iter(), skip, limit, preempt),
            Some(start) => scan_entries(
                self.map.range::<[u8], _>((
                    std::ops::Bound::Included(start),
                    std::ops::Bound::Unbounded,
                )),
                skip,
                limit,
                preempt,
            ),
        }
    }

    /// Visits up to `limit` entries in key order, from `start` (`None`: the first key).
    pub fn scan(&self, start: Option<&[u8]>, limit: usize) -> ScanSummary {
        let mut summary = ScanSummary::default();
        let mut visit = |key: &[u8], value: &[u8]| {
            summary.entries += 1;
            summary.bytes += (key.len() + value.len()) as u64;
            black_box((key, value));
        };
        match start {
            None => self.map.iter().take(limit).for_each(|(k, v)| visit(k, v)),
            Some(start) => self
                .map
                .range::<[u8], _>((std::ops::Bound::Included(start), std::ops::Bound::Unbounded))
                .take(limit)
                .for_each(|(k, v)| visit(k, v)),
        }
        summary
    }
}

/// Visits entries `skip..limit` of `entries`, stopping early (`true`) at the preempt flag.
fn scan_entries<'a>(
    entries: impl Iterator<Item = (&'a Box<[u8]>, &'a Box<[u8]>)>,
    skip: usize,
    limit: usize,
    preempt: &AtomicBool,
) -> (ScanSummary, bool) {
    let mut summary = ScanSummary::default();
    for (i, (key, value)) in entries.take(limit).skip(skip).enumerate() {
        if i % SCAN_CHECK_ENTRIES == 0 && i > 0 && preempt.load(Ordering::Relaxed) {
            return (summary, true);
        }
        summary.entries += 1;
        summary.bytes += (key.len() + value.len()) as u64;
        black_box((key, value));
    }
    (summary, false)
}

/// The `kv` application: GET and SCAN over a shared [`KvStore`].
#[derive(Clone, Debug)]
pub struct KvApp {
    store: Arc<KvStore>,
    scan_len: usize,
}

impl KvApp {
    /// A kv app over `store`, scanning `scan_len` entries per SCAN.
    pub fn new(store: Arc<KvStore>, scan_len: usize) -> Self {
        KvApp { store, scan_len }
    }

    /// The store.
    pub fn store(&self) -> &Arc<KvStore> {
        &self.store
    }

    fn key_index(&self, request: &RequestView) -> u64 {
        let n_keys = self.store.len().max(1) as u64;
        u64::from(request.req_id) % n_keys
    }

    /// GET: size word = value length, or [`NOT_FOUND`].
    pub fn get(&self, request: &RequestView) -> u32 {
        let mut buf = [0u8; KEY_BUF_LEN];
        let key = format_key(self.key_index(request), &mut buf);
        match self.store.get(key) {
            Some(value) => black_box(value).len() as u32,
            None => NOT_FOUND,
        }
    }

    /// SCAN after `skip` entries, stopping early at `preempt`: the summary of the entries
    /// visited and whether it stopped early.
    pub fn scan_preemptible(
        &self,
        request: &RequestView,
        skip: usize,
        preempt: &AtomicBool,
    ) -> (ScanSummary, bool) {
        if self.scan_len >= self.store.len() {
            self.store
                .scan_preemptible(None, skip, self.scan_len, preempt)
        } else {
            let mut buf = [0u8; KEY_BUF_LEN];
            let key = format_key(self.key_index(request), &mut buf);
            self.store
                .scan_preemptible(Some(key), skip, self.scan_len, preempt)
        }
    }

    /// SCAN: the summary of the entries visited.
    pub fn scan(&self, request: &RequestView) -> ScanSummary {
        if self.scan_len >= self.store.len() {
            self.store.scan(None, self.scan_len)
        } else {
            let mut buf = [0u8; KEY_BUF_LEN];
            let key = format_key(self.key_index(request), &mut buf);
            self.store.scan(Some(key), self.scan_len)
        }
    }
}

impl Application for KvApp {
    fn name(&self) -> &'static str {
        "kv"
    }

    fn handle(&mut self, request: &RequestView, payload: &mut [u8]) -> usize {
        let size_word = if request.req_type == SCAN_TYPE {
            u32::try_from(self.scan(request).entries).unwrap_or(u32::MAX)
        } else {
            self.get(request)
        };
        respond(size_word, payload)
    }

    fn supports_preemption(&self) -> bool {
        true
    }

    /// SCAN stops at the flag (every [`SCAN_CHECK_ENTRIES`] entries) with `progress` = the
    /// entries visited so far and `remaining_ns` estimated from this slice's pace; GET runs
    /// to the end.
    fn handle_preemptible(
        &mut self,
        request: &RequestView,
        payload: &mut [u8],
        preempt: &AtomicBool,
        resume: Option<Resume>,
    ) -> Outcome {
        if request.req_type != SCAN_TYPE {
            return Outcome::Done(self.handle(request, payload));
        }
        let done = resume.map_or(0, |r| r.progress);
        let started = Instant::now();
        let skip = usize::try_from(done).unwrap_or(usize::MAX);
        let (summary, stopped) = self.scan_preemptible(request, skip, preempt);
        let visited = done.saturating_add(summary.entries);
        if !stopped {
            return Outcome::Done(respond(u32::try_from(visited).unwrap_or(u32::MAX), payload));
        }
        let left = (self.scan_len.min(self.store.len()) as u64).saturating_sub(visited);
        let slice_ns = started.elapsed().as_nanos() as f64;
        Outcome::Preempted(Resume {
            // Float → int casts saturate.
            remaining_ns: (slice_ns * left as f64 / summary.entries.max(1) as f64) as u64,
            progress: visited,
        })
    }
}

/// Writes the response (12 B, `size_word` in the size field) at the start of `payload`.
fn respond(size_word: u32, payload: &mut [u8]) -> usize {
    let len = psp::RESPONSE_LEN.min(payload.len());
    let mut message = psp::Message::new_unchecked(&mut payload[..len]);
    if message.check_response_len().is_ok() {
        message.set_req_size(size_word);
    }
    len
}

/// Classifies kv requests by the work they do: SCAN is SCAN, every other type is served as a
/// GET and classified as one, so the scheduler sees its true cost.
#[derive(Copy, Clone, Debug, Default)]
pub struct KvClassifier;

impl Classifier for KvClassifier {
    fn classify(&self, request: &RequestView, _payload: &[u8]) -> u32 {
        if request.req_type == SCAN_TYPE {
            SCAN_TYPE
        } else {
            GET_TYPE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::tests::request;

    #[test]
    fn keys_are_formatted_like_the_original() {
        let mut buf = [0u8; KEY_BUF_LEN];
        assert_eq!(format_key(0, &mut buf), b"key0");
        assert_eq!(format_key(4999, &mut buf), b"key4999");
        assert_eq!(
            format_key(u64::MAX, &mut buf),
            b"key18446744073709551615".as_slice()
        );
    }

    #[test]
    fn store_holds_the_original_database() {
        let store = KvStore::with_keys(DEFAULT_KEYS);
        assert_eq!(store.len(), DEFAULT_KEYS);
        assert_eq!(store.get(b"key0"), Some(VALUE));
        assert_eq!(store.get(b"key4999"), Some(VALUE));
        assert_eq!(store.get(b"key5000"), None);
        let all = store.scan(None, usize::MAX);
        assert_eq!(all.entries, DEFAULT_KEYS as u64);
        // Keys in lexicographic order: "key998" is followed by "key999" and nothing else.
        assert_eq!(store.scan(Some(b"key998"), 10).entries, 2);
    }

    #[test]
    fn get_and_scan_through_the_app() {
        let store = Arc::new(KvStore::with_keys(100));
        let mut app = KvApp::new(store.clone(), usize::MAX);
        let mut payload = [0u8; 16];
        let len = app.handle(&request(1234, GET_TYPE, 0), &mut payload);
        assert_eq!(len, psp::RESPONSE_LEN);
        let message = psp::Message::new_unchecked(&payload[..]);
        assert_eq!(message.req_size(), VALUE.len() as u32);
        app.handle(&request(1, SCAN_TYPE, 0), &mut payload);
        assert_eq!(psp::Message::new_unchecked(&payload[..]).req_size(), 100);
        // A bounded scan from key "key7" visits 5 entries.
        let mut bounded = KvApp::new(store, 5);
        bounded.handle(&request(7, SCAN_TYPE, 0), &mut payload);
        assert_eq!(psp::Message::new_unchecked(&payload[..]).req_size(), 5);
    }

    /// A preempted SCAN hands back its progress and, resumed, visits exactly the entries it
    /// had left: the size word counts every entry once.
    #[test]
    fn preempted_scan_resumes_where_it_stopped() {
        let store = Arc::new(KvStore::with_keys(1000));
        let mut app = KvApp::new(store, usize::MAX);
        assert!(app.supports_preemption());
        let mut payload = [0u8; 16];
        let scan = request(1, SCAN_TYPE, 0);
        let set = AtomicBool::new(true);
        let Outcome::Preempted(first) = app.handle_preemptible(&scan, &mut payload, &set, None)
        else {
            panic!("SCAN ignored the flag");
        };
        assert_eq!(first.progress, SCAN_CHECK_ENTRIES as u64);
        let Outcome::Preempted(second) =
            app.handle_preemptible(&scan, &mut payload, &set, Some(first))
        else {
            panic!("SCAN ignored the flag");
        };
        assert_eq!(second.progress, 2 * SCAN_CHECK_ENTRIES as u64);
        let clear = AtomicBool::new(false);
        assert_eq!(
            app.handle_preemptible(&scan, &mut payload, &clear, Some(second)),
            Outcome::Done(psp::RESPONSE_LEN)
        );
        assert_eq!(psp::Message::new_unchecked(&payload[..]).req_size(), 1000);
        // GET is never preempted.
        let get = request(5, GET_TYPE, 0);
        assert_eq!(
            app.handle_preemptible(&get, &mut payload, &set, None),
            Outcome::Done(psp::RESPONSE_LEN)
        );
    }

    #[test]
    fn empty_store_answers_not_found() {
        let mut app = KvApp::new(Arc::new(KvStore::with_keys(0)), 10);
        let mut payload = [0u8; 16];
        app.handle(&request(3, GET_TYPE, 0), &mut payload);
        assert_eq!(
            psp::Message::new_unchecked(&payload[..]).req_size(),
            NOT_FOUND
        );
        app.handle(&request(3, SCAN_TYPE, 0), &mut payload);
        assert_eq!(psp::Message::new_unchecked(&payload[..]).req_size(), 0);
    }

    #[test]
    fn classifier_maps_unknown_types_to_get() {
        let classifier = KvClassifier;
        assert_eq!(
            classifier.classify(&request(0, SCAN_TYPE, 0), &[]),
            SCAN_TYPE
        );
        assert_eq!(classifier.classify(&request(0, GET_TYPE, 0), &[]), GET_TYPE);
        assert_eq!(classifier.classify(&request(0, 77, 0), &[]), GET_TYPE);
    }
}
