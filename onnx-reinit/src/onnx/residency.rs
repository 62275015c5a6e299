//! Keeping the model's mapping from filling the resident set: dropping pages a reader has
//! moved past.

use std::ops::Range;

use memmap2::Mmap;

/// Drops pages of the model's mapping that a forward pass (the scan, the skeleton decode) has
/// moved past, so that the resident set stays at a few MiB however big the model is.
///
/// Reading a header maps the page cache around it into the process: a 64 KiB fault-around
/// window, or a whole 2 MiB folio when the file entered the page cache through one large read
/// (as `onnx.load` reads it). Without this, opening a 1 GB model of 800 tensors that was just
/// read that way showed a peak RSS of 960 MB, all of it clean file pages mapped by header reads.
/// `MADV_DONTNEED` on a read-only file mapping only removes the mappings: the pages stay in the
/// page cache and a later read faults them in again with the same contents, so dropping too
/// much costs a fault, never a wrong byte.
pub(crate) struct Unmapper<'a> {
    map: &'a Mmap,
    /// Bytes `[0, released)` have been dropped.
    released: std::cell::Cell<usize>,
}

impl<'a> Unmapper<'a> {
    /// Drop in steps of this many bytes: the largest page-cache folio a read can map (2 MiB),
    /// so each call is one `madvise` over whole folios.
    const STEP: usize = 2 << 20;

    pub(crate) fn new(map: &'a Mmap) -> Self {
        Unmapper {
            map,
            released: std::cell::Cell::new(0),
        }
    }

    /// The reader has moved past `offset`: drop whole steps before it (everything at the end).
    pub(crate) fn upto(&self, offset: usize) {
        let end = if offset >= self.map.len() {
            self.map.len()
        } else {
            offset - offset % Self::STEP
        };
        let start = self.released.get();
        if end > start {
            unmap(self.map, start..end);
            self.released.set(end);
        }
    }
}

/// `MADV_DONTNEED` on `range` (page-aligned, inside `map`): see [`Unmapper`]. Advice only; a
/// failure leaves the pages mapped, which costs memory, not correctness.
pub(crate) fn unmap(map: &Mmap, range: Range<usize>) {
    if range.is_empty() {
        return;
    }
    #[cfg(target_os = "linux")]
    // SAFETY: the mapping is read-only (`Mmap`), so MADV_DONTNEED cannot discard anything this
    // process wrote; the range lies inside the mapping. Later reads see the file's bytes again
    // (the file must not change while mapped, as documented on `LoadedModel`).
    let _ = unsafe {
        map.unchecked_advise_range(
            memmap2::UncheckedAdvice::DontNeed,
            range.start,
            range.end - range.start,
        )
    };
    #[cfg(not(target_os = "linux"))]
    let _ = (map, range);
}

/// The model's bytes as a [`prost::bytes::Buf`] that drops the pages it has advanced past (see
/// [`Unmapper`]).
pub(crate) struct UnmappingBuf<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) unmapper: &'a Unmapper<'a>,
}

impl prost::bytes::Buf for UnmappingBuf<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn chunk(&self) -> &[u8] {
        &self.bytes[self.pos..]
    }

    fn advance(&mut self, cnt: usize) {
        assert!(
            cnt <= self.remaining(),
            "advance past the end of the buffer"
        );
        self.pos += cnt;
        // prost has no view of a chunk while it advances (`chunk` borrows `self`), and it
        // never moves backwards.
        self.unmapper.upto(self.pos);
    }
}
