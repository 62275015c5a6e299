//! Where an initializer's values lie ([`Storage`]), and the checks that classify a scanned
//! tensor's payload.

use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::onnx::dtype::DType;
use crate::onnx::external;
use crate::onnx::scan::{ScannedTensor, Segment};

/// Where an initializer's values are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// `raw_data`: little-endian values at `bytes` of the model file.
    Raw {
        /// Byte range in [`LoadedModel::bytes`](crate::onnx::model::LoadedModel::bytes).
        bytes: Range<usize>,
    },
    /// `float_data` (fixed32, little-endian), in one or more segments.
    FloatData {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Box<[Segment]>,
    },
    /// `double_data` (fixed64, little-endian).
    DoubleData {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Box<[Segment]>,
    },
    /// `int32_data` (varints; for f16/bf16 the 16-bit patterns, zero-extended).
    Int32Data {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Box<[Segment]>,
    },
    /// `int64_data` (varints). Never rewritten.
    Int64Data {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Box<[Segment]>,
    },
    /// `uint64_data` (varints). Never rewritten.
    Uint64Data {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Box<[Segment]>,
    },
    /// `string_data`. Never rewritten.
    StringData {
        /// Number of strings.
        count: u64,
    },
    /// `data_location = EXTERNAL`: little-endian values in a side file. Boxed: inline, its
    /// 88 bytes would size every tensor's [`Storage`], external or not (the segments are boxed
    /// slices for the same reason: a [`Storage`] is 24 bytes).
    External(Box<ExternalData>),
    /// No payload and no elements.
    Empty,
}

/// Where the values of a [`Storage::External`] tensor lie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalData {
    /// The `location` string as written in the model (relative to the model's folder).
    pub location: String,
    /// The side file, resolved and canonicalized (checked to lie inside the model's folder).
    pub path: PathBuf,
    /// Byte offset in the side file.
    pub offset: u64,
    /// Byte length (checked to equal numel × element size).
    pub length: u64,
    /// The `checksum` entry, if any (a SHA-1 of the data that a rewrite would invalidate).
    pub checksum: Option<String>,
}

impl Storage {
    /// The storage's name as the fixtures' ground truth spells it: `raw_data`, `float_data`,
    /// `double_data`, `int32_data`, `int64_data`, `uint64_data`, `string_data`, `external`,
    /// `empty`.
    pub fn kind(&self) -> &'static str {
        match self {
            Storage::Raw { .. } => "raw_data",
            Storage::FloatData { .. } => "float_data",
            Storage::DoubleData { .. } => "double_data",
            Storage::Int32Data { .. } => "int32_data",
            Storage::Int64Data { .. } => "int64_data",
            Storage::Uint64Data { .. } => "uint64_data",
            Storage::StringData { .. } => "string_data",
            Storage::External(_) => "external",
            Storage::Empty => "empty",
        }
    }
}

/// Validates an inline tensor of `numel` elements and classifies its payload.
pub(crate) fn inline_storage(t: &ScannedTensor, numel: u64) -> Result<Storage, String> {
    if t.has_segment {
        return Err("chunked tensors (TensorProto.segment) are not supported".into());
    }
    if let Some(loc) = t.data_location
        && loc != 0
    {
        return Err(format!("unknown data_location {loc}"));
    }
    let mut present: Vec<&str> = Vec::new();
    let fields: [(&str, bool); 7] = [
        ("raw_data", !t.raw_data.is_empty()),
        ("float_data", !t.float_data.is_empty()),
        ("int32_data", !t.int32_data.is_empty()),
        ("string_data", t.string_data > 0),
        ("int64_data", !t.int64_data.is_empty()),
        ("double_data", !t.double_data.is_empty()),
        ("uint64_data", !t.uint64_data.is_empty()),
    ];
    for (name, here) in fields {
        if here {
            present.push(name);
        }
    }
    let dt = t.data_type;
    let dtype = DType::from_onnx(dt);
    let dname = dtype.onnx_name();
    if present.len() > 1 {
        return Err(format!("payload in several fields: {}", present.join(", ")));
    }
    let Some(&field) = present.first() else {
        return if numel == 0 {
            Ok(Storage::Empty)
        } else {
            Err(format!("no payload for {numel} elements"))
        };
    };
    if dtype == DType::UNDEFINED {
        return Err(format!("{field} present but data_type is UNDEFINED"));
    }
    let known = dt <= DType::FLOAT8E8M0.onnx_code();
    let count = |segs: &[Segment]| segs.iter().map(|s| s.elements).sum::<u64>();
    // Expected element count in the typed field, or None when the field cannot hold the type.
    let expect = |ok: bool, per: u64| ok.then(|| numel.checked_mul(per));
    let check = |found: u64, expected: Option<Option<u64>>, unit: &str| -> Result<(), String> {
        match expected {
            // Unknown (newer) type codes: accept without a length check.
            _ if !known => Ok(()),
            None => Err(format!("{field} cannot hold data_type {dname}")),
            Some(None) => Err(format!("{numel} elements of {dname} overflow")),
            Some(Some(e)) if e != found => Err(format!(
                "dims {:?} need {e} {unit} of {dname} but {field} holds {found}",
                t.dims
            )),
            Some(Some(_)) => Ok(()),
        }
    };
    Ok(match field {
        "raw_data" => {
            if t.raw_data.len() > 1 {
                return Err(format!("raw_data appears {} times", t.raw_data.len()));
            }
            let bytes = t.raw_data[0].clone();
            if dtype == DType::STRING {
                return Err("raw_data cannot hold STRING tensors".into());
            }
            check(bytes.len() as u64, Some(dtype.byte_len(numel)), "bytes")?;
            Storage::Raw { bytes }
        }
        "float_data" => {
            let per = match dtype {
                DType::FLOAT => Some(1),
                DType::COMPLEX64 => Some(2),
                _ => None,
            };
            check(
                count(&t.float_data),
                per.map(|p| numel.checked_mul(p)),
                "values",
            )?;
            Storage::FloatData {
                segments: t.float_data.as_slice().into(),
            }
        }
        "double_data" => {
            let per = match dtype {
                DType::DOUBLE => Some(1),
                DType::COMPLEX128 => Some(2),
                _ => None,
            };
            check(
                count(&t.double_data),
                per.map(|p| numel.checked_mul(p)),
                "values",
            )?;
            Storage::DoubleData {
                segments: t.double_data.as_slice().into(),
            }
        }
        "int32_data" => {
            let expected = match dtype {
                DType::INT32
                | DType::INT16
                | DType::INT8
                | DType::UINT16
                | DType::UINT8
                | DType::BOOL
                | DType::FLOAT16
                | DType::BFLOAT16
                | DType::FLOAT8E4M3FN
                | DType::FLOAT8E4M3FNUZ
                | DType::FLOAT8E5M2
                | DType::FLOAT8E5M2FNUZ
                | DType::FLOAT8E8M0 => Some(Some(numel)),
                // Two 4-bit elements per value.
                DType::UINT4 | DType::INT4 | DType::FLOAT4E2M1 => Some(Some(numel.div_ceil(2))),
                _ => None,
            };
            check(count(&t.int32_data), expected, "values")?;
            Storage::Int32Data {
                segments: t.int32_data.as_slice().into(),
            }
        }
        "int64_data" => {
            check(
                count(&t.int64_data),
                expect(dtype == DType::INT64, 1),
                "values",
            )?;
            Storage::Int64Data {
                segments: t.int64_data.as_slice().into(),
            }
        }
        "uint64_data" => {
            check(
                count(&t.uint64_data),
                expect(dtype == DType::UINT32 || dtype == DType::UINT64, 1),
                "values",
            )?;
            Storage::Uint64Data {
                segments: t.uint64_data.as_slice().into(),
            }
        }
        _ => {
            check(t.string_data, expect(dtype == DType::STRING, 1), "strings")?;
            Storage::StringData {
                count: t.string_data,
            }
        }
    })
}

/// Why an external tensor is refused: its header or its external reference.
pub(crate) enum ExternalError {
    /// The tensor's header is inconsistent (reported as an invalid tensor).
    Tensor(String),
    /// The external reference is refused.
    External(String),
}

/// Validates an external tensor: no inline payload, a confined location, a range inside the side
/// file whose length matches the dims.
pub(crate) fn external_storage(
    t: &ScannedTensor,
    numel: u64,
    dir: &Path,
    canonical_dir: &Path,
    model_meta: &std::fs::Metadata,
) -> Result<Storage, ExternalError> {
    if t.data_location != Some(1) {
        return Err(ExternalError::Tensor(
            "external_data entries present but data_location is not EXTERNAL".into(),
        ));
    }
    let inline = !t.raw_data.is_empty()
        || !t.float_data.is_empty()
        || !t.int32_data.is_empty()
        || t.string_data > 0
        || !t.int64_data.is_empty()
        || !t.double_data.is_empty()
        || !t.uint64_data.is_empty();
    if inline {
        return Err(ExternalError::Tensor(
            "payload both inline and external (data_location = EXTERNAL)".into(),
        ));
    }
    if t.has_segment {
        return Err(ExternalError::Tensor(
            "chunked tensors (TensorProto.segment) are not supported".into(),
        ));
    }
    let mut location = None;
    let mut offset = None;
    let mut length = None;
    let mut checksum = None;
    // Later entries win, as in onnx's own reader.
    for (k, v) in &t.external_data {
        match k.as_str() {
            "location" => location = Some(v.clone()),
            "offset" => offset = Some(v.as_str()),
            "length" => length = Some(v.as_str()),
            "checksum" => checksum = Some(v.clone()),
            _ => {}
        }
    }
    let Some(location) = location else {
        return Err(ExternalError::External("no `location` entry".into()));
    };
    let parse = |key: &str, v: Option<&str>| -> Result<Option<u64>, ExternalError> {
        v.map(|s| {
            s.trim().parse::<u64>().map_err(|_| {
                ExternalError::External(format!("{key} {s:?} is not a non-negative integer"))
            })
        })
        .transpose()
    };
    let offset = parse("offset", offset)?.unwrap_or(0);
    let dtype = DType::from_onnx(t.data_type);
    let expected = dtype.byte_len(numel);
    // A fixed-width type whose byte size overflows: no `length` can match it (and accepting the
    // given one would let 16 bytes stand for 2^62 elements).
    if expected.is_none() && dtype.byte_len(1).is_some() {
        return Err(ExternalError::Tensor(format!(
            "dims {:?} of {} need more than 2^64 bytes (overflow)",
            t.dims,
            dtype.onnx_name()
        )));
    }
    let length = match (parse("length", length)?, expected) {
        (Some(l), Some(e)) if l != e => {
            return Err(ExternalError::External(format!(
                "length {l} but dims {:?} of {} need {e} bytes",
                t.dims,
                dtype.onnx_name()
            )));
        }
        (Some(l), _) => l,
        (None, Some(e)) => e,
        (None, None) => {
            return Err(ExternalError::External(format!(
                "no length and data_type {} has no fixed width",
                dtype.onnx_name()
            )));
        }
    };
    let path = external::resolve_location(dir, canonical_dir, &location)
        .map_err(ExternalError::External)?;
    let side_meta = std::fs::metadata(&path)
        .map_err(|e| ExternalError::External(format!("{location:?}: {e}")))?;
    // The model's own bytes are no side file: "patching" them would overwrite its structure,
    // and the rewrite would write the model twice.
    if side_meta.dev() == model_meta.dev() && side_meta.ino() == model_meta.ino() {
        return Err(ExternalError::External(format!(
            "location {location:?} is the model file itself"
        )));
    }
    let file_len = side_meta.len();
    let end = offset.checked_add(length);
    if end.is_none_or(|end| end > file_len) {
        return Err(ExternalError::External(format!(
            "offset {offset} + length {length} runs past the end of {location:?} ({file_len} \
             bytes)"
        )));
    }
    Ok(Storage::External(Box::new(ExternalData {
        location,
        path,
        offset,
        length,
        checksum,
    })))
}
