//! Parallel execution: the work items of a rewrite (copies, pieces, splices) and how one is done.

use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rayon::prelude::*;

use super::Rewriter;
use super::fileio;
use super::layout::FileLayout;
use crate::error::Error;
use crate::onnx::model::DType;
use crate::onnx::values::{self, ValuesBuf, ValuesMut};

/// A unit of parallel work.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Copy source bytes `[start, start + len)` to their mapped output offset.
    Copy { file: usize, start: u64, len: u64 },
    /// Fill and write piece `piece` of fixed-width target `target`.
    Fixed {
        file: usize,
        target: usize,
        piece: u64,
    },
    /// Fill and write piece `piece` of varint target `target`.
    Varint {
        file: usize,
        target: usize,
        piece: u64,
    },
    /// Write a splice's literal bytes (a new length prefix; for a varint target, its prefix).
    Splice { file: usize, splice: usize },
}

/// How long the progress callback may go without a call while a rewrite runs: after this
/// long without a finished work item it is called with 0 bytes.
pub const PULSE: Duration = Duration::from_millis(250);

/// Bytes copied per work item: large enough to amortize a syscall, small enough to bound memory.
const COPY_CHUNK: u64 = 4 << 20;

/// Per-thread buffers, reused from one work item to the next.
#[derive(Default)]
struct Scratch {
    values: ValuesBuf,
    bytes: Vec<u8>,
    copy: Vec<u8>,
}

impl Rewriter<'_> {
    /// Fills piece `piece` of `tensor` (the last piece may be short) into `s`, returning the
    /// filled values.
    pub(super) fn fill_piece<'s>(
        &self,
        s: &'s mut ValuesBuf,
        tensor: usize,
        dtype: DType,
        piece: u64,
    ) -> ValuesMut<'s> {
        let start = piece * self.piece_elems;
        let n = (self.model.tensors()[tensor].numel() - start).min(self.piece_elems) as usize;
        let mut v = s.view(dtype, n);
        self.filler.fill(tensor, start, v.reborrow_prefix(n));
        v
    }

    /// Does every work item of `layouts` in parallel, stopping at the first error or at a
    /// cancellation, and reporting progress against `total` bytes.
    ///
    /// With a progress callback, a pulse thread calls it with 0 bytes every [`PULSE`] in which
    /// no work item finished (see [`super::ProgressFn`]): a whole-tensor fill (an orthogonal
    /// matrix's QR, which is one computation, not pieces) can hold every worker for seconds.
    pub(super) fn execute(&self, layouts: &[FileLayout], total: u64) -> Result<(), Error> {
        let work = self.work_items(layouts);
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        let start = Instant::now();
        // Milliseconds from `start` to the last report, and whether the work is over.
        let last = AtomicU64::new(0);
        let over = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let pulse = self.opts.progress.as_ref().map(|p| {
                let (last, over) = (&last, &over);
                scope.spawn(move || {
                    while !over.load(Ordering::Acquire) {
                        std::thread::park_timeout(PULSE);
                        let now = start.elapsed().as_millis() as u64;
                        if !over.load(Ordering::Acquire)
                            && now.saturating_sub(last.load(Ordering::Relaxed))
                                >= PULSE.as_millis() as u64
                        {
                            last.store(now, Ordering::Relaxed);
                            p(0, total);
                        }
                    }
                })
            });
            let result = work.par_iter().try_for_each_init(Scratch::default, |s, w| {
                if self.cancelled() {
                    return Err(Error::Cancelled { file: self.dest() });
                }
                let done = self.do_work(layouts, *w, s)?;
                if let Some(p) = &self.opts.progress {
                    last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
                    p(done, total);
                }
                Ok(())
            });
            over.store(true, Ordering::Release);
            if let Some(t) = pulse {
                t.thread().unpark();
            }
            result
        })
    }

    /// The work items of `layouts`: copies of the unchanged bytes between targets and splices
    /// (in chunks of [`COPY_CHUNK`]), every piece of every target, and every splice.
    fn work_items(&self, layouts: &[FileLayout]) -> Vec<Work> {
        let mut work = Vec::new();
        for (fi, layout) in layouts.iter().enumerate() {
            // Everything not rewritten is copied: the gaps between holes.
            let mut holes: Vec<Range<u64>> = layout
                .splices
                .iter()
                .map(|s| s.input.clone())
                .chain(layout.fixed.iter().flat_map(|t| {
                    t.regions
                        .iter()
                        .map(move |r| r.offset..r.offset + r.elems * t.width)
                }))
                .collect();
            holes.sort_by_key(|r| r.start);
            let mut pos = 0u64;
            let mut push_gap = |from: u64, to: u64| {
                let mut s = from;
                while s < to {
                    let len = (to - s).min(COPY_CHUNK);
                    work.push(Work::Copy {
                        file: fi,
                        start: s,
                        len,
                    });
                    s += len;
                }
            };
            for h in &holes {
                if h.start > pos {
                    push_gap(pos, h.start);
                }
                pos = pos.max(h.end);
            }
            push_gap(pos, layout.output.src_len);
            for (ti, t) in layout.fixed.iter().enumerate() {
                for piece in 0..self.pieces(t.tensor) {
                    work.push(Work::Fixed {
                        file: fi,
                        target: ti,
                        piece,
                    });
                }
            }
            for (ti, t) in layout.varint.iter().enumerate() {
                for piece in 0..self.pieces(t.tensor) {
                    work.push(Work::Varint {
                        file: fi,
                        target: ti,
                        piece,
                    });
                }
            }
            for si in 0..layout.splices.len() {
                work.push(Work::Splice {
                    file: fi,
                    splice: si,
                });
            }
        }
        work
    }

    /// Performs one work item; returns the bytes written.
    fn do_work(&self, layouts: &[FileLayout], w: Work, s: &mut Scratch) -> Result<u64, Error> {
        let write = |layout: &FileLayout, bytes: &[u8], at: u64| {
            layout
                .output
                .temp_file()
                .write_all_at(bytes, at)
                .map_err(|e| Error::io(&layout.output.dest, "write the output", e))
        };
        match w {
            Work::Copy { file, start, len } => {
                let layout = &layouts[file];
                let at = layout.out_offset(start);
                // The output is a fresh file sized with set_len: holes of a sparse source stay
                // holes.
                fileio::copy_range_sparse(
                    &layout.output.src,
                    start,
                    layout.output.temp_file(),
                    at,
                    len,
                    &mut s.copy,
                )
                .map_err(|e| match e {
                    fileio::CopyError::Read(e) => Error::io(&layout.output.src_path, "read", e),
                    fileio::CopyError::Write(e) => {
                        Error::io(&layout.output.dest, "write the output", e)
                    }
                })?;
                fileio::start_writeback(layout.output.temp_file(), at, len);
                Ok(len)
            }
            Work::Fixed {
                file,
                target,
                piece,
            } => {
                let layout = &layouts[file];
                let t = &layout.fixed[target];
                let start = piece * self.piece_elems;
                let v = self.fill_piece(&mut s.values, t.tensor, t.dtype, piece);
                let n = v.len() as u64;
                let bytes = values::le_bytes(&v, &mut s.bytes);
                let end = start + n;
                let first = t
                    .regions
                    .partition_point(|r| r.elem_start + r.elems <= start);
                for r in t.regions[first..].iter().take_while(|r| r.elem_start < end) {
                    let lo = start.max(r.elem_start);
                    let hi = end.min(r.elem_start + r.elems);
                    let src = &bytes
                        [((lo - start) * t.width) as usize..((hi - start) * t.width) as usize];
                    let at = layout.out_offset(r.offset + (lo - r.elem_start) * t.width);
                    write(layout, src, at)?;
                    fileio::start_writeback(layout.output.temp_file(), at, src.len() as u64);
                }
                Ok(n * t.width)
            }
            Work::Varint {
                file,
                target,
                piece,
            } => {
                let layout = &layouts[file];
                let t = &layout.varint[target];
                let v = self.fill_piece(&mut s.values, t.tensor, t.dtype, piece);
                s.bytes.clear();
                values::encode_varints(&v, &mut s.bytes);
                if s.bytes.len() as u64 != t.piece_lens[piece as usize] {
                    let start = piece * self.piece_elems;
                    return Err(Error::NondeterministicFiller {
                        file: self.file(),
                        tensor: self.model.tensors()[t.tensor].name.to_string(),
                        start,
                        end: start + v.len() as u64,
                    });
                }
                let body_out = layout.out_offset(t.prefix.start) + t.new_prefix.len() as u64;
                write(layout, &s.bytes, body_out + t.piece_offsets[piece as usize])?;
                Ok(s.bytes.len() as u64)
            }
            Work::Splice { file, splice } => {
                let layout = &layouts[file];
                let sp = &layout.splices[splice];
                let bytes = match (&sp.bytes, sp.varint) {
                    (Some(b), _) => b.as_slice(),
                    (None, Some(k)) => layout.varint[k].new_prefix.as_slice(),
                    (None, None) => &[],
                };
                write(layout, bytes, layout.out_offset(sp.input.start))?;
                Ok(bytes.len() as u64)
            }
        }
    }
}
