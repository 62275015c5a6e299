//! [`LoadedModel`]: a memory-mapped ONNX file, its payload-free skeleton, and where every
//! initializer's data lives.
//!
//! Opening a model never copies or decodes tensor payloads: the file is memory-mapped, the
//! skeleton is decoded with prost (which skips the payload fields by length), the wire scanner
//! records payload byte ranges, and the two views are cross-checked. Every initializer is then
//! validated (dims, dtype, payload length, external location), so that later stages can index
//! payloads without further checks.

use std::collections::HashSet;
use std::fs::File;
use std::ops::Range;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::Error;
use crate::onnx::external;
use crate::onnx::scan::{self, Scan, ScannedTensor};
use crate::onnx::skeleton;

pub use crate::onnx::scan::Segment;

/// ONNX `TensorProto.DataType` codes used here.
mod code {
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

/// Number of elements of a tensor with these dims: the product, `1` for a scalar (no dims).
/// `Err` names the problem for negative dims or a product that overflows `u64`.
pub fn numel(dims: &[i64]) -> Result<u64, String> {
    dims.iter().try_fold(1u64, |acc, &d| {
        let d = u64::try_from(d).map_err(|_| format!("negative dimension {d} in dims {dims:?}"))?;
        acc.checked_mul(d)
            .ok_or_else(|| format!("the product of dims {dims:?} overflows 64 bits"))
    })
}

/// Where an initializer's values are.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Storage {
    /// `raw_data`: little-endian values at `bytes` of the model file.
    Raw {
        /// Byte range in [`LoadedModel::bytes`].
        bytes: Range<usize>,
    },
    /// `float_data` (fixed32, little-endian), in one or more segments.
    FloatData {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Vec<Segment>,
    },
    /// `double_data` (fixed64, little-endian).
    DoubleData {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Vec<Segment>,
    },
    /// `int32_data` (varints; for f16/bf16 the 16-bit patterns, zero-extended).
    Int32Data {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Vec<Segment>,
    },
    /// `int64_data` (varints). Never rewritten.
    Int64Data {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Vec<Segment>,
    },
    /// `uint64_data` (varints). Never rewritten.
    Uint64Data {
        /// Packed runs and/or unpacked elements, in element order.
        segments: Vec<Segment>,
    },
    /// `string_data`. Never rewritten.
    StringData {
        /// Number of strings.
        count: u64,
    },
    /// `data_location = EXTERNAL`: little-endian values in a side file.
    External {
        /// The `location` string as written in the model (relative to the model's folder).
        location: String,
        /// The side file, resolved and canonicalized (checked to lie inside the model's folder).
        path: PathBuf,
        /// Byte offset in the side file.
        offset: u64,
        /// Byte length (checked to equal numel × element size).
        length: u64,
        /// The `checksum` entry, if any (a SHA-1 of the data that a rewrite would invalidate).
        checksum: Option<String>,
    },
    /// No payload and no elements.
    Empty,
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
            Storage::External { .. } => "external",
            Storage::Empty => "empty",
        }
    }
}

/// One initializer, in the enumeration order of [`crate::onnx::scan`] (graphs in pre-order, then file
/// order within a graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// The graph's path: `""` for the main graph, e.g. `"/If_0.then_branch"` for a nested one.
    pub graph: String,
    /// Index of the graph in [`LoadedModel::graphs`] (pre-order).
    pub graph_index: usize,
    /// Position among the graph's initializers.
    pub index_in_graph: usize,
    /// `TensorProto.name`.
    pub name: String,
    /// `TensorProto.dims` (validated non-negative, product fits in `u64`).
    pub dims: Vec<i64>,
    /// `TensorProto.data_type` code.
    pub data_type: i32,
    /// Where the values are.
    pub storage: Storage,
    pub(crate) numel: u64,
    /// Index of the tensor's frame in the scan.
    pub(crate) frame: usize,
    /// Offset of the `TensorProto` body, for error messages.
    pub(crate) offset: usize,
}

impl TensorEntry {
    /// The element type.
    pub fn dtype(&self) -> DType {
        DType::from_onnx(self.data_type)
    }

    /// Number of elements (validated at load: no overflow, no negative dims).
    pub fn numel(&self) -> u64 {
        self.numel
    }
}

/// A graph of the model, in pre-order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphInfo {
    /// The graph's path (see [`crate::onnx::scan`]).
    pub path: String,
    /// Nesting depth (main graph 0).
    pub depth: usize,
    /// Indices into [`LoadedModel::tensors`] of the graph's initializers.
    pub tensors: Range<usize>,
}

/// An opened model: the mapped bytes, the skeleton, and the validated initializer table.
///
/// Holds the input file open and mapped; the mapping assumes nobody truncates the file while it
/// is open (a truncation under a live mapping is a fault no library can turn into an error).
#[derive(Debug)]
pub struct LoadedModel {
    path: PathBuf,
    dir: PathBuf,
    pub(crate) file: File,
    map: Mmap,
    skeleton: skeleton::Model,
    pub(crate) scan: Scan,
    graphs: Vec<GraphInfo>,
    tensors: Vec<TensorEntry>,
}

impl LoadedModel {
    /// Opens, maps, scans, decodes and validates the model at `path`.
    ///
    /// Fails with a message naming the file (and tensor, and byte offset where relevant) if the
    /// file cannot be read, is not a well-formed ONNX protobuf, its initializers contradict
    /// themselves (negative or overflowing dims, payload length ≠ numel × size, payload in several
    /// places or both inline and external, duplicate names in one graph), or external data is
    /// refused (see [`crate::onnx::external`]). Never panics.
    pub fn open(path: impl AsRef<Path>) -> Result<LoadedModel, Error> {
        let path = path.as_ref().to_path_buf();
        let file = File::open(&path).map_err(|e| Error::io(&path, "open the model", e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(&path, "read the model's metadata", e))?;
        if !meta.is_file() {
            return Err(Error::io(
                &path,
                "read the model",
                std::io::Error::other("not a regular file"),
            ));
        }
        // SAFETY: the mapping is read-only and private to this process; the file is a regular
        // file we keep open. The remaining hazard (another process truncating the file while it
        // is mapped) is documented on `LoadedModel`.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, "map the model", e))?;
        let malformed = |offset: usize, context: String, what: String| Error::Malformed {
            file: path.clone(),
            offset: offset as u64,
            context,
            what,
        };
        if map.is_empty() {
            return Err(malformed(0, String::new(), "the file is empty".into()));
        }
        let unmapper = Unmapper::new(&map);
        let scan = scan::scan_with(&map, &|done| unmapper.upto(done))
            .map_err(|e| malformed(e.offset, e.context, e.what))?;
        if !scan.has_graph {
            return Err(malformed(
                0,
                String::new(),
                "no graph (ModelProto field 7): not an ONNX model".into(),
            ));
        }
        // prost names the field path but not the offset: locate the failure in the wire format.
        let unmapper = Unmapper::new(&map);
        let decoded = <skeleton::Model as prost::Message>::decode(UnmappingBuf {
            bytes: &map,
            pos: 0,
            unmapper: &unmapper,
        });
        unmapper.upto(map.len());
        let skeleton = decoded.map_err(|e| match scan::locate_decode_error(&map) {
            Some(at) => malformed(at.offset, at.context, at.what),
            None => Error::Decode {
                file: path.clone(),
                what: e.to_string(),
            },
        })?;
        cross_check(&skeleton, &scan).map_err(|what| Error::Inconsistent {
            file: path.clone(),
            what,
        })?;

        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut graphs: Vec<GraphInfo> = scan
            .graphs
            .iter()
            .map(|g| GraphInfo {
                path: g.path.clone(),
                depth: g.depth,
                tensors: 0..0,
            })
            .collect();
        let mut tensors = Vec::with_capacity(scan.tensors.len());
        let mut canonical_dir = None;
        let mut names: HashSet<(usize, &str)> = HashSet::new();
        for (i, t) in scan.tensors.iter().enumerate() {
            let graph_path = &scan.graphs[t.graph].path;
            let invalid = |what: String| Error::InvalidTensor {
                file: path.clone(),
                graph: graph_path.clone(),
                tensor: t.name.clone(),
                offset: scan.frames[t.frame].body.start as u64,
                what,
            };
            if !names.insert((t.graph, t.name.as_str())) {
                return Err(invalid(
                    "duplicate initializer name in the same graph".into(),
                ));
            }
            let n = numel(&t.dims).map_err(invalid)?;
            let storage = if t.data_location == Some(1) || !t.external_data.is_empty() {
                let canonical_dir = match &canonical_dir {
                    Some(d) => d,
                    None => canonical_dir.insert(
                        dir.canonicalize()
                            .map_err(|e| Error::io(&dir, "resolve the model's folder", e))?,
                    ),
                };
                external_storage(t, n, &dir, canonical_dir, &meta).map_err(|what| match what {
                    ExtErr::Tensor(w) => invalid(w),
                    ExtErr::External(w) => Error::External {
                        file: path.clone(),
                        tensor: t.name.clone(),
                        offset: scan.frames[t.frame].body.start as u64,
                        what: w,
                    },
                })?
            } else {
                inline_storage(t, n).map_err(invalid)?
            };
            let g = &mut graphs[t.graph];
            if g.tensors.is_empty() {
                g.tensors = i..i;
            }
            g.tensors.end = i + 1;
            tensors.push(TensorEntry {
                graph: graph_path.clone(),
                graph_index: t.graph,
                index_in_graph: t.index_in_graph,
                name: t.name.clone(),
                dims: t.dims.clone(),
                data_type: t.data_type,
                storage,
                numel: n,
                frame: t.frame,
                offset: scan.frames[t.frame].body.start,
            });
        }
        Ok(LoadedModel {
            path,
            dir,
            file,
            map,
            skeleton,
            scan,
            graphs,
            tensors,
        })
    }

    /// The path the model was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The model's folder (external data locations are relative to it).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Removes the pages that hold `range` of the file from this process's mapping (see
    /// `Unmapper`): the bytes stay readable (a later read, even of a neighbouring range on
    /// another thread, faults them back from the page cache); only the resident set shrinks.
    /// For readers that go through a big model once.
    pub(crate) fn unmap_pages(&self, range: Range<usize>) {
        const PAGE: usize = 4096;
        let start = range.start - range.start % PAGE;
        let end = range.end.next_multiple_of(PAGE).min(self.map.len());
        unmap(&self.map, start..end);
    }

    /// The whole file, memory-mapped.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The payload-free skeleton that analysis reads.
    pub fn skeleton(&self) -> &skeleton::Model {
        &self.skeleton
    }

    /// Every initializer, in the enumeration order (graphs in pre-order, file order within).
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// Graphs in pre-order; `graphs()[0]` is the main graph.
    pub fn graphs(&self) -> &[GraphInfo] {
        &self.graphs
    }

    /// The skeleton's graphs in the same pre-order: `skeleton_graphs()[i]` is the graph described
    /// by `graphs()[i]`, and `tensors()[k]` is initializer `index_in_graph` of
    /// `skeleton_graphs()[tensors()[k].graph_index]` (checked when the model was opened).
    pub fn skeleton_graphs(&self) -> Vec<&skeleton::Graph> {
        preorder(&self.skeleton)
    }

    /// Number of `ModelProto.training_info` entries; their graphs are not scanned and never
    /// modified.
    pub fn training_info_count(&self) -> usize {
        self.scan.training_info
    }

    /// The index of the initializer called `name` in the graph with path `graph`.
    pub fn find_tensor(&self, graph: &str, name: &str) -> Option<usize> {
        let g = self.graphs.iter().find(|g| g.path == graph)?;
        g.tensors.clone().find(|&i| self.tensors[i].name == name)
    }

    pub(crate) fn tensor_checked(&self, index: usize) -> Result<&TensorEntry, Error> {
        self.tensors.get(index).ok_or_else(|| Error::NoSuchTensor {
            file: self.path.clone(),
            what: format!("#{index} ({} tensors)", self.tensors.len()),
        })
    }
}

/// The skeleton's graphs in the enumeration order of [`crate::onnx::scan`] (pre-order: a graph, then
/// for each node and attribute in order, the attribute's `g` then its `graphs`).
fn preorder(model: &skeleton::Model) -> Vec<&skeleton::Graph> {
    fn walk<'a>(g: &'a skeleton::Graph, out: &mut Vec<&'a skeleton::Graph>) {
        out.push(g);
        for n in &g.node {
            for a in &n.attribute {
                if let Some(sub) = &a.g {
                    walk(sub, out);
                }
                for sub in &a.graphs {
                    walk(sub, out);
                }
            }
        }
    }
    let mut graphs = Vec::new();
    if let Some(g) = &model.graph {
        walk(g, &mut graphs);
    }
    graphs
}

/// Checks that prost's skeleton and the scanner see the same graphs and initializers.
fn cross_check(model: &skeleton::Model, scan: &Scan) -> Result<(), String> {
    let graphs = preorder(model);
    if graphs.len() != scan.graphs.len() {
        return Err(format!(
            "the decoder sees {} graphs, the scanner {}",
            graphs.len(),
            scan.graphs.len()
        ));
    }
    let mut tensors = scan.tensors.iter();
    for (gi, g) in graphs.iter().enumerate() {
        if g.initializer.len() != scan.graphs[gi].initializers {
            return Err(format!(
                "graph {:?}: the decoder sees {} initializers, the scanner {}",
                scan.graphs[gi].path,
                g.initializer.len(),
                scan.graphs[gi].initializers
            ));
        }
        for h in &g.initializer {
            let Some(t) = tensors.next() else {
                return Err("the scanner found fewer initializers".into());
            };
            let name = h.name.as_deref().unwrap_or("");
            if t.graph != gi || t.name != name || t.dims != h.dims {
                return Err(format!(
                    "graph {:?}: initializer {name:?} {:?} decoded, {:?} {:?} scanned",
                    scan.graphs[gi].path, h.dims, t.name, t.dims
                ));
            }
        }
    }
    Ok(())
}

/// Validates an inline tensor and classifies its payload.
fn inline_storage(t: &ScannedTensor, n: u64) -> Result<Storage, String> {
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
    let dname = DType::from_onnx(dt).onnx_name();
    if present.len() > 1 {
        return Err(format!("payload in several fields: {}", present.join(", ")));
    }
    let Some(&field) = present.first() else {
        return if n == 0 {
            Ok(Storage::Empty)
        } else {
            Err(format!("no payload for {n} elements"))
        };
    };
    if dt == code::UNDEFINED {
        return Err(format!("{field} present but data_type is UNDEFINED"));
    }
    let known = dt <= code::FLOAT8E8M0;
    let count = |segs: &[Segment]| segs.iter().map(|s| s.elements).sum::<u64>();
    // Expected element count in the typed field, or None when the field cannot hold the type.
    let expect = |ok: bool, per: u64| ok.then(|| n.checked_mul(per));
    let check = |found: u64, expected: Option<Option<u64>>, unit: &str| -> Result<(), String> {
        match expected {
            // Unknown (newer) type codes: accept without a length check.
            _ if !known => Ok(()),
            None => Err(format!("{field} cannot hold data_type {dname}")),
            Some(None) => Err(format!("{n} elements of {dname} overflow")),
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
            if dt == code::STRING {
                return Err("raw_data cannot hold STRING tensors".into());
            }
            check(bytes.len() as u64, Some(raw_byte_len(dt, n)), "bytes")?;
            Storage::Raw { bytes }
        }
        "float_data" => {
            let per = match dt {
                code::FLOAT => Some(1),
                code::COMPLEX64 => Some(2),
                _ => None,
            };
            check(
                count(&t.float_data),
                per.map(|p| n.checked_mul(p)),
                "values",
            )?;
            Storage::FloatData {
                segments: t.float_data.clone(),
            }
        }
        "double_data" => {
            let per = match dt {
                code::DOUBLE => Some(1),
                code::COMPLEX128 => Some(2),
                _ => None,
            };
            check(
                count(&t.double_data),
                per.map(|p| n.checked_mul(p)),
                "values",
            )?;
            Storage::DoubleData {
                segments: t.double_data.clone(),
            }
        }
        "int32_data" => {
            let expected = match dt {
                code::INT32
                | code::INT16
                | code::INT8
                | code::UINT16
                | code::UINT8
                | code::BOOL
                | code::FLOAT16
                | code::BFLOAT16
                | code::FLOAT8E8M0 => Some(Some(n)),
                c if code::FLOAT8.contains(&c) => Some(Some(n)),
                c if code::FOUR_BIT.contains(&c) => Some(Some(n.div_ceil(2))),
                _ => None,
            };
            check(count(&t.int32_data), expected, "values")?;
            Storage::Int32Data {
                segments: t.int32_data.clone(),
            }
        }
        "int64_data" => {
            check(count(&t.int64_data), expect(dt == code::INT64, 1), "values")?;
            Storage::Int64Data {
                segments: t.int64_data.clone(),
            }
        }
        "uint64_data" => {
            check(
                count(&t.uint64_data),
                expect(dt == code::UINT32 || dt == code::UINT64, 1),
                "values",
            )?;
            Storage::Uint64Data {
                segments: t.uint64_data.clone(),
            }
        }
        _ => {
            check(t.string_data, expect(dt == code::STRING, 1), "strings")?;
            Storage::StringData {
                count: t.string_data,
            }
        }
    })
}

enum ExtErr {
    /// The tensor's header is inconsistent (reported as an invalid tensor).
    Tensor(String),
    /// The external reference is refused.
    External(String),
}

/// Validates an external tensor: no inline payload, a confined location, a range inside the side
/// file whose length matches the dims.
fn external_storage(
    t: &ScannedTensor,
    n: u64,
    dir: &Path,
    canonical_dir: &Path,
    model_meta: &std::fs::Metadata,
) -> Result<Storage, ExtErr> {
    if t.data_location != Some(1) {
        return Err(ExtErr::Tensor(
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
        return Err(ExtErr::Tensor(
            "payload both inline and external (data_location = EXTERNAL)".into(),
        ));
    }
    if t.has_segment {
        return Err(ExtErr::Tensor(
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
        return Err(ExtErr::External("no `location` entry".into()));
    };
    let parse = |key: &str, v: Option<&str>| -> Result<Option<u64>, ExtErr> {
        v.map(|s| {
            s.trim()
                .parse::<u64>()
                .map_err(|_| ExtErr::External(format!("{key} {s:?} is not a non-negative integer")))
        })
        .transpose()
    };
    let offset = parse("offset", offset)?.unwrap_or(0);
    let expected = raw_byte_len(t.data_type, n);
    // A fixed-width type whose byte size overflows: no `length` can match it (and accepting the
    // given one would let 16 bytes stand for 2^62 elements).
    if expected.is_none() && raw_byte_len(t.data_type, 1).is_some() {
        return Err(ExtErr::Tensor(format!(
            "dims {:?} of {} need more than 2^64 bytes (overflow)",
            t.dims,
            DType::from_onnx(t.data_type).onnx_name()
        )));
    }
    let length = match (parse("length", length)?, expected) {
        (Some(l), Some(e)) if l != e => {
            return Err(ExtErr::External(format!(
                "length {l} but dims {:?} of {} need {e} bytes",
                t.dims,
                DType::from_onnx(t.data_type).onnx_name()
            )));
        }
        (Some(l), _) => l,
        (None, Some(e)) => e,
        (None, None) => {
            return Err(ExtErr::External(format!(
                "no length and data_type {} has no fixed width",
                DType::from_onnx(t.data_type).onnx_name()
            )));
        }
    };
    let path =
        external::resolve_location(dir, canonical_dir, &location).map_err(ExtErr::External)?;
    let side_meta =
        std::fs::metadata(&path).map_err(|e| ExtErr::External(format!("{location:?}: {e}")))?;
    // The model's own bytes are no side file: "patching" them would overwrite its structure,
    // and the rewrite would write the model twice.
    if side_meta.dev() == model_meta.dev() && side_meta.ino() == model_meta.ino() {
        return Err(ExtErr::External(format!(
            "location {location:?} is the model file itself"
        )));
    }
    let file_len = side_meta.len();
    let end = offset.checked_add(length);
    if end.is_none_or(|end| end > file_len) {
        return Err(ExtErr::External(format!(
            "offset {offset} + length {length} runs past the end of {location:?} ({file_len} \
             bytes)"
        )));
    }
    Ok(Storage::External {
        location,
        path,
        offset,
        length,
        checksum,
    })
}

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
struct Unmapper<'a> {
    map: &'a Mmap,
    /// Bytes `[0, released)` have been dropped.
    released: std::cell::Cell<usize>,
}

impl<'a> Unmapper<'a> {
    /// Drop in steps of this many bytes: the largest page-cache folio a read can map (2 MiB),
    /// so each call is one `madvise` over whole folios.
    const STEP: usize = 2 << 20;

    fn new(map: &'a Mmap) -> Self {
        Unmapper {
            map,
            released: std::cell::Cell::new(0),
        }
    }

    /// The reader has moved past `offset`: drop whole steps before it (everything at the end).
    fn upto(&self, offset: usize) {
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
fn unmap(map: &Mmap, range: Range<usize>) {
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
struct UnmappingBuf<'a> {
    bytes: &'a [u8],
    pos: usize,
    unmapper: &'a Unmapper<'a>,
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
