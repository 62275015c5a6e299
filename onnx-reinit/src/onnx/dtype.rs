//! Element types: ONNX's `TensorProto.DataType` codes, in one table.
//!
//! [`DType`] is a tensor's element type; a table (`TABLE`) says, for every code ONNX defines, how
//! messages spell it and how wide an element is in `raw_data` and external data. Whether a
//! rewrite can write a type is [`DType::is_float`]: the four variants `F32`, `F64`, `F16`,
//! `BF16`, each with its init-core element kind ([`DType::element`]). The rest of the crate asks
//! here instead of spelling codes out.

/// An element type. The four floating-point types are the ones this tool reads and rewrites;
/// every other type (integers, bool, string, complex, 8- and 4-bit floats) is `Other` and is
/// never modified.
///
/// Build one with [`DType::from_onnx`] (or a named constant such as [`DType::FLOAT16`]):
/// `Other` never holds the code of one of the four float types.
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

/// How many bytes one element takes in `raw_data` or external data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Width {
    /// This many bytes.
    Bytes(u64),
    /// Half a byte: two elements per byte, the last byte half used for an odd count.
    Nibble,
    /// No fixed width (`UNDEFINED`, `STRING`).
    Variable,
}

/// What onnx-reinit knows of one `TensorProto.DataType` code.
#[derive(Debug)]
struct Row {
    /// The code; equal to the row's index in [`TABLE`].
    code: i32,
    /// The name messages print, as `onnx.proto` spells it (`FLOAT`, `INT64`, …). `None` for the
    /// 8- and 4-bit types, which messages print by code (`TYPE_17`).
    name: Option<&'static str>,
    /// The lower-case name the plan report and analysis print (`float32`, `float16`, …); `None`
    /// for `UNDEFINED` and the 8- and 4-bit types, which they print by code or family.
    short: Option<&'static str>,
    /// Width in `raw_data` and external data.
    width: Width,
}

impl Row {
    const fn named(code: i32, name: &'static str, short: &'static str, width: Width) -> Row {
        Row {
            code,
            name: Some(name),
            short: Some(short),
            width,
        }
    }

    /// A type printed by code (its ONNX name is the comment beside it).
    const fn by_code(code: i32, width: Width) -> Row {
        Row {
            code,
            name: None,
            short: None,
            width,
        }
    }
}

/// Every `TensorProto.DataType` code ONNX defines, indexed by code. Codes past the end are newer
/// types: they have no width here and are never modified.
const TABLE: [Row; 25] = [
    Row {
        code: 0,
        name: Some("UNDEFINED"),
        short: None,
        width: Width::Variable,
    },
    Row::named(1, "FLOAT", "float32", Width::Bytes(4)),
    Row::named(2, "UINT8", "uint8", Width::Bytes(1)),
    Row::named(3, "INT8", "int8", Width::Bytes(1)),
    Row::named(4, "UINT16", "uint16", Width::Bytes(2)),
    Row::named(5, "INT16", "int16", Width::Bytes(2)),
    Row::named(6, "INT32", "int32", Width::Bytes(4)),
    Row::named(7, "INT64", "int64", Width::Bytes(8)),
    Row::named(8, "STRING", "string", Width::Variable),
    Row::named(9, "BOOL", "bool", Width::Bytes(1)),
    Row::named(10, "FLOAT16", "float16", Width::Bytes(2)),
    Row::named(11, "DOUBLE", "float64", Width::Bytes(8)),
    Row::named(12, "UINT32", "uint32", Width::Bytes(4)),
    Row::named(13, "UINT64", "uint64", Width::Bytes(8)),
    Row::named(14, "COMPLEX64", "complex64", Width::Bytes(8)),
    Row::named(15, "COMPLEX128", "complex128", Width::Bytes(16)),
    Row::named(16, "BFLOAT16", "bfloat16", Width::Bytes(2)),
    Row::by_code(17, Width::Bytes(1)), // FLOAT8E4M3FN
    Row::by_code(18, Width::Bytes(1)), // FLOAT8E4M3FNUZ
    Row::by_code(19, Width::Bytes(1)), // FLOAT8E5M2
    Row::by_code(20, Width::Bytes(1)), // FLOAT8E5M2FNUZ
    Row::by_code(21, Width::Nibble),   // UINT4
    Row::by_code(22, Width::Nibble),   // INT4
    Row::by_code(23, Width::Nibble),   // FLOAT4E2M1
    Row::by_code(24, Width::Bytes(1)), // FLOAT8E8M0
];

// Each row sits at its code's index: a misordered row fails the build.
const _: () = {
    let mut i = 0;
    while i < TABLE.len() {
        assert!(
            TABLE[i].code as usize == i,
            "TABLE rows must be indexed by code"
        );
        i += 1;
    }
};

/// The named types, as `onnx.proto` spells them.
impl DType {
    /// `UNDEFINED` (0): no type given.
    pub const UNDEFINED: DType = DType::Other(0);
    /// `FLOAT` (1).
    pub const FLOAT: DType = DType::F32;
    /// `UINT8` (2).
    pub const UINT8: DType = DType::Other(2);
    /// `INT8` (3).
    pub const INT8: DType = DType::Other(3);
    /// `UINT16` (4).
    pub const UINT16: DType = DType::Other(4);
    /// `INT16` (5).
    pub const INT16: DType = DType::Other(5);
    /// `INT32` (6).
    pub const INT32: DType = DType::Other(6);
    /// `INT64` (7).
    pub const INT64: DType = DType::Other(7);
    /// `STRING` (8).
    pub const STRING: DType = DType::Other(8);
    /// `BOOL` (9).
    pub const BOOL: DType = DType::Other(9);
    /// `FLOAT16` (10).
    pub const FLOAT16: DType = DType::F16;
    /// `DOUBLE` (11).
    pub const DOUBLE: DType = DType::F64;
    /// `UINT32` (12).
    pub const UINT32: DType = DType::Other(12);
    /// `UINT64` (13).
    pub const UINT64: DType = DType::Other(13);
    /// `COMPLEX64` (14): two f32 per element.
    pub const COMPLEX64: DType = DType::Other(14);
    /// `COMPLEX128` (15): two f64 per element.
    pub const COMPLEX128: DType = DType::Other(15);
    /// `BFLOAT16` (16).
    pub const BFLOAT16: DType = DType::BF16;
    /// `FLOAT8E4M3FN` (17).
    pub const FLOAT8E4M3FN: DType = DType::Other(17);
    /// `FLOAT8E4M3FNUZ` (18).
    pub const FLOAT8E4M3FNUZ: DType = DType::Other(18);
    /// `FLOAT8E5M2` (19).
    pub const FLOAT8E5M2: DType = DType::Other(19);
    /// `FLOAT8E5M2FNUZ` (20).
    pub const FLOAT8E5M2FNUZ: DType = DType::Other(20);
    /// `UINT4` (21): two elements per byte.
    pub const UINT4: DType = DType::Other(21);
    /// `INT4` (22): two elements per byte.
    pub const INT4: DType = DType::Other(22);
    /// `FLOAT4E2M1` (23): two elements per byte.
    pub const FLOAT4E2M1: DType = DType::Other(23);
    /// `FLOAT8E8M0` (24), the last code this table knows.
    pub const FLOAT8E8M0: DType = DType::Other(24);
}

impl DType {
    /// The type for an ONNX `data_type` code.
    pub fn from_onnx(code: i32) -> Self {
        match code {
            1 => DType::F32,
            11 => DType::F64,
            10 => DType::F16,
            16 => DType::BF16,
            other => DType::Other(other),
        }
    }

    /// The ONNX `data_type` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::F64 => 11,
            DType::F16 => 10,
            DType::BF16 => 16,
            DType::Other(c) => c,
        }
    }

    /// The type's row in [`TABLE`], `None` for codes it does not know (negative or newer).
    fn row(self) -> Option<&'static Row> {
        usize::try_from(self.onnx_code())
            .ok()
            .and_then(|i| TABLE.get(i))
    }

    /// Whether values of this type can be read as numbers and rewritten: the four variants
    /// `F32`, `F64`, `F16`, `BF16` (8- and 4-bit floats are not).
    pub fn is_float(self) -> bool {
        !matches!(self, DType::Other(_))
    }

    /// The init-core element kind a fill of this type writes, for the four float types.
    pub fn element(self) -> Option<init_core::DType> {
        match self {
            DType::F32 => Some(init_core::DType::F32),
            DType::F64 => Some(init_core::DType::F64),
            DType::F16 => Some(init_core::DType::F16),
            DType::BF16 => Some(init_core::DType::BF16),
            DType::Other(_) => None,
        }
    }

    /// Bytes per element in `raw_data`/external data; `None` for the 4-bit types (two elements
    /// per byte), `STRING`, `UNDEFINED` and unknown codes.
    pub fn size(self) -> Option<usize> {
        match self.row()?.width {
            Width::Bytes(n) => usize::try_from(n).ok(),
            Width::Nibble | Width::Variable => None,
        }
    }

    /// Byte length of `numel` elements in `raw_data` or external data, `None` when the type has
    /// no fixed width here (string, undefined, unknown codes) or on overflow.
    pub fn byte_len(self, numel: u64) -> Option<u64> {
        match self.row()?.width {
            Width::Bytes(n) => numel.checked_mul(n),
            Width::Nibble => Some(numel.div_ceil(2)),
            Width::Variable => None,
        }
    }

    /// ONNX's name for the type (`"FLOAT"`, `"INT64"`, …), or `"TYPE_<code>"` for the 8- and
    /// 4-bit types and unknown codes.
    pub fn onnx_name(self) -> String {
        match self.row().and_then(|r| r.name) {
            Some(name) => name.to_string(),
            None => format!("TYPE_{}", self.onnx_code()),
        }
    }

    /// The lower-case name reports print (`"float32"`, `"float64"`, `"bfloat16"`, `"int64"`, …),
    /// for the codes `FLOAT` ..= `BFLOAT16`; `None` for the others.
    pub fn short_name(self) -> Option<&'static str> {
        self.row().and_then(|r| r.short)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip() {
        for code in -3..40 {
            let t = DType::from_onnx(code);
            assert_eq!(t.onnx_code(), code);
            assert_eq!(t.is_float(), matches!(code, 1 | 10 | 11 | 16));
        }
    }

    #[test]
    fn float_types_agree_with_init_core() {
        for t in [DType::F32, DType::F64, DType::F16, DType::BF16] {
            let element = t.element().unwrap();
            assert_eq!(t.size(), Some(element.size()), "{t:?}");
        }
        assert_eq!(DType::INT64.element(), None);
    }

    #[test]
    fn names_and_widths() {
        assert_eq!(DType::DOUBLE.onnx_name(), "DOUBLE");
        assert_eq!(DType::DOUBLE.short_name(), Some("float64"));
        assert_eq!(DType::FLOAT8E4M3FN.onnx_name(), "TYPE_17");
        assert_eq!(DType::from_onnx(-1).onnx_name(), "TYPE_-1");
        assert_eq!(DType::UNDEFINED.short_name(), None);
        assert_eq!(DType::INT4.byte_len(5), Some(3));
        assert_eq!(DType::INT4.size(), None);
        assert_eq!(DType::COMPLEX128.byte_len(2), Some(32));
        assert_eq!(DType::STRING.byte_len(1), None);
        assert_eq!(DType::from_onnx(25).byte_len(1), None);
        assert_eq!(DType::INT64.byte_len(u64::MAX), None);
    }
}
