//! The wire-format scanner: where every initializer's payload lives, without decoding it.
//!
//! [`scan`] walks `ModelProto.graph` → `GraphProto` (`node` → `NodeProto.attribute` →
//! `AttributeProto.g` / `graphs`, recursively) and records, for every initializer `TensorProto`,
//! its header fields and the byte ranges of its payload fields. It also records the length
//! prefixes of every enclosing message ([`Frame`]), so that a payload whose encoded length changes
//! (`int32_data` holding f16/bf16 bit patterns as varints) can be re-framed without re-encoding
//! anything else.
//!
//! # Enumeration order (the contract shared with analysis)
//! Graphs are numbered in pre-order: the main graph first (index 0), then, for each node in file
//! order and each of its attributes in file order, the attribute's `g` and then each entry of its
//! `graphs`, each followed recursively by its own nested graphs. [`Scan::tensors`] lists the
//! initializers of graph 0 in file order, then those of graph 1, and so on.
//!
//! Graph paths: the main graph is `""`; a nested graph is
//! `{parent path}/{node name, or #<node index> if the name is empty}.{attribute name}`, with
//! `[i]` appended for the i-th entry of an attribute's `graphs`.
//!
//! `ModelProto.training_info` (field 20) graphs are not walked: they are counted in
//! [`Scan::training_info`] and their bytes are left alone. Functions (field 25) are ignored.
//!
//! The scanner only checks the wire format of the messages it walks (and never panics on any
//! input); semantic checks (dims against payload length, storage rules) are
//! [`crate::onnx::storage`]'s job.

use std::fmt;
use std::ops::Range;

use crate::onnx::skeleton::{FieldKind, SkeletonMessage};
use crate::onnx::wire::{self, Field, Reader, Value, WireError};

/// Deepest graph nesting accepted (the main graph has depth 0).
///
/// Bounds the scanner's recursion. It is kept well below what prost's decoder accepts (a message
/// nesting limit of 100, and each graph level costs three messages: graph, node, attribute, plus
/// up to five more for value-info shapes), so that a model the scanner accepts never fails the
/// skeleton decode for depth alone.
pub const MAX_GRAPH_DEPTH: usize = 24;

/// A malformed model: what is wrong, where (absolute byte offset), and in which graph/tensor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// Absolute byte offset in the model file.
    pub offset: usize,
    /// Where in the model structure, e.g. `graph "" initializer #3 "fc.weight"`; may be empty.
    pub context: String,
    /// What is wrong.
    pub what: String,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}", self.offset)?;
        if !self.context.is_empty() {
            write!(f, " ({})", self.context)?;
        }
        write!(f, ": {}", self.what)
    }
}

impl std::error::Error for ScanError {}

impl ScanError {
    fn wire(e: &WireError, context: impl Into<String>) -> Self {
        // The offset is part of WireError's Display; keep only the description here.
        let text = e.to_string();
        let what = text
            .split_once(": ")
            .map_or(text.as_str(), |(_, rest)| rest)
            .to_string();
        ScanError {
            offset: e.offset,
            context: context.into(),
            what,
        }
    }
}

/// What kind of message a [`Frame`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// A `GraphProto` (in `ModelProto.graph` or `AttributeProto.g`/`graphs`).
    Graph,
    /// A `NodeProto` that (transitively) holds a graph attribute.
    Node,
    /// An `AttributeProto` holding a graph.
    Attribute,
    /// An initializer `TensorProto`.
    Tensor,
}

/// A length-delimited message on the path from `ModelProto` to an initializer.
///
/// Only messages on such paths are recorded (nodes and attributes without graphs are not), so
/// the frame list stays proportional to the number of graphs. An initializer's own
/// `TensorProto` is a frame too ([`FrameKind::Tensor`], whose parent is its graph's frame), but
/// its prefix and body are kept in the [`ScannedTensor`] itself, not in [`Scan::frames`]: a
/// model of millions of initializers does not hold a frame for each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The enclosing frame; `None` for the main graph (its parent is the top-level `ModelProto`,
    /// which has no length prefix).
    pub parent: Option<usize>,
    /// What kind of message this is.
    pub kind: FrameKind,
    /// The bytes of the length varint in front of the body.
    pub prefix: Range<usize>,
    /// The message body.
    pub body: Range<usize>,
}

/// A graph, in pre-order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedGraph {
    /// The graph's path (see the module documentation).
    pub path: String,
    /// Nesting depth (main graph 0).
    pub depth: usize,
    /// The graph's [`Frame`].
    pub frame: usize,
    /// Number of initializers.
    pub initializers: usize,
}

/// One occurrence of a repeated numeric payload field: a packed run or a single unpacked element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Whether this is a packed (length-delimited) run; otherwise one unpacked element.
    pub packed: bool,
    /// For a packed run, the bytes of its length varint; empty for an unpacked element.
    pub prefix: Range<usize>,
    /// The element bytes (fixed-width values or varints), without tag or length prefix.
    pub bytes: Range<usize>,
    /// Number of elements in `bytes`.
    pub elements: u64,
}

/// The header and payload locations of one initializer `TensorProto`.
///
/// The fields most tensors leave empty (typed payloads, external data, segments, strings) are a
/// [`ScannedRare`] behind one pointer, allocated by the first write of one of them: a model of
/// millions of `raw_data` tensors holds ~110 bytes per scanned tensor, not ~260. They read and
/// write as this struct's own (`t.float_data`) through `Deref`/`DerefMut`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScannedTensor {
    /// Index into [`Scan::graphs`].
    pub graph: usize,
    /// Position among the graph's initializers (file order).
    pub index_in_graph: usize,
    /// The bytes of the length varint in front of the tensor's body (its frame, see [`Frame`]:
    /// initializers are not in [`Scan::frames`], whose frames enclose them).
    pub prefix: Range<usize>,
    /// The `TensorProto` body.
    pub body: Range<usize>,
    /// `name = 8` (empty when absent).
    pub name: String,
    /// `dims = 1`, packed and unpacked occurrences concatenated.
    pub dims: Vec<i64>,
    /// `data_type = 2` (0 when absent).
    pub data_type: i32,
    /// Every `raw_data = 9` occurrence (normally at most one).
    pub raw_data: Vec<Range<usize>>,
    /// The rest; `None` while all of it is empty.
    rare: Option<Box<ScannedRare>>,
}

/// The fields of a [`ScannedTensor`] that most tensors leave empty, read through it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScannedRare {
    /// `data_location = 14`, when present.
    pub data_location: Option<i32>,
    /// `external_data = 13`: (key, value) pairs in file order.
    pub external_data: Vec<(String, String)>,
    /// `float_data = 4` (fixed32).
    pub float_data: Vec<Segment>,
    /// `int32_data = 5` (varints).
    pub int32_data: Vec<Segment>,
    /// `int64_data = 7` (varints).
    pub int64_data: Vec<Segment>,
    /// `double_data = 10` (fixed64).
    pub double_data: Vec<Segment>,
    /// `uint64_data = 11` (varints).
    pub uint64_data: Vec<Segment>,
    /// Number of `string_data = 6` entries.
    pub string_data: u64,
    /// Whether the tensor has a `segment = 3` (a chunk of a larger tensor).
    pub has_segment: bool,
}

/// The rare fields of a tensor that has none.
static NO_RARE: ScannedRare = ScannedRare {
    data_location: None,
    external_data: Vec::new(),
    float_data: Vec::new(),
    int32_data: Vec::new(),
    int64_data: Vec::new(),
    double_data: Vec::new(),
    uint64_data: Vec::new(),
    string_data: 0,
    has_segment: false,
};

impl std::ops::Deref for ScannedTensor {
    type Target = ScannedRare;
    fn deref(&self) -> &ScannedRare {
        self.rare.as_deref().unwrap_or(&NO_RARE)
    }
}

impl std::ops::DerefMut for ScannedTensor {
    fn deref_mut(&mut self) -> &mut ScannedRare {
        self.rare.get_or_insert_with(Box::default)
    }
}

/// The scanner's result.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scan {
    /// Enclosing messages (see [`Frame`]).
    pub frames: Vec<Frame>,
    /// Graphs in pre-order.
    pub graphs: Vec<ScannedGraph>,
    /// Initializers, ordered by graph index then file order.
    pub tensors: Vec<ScannedTensor>,
    /// Number of `ModelProto.training_info` entries (skipped).
    pub training_info: usize,
    /// Whether `ModelProto.graph` was present.
    pub has_graph: bool,
}

/// Scans a serialized `ModelProto`. Never panics; errors carry the byte offset.
pub fn scan(buf: &[u8]) -> Result<Scan, ScanError> {
    scan_with(buf, &|_| {})
}

/// [`scan`], calling `moved_past(offset)` after each initializer with the offset the scan has moved
/// past. Offsets grow with each call within a graph; the scan never reads the bytes of an
/// initializer it has reported, so a memory-mapped caller can drop those pages from its
/// mapping (the model's loader does, to keep its resident set small on big models).
pub fn scan_with(buf: &[u8], moved_past: &dyn Fn(usize)) -> Result<Scan, ScanError> {
    let mut tensors = Vec::new();
    let mut out = scan_each(buf, moved_past, &mut |t, _| tensors.push(t))?;
    // Pre-order graph numbering with file-order initializers; a graph's initializers may be
    // interleaved with its nodes (and thus with nested graphs) in the file, hence the sort.
    tensors.sort_by_key(|t| t.graph);
    out.tensors = tensors;
    Ok(out)
}

/// [`scan_with`], handing each initializer to `each` as soon as it is scanned, with the scan
/// so far (its graphs and frames), instead of collecting them: the returned scan's `tensors`
/// is empty. For a caller that keeps something smaller per tensor than a [`ScannedTensor`]
/// (the loader validates each into its entry at once).
///
/// The tensors come in file order: a nested graph's initializers can come between those of
/// its enclosing graph, before the enumeration's order (see [`scan_with`]) is restored.
pub fn scan_each(
    buf: &[u8],
    moved_past: &dyn Fn(usize),
    each: &mut dyn FnMut(ScannedTensor, &Scan),
) -> Result<Scan, ScanError> {
    let mut s = Scanner {
        buf,
        scan: Scan::default(),
        moved_past,
        each,
    };
    let mut r = Reader::new(buf);
    while let Some(f) = r
        .next_field()
        .map_err(|e| ScanError::wire(&e, "ModelProto"))?
    {
        match f.number {
            7 => {
                let (prefix, body) = len_parts(&f, "ModelProto.graph")?;
                if s.scan.has_graph {
                    return Err(ScanError {
                        offset: f.start,
                        context: "ModelProto".into(),
                        what: "field `graph` appears twice (would be merged by protobuf; \
                               not supported)"
                            .into(),
                    });
                }
                s.scan.has_graph = true;
                let frame = s.push_frame(None, FrameKind::Graph, prefix, body.clone());
                s.scan_graph(body, frame, "", 0)?;
            }
            20 => s.scan.training_info += 1,
            _ => {}
        }
    }
    Ok(s.scan)
}

fn len_parts(f: &Field, context: &str) -> Result<(Range<usize>, Range<usize>), ScanError> {
    match &f.value {
        Value::Len { prefix, body } => Ok((prefix.clone(), body.clone())),
        _ => Err(ScanError::wire(&f.wrong_type(), context)),
    }
}

/// The walk's state: the model's bytes, what has been found so far, and the caller's
/// progress callback (see [`scan_with`]).
struct Scanner<'a> {
    buf: &'a [u8],
    scan: Scan,
    moved_past: &'a dyn Fn(usize),
    each: &'a mut dyn FnMut(ScannedTensor, &Scan),
}

impl Scanner<'_> {
    fn push_frame(
        &mut self,
        parent: Option<usize>,
        kind: FrameKind,
        prefix: Range<usize>,
        body: Range<usize>,
    ) -> usize {
        self.scan.frames.push(Frame {
            parent,
            kind,
            prefix,
            body,
        });
        self.scan.frames.len() - 1
    }

    fn string(&self, f: &Field, context: &str) -> Result<String, ScanError> {
        let body = f
            .len_body()
            .map_err(|e| ScanError::wire(&e, context.to_string()))?;
        std::str::from_utf8(&self.buf[body.clone()])
            .map(str::to_owned)
            .map_err(|e| ScanError {
                offset: body.start + e.valid_up_to(),
                context: context.to_string(),
                what: format!("field {} is not valid UTF-8", f.number),
            })
    }

    fn scan_graph(
        &mut self,
        body: Range<usize>,
        frame: usize,
        path: &str,
        depth: usize,
    ) -> Result<(), ScanError> {
        let ctx = || format!("graph {path:?}");
        if depth > MAX_GRAPH_DEPTH {
            return Err(ScanError {
                offset: body.start,
                context: ctx(),
                what: format!("graphs nested deeper than {MAX_GRAPH_DEPTH} levels"),
            });
        }
        let graph = self.scan.graphs.len();
        self.scan.graphs.push(ScannedGraph {
            path: path.to_owned(),
            depth,
            frame,
            initializers: 0,
        });
        let mut r = Reader::sub(self.buf, body);
        let mut node_index = 0usize;
        while let Some(f) = r.next_field().map_err(|e| ScanError::wire(&e, ctx()))? {
            match f.number {
                1 => {
                    let (prefix, nbody) = len_parts(&f, &ctx())?;
                    self.scan_node(prefix, nbody, frame, path, node_index, depth)?;
                    node_index += 1;
                }
                5 => {
                    let (prefix, tbody) = len_parts(&f, &ctx())?;
                    let index_in_graph = self.scan.graphs[graph].initializers;
                    let t = self
                        .scan_tensor(prefix, tbody.clone(), graph, index_in_graph)
                        .map_err(|mut e| {
                            let name = lenient_name(self.buf, tbody.clone());
                            e.context = format!(
                                "graph {path:?}, initializer #{index_in_graph}{}",
                                name.map(|n| format!(" {n:?}")).unwrap_or_default()
                            );
                            e
                        })?;
                    self.scan.graphs[graph].initializers += 1;
                    (self.each)(t, &self.scan);
                    (self.moved_past)(tbody.end);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn scan_node(
        &mut self,
        prefix: Range<usize>,
        body: Range<usize>,
        graph_frame: usize,
        graph_path: &str,
        node_index: usize,
        depth: usize,
    ) -> Result<(), ScanError> {
        let ctx = || format!("graph {graph_path:?}, node #{node_index}");
        // First pass: the node's name, which nested graph paths need whatever the field order.
        let mut name = String::new();
        let mut r = Reader::sub(self.buf, body.clone());
        while let Some(f) = r.next_field().map_err(|e| ScanError::wire(&e, ctx()))? {
            if f.number == 3 {
                name = self.string(&f, &ctx())?;
            }
        }
        let label = if name.is_empty() {
            format!("#{node_index}")
        } else {
            name
        };
        // The node frame is kept only if one of its attributes holds a graph: frames are pushed
        // strictly in nesting order, so an unused frame is always the last one and can be popped.
        let node_frame = self.push_frame(Some(graph_frame), FrameKind::Node, prefix, body.clone());
        let mut r = Reader::sub(self.buf, body);
        while let Some(f) = r.next_field().map_err(|e| ScanError::wire(&e, ctx()))? {
            if f.number == 5 {
                let (aprefix, abody) = len_parts(&f, &ctx())?;
                self.scan_attribute(aprefix, abody, node_frame, (graph_path, &label), depth)?;
            }
        }
        if self.scan.frames.len() == node_frame + 1 {
            self.scan.frames.pop();
        }
        Ok(())
    }

    fn scan_attribute(
        &mut self,
        prefix: Range<usize>,
        body: Range<usize>,
        node_frame: usize,
        (graph_path, node_label): (&str, &str),
        depth: usize,
    ) -> Result<(), ScanError> {
        let ctx = || format!("graph {graph_path:?}, node {node_label:?}, attribute");
        let mut name = String::new();
        let mut has_graph = false;
        let mut r = Reader::sub(self.buf, body.clone());
        while let Some(f) = r.next_field().map_err(|e| ScanError::wire(&e, ctx()))? {
            match f.number {
                1 => name = self.string(&f, &ctx())?,
                6 | 11 => {
                    len_parts(&f, &ctx())?;
                    has_graph = true;
                }
                _ => {}
            }
        }
        if !has_graph {
            return Ok(());
        }
        let attr_frame =
            self.push_frame(Some(node_frame), FrameKind::Attribute, prefix, body.clone());
        // Built only here: most attributes hold no graph and need no path.
        let base = format!("{graph_path}/{node_label}.{name}");
        // `g` first, then `graphs`, whatever their order in the file (the enumeration contract).
        let mut seen_g = false;
        let mut r = Reader::sub(self.buf, body.clone());
        while let Some(f) = r.next_field().map_err(|e| ScanError::wire(&e, ctx()))? {
            if f.number == 6 {
                if seen_g {
                    return Err(ScanError {
                        offset: f.start,
                        context: format!("attribute {base:?}"),
                        what: "field `g` appears twice (would be merged by protobuf; not \
                               supported)"
                            .into(),
                    });
                }
                seen_g = true;
                let (gp, gb) = len_parts(&f, &ctx())?;
                let gframe = self.push_frame(Some(attr_frame), FrameKind::Graph, gp, gb.clone());
                self.scan_graph(gb, gframe, &base, depth + 1)?;
            }
        }
        let mut r = Reader::sub(self.buf, body);
        let mut i = 0usize;
        while let Some(f) = r.next_field().map_err(|e| ScanError::wire(&e, ctx()))? {
            if f.number == 11 {
                let (gp, gb) = len_parts(&f, &ctx())?;
                let gframe = self.push_frame(Some(attr_frame), FrameKind::Graph, gp, gb.clone());
                self.scan_graph(gb, gframe, &format!("{base}[{i}]"), depth + 1)?;
                i += 1;
            }
        }
        Ok(())
    }

    fn scan_tensor(
        &self,
        prefix: Range<usize>,
        body: Range<usize>,
        graph: usize,
        index_in_graph: usize,
    ) -> Result<ScannedTensor, ScanError> {
        let mut t = ScannedTensor {
            graph,
            index_in_graph,
            prefix,
            body: body.clone(),
            ..ScannedTensor::default()
        };
        let err = |e: WireError| ScanError::wire(&e, String::new());
        let mut r = Reader::sub(self.buf, body);
        while let Some(f) = r.next_field().map_err(err)? {
            match (f.number, &f.value) {
                (1, Value::Varint(v)) => t.dims.push(*v as i64),
                (1, Value::Len { body, .. }) => {
                    let mut dr = Reader::sub(self.buf, body.clone());
                    while !dr.is_at_end() {
                        t.dims.push(dr.read_varint().map_err(err)? as i64);
                    }
                }
                // Protobuf int32 fields are sign-extended varints; truncation is the semantics.
                (2, Value::Varint(v)) => t.data_type = *v as i32,
                (3, Value::Len { .. }) => t.has_segment = true,
                (4, _) => t.float_data.push(Self::fixed_segment(&f, 4)?),
                (10, _) => t.double_data.push(Self::fixed_segment(&f, 8)?),
                (5, _) => t.int32_data.push(self.varint_segment(&f)?),
                (7, _) => t.int64_data.push(self.varint_segment(&f)?),
                (11, _) => t.uint64_data.push(self.varint_segment(&f)?),
                (6, Value::Len { .. }) => t.string_data += 1,
                (8, Value::Len { .. }) => t.name = self.string(&f, "")?,
                (9, Value::Len { body, .. }) => t.raw_data.push(body.clone()),
                (13, Value::Len { body, .. }) => {
                    t.external_data.push(self.string_entry(body.clone())?);
                }
                (14, Value::Varint(v)) => t.data_location = Some(*v as i32),
                // Fields read above, with a wire type their schema does not allow (the
                // numeric payload fields check theirs in `*_segment`; 12 `doc_string` and
                // 16 `metadata_props` are not read).
                (1 | 2 | 3 | 6 | 8 | 9 | 13 | 14, _) => return Err(err(f.wrong_type())),
                _ => {}
            }
        }
        Ok(t)
    }

    /// `float_data`/`double_data`: packed (length-delimited, a whole number of elements) or one
    /// unpacked fixed-width element.
    fn fixed_segment(f: &Field, width: usize) -> Result<Segment, ScanError> {
        match (&f.value, width) {
            (Value::Len { prefix, body }, _) => {
                if body.len() % width != 0 {
                    return Err(ScanError {
                        offset: body.start,
                        context: String::new(),
                        what: format!(
                            "packed field {} has {} bytes, not a multiple of {width}",
                            f.number,
                            body.len()
                        ),
                    });
                }
                Ok(Segment {
                    packed: true,
                    prefix: prefix.clone(),
                    bytes: body.clone(),
                    elements: (body.len() / width) as u64,
                })
            }
            (Value::Fixed32 { at, .. }, 4) | (Value::Fixed64 { at, .. }, 8) => Ok(Segment {
                packed: false,
                prefix: at.start..at.start,
                bytes: at.clone(),
                elements: 1,
            }),
            _ => Err(ScanError::wire(&f.wrong_type(), String::new())),
        }
    }

    /// `int32_data`/`int64_data`/`uint64_data`: packed varints or one unpacked varint.
    fn varint_segment(&self, f: &Field) -> Result<Segment, ScanError> {
        match &f.value {
            Value::Len { prefix, body } => {
                let elements = wire::count_varints(&self.buf[body.clone()], body.start)
                    .map_err(|e| ScanError::wire(&e, String::new()))?;
                Ok(Segment {
                    packed: true,
                    prefix: prefix.clone(),
                    bytes: body.clone(),
                    elements,
                })
            }
            // The varint's own bytes (possibly a non-minimal encoding) follow the tag.
            Value::Varint(_) => Ok(Segment {
                packed: false,
                prefix: f.value_start..f.value_start,
                bytes: f.value_start..f.end,
                elements: 1,
            }),
            _ => Err(ScanError::wire(&f.wrong_type(), String::new())),
        }
    }

    fn string_entry(&self, body: Range<usize>) -> Result<(String, String), ScanError> {
        let mut key = String::new();
        let mut value = String::new();
        let mut r = Reader::sub(self.buf, body);
        while let Some(f) = r
            .next_field()
            .map_err(|e| ScanError::wire(&e, "external_data entry"))?
        {
            match f.number {
                1 => key = self.string(&f, "external_data key")?,
                2 => value = self.string(&f, "external_data value")?,
                _ => {}
            }
        }
        Ok((key, value))
    }
}

/// Best-effort name of a tensor whose scan failed, for the error message only.
fn lenient_name(buf: &[u8], body: Range<usize>) -> Option<String> {
    let mut r = Reader::sub(buf, body);
    while let Ok(Some(f)) = r.next_field() {
        if f.number == 8 {
            let b = f.len_body().ok()?;
            return std::str::from_utf8(&buf[b]).ok().map(str::to_owned);
        }
    }
    None
}

/// Where, in wire-format terms, decoding the payload-free skeleton fails.
///
/// The skeleton is decoded by `prost`, whose errors name the field path but not the byte
/// offset; the scanner only walks the messages on the way to initializers. When prost refuses a
/// model the scanner accepted, this walks the skeleton's whole schema in prost's order with the
/// panic-free [`Reader`] and reports the first field prost would refuse: a wrong wire type, a
/// string that is not UTF-8, a malformed packed run, a length past its message, a varint over
/// 10 bytes. `None` when it finds nothing (the caller then reports prost's own message).
pub fn locate_decode_error(buf: &[u8]) -> Option<ScanError> {
    locate_in(buf, 0..buf.len(), SkeletonMessage::Model, "ModelProto", 0)
}

/// Nesting deeper than prost's recursion limit (100) is reported by prost itself.
const LOCATE_MAX_DEPTH: usize = 100;

fn locate_in(
    buf: &[u8],
    range: Range<usize>,
    msg: SkeletonMessage,
    context: &str,
    depth: usize,
) -> Option<ScanError> {
    if depth > LOCATE_MAX_DEPTH {
        return None;
    }
    let err = |offset: usize, what: String| {
        Some(ScanError {
            offset,
            context: context.to_string(),
            what,
        })
    };
    let end = range.end.min(buf.len());
    let mut r = Reader::sub(buf, range);
    // Occurrences so far of each embedded-message field, to name the one that fails.
    let mut seen: Vec<(u32, usize)> = Vec::new();
    loop {
        let f = match r.next_field() {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            // The reader refuses groups; prost skips a well-formed one in an unknown field.
            Err(WireError {
                offset,
                kind: wire::WireErrorKind::Group { field },
            }) => {
                let (tag, tag_len) = wire::decode_varint(&buf[offset..end], offset).ok()?;
                if tag & 7 == 4 {
                    return err(
                        offset,
                        format!("end-group tag of field {field} without a start"),
                    );
                }
                if msg.field(field).is_some() {
                    return err(
                        offset,
                        format!("field {field} has unexpected wire type group"),
                    );
                }
                match skip_group(buf, offset + tag_len, end, field, depth + 1) {
                    Ok(next) => r = Reader::sub(buf, next..end),
                    Err(e) => {
                        return e.map(|(offset, what)| ScanError {
                            offset,
                            context: context.to_string(),
                            what,
                        });
                    }
                }
                continue;
            }
            Err(e) => return Some(ScanError::wire(&e, context.to_string())),
        };
        let Some(kind) = msg.field(f.number) else {
            continue;
        };
        let wrong = || {
            err(
                f.start,
                format!(
                    "field {} has unexpected wire type {:?}",
                    f.number,
                    f.wire_type()
                ),
            )
        };
        match (kind, &f.value) {
            (FieldKind::Str, Value::Len { body, .. }) => {
                if let Err(e) = std::str::from_utf8(&buf[body.clone()]) {
                    return err(
                        body.start + e.valid_up_to(),
                        format!("field {} is not valid UTF-8", f.number),
                    );
                }
            }
            (FieldKind::Bytes, Value::Len { .. })
            | (FieldKind::Varint | FieldKind::RepeatedVarint, Value::Varint(_))
            | (FieldKind::Fixed32 | FieldKind::RepeatedFixed32, Value::Fixed32 { .. })
            | (FieldKind::RepeatedFixed64, Value::Fixed64 { .. }) => {}
            (FieldKind::RepeatedVarint, Value::Len { body, .. }) => {
                if let Err(e) = wire::count_varints(&buf[body.clone()], body.start) {
                    return Some(ScanError::wire(&e, context.to_string()));
                }
            }
            (FieldKind::RepeatedFixed32 | FieldKind::RepeatedFixed64, Value::Len { body, .. }) => {
                let width = if kind == FieldKind::RepeatedFixed32 {
                    4
                } else {
                    8
                };
                if body.len() % width != 0 {
                    return err(
                        body.start,
                        format!(
                            "packed field {} has {} bytes, not a multiple of {width}",
                            f.number,
                            body.len()
                        ),
                    );
                }
            }
            (FieldKind::Message(sub), Value::Len { body, .. }) => {
                let n = if let Some((_, n)) = seen.iter_mut().find(|(k, _)| *k == f.number) {
                    *n += 1;
                    *n
                } else {
                    seen.push((f.number, 0));
                    0
                };
                let ctx = format!("{context}, {} #{n}", sub.label());
                if let Some(e) = locate_in(buf, body.clone(), sub, &ctx, depth + 1) {
                    return Some(e);
                }
            }
            _ => return wrong(),
        }
    }
}

/// Skips a group's fields from `pos` (just past its start tag) to its end tag, as prost skips
/// an unknown group field; returns the offset after the end tag. `Err(Some((offset, what)))`
/// where prost would fail, `Err(None)` past prost's recursion limit (left to prost's message).
fn skip_group(
    buf: &[u8],
    mut pos: usize,
    end: usize,
    field: u32,
    depth: usize,
) -> Result<usize, Option<(usize, String)>> {
    if depth > LOCATE_MAX_DEPTH {
        return Err(None);
    }
    let varint = |pos: usize| {
        wire::decode_varint(&buf[pos..end], pos)
            .map_err(|e| Some((e.offset, ScanError::wire(&e, String::new()).what)))
    };
    loop {
        if pos >= end {
            return Err(Some((pos, format!("group of field {field} not closed"))));
        }
        let start = pos;
        let (tag, n) = varint(pos)?;
        pos += n;
        let number = tag >> 3;
        if number == 0 || number >= 1 << 29 {
            return Err(Some((
                start,
                format!("invalid field number {number} in a group"),
            )));
        }
        let fixed = |pos: usize, width: usize| {
            if end - pos < width {
                Err(Some((pos, "message truncated".to_string())))
            } else {
                Ok(pos + width)
            }
        };
        pos = match tag & 7 {
            0 => pos + varint(pos)?.1,
            1 => fixed(pos, 8)?,
            2 => {
                let (len, n) = varint(pos)?;
                let body = pos + n;
                if len > (end - body) as u64 {
                    return Err(Some((
                        pos,
                        format!("length {len} runs past the end of the group"),
                    )));
                }
                body + len as usize
            }
            3 => skip_group(buf, pos, end, number as u32, depth + 1)?,
            4 if number == u64::from(field) => return Ok(pos),
            4 => {
                return Err(Some((
                    start,
                    format!("end-group tag of field {number} inside the group of field {field}"),
                )));
            }
            5 => fixed(pos, 4)?,
            w => return Err(Some((start, format!("invalid wire type {w}")))),
        };
    }
}
