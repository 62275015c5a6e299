//! Element types: ONNX `TensorProto.DataType` codes and what they mean here.

/// ONNX `TensorProto.DataType` codes used here.
pub(crate) mod code {
    pub const UNDEFINED: i32 = 0;
    pub const FLOAT: i32 = 1;
    pub const UINT8: i32 = 2;
    pub const INT8: i32 = 3;
    pub const UINT16: i32 = 4;
    pub const INT16: i32 = 5;
    pub const INT32: i32 = 6;
    pub const INT64: i32 = 7;
    pub const STRING: i32 = 8;
    pub const BOOL: i32 = 9;
    pub const FLOAT16: i32 = 10;
    pub const DOUBLE: i32 = 11;
    pub const UINT32: i32 = 12;
    pub const UINT64: i32 = 13;
    pub const COMPLEX64: i32 = 14;
    pub const COMPLEX128: i32 = 15;
    pub const BFLOAT16: i32 = 16;
    /// FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ.
    pub const FLOAT8: std::ops::RangeInclusive<i32> = 17..=20;
    /// UINT4, INT4, FLOAT4E2M1: two elements per byte.
    pub const FOUR_BIT: std::ops::RangeInclusive<i32> = 21..=23;
    pub const FLOAT8E8M0: i32 = 24;
}

/// An element type. The four floating-point types are the ones this tool reads and rewrites;
/// every other type (integers, bool, string, complex, 8- and 4-bit floats) is `Other` and is
/// never modified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// `FLOAT` (1).
    F32,
    /// `DOUBLE` (11).
    F64,
    /// `FLOAT16` (10).
    F16,
    /// `BFLOAT16` (16).
    BF16,
    /// Any other `TensorProto.DataType` code.
    Other(i32),
}

impl DType {
    /// The type for an ONNX `data_type` code.
    pub fn from_onnx(code: i32) -> Self {
        match code {
            code::FLOAT => DType::F32,
            code::DOUBLE => DType::F64,
            code::FLOAT16 => DType::F16,
            code::BFLOAT16 => DType::BF16,
            other => DType::Other(other),
        }
    }

    /// The ONNX `data_type` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => code::FLOAT,
            DType::F64 => code::DOUBLE,
            DType::F16 => code::FLOAT16,
            DType::BF16 => code::BFLOAT16,
            DType::Other(c) => c,
        }
    }

    /// Whether values of this type can be read as numbers and rewritten.
    pub fn is_float(self) -> bool {
        !matches!(self, DType::Other(_))
    }

    /// Bytes per element in `raw_data`/external data, for the four float types.
    pub fn size(self) -> Option<usize> {
        match self {
            DType::F32 => Some(4),
            DType::F64 => Some(8),
            DType::F16 | DType::BF16 => Some(2),
            DType::Other(_) => None,
        }
    }

    /// ONNX's name for the type (`"FLOAT"`, `"INT64"`, …), or `"TYPE_<code>"` when unknown.
    pub fn onnx_name(self) -> String {
        let name = match self.onnx_code() {
            code::UNDEFINED => "UNDEFINED",
            code::FLOAT => "FLOAT",
            code::UINT8 => "UINT8",
            code::INT8 => "INT8",
            code::UINT16 => "UINT16",
            code::INT16 => "INT16",
            code::INT32 => "INT32",
            code::INT64 => "INT64",
            code::STRING => "STRING",
            code::BOOL => "BOOL",
            code::FLOAT16 => "FLOAT16",
            code::DOUBLE => "DOUBLE",
            code::UINT32 => "UINT32",
            code::UINT64 => "UINT64",
            code::COMPLEX64 => "COMPLEX64",
            code::COMPLEX128 => "COMPLEX128",
            code::BFLOAT16 => "BFLOAT16",
            c => return format!("TYPE_{c}"),
        };
        name.to_string()
    }
}

/// Byte length of `numel` elements of type `data_type` in `raw_data` or external data, `None`
/// when the type has no fixed width here (string, undefined, unknown codes) or on overflow.
pub fn raw_byte_len(data_type: i32, numel: u64) -> Option<u64> {
    let width: u64 = match data_type {
        code::UINT8 | code::INT8 | code::BOOL | code::FLOAT8E8M0 => 1,
        c if code::FLOAT8.contains(&c) => 1,
        c if code::FOUR_BIT.contains(&c) => return Some(numel.div_ceil(2)),
        code::UINT16 | code::INT16 | code::FLOAT16 | code::BFLOAT16 => 2,
        code::FLOAT | code::INT32 | code::UINT32 => 4,
        code::DOUBLE | code::INT64 | code::UINT64 | code::COMPLEX64 => 8,
        code::COMPLEX128 => 16,
        _ => return None,
    };
    numel.checked_mul(width)
}
