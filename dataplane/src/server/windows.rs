//! DARC's `windows` log, in the original's format (docs/design.md §8.6; DispatchSu.hh), so its
//! analysis scripts read ours unchanged.
//!
//! One row per (applied reservation update, registered type), tab-separated, after the header
//! `ID START END GID RES STEAL COUNT UPDATED QLEN`:
//! - `ID`: the window (update) number, from 0;
//! - `START`, `END`: when the window began and when its plan was applied, in ns since the server
//!   started, printed with six decimals like the original's `std::fixed` double;
//! - `GID`: the type's dense index (the original indexed by `type - 1`);
//! - `RES`, `STEAL`: for the first (shortest) member of each group, the workers newly reserved
//!   to the group (excluding a spillway that was appended because the group overflowed) and the
//!   number it may steal; 0 for the other members, as in the original;
//! - `COUNT`: completions of that type since the previous applied update;
//! - `UPDATED`: 1 (only applied updates are logged, as in the original);
//! - `QLEN`: the type's queue length when the plan was computed.
//!
//! Recording happens on the dispatcher thread when the scheduler reports an update (rare, at
//! most one per 50 000 completions by default); it allocates a row set then, never per request.
//! At most [`MAX_WINDOWS`] windows are kept (the original's bound, which it failed to check);
//! later ones are counted in `windows_dropped`.

use std::io::{self, Write};
use std::path::Path;

use psp_scheduler::{PlanUpdate, TypeIndex};

/// Most windows kept: the original's `MAX_WINDOWS` (DispatchSu.hh).
pub const MAX_WINDOWS: usize = 8192;

/// The log's header line (tab-separated).
pub const WINDOWS_HEADER: &str = "ID\tSTART\tEND\tGID\tRES\tSTEAL\tCOUNT\tUPDATED\tQLEN";

/// One type's row of one window.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowTypeRow {
    /// Workers reserved to the type's group (group leaders only).
    pub reserved: u32,
    /// Workers the group may steal (group leaders only).
    pub stealable: u32,
    /// Completions of this type in the window.
    pub completions: u64,
    /// Queue length of this type at the update.
    pub queue_len: u64,
}

/// One applied update.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowRecord {
    /// Window number.
    pub window_id: u64,
    /// Window start, ns since server start.
    pub start_ns: u64,
    /// Plan applied at, ns since server start.
    pub end_ns: u64,
    /// Rows by type index.
    pub types: Vec<WindowTypeRow>,
}

/// The windows of one run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WindowsLog {
    windows: Vec<WindowRecord>,
    completions_since_last: Vec<u64>,
    windows_dropped: u64,
}

impl WindowsLog {
    /// An empty log for `types` registered types.
    pub fn new(types: usize) -> Self {
        Self {
            windows: Vec::new(),
            completions_since_last: vec![0; types],
            windows_dropped: 0,
        }
    }

    /// Counts one completion of `ty` (UNKNOWN is not a logged type and is ignored).
    #[inline]
    pub fn on_completion(&mut self, ty: TypeIndex) {
        if let Some(count) = ty
            .index()
            .and_then(|i| self.completions_since_last.get_mut(i))
        {
            *count += 1;
        }
    }

    /// Records an applied update.
    pub fn record(&mut self, update: &PlanUpdate) {
        let n_types = self.completions_since_last.len();
        let mut types = vec![WindowTypeRow::default(); n_types];
        for (row, count) in types.iter_mut().zip(self.completions_since_last.iter_mut()) {
            row.completions = std::mem::take(count);
        }
        for (row, &len) in types.iter_mut().zip(&update.queue_lens) {
            row.queue_len = len as u64;
        }
        let mut taken: Vec<u16> = Vec::new();
        for group in &update.plan.groups {
            let mut newly_reserved = 0u32;
            for worker in &group.reserved {
                if !taken.contains(&worker.0) {
                    taken.push(worker.0);
                    newly_reserved += 1;
                }
            }
            let leader = group.members.first().and_then(|t| t.index());
            if let Some(row) = leader.and_then(|i| types.get_mut(i)) {
                row.reserved = newly_reserved;
                row.stealable = u32::try_from(group.stealable.len()).unwrap_or(u32::MAX);
            }
        }
        if self.windows.len() >= MAX_WINDOWS {
            self.windows_dropped += 1;
            return;
        }
        self.windows.push(WindowRecord {
            window_id: update.window_id,
            start_ns: update.start_ns,
            end_ns: update.end_ns,
            types,
        });
    }

    /// The recorded windows.
    pub fn windows(&self) -> &[WindowRecord] {
        &self.windows
    }

    /// Windows not kept because [`MAX_WINDOWS`] were already recorded.
    pub fn windows_dropped(&self) -> u64 {
        self.windows_dropped
    }

    /// Writes the log (header and rows).
    pub fn render(&self, out: &mut impl Write) -> io::Result<()> {
        writeln!(out, "{WINDOWS_HEADER}")?;
        for w in &self.windows {
            for (gid, row) in w.types.iter().enumerate() {
                writeln!(
                    out,
                    "{}\t{:.6}\t{:.6}\t{}\t{}\t{}\t{}\t1\t{}",
                    w.window_id,
                    w.start_ns as f64,
                    w.end_ns as f64,
                    gid,
                    row.reserved,
                    row.stealable,
                    row.completions,
                    row.queue_len
                )?;
            }
        }
        Ok(())
    }

    /// Writes the log to `path`, creating its parent directories.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut out = io::BufWriter::new(std::fs::File::create(path)?);
        self.render(&mut out)?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use psp_scheduler::{ReservationPlan, TypeGroup, WorkerId};

    fn group(members: &[u16], reserved: &[u16], stealable: &[u16]) -> TypeGroup {
        TypeGroup {
            members: members.iter().map(|&t| TypeIndex(t)).collect(),
            leader_mean_ns: 1.0,
            demand_workers: 1.0,
            reserved: reserved.iter().map(|&w| WorkerId(w)).collect(),
            stealable: stealable.iter().map(|&w| WorkerId(w)).collect(),
            uses_spillway: false,
        }
    }

    #[test]
    fn rows_follow_the_original_layout() {
        // Three types; types 0 and 2 grouped (leader 0), type 1 alone and overflowing onto the
        // spillway (worker 3, already reserved to group 0).
        let mut log = WindowsLog::new(3);
        for _ in 0..5 {
            log.on_completion(TypeIndex(0));
        }
        log.on_completion(TypeIndex(1));
        log.on_completion(TypeIndex::UNKNOWN);
        let update = PlanUpdate {
            window_id: 0,
            start_ns: 1_000,
            end_ns: 2_500,
            samples: 6,
            queue_lens: vec![4, 0, 1],
            means_ns: vec![1.0, 2.0, 1.1],
            ratios: vec![0.8, 0.2, 0.0],
            plan: ReservationPlan {
                groups: vec![
                    group(&[0, 2], &[0, 1, 2, 3], &[]),
                    TypeGroup {
                        uses_spillway: true,
                        ..group(&[1], &[3], &[])
                    },
                ],
                spillway: Some(WorkerId(3)),
            },
        };
        log.record(&update);
        let mut text = Vec::new();
        log.render(&mut text).expect("render");
        let text = String::from_utf8(text).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], WINDOWS_HEADER);
        assert_eq!(lines[1], "0\t1000.000000\t2500.000000\t0\t4\t0\t5\t1\t4");
        assert_eq!(lines[2], "0\t1000.000000\t2500.000000\t1\t0\t0\t1\t1\t0");
        assert_eq!(lines[3], "0\t1000.000000\t2500.000000\t2\t0\t0\t0\t1\t1");
        assert_eq!(lines.len(), 4);
        // Counts restart after each window.
        log.record(&PlanUpdate {
            window_id: 1,
            ..update
        });
        assert_eq!(log.windows()[1].types[0].completions, 0);
    }
}
