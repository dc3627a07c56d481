//! A criterion [`Measurement`] of the benchmarking thread's **CPU time**
//! (`CLOCK_THREAD_CPUTIME_ID`, through the `cpu-time` crate) instead of wall time.
//!
//! On a small shared machine (2 cores, several builds running) wall-clock figures of a
//! single-threaded bench mostly measure how long the thread waited for a core; its CPU time
//! does not count those waits, so the figures stay comparable between runs. Cache pollution by
//! other processes still shows. Only meaningful for benches whose work runs on the measuring
//! thread.

use std::time::Duration;

use cpu_time::ThreadTime;
use criterion::measurement::{Measurement, ValueFormatter};
use criterion::Throughput;

/// CPU time of the calling thread.
pub struct ThreadCpuTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = ThreadTime;
    type Value = Duration;

    fn start(&self) -> ThreadTime {
        ThreadTime::now()
    }

    fn end(&self, started: ThreadTime) -> Duration {
        started.elapsed()
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuNanosFormatter
    }
}

/// Prints CPU nanoseconds as `ns (cpu)` and element throughput in Melem/s.
struct CpuNanosFormatter;

/// Nanoseconds per second.
const NS_PER_S: f64 = 1e9;

impl ValueFormatter for CpuNanosFormatter {
    fn scale_values(&self, _typical_ns: f64, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }

    fn scale_throughputs(
        &self,
        _typical_ns: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iteration, unit) = match *throughput {
            Throughput::Elements(n) | Throughput::ElementsAndBytes { elements: n, .. } => {
                (n as f64, "Melem/s (cpu)")
            }
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64, "MB/s (cpu)"),
            Throughput::Bits(n) => (n as f64, "Mb/s (cpu)"),
        };
        for value in values {
            *value = per_iteration * NS_PER_S / *value / 1e6;
        }
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
