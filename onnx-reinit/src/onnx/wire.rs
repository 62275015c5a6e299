//! A minimal, panic-free protobuf wire-format reader.
//!
//! The rewrite must never re-encode a model (re-encoding would not reproduce the original bytes
//! of everything it leaves alone), so instead of decoding into generated types we walk the wire
//! format and remember *where* things are. This module is that walk's only primitive: it reads tags, varints and the four wire types
//! ONNX uses, and hands back absolute byte offsets into the buffer it was created over.
//!
//! Contract:
//! - Every function returns `Err(WireError)` instead of panicking, on any input.
//! - Every error carries the absolute byte offset (into the original buffer) where decoding failed.
//! - A reader is confined to `[start, end)` of the buffer; a length-delimited field whose length
//!   runs past `end` (the end of the *enclosing message*, not only of the file) is an error.
//! - Groups (wire types 3 and 4) are rejected: ONNX never uses them and skipping them correctly
//!   needs unbounded nesting.

use std::fmt;
use std::ops::Range;

/// Longest valid varint: 10 bytes carry 64 bits (7 bits per byte).
pub const MAX_VARINT_LEN: usize = 10;

/// A malformed-input error at an absolute byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Absolute offset of the first byte that could not be decoded.
    pub offset: usize,
    /// What was wrong there.
    pub kind: WireErrorKind,
}

/// What went wrong while reading the wire format.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireErrorKind {
    /// The message ended in the middle of a tag, varint or fixed-width value.
    Truncated,
    /// A varint continued past 10 bytes, or its 10th byte carried bits beyond 64.
    VarintTooLong,
    /// A tag with field number 0 (reserved, never valid).
    ZeroFieldNumber,
    /// A field number above 2^29 - 1.
    FieldNumberTooLarge(u64),
    /// Wire type 3 or 4 (start/end group), which ONNX does not use.
    Group {
        /// The group's field number.
        field: u32,
    },
    /// Wire type 6 or 7, which do not exist.
    InvalidWireType(u8),
    /// A length-delimited field whose length runs past the end of its enclosing message.
    LengthPastEnd {
        /// The declared length.
        len: u64,
        /// Bytes left in the enclosing message after the length prefix.
        available: u64,
    },
    /// A known field arrived with a wire type its schema does not allow.
    WrongWireType {
        /// The field number.
        field: u32,
        /// The wire type found.
        found: WireType,
    },
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: ", self.offset)?;
        match &self.kind {
            WireErrorKind::Truncated => f.write_str("message truncated"),
            WireErrorKind::VarintTooLong => f.write_str("varint longer than 10 bytes"),
            WireErrorKind::ZeroFieldNumber => f.write_str("field number 0"),
            WireErrorKind::FieldNumberTooLarge(n) => write!(f, "field number {n} too large"),
            WireErrorKind::Group { field } => {
                write!(
                    f,
                    "field {field} uses the group wire type, which ONNX never uses"
                )
            }
            WireErrorKind::InvalidWireType(t) => write!(f, "invalid wire type {t}"),
            WireErrorKind::LengthPastEnd { len, available } => write!(
                f,
                "length {len} runs past the end of the enclosing message ({available} bytes left)"
            ),
            WireErrorKind::WrongWireType { field, found } => {
                write!(f, "field {field} has unexpected wire type {found:?}")
            }
        }
    }
}

impl std::error::Error for WireError {}

/// The wire types this reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: a varint.
    Varint,
    /// 1: eight little-endian bytes.
    Fixed64,
    /// 2: a varint length followed by that many bytes.
    Len,
    /// 5: four little-endian bytes.
    Fixed32,
}

/// The value of one field, with absolute offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Wire type 0.
    Varint(u64),
    /// Wire type 1; `at` is the range of its 8 bytes.
    Fixed64 {
        /// The little-endian value.
        value: u64,
        /// Where its 8 bytes are.
        at: Range<usize>,
    },
    /// Wire type 5; `at` is the range of its 4 bytes.
    Fixed32 {
        /// The little-endian value.
        value: u32,
        /// Where its 4 bytes are.
        at: Range<usize>,
    },
    /// Wire type 2.
    Len {
        /// The bytes of the length varint (needed to re-frame a message whose body changes size).
        prefix: Range<usize>,
        /// The field's content.
        body: Range<usize>,
    },
}

/// One decoded field: its number, where it starts, and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field number (1 ..= 2^29 - 1).
    pub number: u32,
    /// Offset of the tag's first byte.
    pub start: usize,
    /// Offset just past the tag, where the value (or the length prefix) begins.
    pub value_start: usize,
    /// Offset just past the field's last byte.
    pub end: usize,
    /// The value.
    pub value: Value,
}

impl Field {
    /// The wire type of this field.
    pub fn wire_type(&self) -> WireType {
        match self.value {
            Value::Varint(_) => WireType::Varint,
            Value::Fixed64 { .. } => WireType::Fixed64,
            Value::Fixed32 { .. } => WireType::Fixed32,
            Value::Len { .. } => WireType::Len,
        }
    }

    /// The error for "this field has a wire type its schema does not allow".
    pub fn wrong_type(&self) -> WireError {
        WireError {
            offset: self.start,
            kind: WireErrorKind::WrongWireType {
                field: self.number,
                found: self.wire_type(),
            },
        }
    }

    /// The body of a length-delimited field, or a wrong-wire-type error.
    pub fn len_body(&self) -> Result<Range<usize>, WireError> {
        match &self.value {
            Value::Len { body, .. } => Ok(body.clone()),
            _ => Err(self.wrong_type()),
        }
    }

    /// The value of a varint field, or a wrong-wire-type error.
    pub fn varint(&self) -> Result<u64, WireError> {
        match self.value {
            Value::Varint(v) => Ok(v),
            _ => Err(self.wrong_type()),
        }
    }
}

/// A cursor over the fields of one message: `buf[pos..end]`, with offsets relative to `buf`.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
}

impl<'a> Reader<'a> {
    /// A reader over the whole buffer (a top-level message such as `ModelProto`).
    pub fn new(buf: &'a [u8]) -> Self {
        Reader {
            buf,
            pos: 0,
            end: buf.len(),
        }
    }

    /// A reader over `range` of `buf` (an embedded message's body). The range is clamped to the
    /// buffer so a bad range cannot cause a panic; reads past the clamped end report `Truncated`.
    pub fn sub(buf: &'a [u8], range: Range<usize>) -> Self {
        let end = range.end.min(buf.len());
        Reader {
            buf,
            pos: range.start.min(end),
            end,
        }
    }

    /// The underlying buffer (offsets returned by this reader index into it).
    pub fn buf(&self) -> &'a [u8] {
        self.buf
    }

    /// Current absolute offset.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Absolute offset of the end of the current message.
    pub fn end(&self) -> usize {
        self.end
    }

    /// Whether every byte of the message has been read.
    pub fn is_at_end(&self) -> bool {
        self.pos >= self.end
    }

    /// Reads one varint (at most 10 bytes, at most 64 bits).
    pub fn read_varint(&mut self) -> Result<u64, WireError> {
        let (value, len) = decode_varint(&self.buf[self.pos..self.end], self.pos)?;
        self.pos += len;
        Ok(value)
    }

    fn read_fixed<const N: usize>(&mut self) -> Result<([u8; N], Range<usize>), WireError> {
        let start = self.pos;
        let bytes = self
            .buf
            .get(start..self.end)
            .and_then(|rest| rest.get(..N))
            .ok_or(WireError {
                offset: start,
                kind: WireErrorKind::Truncated,
            })?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        self.pos = start + N;
        Ok((out, start..start + N))
    }

    /// Reads the next field, or `None` at the end of the message.
    pub fn next_field(&mut self) -> Result<Option<Field>, WireError> {
        if self.is_at_end() {
            return Ok(None);
        }
        let start = self.pos;
        let tag = self.read_varint()?;
        let number = tag >> 3;
        let wire = (tag & 7) as u8;
        let value_start = self.pos;
        if number == 0 {
            return Err(WireError {
                offset: start,
                kind: WireErrorKind::ZeroFieldNumber,
            });
        }
        let number = u32::try_from(number)
            .ok()
            .filter(|&n| n < (1 << 29))
            .ok_or(WireError {
                offset: start,
                kind: WireErrorKind::FieldNumberTooLarge(number),
            })?;
        let value = match wire {
            0 => Value::Varint(self.read_varint()?),
            1 => {
                let (b, at) = self.read_fixed::<8>()?;
                Value::Fixed64 {
                    value: u64::from_le_bytes(b),
                    at,
                }
            }
            2 => {
                let prefix_start = self.pos;
                let len = self.read_varint()?;
                let body_start = self.pos;
                let available = (self.end - body_start) as u64;
                if len > available {
                    return Err(WireError {
                        offset: prefix_start,
                        kind: WireErrorKind::LengthPastEnd { len, available },
                    });
                }
                // `len <= available <= usize::MAX`, so the cast is exact.
                let body_end = body_start + len as usize;
                self.pos = body_end;
                Value::Len {
                    prefix: prefix_start..body_start,
                    body: body_start..body_end,
                }
            }
            3 | 4 => {
                return Err(WireError {
                    offset: start,
                    kind: WireErrorKind::Group { field: number },
                });
            }
            5 => {
                let (b, at) = self.read_fixed::<4>()?;
                Value::Fixed32 {
                    value: u32::from_le_bytes(b),
                    at,
                }
            }
            other => {
                return Err(WireError {
                    offset: start,
                    kind: WireErrorKind::InvalidWireType(other),
                });
            }
        };
        Ok(Some(Field {
            number,
            start,
            value_start,
            end: self.pos,
            value,
        }))
    }
}

/// Decodes one varint at the start of `bytes`; `base` is the absolute offset of `bytes[0]`, used
/// only for error offsets. Returns the value and the number of bytes it took.
pub fn decode_varint(bytes: &[u8], base: usize) -> Result<(u64, usize), WireError> {
    let mut value: u64 = 0;
    for i in 0..MAX_VARINT_LEN {
        let Some(&b) = bytes.get(i) else {
            return Err(WireError {
                offset: base + i,
                kind: WireErrorKind::Truncated,
            });
        };
        // The 10th byte holds bit 63 only; anything more would be silently lost.
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Err(WireError {
                offset: base,
                kind: WireErrorKind::VarintTooLong,
            });
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok((value, i + 1));
        }
    }
    Err(WireError {
        offset: base,
        kind: WireErrorKind::VarintTooLong,
    })
}

/// Counts the varints in a packed repeated field's body and checks that it is a whole number of
/// well-formed varints. `base` is the absolute offset of `bytes[0]`.
pub fn count_varints(bytes: &[u8], base: usize) -> Result<u64, WireError> {
    let mut count = 0u64;
    let mut run = 0usize; // continuation bytes in the current varint
    for (i, &b) in bytes.iter().enumerate() {
        if b & 0x80 == 0 {
            if run == MAX_VARINT_LEN - 1 && b > 1 {
                return Err(WireError {
                    offset: base + i - run,
                    kind: WireErrorKind::VarintTooLong,
                });
            }
            count += 1;
            run = 0;
        } else {
            run += 1;
            if run >= MAX_VARINT_LEN {
                return Err(WireError {
                    offset: base + i + 1 - run,
                    kind: WireErrorKind::VarintTooLong,
                });
            }
        }
    }
    if run != 0 {
        return Err(WireError {
            offset: base + bytes.len() - run,
            kind: WireErrorKind::Truncated,
        });
    }
    Ok(count)
}

/// Number of bytes the minimal varint encoding of `v` takes (1 ..= 10).
pub fn varint_len(v: u64) -> usize {
    // Each byte carries 7 bits; 0 still takes one byte.
    let bits = 64 - v.leading_zeros() as usize;
    bits.div_ceil(7).max(1)
}

/// Appends the minimal varint encoding of `v` to `out`.
pub fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip_and_lengths() {
        for v in [0u64, 1, 127, 128, 300, 65535, u64::from(u32::MAX), u64::MAX] {
            let mut b = Vec::new();
            put_varint(v, &mut b);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(decode_varint(&b, 0), Ok((v, b.len())));
            assert_eq!(count_varints(&b, 0), Ok(1));
        }
    }

    #[test]
    fn varint_too_long_is_rejected() {
        let eleven = [0xffu8; 10]
            .iter()
            .copied()
            .chain([0x01])
            .collect::<Vec<_>>();
        assert_eq!(
            decode_varint(&eleven, 7).unwrap_err().kind,
            WireErrorKind::VarintTooLong
        );
        // 10 bytes whose last carries more than bit 63.
        let mut overflow = vec![0xffu8; 9];
        overflow.push(0x02);
        assert_eq!(
            decode_varint(&overflow, 0).unwrap_err().kind,
            WireErrorKind::VarintTooLong
        );
        assert!(count_varints(&overflow, 0).is_err());
        assert!(count_varints(&eleven, 0).is_err());
    }

    #[test]
    fn truncated_and_groups() {
        assert_eq!(
            decode_varint(&[0x80, 0x80], 5).unwrap_err(),
            WireError {
                offset: 7,
                kind: WireErrorKind::Truncated
            }
        );
        let mut r = Reader::new(&[0x0b]); // field 1, wire type 3
        assert_eq!(
            r.next_field().unwrap_err().kind,
            WireErrorKind::Group { field: 1 }
        );
        let mut r = Reader::new(&[0x0a, 0x05, 1, 2]); // length 5, 2 bytes left
        assert!(matches!(
            r.next_field().unwrap_err().kind,
            WireErrorKind::LengthPastEnd { len: 5, .. }
        ));
        let mut r = Reader::new(&[0x0d, 1, 2]); // fixed32 truncated
        assert_eq!(r.next_field().unwrap_err().kind, WireErrorKind::Truncated);
    }

    #[test]
    fn sub_reader_is_confined_to_its_message() {
        // Outer: field 1 len 2 containing an inner field 2 whose length (3) exceeds the outer body.
        let buf = [0x0a, 0x02, 0x12, 0x03, 0xaa, 0xbb, 0xcc];
        let mut outer = Reader::new(&buf);
        let f = outer.next_field().unwrap().unwrap();
        assert_eq!(f.len_body(), Ok(2..4));
        let mut inner = Reader::sub(&buf, 2..4);
        assert!(matches!(
            inner.next_field().unwrap_err().kind,
            WireErrorKind::LengthPastEnd {
                len: 3,
                available: 0
            }
        ));
    }
}
