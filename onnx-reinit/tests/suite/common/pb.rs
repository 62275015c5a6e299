//! A minimal protobuf encoder: the wire format, nothing more (test-only; the library never
//! encodes). Self-contained, so that other test or fuzz crates can include it with `#[path]`.

/// Appends `v` as a varint.
pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// How many bytes `v` takes as a varint.
pub fn varint_len(v: u64) -> usize {
    let mut b = Vec::new();
    varint(v, &mut b);
    b.len()
}

/// Appends the tag of field `field` with wire type `wire`.
pub fn tag(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint((u64::from(field) << 3) | u64::from(wire), out);
}

/// A varint field.
pub fn int(field: u32, v: i64) -> Vec<u8> {
    let mut o = Vec::new();
    tag(field, 0, &mut o);
    varint(v as u64, &mut o);
    o
}

/// A length-delimited field.
pub fn bytes(field: u32, data: &[u8]) -> Vec<u8> {
    let mut o = Vec::new();
    tag(field, 2, &mut o);
    varint(data.len() as u64, &mut o);
    o.extend_from_slice(data);
    o
}

/// A string field.
pub fn string(field: u32, s: &str) -> Vec<u8> {
    bytes(field, s.as_bytes())
}

/// A fixed32 field (one unpacked element).
pub fn fixed32(field: u32, v: u32) -> Vec<u8> {
    let mut o = Vec::new();
    tag(field, 5, &mut o);
    o.extend_from_slice(&v.to_le_bytes());
    o
}

/// An embedded message from concatenated field encodings.
pub fn msg(field: u32, parts: &[Vec<u8>]) -> Vec<u8> {
    bytes(field, &parts.concat())
}

/// A `StringStringEntryProto` in field `field`.
pub fn entry(field: u32, k: &str, v: &str) -> Vec<u8> {
    msg(field, &[string(1, k), string(2, v)])
}
