//! `.npz` and `.npy` files: numpy's arrays, for `--lsuv --inputs FILE.npz`.
//!
//! An `.npz` is a zip archive with one `NAME.npy` member per array (`np.savez` stores them,
//! `np.savez_compressed` deflates them; both are read, deflate by `miniz_oxide`). The archive is
//! read from its central directory (numpy's local headers carry ZIP64 placeholders for the
//! sizes); ZIP64 end records, encryption and other compression methods are refused.
//!
//! An `.npy` member is the magic `\x93NUMPY`, a version (1.0: a 2-byte header length; 2.0 and
//! 3.0: 4 bytes), then a Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape':
//! (2, 3), }` and the data in C order. Read: little-endian (or native `=`, this being a
//! little-endian reader) f32, f64, i64 and i32; Fortran order, big-endian data and any other
//! type are refused with the reason.

use std::path::Path;

/// The values of one array, in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub enum NpyData {
    /// `<f4`.
    F32(Vec<f32>),
    /// `<f8`.
    F64(Vec<f64>),
    /// `<i8`.
    I64(Vec<i64>),
    /// `<i4`.
    I32(Vec<i32>),
}

impl NpyData {
    /// numpy's name of the element type: `float32`, `float64`, `int64`, `int32`.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            NpyData::F32(_) => "float32",
            NpyData::F64(_) => "float64",
            NpyData::I64(_) => "int64",
            NpyData::I32(_) => "int32",
        }
    }
}

/// One array of an `.npy` file.
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray {
    /// Its shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// Its values, ∏ shape of them.
    pub data: NpyData,
}

/// Parse an `.npy` file's bytes (see the module docs for what is read).
pub fn parse_npy(bytes: &[u8]) -> Result<NpyArray, String> {
    let rest = bytes
        .strip_prefix(b"\x93NUMPY")
        .ok_or("not an .npy array (no \\x93NUMPY magic)")?;
    let (&major, rest) = rest.split_first().ok_or("truncated .npy header")?;
    let (_minor, rest) = rest.split_first().ok_or("truncated .npy header")?;
    let (len, rest) = match major {
        1 => {
            let b = rest.get(..2).ok_or("truncated .npy header")?;
            (usize::from(u16::from_le_bytes([b[0], b[1]])), &rest[2..])
        }
        2 | 3 => {
            let b = rest.get(..4).ok_or("truncated .npy header")?;
            (
                u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize,
                &rest[4..],
            )
        }
        v => {
            return Err(format!(
                ".npy format version {v} is not supported (1, 2, 3 are)"
            ));
        }
    };
    let header = rest.get(..len).ok_or("truncated .npy header")?;
    let header = std::str::from_utf8(header).map_err(|_| "the .npy header is not text")?;
    let data = &rest[len..];
    let descr = dict_value(header, "descr").ok_or("the .npy header has no 'descr'")?;
    let fortran =
        dict_value(header, "fortran_order").ok_or("the .npy header has no 'fortran_order'")?;
    let shape_text = dict_value(header, "shape").ok_or("the .npy header has no 'shape'")?;
    if fortran.starts_with("True") {
        return Err("the array is in Fortran order; save it in C order \
                    (np.ascontiguousarray) and try again"
            .to_owned());
    }
    if !fortran.starts_with("False") {
        return Err(format!("fortran_order {fortran}: expected True or False"));
    }
    let shape = parse_shape(shape_text)?;
    let n = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or("the shape's element count overflows")?;
    let descr = descr
        .strip_prefix('\'')
        .or_else(|| descr.strip_prefix('"'))
        .and_then(|d| d.split(['\'', '"']).next())
        .ok_or_else(|| format!("descr {descr}: expected a string such as '<f4'"))?;
    let width = match &descr.get(1..) {
        Some("f4" | "i4") => 4,
        Some("f8" | "i8") => 8,
        _ => {
            return Err(format!(
                "element type '{descr}' is not supported (float32, float64, int64, int32)"
            ));
        }
    };
    if let Some(t) = descr.strip_prefix('>') {
        return Err(format!(
            "element type '{descr}' is big-endian; save it little-endian (arr.astype('<{t}'))"
        ));
    }
    if !descr.starts_with(['<', '=']) {
        return Err(format!(
            "element type '{descr}': expected a byte order < or ="
        ));
    }
    let need = n.checked_mul(width).ok_or("the data size overflows")?;
    if data.len() != need {
        return Err(format!(
            "the shape {shape:?} of '{descr}' needs {need} data bytes, the file has {}",
            data.len()
        ));
    }
    let words4 = || data.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]);
    let words8 = || {
        data.chunks_exact(8)
            .map(|c| [c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
    };
    let data = match &descr[1..] {
        "f4" => NpyData::F32(words4().map(f32::from_le_bytes).collect()),
        "i4" => NpyData::I32(words4().map(i32::from_le_bytes).collect()),
        "f8" => NpyData::F64(words8().map(f64::from_le_bytes).collect()),
        _ => NpyData::I64(words8().map(i64::from_le_bytes).collect()),
    };
    Ok(NpyArray { shape, data })
}

/// The text after `'key':` in a Python dict literal, up to the end of the dict.
fn dict_value<'h>(header: &'h str, key: &str) -> Option<&'h str> {
    let at = header
        .find(&format!("'{key}'"))
        .or_else(|| header.find(&format!("\"{key}\"")))?;
    let rest = &header[at + key.len() + 2..];
    let rest = rest.trim_start().strip_prefix(':')?;
    Some(rest.trim_start())
}

/// `(2, 3)`, `(5,)`, `()` at the start of `text`.
fn parse_shape(text: &str) -> Result<Vec<usize>, String> {
    let inner = text
        .strip_prefix('(')
        .and_then(|t| t.split(')').next())
        .ok_or_else(|| format!("shape {text}: expected a tuple"))?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.trim_end_matches('L')
                .parse::<usize>()
                .map_err(|_| format!("shape ({inner}): `{s}` is not a dimension"))
        })
        .collect()
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Every member of an `.npz` archive's bytes as (name without `.npy`, array), in the archive's
/// order. Errors name the member.
pub fn parse_npz(bytes: &[u8]) -> Result<Vec<(String, NpyArray)>, String> {
    const EOCD: u32 = 0x0605_4b50;
    const CENTRAL: u32 = 0x0201_4b50;
    const LOCAL: u32 = 0x0403_4b50;
    const MAX_DATA: u64 = 1 << 34;
    let truncated = || "not a zip archive, or a truncated one".to_owned();
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65,535.
    let lowest = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(bytes, i) == Some(EOCD))
        .ok_or_else(truncated)?;
    let count = u16_at(bytes, eocd + 10).ok_or_else(truncated)?;
    let cd_offset = u32_at(bytes, eocd + 16).ok_or_else(truncated)?;
    if count == 0xFFFF || cd_offset == 0xFFFF_FFFF {
        return Err("ZIP64 archives (over 65,535 members or 4 GiB) are not supported".to_owned());
    }
    let mut at = cd_offset as usize;
    let mut out = Vec::new();
    for _ in 0..count {
        if u32_at(bytes, at) != Some(CENTRAL) {
            return Err(truncated());
        }
        let field = |off: usize| u16_at(bytes, at + off).ok_or_else(truncated);
        let flags = field(8)?;
        let method = field(10)?;
        let (name_len, extra_len, comment_len) = (
            usize::from(field(28)?),
            usize::from(field(30)?),
            usize::from(field(32)?),
        );
        let csize = u32_at(bytes, at + 20).ok_or_else(truncated)?;
        let usize_ = u32_at(bytes, at + 24).ok_or_else(truncated)?;
        let local = u32_at(bytes, at + 42).ok_or_else(truncated)? as usize;
        let name = bytes
            .get(at + 46..at + 46 + name_len)
            .ok_or_else(truncated)?;
        let name = String::from_utf8_lossy(name).into_owned();
        at += 46 + name_len + extra_len + comment_len;
        let member = |why: String| format!("member `{name}`: {why}");
        if flags & 1 != 0 {
            return Err(member("encrypted".to_owned()));
        }
        if csize == 0xFFFF_FFFF || usize_ == 0xFFFF_FFFF || local == 0xFFFF_FFFF {
            return Err(member(
                "ZIP64 sizes (over 4 GiB) are not supported".to_owned(),
            ));
        }
        if u32_at(bytes, local) != Some(LOCAL) {
            return Err(member(
                "no local header where the directory says".to_owned(),
            ));
        }
        let start = local
            + 30
            + usize::from(u16_at(bytes, local + 26).ok_or_else(truncated)?)
            + usize::from(u16_at(bytes, local + 28).ok_or_else(truncated)?);
        let raw = bytes
            .get(start..start + csize as usize)
            .ok_or_else(|| member("data past the end of the archive".to_owned()))?;
        let data: std::borrow::Cow<'_, [u8]> = match method {
            0 => raw.into(),
            8 => {
                if u64::from(usize_) > MAX_DATA {
                    return Err(member("too large".to_owned()));
                }
                miniz_oxide::inflate::decompress_to_vec_with_limit(raw, usize_ as usize)
                    .map_err(|e| member(format!("deflate data is corrupt ({:?})", e.status)))?
                    .into()
            }
            m => {
                return Err(member(format!(
                    "compression method {m} is not supported (stored or deflate)"
                )));
            }
        };
        if data.len() != usize_ as usize {
            return Err(member(format!(
                "{} bytes where the directory says {usize_}",
                data.len()
            )));
        }
        let array = parse_npy(&data).map_err(member)?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_owned();
        out.push((key, array));
    }
    Ok(out)
}

/// Read the `.npz` file at `path`; errors name the file (and the member).
pub fn read_npz(path: &Path) -> Result<Vec<(String, NpyArray)>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_npz(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An `.npy` of `version` with `header` (padded as numpy pads it) and `data`.
    fn npy(version: u8, header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_owned();
        let pre = if version == 1 { 10 } else { 12 };
        while !(pre + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut out = b"\x93NUMPY".to_vec();
        out.extend([version, 0]);
        if version == 1 {
            out.extend((h.len() as u16).to_le_bytes());
        } else {
            out.extend((h.len() as u32).to_le_bytes());
        }
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn npy_v1_and_v2_headers_and_the_four_types() {
        let f: Vec<u8> = [1.5f32, -2.0, 3.25, 0.0, 7.0, 8.0]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let h = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        for v in [1, 2, 3] {
            let a = parse_npy(&npy(v, h, &f)).unwrap();
            assert_eq!(a.shape, [2, 3]);
            assert_eq!(a.data, NpyData::F32(vec![1.5, -2.0, 3.25, 0.0, 7.0, 8.0]));
        }
        let d: Vec<u8> = [1e300f64, -0.5]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = parse_npy(&npy(
            1,
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }",
            &d,
        ))
        .unwrap();
        assert_eq!(
            (a.shape, a.data),
            (vec![2], NpyData::F64(vec![1e300, -0.5]))
        );
        let l: Vec<u8> = [i64::MIN, 7].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = parse_npy(&npy(
            1,
            "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }",
            &l,
        ))
        .unwrap();
        assert_eq!(
            (a.shape, a.data),
            (vec![1, 2], NpyData::I64(vec![i64::MIN, 7]))
        );
        let i: Vec<u8> = [-3i32].iter().flat_map(|x| x.to_le_bytes()).collect();
        let a = parse_npy(&npy(
            2,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (), }",
            &i,
        ))
        .unwrap();
        assert_eq!((a.shape, a.data), (vec![], NpyData::I32(vec![-3])));
    }

    #[test]
    fn npy_refusals_say_why() {
        let f = [0u8; 8];
        let e = |h: &str, d: &[u8]| parse_npy(&npy(1, h, d)).unwrap_err();
        assert!(
            e(
                "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",
                &f
            )
            .contains("Fortran order")
        );
        assert!(
            e(
                "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
                &f
            )
            .contains("big-endian")
        );
        assert!(
            e(
                "{'descr': '<f2', 'fortran_order': False, 'shape': (4,), }",
                &f
            )
            .contains("not supported")
        );
        assert!(
            e(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
                &f
            )
            .contains("needs 12 data bytes, the file has 8")
        );
        assert!(parse_npy(b"PK\x03\x04").unwrap_err().contains("magic"));
        assert!(
            parse_npy(b"\x93NUMPY\x01\x00\xff\x00{")
                .unwrap_err()
                .contains("truncated")
        );
    }

    #[test]
    fn npz_refuses_what_is_not_a_zip() {
        assert!(
            parse_npz(b"not a zip at all")
                .unwrap_err()
                .contains("not a zip")
        );
        assert!(parse_npz(&[]).unwrap_err().contains("not a zip"));
    }
}
