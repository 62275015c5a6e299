//! Layout of the output files: which byte ranges of which file get which values, the encoded
//! length of every `int32_data` piece, and the re-framed length prefixes around them.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use rayon::prelude::*;

use super::Rewriter;
use super::destination::OutputFile;
use crate::error::Error;
use crate::onnx::model::{DType, Segment, Storage};
use crate::onnx::values::{self, ValuesBuf};
use crate::onnx::wire;

/// A run of one fixed-width target's elements stored contiguously in one file.
#[derive(Debug, Clone)]
pub(super) struct Region {
    /// The tensor's first element in the run.
    pub(super) elem_start: u64,
    /// Elements in the run.
    pub(super) elems: u64,
    /// Byte offset in the source file.
    pub(super) offset: u64,
}

/// A target whose values keep their byte width (`raw_data`, `float_data`, `double_data`,
/// external data): patched where it is.
#[derive(Debug)]
pub(super) struct FixedTarget {
    pub(super) tensor: usize,
    pub(super) dtype: DType,
    /// Bytes per element.
    pub(super) width: u64,
    /// Sorted by `elem_start`, covering the tensor's elements.
    pub(super) regions: Vec<Region>,
}

/// A target stored as one packed `int32_data` run (f16/bf16 bit patterns as varints), whose
/// length changes with its values.
#[derive(Debug)]
pub(super) struct VarintTarget {
    pub(super) tensor: usize,
    pub(super) dtype: DType,
    /// The packed field's length prefix in the source.
    pub(super) prefix: Range<u64>,
    /// The packed field's body in the source.
    pub(super) body: Range<u64>,
    /// Encoded byte length of each piece (measured in a first pass).
    pub(super) piece_lens: Vec<u64>,
    /// Output offset of each piece relative to the new body's start.
    pub(super) piece_offsets: Vec<u64>,
    /// New length prefix.
    pub(super) new_prefix: Vec<u8>,
}

/// A source range replaced by content of another length.
#[derive(Debug)]
pub(super) struct Splice {
    /// The source bytes replaced.
    pub(super) input: Range<u64>,
    /// Length of the new content.
    pub(super) new_len: u64,
    /// The new content (a message's new length prefix), or `None` for a varint target's field,
    /// whose content is its new prefix and its pieces.
    pub(super) bytes: Option<Vec<u8>>,
    /// The varint target whose field this is (an index into [`FileLayout::varint`]).
    pub(super) varint: Option<usize>,
}

/// One output file's layout: the byte ranges that get new values, and the splices that change
/// its length.
pub(super) struct FileLayout {
    /// The file written.
    pub(super) output: OutputFile,
    pub(super) fixed: Vec<FixedTarget>,
    pub(super) varint: Vec<VarintTarget>,
    /// Sorted by input start, disjoint.
    pub(super) splices: Vec<Splice>,
    /// `shift_after[k]`: how far the bytes after the first `k` splices move in the output (the
    /// sum of those splices' length changes); `shift_after[0]` is 0.
    pub(super) shift_after: Vec<i64>,
    /// Length of the written file.
    pub(super) out_len: u64,
}

impl FileLayout {
    /// A copy of `output`'s source as it is: no target yet, the same length.
    pub(super) fn new(output: OutputFile) -> Self {
        let out_len = output.src_len;
        FileLayout {
            output,
            fixed: Vec::new(),
            varint: Vec::new(),
            splices: Vec::new(),
            shift_after: vec![0],
            out_len,
        }
    }

    /// Output offset of source offset `x` (which is not strictly inside a splice).
    pub(super) fn out_offset(&self, x: u64) -> u64 {
        let k = self.splices.partition_point(|s| s.input.end <= x);
        // Lengths fit in i64 (files are far below 2^63 bytes).
        (x as i64 + self.shift_after[k]) as u64
    }
}

impl Rewriter<'_> {
    /// Checks every target before anything is created.
    pub(super) fn check_targets(&self, targets: &[usize]) -> Result<(), Error> {
        let mut seen = HashSet::new();
        for &i in targets {
            let t = self.model.tensor_checked(i)?;
            if !seen.insert(i) {
                return Err(Error::DuplicateTarget {
                    file: self.file(),
                    tensor: t.name.to_string(),
                    index: i,
                });
            }
            let dtype = t.dtype();
            if !dtype.is_float() {
                return Err(self.unsupported(
                    i,
                    format!(
                        "data_type {} is never modified (only FLOAT, DOUBLE, FLOAT16, BFLOAT16)",
                        dtype.onnx_name()
                    ),
                ));
            }
            match &t.storage {
                Storage::Raw { .. } | Storage::Empty => {}
                Storage::FloatData { .. } if dtype == DType::F32 => {}
                Storage::DoubleData { .. } if dtype == DType::F64 => {}
                Storage::Int32Data { segments } if matches!(dtype, DType::F16 | DType::BF16) => {
                    if segments.len() != 1 || !segments[0].packed {
                        return Err(self.unsupported(
                            i,
                            format!(
                                "int32_data in {} segment(s), {}; only a single packed run can be \
                                 re-framed",
                                segments.len(),
                                if segments.iter().all(|s| s.packed) {
                                    "packed"
                                } else {
                                    "unpacked"
                                }
                            ),
                        ));
                    }
                }
                Storage::External(ext) => {
                    if ext.checksum.is_some() {
                        return Err(self.unsupported(
                            i,
                            "external data carries a checksum, which new values would \
                             invalidate"
                                .into(),
                        ));
                    }
                }
                other => {
                    return Err(self.unsupported(
                        i,
                        format!("{} values stored in {}", dtype.onnx_name(), other.kind()),
                    ));
                }
            }
        }
        self.check_external_aliasing(&seen)
    }

    /// Refuses a target whose external bytes overlap another tensor's: writing one would
    /// silently change the other.
    fn check_external_aliasing(&self, targets: &HashSet<usize>) -> Result<(), Error> {
        let mut ranges: Vec<(&Path, u64, u64, usize)> = self
            .model
            .tensors()
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.storage {
                Storage::External(ext) if ext.length > 0 => {
                    Some((ext.path.as_path(), ext.offset, ext.offset + ext.length, i))
                }
                _ => None,
            })
            .collect();
        ranges.sort_unstable();
        // Sweep each file's ranges in offset order, remembering the one reaching furthest.
        let mut reach: Option<(&Path, u64, usize)> = None;
        for &(path, start, end, i) in &ranges {
            if let Some((p, r_end, r_i)) = reach
                && p == path
                && start < r_end
                && (targets.contains(&i) || targets.contains(&r_i))
            {
                let (t, other) = if targets.contains(&i) {
                    (i, r_i)
                } else {
                    (r_i, i)
                };
                return Err(self.unsupported(
                    t,
                    format!(
                        "its external bytes overlap those of tensor {:?}",
                        self.model.tensors()[other].name
                    ),
                ));
            }
            match reach {
                Some((p, r_end, _)) if p == path && r_end >= end => {}
                _ => reach = Some((path, end, i)),
            }
        }
        Ok(())
    }

    /// Lays out the `targets` stored in a side file: each is one run at its external offset.
    pub(super) fn lay_out_side_targets(
        &self,
        layout: &mut FileLayout,
        targets: &[usize],
    ) -> Result<(), Error> {
        let tensors = self.model.tensors();
        for &i in targets {
            if let Storage::External(ext) = &tensors[i].storage {
                let (offset, length) = (&ext.offset, &ext.length);
                if offset + length > layout.output.src_len {
                    return Err(Error::External {
                        file: self.file(),
                        tensor: tensors[i].name.to_string(),
                        offset: tensors[i].offset() as u64,
                        what: format!(
                            "{} shrank to {} bytes since the model was opened",
                            layout.output.src_path.display(),
                            layout.output.src_len
                        ),
                    });
                }
                layout
                    .fixed
                    .push(self.fixed_target(i, vec![(0, tensors[i].numel(), *offset)]));
            }
        }
        Ok(())
    }

    /// Lays out the `targets` stored in the model file itself (its layout is `layout`):
    /// `raw_data`, `float_data` and `double_data` are patched where they are; a packed
    /// `int32_data` run is a varint target, re-framed once its pieces are measured.
    pub(super) fn lay_out_inline_targets(&self, layout: &mut FileLayout, targets: &[usize]) {
        for &i in targets {
            let t = &self.model.tensors()[i];
            let bytes_regions = |segments: &[Segment]| {
                values::with_starts(segments)
                    .map(|(s, seg)| (s, seg.elements, seg.bytes.start as u64))
                    .collect::<Vec<_>>()
            };
            match &t.storage {
                Storage::Raw { bytes } => layout
                    .fixed
                    .push(self.fixed_target(i, vec![(0, t.numel(), bytes.start as u64)])),
                Storage::FloatData { segments } | Storage::DoubleData { segments } => {
                    layout
                        .fixed
                        .push(self.fixed_target(i, bytes_regions(segments)));
                }
                Storage::Int32Data { segments } => {
                    let seg = &segments[0];
                    layout.varint.push(VarintTarget {
                        tensor: i,
                        dtype: t.dtype(),
                        prefix: seg.prefix.start as u64..seg.prefix.end as u64,
                        body: seg.bytes.start as u64..seg.bytes.end as u64,
                        piece_lens: Vec::new(),
                        piece_offsets: Vec::new(),
                        new_prefix: Vec::new(),
                    });
                }
                _ => {}
            }
        }
    }

    fn fixed_target(&self, tensor: usize, regions: Vec<(u64, u64, u64)>) -> FixedTarget {
        let dtype = self.model.tensors()[tensor].dtype();
        FixedTarget {
            tensor,
            dtype,
            width: dtype.size().unwrap_or(4) as u64,
            regions: regions
                .into_iter()
                .filter(|r| r.1 > 0)
                .map(|(elem_start, elems, offset)| Region {
                    elem_start,
                    elems,
                    offset,
                })
                .collect(),
        }
    }

    /// First pass over `int32_data` targets: the encoded length of every piece.
    pub(super) fn measure_varints(&self, layout: &mut FileLayout) -> Result<(), Error> {
        let jobs: Vec<(usize, u64)> = layout
            .varint
            .iter()
            .enumerate()
            .flat_map(|(k, v)| (0..self.pieces(v.tensor)).map(move |p| (k, p)))
            .collect();
        let lens: Vec<u64> = jobs
            .par_iter()
            .map_init(ValuesBuf::default, |s, &(k, p)| {
                let v = &layout.varint[k];
                values::varints_len(&self.fill_piece(s, v.tensor, v.dtype, p))
            })
            .collect();
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        for (&(k, _), len) in jobs.iter().zip(lens) {
            layout.varint[k].piece_lens.push(len);
        }
        for v in &mut layout.varint {
            let mut acc = 0u64;
            v.piece_offsets = v
                .piece_lens
                .iter()
                .map(|l| {
                    let o = acc;
                    acc += l;
                    o
                })
                .collect();
            wire::put_varint(acc, &mut v.new_prefix);
        }
        Ok(())
    }

    /// The splices that point every external tensor of the model at `name` (see
    /// [`super::RewriteOptions::data_name`]): each `external_data` entry whose key is `location`
    /// re-encoded with the new value, with the frame of the tensor holding it.
    pub(super) fn relocations(&self, name: &str) -> Result<Vec<(usize, Splice)>, Error> {
        let bytes = self.model.bytes();
        let malformed = |e: wire::WireError| Error::Inconsistent {
            file: self.file(),
            what: format!("re-reading an external_data entry: {e:?}"),
        };
        let mut entry = Vec::new();
        // StringStringEntryProto { key = 1: "location", value = 2: name }.
        let put_string = |field: u8, s: &str, out: &mut Vec<u8>| {
            out.push(field << 3 | 2);
            wire::put_varint(s.len() as u64, out);
            out.extend_from_slice(s.as_bytes());
        };
        let mut body = Vec::new();
        put_string(1, "location", &mut body);
        put_string(2, name, &mut body);
        entry.push(13 << 3 | 2);
        wire::put_varint(body.len() as u64, &mut entry);
        entry.extend_from_slice(&body);
        let mut splices = Vec::new();
        for (i, t) in self.model.tensors().iter().enumerate() {
            if !matches!(t.storage, Storage::External(_)) {
                continue;
            }
            let mut r = wire::Reader::sub(bytes, t.body());
            while let Some(f) = r.next_field().map_err(malformed)? {
                if f.number != 13 {
                    continue;
                }
                let mut er = wire::Reader::sub(bytes, f.len_body().map_err(malformed)?);
                let mut is_location = false;
                while let Some(kf) = er.next_field().map_err(malformed)? {
                    if kf.number == 1 {
                        is_location = &bytes[kf.len_body().map_err(malformed)?] == b"location";
                    }
                }
                if is_location {
                    splices.push((
                        self.model.tensor_frame(i),
                        Splice {
                            input: f.start as u64..f.end as u64,
                            new_len: entry.len() as u64,
                            bytes: Some(entry.clone()),
                            varint: None,
                        },
                    ));
                }
            }
        }
        Ok(splices)
    }

    /// Builds the splices of the main file: each varint target's field, the `relocated`
    /// entries (with the frame holding each), and the length prefix of every enclosing message
    /// whose body length changed.
    pub(super) fn reframe(
        &self,
        layout: &mut FileLayout,
        relocated: Vec<(usize, Splice)>,
    ) -> Result<(), Error> {
        if layout.varint.is_empty() && relocated.is_empty() {
            return Ok(());
        }
        let ancestors = |f: usize| std::iter::successors(Some(f), |&f| self.model.frame(f).parent);
        let mut delta: HashMap<usize, i64> = HashMap::new();
        for (frame, splice) in relocated {
            let d = splice.new_len as i64 - (splice.input.end - splice.input.start) as i64;
            for f in ancestors(frame) {
                *delta.entry(f).or_insert(0) += d;
            }
            layout.splices.push(splice);
        }
        for (k, v) in layout.varint.iter().enumerate() {
            let body_len: u64 = v.piece_lens.iter().sum();
            let new_len = v.new_prefix.len() as u64 + body_len;
            let old_len = v.body.end - v.prefix.start;
            let d = new_len as i64 - old_len as i64;
            layout.splices.push(Splice {
                input: v.prefix.start..v.body.end,
                new_len,
                bytes: None,
                varint: Some(k),
            });
            for f in ancestors(self.model.tensor_frame(v.tensor)) {
                *delta.entry(f).or_insert(0) += d;
            }
        }
        // Deepest first, so a prefix that changes size is added to its ancestors before they
        // are encoded.
        let mut order: Vec<(usize, usize)> =
            delta.keys().map(|&f| (ancestors(f).count(), f)).collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        for (_, f) in order {
            let d = delta[&f];
            if d == 0 {
                continue;
            }
            let frame = self.model.frame(f);
            let new_body =
                u64::try_from(frame.body.len() as i64 + d).map_err(|_| Error::Inconsistent {
                    file: self.file(),
                    what: format!("re-framing the message at byte {}", frame.body.start),
                })?;
            let mut prefix = Vec::new();
            wire::put_varint(new_body, &mut prefix);
            let prefix_delta = prefix.len() as i64 - frame.prefix.len() as i64;
            layout.splices.push(Splice {
                input: frame.prefix.start as u64..frame.prefix.end as u64,
                new_len: prefix.len() as u64,
                bytes: Some(prefix),
                varint: None,
            });
            if prefix_delta != 0 {
                for a in ancestors(f).skip(1) {
                    *delta.entry(a).or_insert(0) += prefix_delta;
                }
            }
        }
        layout.splices.sort_by_key(|s| s.input.start);
        let mut acc = 0i64;
        layout.shift_after = std::iter::once(0)
            .chain(layout.splices.iter().map(|s| {
                acc += s.new_len as i64 - (s.input.end - s.input.start) as i64;
                acc
            }))
            .collect();
        layout.out_len = (layout.output.src_len as i64 + acc) as u64;
        Ok(())
    }
}
