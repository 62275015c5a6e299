//! Typed access to initializer values, whatever their storage.
//!
//! [`ValuesMut`] is the buffer type shared by reading ([`LoadedModel::read_values`]) and writing
//! (a [`crate::rewrite::Filler`] fills one). Conversions between the file's little-endian bytes
//! (or varints, for f16/bf16 in `int32_data`) and native values live here, so reading and writing
//! agree by construction.

use std::os::unix::fs::FileExt;

use half::{bf16, f16};

use crate::error::Error;
use crate::onnx::dtype::DType;
use crate::onnx::model::LoadedModel;
use crate::onnx::scan::Segment;
use crate::onnx::storage::{ExternalData, Storage};
use crate::onnx::wire;

/// A mutable slice of values of one of the four rewritable element types.
#[derive(Debug)]
pub enum ValuesMut<'a> {
    /// `FLOAT`.
    F32(&'a mut [f32]),
    /// `DOUBLE`.
    F64(&'a mut [f64]),
    /// `FLOAT16`.
    F16(&'a mut [f16]),
    /// `BFLOAT16`.
    BF16(&'a mut [bf16]),
}

impl ValuesMut<'_> {
    /// Write 0 to the values at `range` (clamped to the slice).
    pub fn zero(&mut self, range: std::ops::Range<usize>) {
        let end = range.end.min(self.len());
        let r = range.start.min(end)..end;
        match self {
            ValuesMut::F32(v) => v[r].fill(0.0),
            ValuesMut::F64(v) => v[r].fill(0.0),
            ValuesMut::F16(v) => v[r].fill(f16::ZERO),
            ValuesMut::BF16(v) => v[r].fill(bf16::ZERO),
        }
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            ValuesMut::F32(v) => v.len(),
            ValuesMut::F64(v) => v.len(),
            ValuesMut::F16(v) => v.len(),
            ValuesMut::BF16(v) => v.len(),
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            ValuesMut::F32(_) => DType::F32,
            ValuesMut::F64(_) => DType::F64,
            ValuesMut::F16(_) => DType::F16,
            ValuesMut::BF16(_) => DType::BF16,
        }
    }

    /// A shorter view of the first `n` values (`n` is clamped to the length).
    pub fn reborrow_prefix(&mut self, n: usize) -> ValuesMut<'_> {
        let n = n.min(self.len());
        match self {
            ValuesMut::F32(v) => ValuesMut::F32(&mut v[..n]),
            ValuesMut::F64(v) => ValuesMut::F64(&mut v[..n]),
            ValuesMut::F16(v) => ValuesMut::F16(&mut v[..n]),
            ValuesMut::BF16(v) => ValuesMut::BF16(&mut v[..n]),
        }
    }

    /// The values `[from..]`, for filling a buffer in consecutive parts.
    fn tail(&mut self, from: usize) -> ValuesMut<'_> {
        let from = from.min(self.len());
        match self {
            ValuesMut::F32(v) => ValuesMut::F32(&mut v[from..]),
            ValuesMut::F64(v) => ValuesMut::F64(&mut v[from..]),
            ValuesMut::F16(v) => ValuesMut::F16(&mut v[from..]),
            ValuesMut::BF16(v) => ValuesMut::BF16(&mut v[from..]),
        }
    }

    /// Sets the values from little-endian bytes; `bytes.len()` must be `len() × size`.
    fn decode_le(&mut self, bytes: &[u8]) {
        match self {
            ValuesMut::F32(v) => {
                for (x, c) in v.iter_mut().zip(bytes.chunks_exact(4)) {
                    *x = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                }
            }
            ValuesMut::F64(v) => {
                for (x, c) in v.iter_mut().zip(bytes.chunks_exact(8)) {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    *x = f64::from_le_bytes(b);
                }
            }
            ValuesMut::F16(v) => {
                for (x, c) in v.iter_mut().zip(bytes.chunks_exact(2)) {
                    *x = f16::from_bits(u16::from_le_bytes([c[0], c[1]]));
                }
            }
            ValuesMut::BF16(v) => {
                for (x, c) in v.iter_mut().zip(bytes.chunks_exact(2)) {
                    *x = bf16::from_bits(u16::from_le_bytes([c[0], c[1]]));
                }
            }
        }
    }

    /// Converts every value to f64 (exact for all four types).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match self {
            ValuesMut::F32(v) => v.iter().map(|&x| f64::from(x)).collect(),
            ValuesMut::F64(v) => v.to_vec(),
            ValuesMut::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            ValuesMut::BF16(v) => v.iter().map(|x| x.to_f64()).collect(),
        }
    }
}

/// Owned per-thread buffers for one piece of values, reused across pieces.
#[derive(Debug, Default)]
pub(crate) struct ValuesBuf {
    f32s: Vec<f32>,
    f64s: Vec<f64>,
    f16s: Vec<f16>,
    bf16s: Vec<bf16>,
}

impl ValuesBuf {
    /// A view of `n` values of `dtype` (which must be one of the four float types) for a filler
    /// to overwrite. Its contents are whatever the previous piece left (zeros the first time):
    /// a [`crate::rewrite::Filler`] writes every value, and clearing 1 MiB per piece first
    /// would cost a pass over memory for nothing.
    pub(crate) fn view(&mut self, dtype: DType, n: usize) -> ValuesMut<'_> {
        fn sized<T: Copy>(v: &mut Vec<T>, n: usize, zero: T) -> &mut [T] {
            if v.len() < n {
                v.resize(n, zero);
            }
            &mut v[..n]
        }
        match dtype {
            DType::F64 => ValuesMut::F64(sized(&mut self.f64s, n, 0.0)),
            DType::F16 => ValuesMut::F16(sized(&mut self.f16s, n, f16::ZERO)),
            DType::BF16 => ValuesMut::BF16(sized(&mut self.bf16s, n, bf16::ZERO)),
            // Callers only pass float types; F32 is the harmless fallback.
            DType::F32 | DType::Other(_) => ValuesMut::F32(sized(&mut self.f32s, n, 0.0)),
        }
    }
}

/// The little-endian bytes of `values`: on a little-endian machine the values' own memory
/// (no copy), elsewhere encoded into `scratch`.
pub(crate) fn le_bytes<'a>(values: &'a ValuesMut<'_>, scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if cfg!(target_endian = "little") {
        match values {
            ValuesMut::F32(v) => bytemuck::cast_slice(v),
            ValuesMut::F64(v) => bytemuck::cast_slice(v),
            ValuesMut::F16(v) => bytemuck::cast_slice(v),
            ValuesMut::BF16(v) => bytemuck::cast_slice(v),
        }
    } else {
        scratch.clear();
        encode_le(values, scratch);
        scratch
    }
}

/// Appends the little-endian bytes of `values` to `out`.
pub(crate) fn encode_le(values: &ValuesMut<'_>, out: &mut Vec<u8>) {
    match values {
        ValuesMut::F32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        ValuesMut::F64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        ValuesMut::F16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        ValuesMut::BF16(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
    }
}

/// Calls `f` with the 16-bit pattern of each f16/bf16 value (what `int32_data` stores); does
/// nothing for f32/f64.
fn for_each_bits16(values: &ValuesMut<'_>, mut f: impl FnMut(u16)) {
    match values {
        ValuesMut::F16(v) => v.iter().for_each(|x| f(x.to_bits())),
        ValuesMut::BF16(v) => v.iter().for_each(|x| f(x.to_bits())),
        ValuesMut::F32(_) | ValuesMut::F64(_) => {}
    }
}

/// Appends the `int32_data` varints of f16/bf16 `values` to `out`.
pub(crate) fn encode_varints(values: &ValuesMut<'_>, out: &mut Vec<u8>) {
    for_each_bits16(values, |b| wire::put_varint(u64::from(b), out));
}

/// Byte length of the `int32_data` varints of f16/bf16 `values`.
pub(crate) fn varints_len(values: &ValuesMut<'_>) -> u64 {
    let mut len = 0u64;
    for_each_bits16(values, |b| len += wire::varint_len(u64::from(b)) as u64);
    len
}

/// Where elements `start .. start + n` of a tensor stored in the model file as fixed-width
/// values (`raw_data`, `float_data`, `double_data`) lie: `(elements before this span, byte
/// range)` per contiguous span, in element order. Empty for other storages.
fn mapped_spans(
    storage: &Storage,
    width: u64,
    start: u64,
    n: u64,
) -> Vec<(u64, std::ops::Range<usize>)> {
    let one = |seg_start: u64, elements: u64, bytes: &std::ops::Range<usize>| {
        let lo = start.max(seg_start);
        let hi = (start + n).min(seg_start + elements);
        (lo < hi).then(|| {
            let from = bytes.start + ((lo - seg_start) * width) as usize;
            (lo - start, from..from + ((hi - lo) * width) as usize)
        })
    };
    match storage {
        Storage::Raw { bytes } => one(0, start + n, bytes).into_iter().collect(),
        Storage::FloatData { segments } | Storage::DoubleData { segments } => with_starts(segments)
            .filter_map(|(seg_start, seg)| one(seg_start, seg.elements, &seg.bytes))
            .collect(),
        _ => Vec::new(),
    }
}

/// Reference to a tensor by index or by name (the first match in enumeration order, so the main
/// graph's initializers win over nested graphs' ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorRef<'a> {
    /// An index into [`LoadedModel::tensors`].
    Index(usize),
    /// An initializer name.
    Name(&'a str),
}

impl From<usize> for TensorRef<'_> {
    fn from(i: usize) -> Self {
        TensorRef::Index(i)
    }
}

impl<'a> From<&'a str> for TensorRef<'a> {
    fn from(s: &'a str) -> Self {
        TensorRef::Name(s)
    }
}

/// Bytes read at once from a side file: bounds memory whatever the tensor size.
const READ_CHUNK: usize = 1 << 20;

impl LoadedModel {
    /// [`Self::read_values`], then drops the model file's pages that held those values from
    /// the mapping, for a reader that visits each value once (`inspect`'s statistics): its
    /// resident set then stays at a few pieces instead of growing to the model's size.
    /// External data is read with `pread`, never mapped, so there is nothing to drop.
    pub(crate) fn read_values_once(
        &self,
        index: usize,
        start: u64,
        out: ValuesMut<'_>,
    ) -> Result<(), Error> {
        let n = out.len() as u64;
        self.read_values(index, start, out)?;
        let t = &self.tensors()[index];
        let width = t.dtype().size().unwrap_or(4) as u64;
        for (_, r) in mapped_spans(&t.storage, width, start, n) {
            self.unmap_pages(r);
        }
        Ok(())
    }

    /// Reads `out.len()` values of tensor `index` starting at element `start` into `out`.
    ///
    /// Works for every storage of the four float types: `raw_data`, `float_data`, `double_data`,
    /// `int32_data` (f16/bf16 bit patterns) and external data (read in bounded chunks). `out`'s
    /// type must be the tensor's type (no conversion). Reading `int32_data` from a `start` past
    /// 0 decodes the varints before it (cost linear in `start`).
    pub fn read_values(
        &self,
        index: usize,
        start: u64,
        mut out: ValuesMut<'_>,
    ) -> Result<(), Error> {
        let t = self.tensor_checked(index)?;
        if t.dtype() != out.dtype() {
            return Err(Error::BufferTypeMismatch {
                file: self.path().to_path_buf(),
                tensor: t.name.to_string(),
                stored: t.dtype(),
                buffer: out.dtype(),
            });
        }
        let n = out.len() as u64;
        if start.checked_add(n).is_none_or(|end| end > t.numel()) {
            return Err(Error::ElementsOutOfRange {
                file: self.path().to_path_buf(),
                tensor: t.name.to_string(),
                start,
                end: start.saturating_add(n),
                numel: t.numel(),
            });
        }
        if n == 0 {
            return Ok(());
        }
        // Checked above: the dtype is one of the four float types.
        let width = t.dtype().size().unwrap_or(4) as u64;
        let bytes = self.bytes();
        match &t.storage {
            Storage::Raw { .. } | Storage::FloatData { .. } | Storage::DoubleData { .. } => {
                for (done, r) in mapped_spans(&t.storage, width, start, n) {
                    out.tail(done as usize).decode_le(&bytes[r]);
                }
            }
            Storage::Int32Data { segments } => {
                let mut index = 0u64; // element index of the next varint
                let mut done = 0usize;
                'segs: for seg in segments {
                    if index + seg.elements <= start {
                        index += seg.elements;
                        continue;
                    }
                    let mut pos = seg.bytes.start;
                    while pos < seg.bytes.end {
                        let (v, len) = wire::decode_varint(&bytes[pos..seg.bytes.end], pos)
                            .map_err(|e| Error::Malformed {
                                file: self.path().to_path_buf(),
                                offset: e.offset as u64,
                                context: format!("tensor {:?}", t.name),
                                what: "bad varint in int32_data".into(),
                            })?;
                        pos += len;
                        if index >= start {
                            // int32_data holds the 16-bit pattern zero-extended.
                            let b = v as u16;
                            match &mut out {
                                ValuesMut::F16(o) => o[done] = f16::from_bits(b),
                                ValuesMut::BF16(o) => o[done] = bf16::from_bits(b),
                                _ => {}
                            }
                            done += 1;
                            if done == out.len() {
                                break 'segs;
                            }
                        }
                        index += 1;
                    }
                }
            }
            Storage::External(ext) => {
                let ExternalData {
                    path,
                    offset,
                    location,
                    ..
                } = &**ext;
                let file = crate::onnx::model::open_regular(path)
                    .map_err(|e| Error::io(path, "open external data", e))?;
                let mut buf = vec![0u8; READ_CHUNK - READ_CHUNK % 8];
                let per_chunk = (buf.len() as u64) / width;
                let mut done = 0u64;
                while done < n {
                    let k = per_chunk.min(n - done);
                    let b = &mut buf[..(k * width) as usize];
                    file.read_exact_at(b, offset + (start + done) * width)
                        .map_err(|e| Error::External {
                            file: self.path().to_path_buf(),
                            tensor: t.name.to_string(),
                            offset: t.offset() as u64,
                            what: format!("reading {location:?}: {e}"),
                        })?;
                    out.tail(done as usize).decode_le(b);
                    done += k;
                }
            }
            other => {
                return Err(Error::Unsupported {
                    file: self.path().to_path_buf(),
                    tensor: t.name.to_string(),
                    what: format!(
                        "{} values stored in {}",
                        t.dtype().onnx_name(),
                        other.kind()
                    ),
                });
            }
        }
        // A read of a truncated mapping returned zeros (see `onnx::fault`): not the values.
        if self.faulted() {
            self.check_unchanged()?;
        }
        Ok(())
    }

    /// The values of a small tensor as f64, for analysis (Clip bounds, LeakyRelu slopes stored as
    /// initializers, shapes, axes, …).
    ///
    /// Supports the four float types (any storage) and INT32/INT64 (`raw_data`, `int32_data`,
    /// `int64_data`, external). Returns `None` when the tensor does not exist, has another type,
    /// has more than `max_len` elements, or cannot be read. A name refers to the first initializer
    /// of that name in enumeration order (the main graph first).
    pub fn small_values_f64<'n>(
        &self,
        tensor: impl Into<TensorRef<'n>>,
        max_len: usize,
    ) -> Option<Vec<f64>> {
        let index = match tensor.into() {
            TensorRef::Index(i) => i,
            TensorRef::Name(n) => self.tensors().iter().position(|t| t.name == n)?,
        };
        let t = self.tensors().get(index)?;
        let n = usize::try_from(t.numel()).ok().filter(|&n| n <= max_len)?;
        let dtype = t.dtype();
        if dtype.is_float() {
            let mut buf = ValuesBuf::default();
            let mut view = buf.view(dtype, n);
            self.read_values(index, 0, view.reborrow_prefix(n)).ok()?;
            return Some(view.to_f64_vec());
        }
        match (dtype, &t.storage) {
            (
                DType::INT32 | DType::INT64,
                Storage::Int32Data { segments } | Storage::Int64Data { segments },
            ) => {
                let mut out = Vec::with_capacity(n);
                for seg in segments {
                    let mut pos = seg.bytes.start;
                    while pos < seg.bytes.end {
                        let (v, len) =
                            wire::decode_varint(&self.bytes()[pos..seg.bytes.end], pos).ok()?;
                        pos += len;
                        // int32/int64 varints are two's complement (sign-extended to 64 bits).
                        out.push(v as i64 as f64);
                    }
                }
                (out.len() == n).then_some(out)
            }
            (DType::INT32 | DType::INT64, Storage::Raw { .. } | Storage::External(_)) => {
                let width = dtype.size()?;
                let raw = self.small_raw_bytes(index, n * width)?;
                Some(
                    raw.chunks_exact(width)
                        .map(|b| {
                            if width == 4 {
                                f64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                            } else {
                                let mut a = [0u8; 8];
                                a.copy_from_slice(b);
                                i64::from_le_bytes(a) as f64
                            }
                        })
                        .collect(),
                )
            }
            (_, Storage::Empty) => Some(Vec::new()),
            _ => None,
        }
        // Zeros read from a truncated mapping are not the values; the caller's run fails at
        // its next check of the model.
        .filter(|_| !self.faulted())
    }

    /// The first `len` payload bytes of a raw or external tensor.
    fn small_raw_bytes(&self, index: usize, len: usize) -> Option<Vec<u8>> {
        match &self.tensors().get(index)?.storage {
            Storage::Raw { bytes } => self
                .bytes()
                .get(bytes.start..bytes.start.checked_add(len)?)
                .map(<[u8]>::to_vec),
            Storage::External(ext) => {
                let file = crate::onnx::model::open_regular(&ext.path).ok()?;
                let mut buf = vec![0u8; len];
                file.read_exact_at(&mut buf, ext.offset).ok()?;
                Some(buf)
            }
            _ => None,
        }
    }
}

/// Segments paired with the index of their first element.
pub(crate) fn with_starts(segments: &[Segment]) -> impl Iterator<Item = (u64, &Segment)> {
    segments.iter().scan(0u64, |acc, s| {
        let start = *acc;
        *acc += s.elements;
        Some((start, s))
    })
}
