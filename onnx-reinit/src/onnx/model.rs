//! [`LoadedModel`]: a memory-mapped ONNX file, its payload-free skeleton, and where every
//! initializer's data lives.
//!
//! Opening a model never copies or decodes tensor payloads: the file is memory-mapped, the
//! skeleton is decoded with prost (which skips the payload fields by length), the wire scanner
//! records payload byte ranges, and the two views are cross-checked. Every initializer is then
//! validated (dims, dtype, payload length, external location: [`crate::onnx::storage`]), so
//! that later stages can index payloads without further checks. Both passes over the file drop
//! the pages they have moved past (`residency`), so opening a big model keeps a small resident
//! set.

use std::fs::File;
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::Error;
use crate::onnx::fault::Guard;
use crate::onnx::residency::{Unmapper, UnmappingBuf, unmap};
use crate::onnx::scan::{self, Scan};
use crate::onnx::skeleton;
use crate::onnx::storage::{ExternalError, external_storage, inline_storage};

pub use crate::onnx::dtype::DType;
pub use crate::onnx::scan::Segment;
use crate::onnx::shared::Interner;
pub use crate::onnx::shared::{SharedDims, SharedStr};
pub use crate::onnx::storage::{ExternalData, Storage};

/// Number of elements of a tensor with these dims: the product, `1` for a scalar (no dims).
/// `Err` names the problem for negative dims or a product that overflows `u64`.
pub fn numel(dims: &[i64]) -> Result<u64, String> {
    dims.iter().try_fold(1u64, |acc, &d| {
        let d = u64::try_from(d).map_err(|_| format!("negative dimension {d} in dims {dims:?}"))?;
        acc.checked_mul(d)
            .ok_or_else(|| format!("the product of dims {dims:?} overflows 64 bits"))
    })
}

/// What kind of file `meta` describes, for messages: `"regular file"`, `"folder"`, `"FIFO"`,
/// `"character device"`, `"block device"`, `"socket"`, `"symlink"` or `"special file"`.
pub(crate) fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_file() {
        "regular file"
    } else if t.is_dir() {
        "folder"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "special file"
    }
}

/// Opens `path` for reading if it is a regular file, refusing anything else with an error
/// naming what it is.
///
/// The open is non-blocking: opening a FIFO for reading blocks until a writer appears (forever,
/// and before any type check could run), and a device's open can block or have side effects
/// (a tape rewinds). `O_NONBLOCK` makes the open return at once; the type is then checked on the
/// descriptor itself (no race with a rename between a `stat` and the `open`). On a regular file
/// the flag changes nothing (regular-file reads never block), so the descriptor is used as is.
pub(crate) fn open_regular(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(format!(
            "it is a {}, not a regular file",
            file_kind(&meta)
        )));
    }
    Ok(file)
}

/// One initializer, in the enumeration order of [`crate::onnx::scan`] (graphs in pre-order, then file
/// order within a graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorEntry {
    /// Index of the graph in [`LoadedModel::graphs`] (pre-order), whose `path` is `""` for
    /// the main graph, e.g. `"/If_0.then_branch"` for a nested one. 32 bits: the entry is held
    /// per tensor for the whole run. (Its position among the graph's initializers is its index
    /// in [`LoadedModel::tensors`] minus the graph's `tensors.start`.)
    pub graph_index: u32,
    /// `TensorProto.name` (shared with the analysis and the report, see
    /// [`crate::onnx::shared`]).
    pub name: SharedStr,
    /// `TensorProto.dims` (validated non-negative, product fits in `u64`; shared like `name`).
    pub dims: SharedDims,
    /// `TensorProto.data_type` code.
    pub data_type: i32,
    /// Where the values are.
    pub storage: Storage,
    /// Where the `TensorProto` body starts in the file, and its length (32 bits: a protobuf
    /// message is at most 2 GiB, and a longer one is refused at load): see [`Self::body`].
    body_start: usize,
    body_len: u32,
    /// Length of the length varint in front of the body.
    prefix_len: u8,
}

impl TensorEntry {
    /// The element type.
    pub fn dtype(&self) -> DType {
        DType::from_onnx(self.data_type)
    }

    /// Number of elements: the product of the dims (validated at load: no overflow, no
    /// negative dims), computed rather than held, as the entry is held per tensor.
    pub fn numel(&self) -> u64 {
        self.dims.iter().map(|&d| d as u64).product()
    }

    /// Byte offset of the `TensorProto` body in the file, for error messages.
    pub(crate) fn offset(&self) -> usize {
        self.body_start
    }

    /// The `TensorProto` body in the file: for error messages, and the tensor's frame in the
    /// rewrite's re-framing (see [`LoadedModel::frame`]).
    pub(crate) fn body(&self) -> Range<usize> {
        self.body_start..self.body_start + self.body_len as usize
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

/// What the model parsed into, before it is put together with its mapping.
struct Parts {
    dir: PathBuf,
    skeleton: skeleton::Model,
    scan: Scan,
    graphs: Vec<GraphInfo>,
    tensors: Vec<TensorEntry>,
}

/// A file's size, modification and change times: what [`LoadedModel::check_unchanged`] and the
/// rewrite's commit point compare to tell that a file was rewritten under them. The change time
/// cannot be set by the writer (`touch` cannot hide a rewrite) and moves on any write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    pub(crate) fn of(meta: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// `Err` says what differs between this stamp and `now`'s.
    pub(crate) fn check(&self, now: &std::fs::Metadata) -> Result<(), String> {
        let now = Stamp::of(now);
        if now.len != self.len {
            Err(format!(
                "its size changed from {} to {} bytes while it was being read",
                self.len, now.len
            ))
        } else if now != *self {
            Err("it was modified while it was being read".into())
        } else {
            Ok(())
        }
    }
}

/// An opened model: the mapped bytes, the skeleton, and the validated initializer table.
///
/// Holds the input file open and mapped. Another process may truncate or rewrite the file while
/// it is mapped: a read past the new end reads zeros instead of crashing the process (see
/// `onnx::fault`), and [`Self::check_unchanged`] reports the change; every reader of this crate
/// calls it before trusting what it read.
#[derive(Debug)]
pub struct LoadedModel {
    path: PathBuf,
    dir: PathBuf,
    pub(crate) file: File,
    /// The file's size and times when it was mapped.
    stamp: Stamp,
    /// Declared before `map`: unregistered before the mapping is unmapped.
    guard: Guard,
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
        let file = open_regular(&path).map_err(|e| Error::io(&path, "open the model", e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(&path, "read the model's metadata", e))?;
        // SAFETY: the mapping is read-only and private to this process; the file is a regular
        // file we keep open. Another process truncating it under the mapping makes reads past
        // the new end fault: `Guard` (registered next, unregistered before the unmap) turns
        // that fault into zero pages and an error, see `onnx::fault`.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| Error::io(&path, "map the model", e))?;
        let guard = Guard::register(map.as_ptr(), map.len());
        let stamp = Stamp::of(&meta);
        let loaded = LoadedModel {
            path,
            dir: PathBuf::new(),
            file,
            stamp,
            guard,
            map,
            skeleton: skeleton::Model::default(),
            scan: Scan::default(),
            graphs: Vec::new(),
            tensors: Vec::new(),
        };
        match Self::parse(&loaded.path, &loaded.map, &meta) {
            Ok(parts) => {
                // Bytes read after a truncation are zeros: what was parsed cannot be trusted.
                loaded.check_unchanged()?;
                Ok(LoadedModel {
                    dir: parts.dir,
                    skeleton: parts.skeleton,
                    scan: parts.scan,
                    graphs: parts.graphs,
                    tensors: parts.tensors,
                    ..loaded
                })
            }
            // A model that changed while it was read is reported as such, not as the malformed
            // bytes the change left.
            Err(e) => Err(loaded.check_unchanged().err().unwrap_or(e)),
        }
    }

    /// The scan, skeleton and validated tables of the mapped model `map` (whose file has
    /// metadata `meta`).
    fn parse(path: &Path, map: &Mmap, meta: &std::fs::Metadata) -> Result<Parts, Error> {
        let malformed = |offset: usize, context: String, what: String| Error::Malformed {
            file: path.to_path_buf(),
            offset: offset as u64,
            context,
            what,
        };
        if map.is_empty() {
            return Err(malformed(0, String::new(), "the file is empty".into()));
        }
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // Each initializer is validated into its entry as soon as it is scanned: a model of
        // millions of them never holds the scanned tensors (~200 bytes each with their names,
        // dims and payload ranges) beside the entries.
        let mut validator = Validator::new(path, &dir, meta);
        let unmapper = Unmapper::new(map);
        let mut scan = scan::scan_each(map, &|offset| unmapper.upto(offset), &mut |t, scan| {
            validator.add(t, scan);
        })
        .map_err(|e| malformed(e.offset, e.context, e.what))?;
        scan.frames.shrink_to_fit();
        if !scan.has_graph {
            return Err(malformed(
                0,
                String::new(),
                "no graph (ModelProto field 7): not an ONNX model".into(),
            ));
        }
        let mut graphs: Vec<GraphInfo> = scan
            .graphs
            .iter()
            .map(|g| GraphInfo {
                path: g.path.clone(),
                depth: g.depth,
                tensors: 0..0,
            })
            .collect();
        // A decode failure or a disagreement with the scanner is reported before a tensor's
        // validation error.
        let tensors = validator.finish(&mut graphs);
        // prost names the field path but not the offset: locate the failure in the wire format.
        let unmapper = Unmapper::new(map);
        // The headers get the entries' shared names and dims below, not copies of their own.
        let decoded = skeleton::decode_without_headers(|| {
            <skeleton::Model as prost::Message>::decode(UnmappingBuf {
                bytes: map,
                pos: 0,
                unmapper: &unmapper,
            })
        });
        unmapper.upto(map.len());
        let mut skeleton = decoded.map_err(|e| match scan::locate_decode_error(map) {
            Some(at) => malformed(at.offset, at.context, at.what),
            None => Error::Decode {
                file: path.to_path_buf(),
                what: e.to_string(),
            },
        })?;
        cross_check(&skeleton, &scan.graphs).map_err(|what| Error::Inconsistent {
            file: path.to_path_buf(),
            what,
        })?;
        let tensors = tensors?;
        let mut next = tensors.iter();
        for_each_graph_mut(skeleton.graph.as_mut(), &mut |g| {
            // prost grew the initializer lists by doubling: give back the spare half of a big
            // one (shrinking a large allocation remaps it in place, no copy).
            g.initializer.shrink_to_fit();
            for (h, e) in g.initializer.iter_mut().zip(&mut next) {
                h.name = e.name.clone();
                h.dims = e.dims.clone();
                h.data_type = Some(e.data_type).filter(|&t| t != 0);
            }
        });
        Ok(Parts {
            dir,
            skeleton,
            scan,
            graphs,
            tensors,
        })
    }

    /// Fails with [`Error::InputChanged`] if the model file changed since it was opened: a
    /// read of its mapping faulted (it was truncated under it), or its size, modification or
    /// change time differ from what they were when it was mapped. Whatever was read or copied
    /// from a file that changed is a mix of two versions; the rewrite calls this before its
    /// commit point, `inspect` before reporting.
    pub fn check_unchanged(&self) -> Result<(), Error> {
        let changed = |what: String| Error::InputChanged {
            file: self.path.clone(),
            what,
        };
        if self.guard.faulted() {
            return Err(changed(format!(
                "it was truncated while being read (it was {} bytes)",
                self.map.len()
            )));
        }
        let now = self
            .file
            .metadata()
            .map_err(|e| Error::io(&self.path, "read the model's metadata", e))?;
        self.stamp.check(&now).map_err(changed)
    }

    /// Whether a read of the mapping faulted since it was opened (see [`Self::check_unchanged`]).
    pub(crate) fn faulted(&self) -> bool {
        self.guard.faulted()
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
    /// `residency::Unmapper`): the bytes stay readable (a later read, even of a neighbouring range on
    /// another thread, faults them back from the page cache); only the resident set shrinks.
    /// For readers that go through a big model once.
    pub(crate) fn unmap_pages(&self, range: Range<usize>) {
        const PAGE: usize = 4096;
        let start = range.start - range.start % PAGE;
        let end = range.end.next_multiple_of(PAGE).min(self.map.len());
        unmap(&self.map, start..end);
    }

    /// The frame of initializer `tensor`, as a [`Self::frame`] index: the scan's frames come
    /// first, then one per initializer.
    pub(crate) fn tensor_frame(&self, tensor: usize) -> usize {
        self.scan.frames.len() + tensor
    }

    /// Frame `id`: one of the scan's (graphs, and the nodes and attributes that hold them), or
    /// an initializer's `TensorProto`, rebuilt from its entry (see [`scan::Frame`]).
    pub(crate) fn frame(&self, id: usize) -> scan::Frame {
        match id.checked_sub(self.scan.frames.len()) {
            None => self.scan.frames[id].clone(),
            Some(k) => {
                let t = &self.tensors[k];
                scan::Frame {
                    parent: Some(self.scan.graphs[t.graph_index as usize].frame),
                    kind: scan::FrameKind::Tensor,
                    prefix: t.body_start - usize::from(t.prefix_len)..t.body_start,
                    body: t.body(),
                }
            }
        }
    }

    /// The whole file, memory-mapped.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The payload-free skeleton that analysis reads.
    pub fn skeleton(&self) -> &skeleton::Model {
        &self.skeleton
    }

    /// Frees the skeleton (it is then empty): for a run that has analysed it and goes on to
    /// rewrite, which reads only [`Self::tensors`] and the scan. Its initializer headers repeat
    /// each tensor's name and dims (~150 bytes a tensor), not worth holding through the write.
    /// The freed pages, and those of the analysis's graph index freed before, are then given
    /// back to the system (`malloc_trim`): glibc would keep them resident otherwise.
    pub(crate) fn release_skeleton(&mut self) {
        self.skeleton = skeleton::Model::default();
        give_back_freed_memory();
    }

    /// Every initializer, in the enumeration order (graphs in pre-order, file order within).
    pub fn tensors(&self) -> &[TensorEntry] {
        &self.tensors
    }

    /// The path of the graph that declares `tensor` (one of [`Self::tensors`]): `""` for the
    /// main graph, e.g. `"/If_0.then_branch"` for a nested one.
    pub fn graph_of(&self, tensor: &TensorEntry) -> &str {
        &self.graphs[tensor.graph_index as usize].path
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

/// Validates each scanned initializer (duplicate names, dims, storage) into its entry as the
/// scan finds it (see [`scan::scan_each`]); the first error stops the validation, and is
/// returned by [`Self::finish`].
struct Validator<'a> {
    path: &'a Path,
    dir: &'a Path,
    meta: &'a std::fs::Metadata,
    canonical_dir: Option<PathBuf>,
    /// The entries so far, in file order.
    tensors: Vec<TensorEntry>,
    /// Indices into `tensors` with 32 bits of the hash of their (graph, name): 8 bytes a
    /// tensor where a set of the names would hold a pointer, a length and a graph index. The
    /// hash is kept so that growing the table does not read every name again (a cache miss
    /// each: most of a load's time on a model of millions of tiny initializers).
    names: hashbrown::HashTable<(u32, u32)>,
    hasher: std::collections::hash_map::RandomState,
    /// Shapes seen so far, so that tensors of one shape share one allocation.
    shapes: Interner<SharedDims>,
    error: Option<Error>,
}

/// A 64-bit table hash from 32 bits: the table takes its bucket from the low bits and its
/// one-byte tag from the top ones, so both get all 32.
fn spread(h: u32) -> u64 {
    u64::from(h) << 32 | u64::from(h)
}

impl<'a> Validator<'a> {
    fn new(path: &'a Path, dir: &'a Path, meta: &'a std::fs::Metadata) -> Self {
        Validator {
            path,
            dir,
            meta,
            canonical_dir: None,
            tensors: Vec::new(),
            names: hashbrown::HashTable::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            shapes: Interner::default(),
            error: None,
        }
    }

    fn add(&mut self, t: scan::ScannedTensor, scan: &Scan) {
        if self.error.is_some() {
            return;
        }
        match self.entry(t, scan) {
            Ok(e) => self.tensors.push(e),
            Err(e) => self.error = Some(e),
        }
    }

    fn entry(&mut self, mut t: scan::ScannedTensor, scan: &Scan) -> Result<TensorEntry, Error> {
        let path = self.path;
        let graph_path = &scan.graphs[t.graph].path;
        let offset = t.body.start;
        let invalid = |t: &scan::ScannedTensor, what: String| Error::InvalidTensor {
            file: path.to_path_buf(),
            graph: graph_path.clone(),
            tensor: t.name.clone(),
            offset: offset as u64,
            what,
        };
        // The table's hash is made of 32 bits (stored, and spread over the 64 the table reads).
        let short = self.hasher.hash_one((t.graph, t.name.as_str())) as u32;
        let hash = spread(short);
        let tensors = &self.tensors;
        let same = |&(i, h): &(u32, u32)| {
            let e = &tensors[i as usize];
            h == short && e.graph_index as usize == t.graph && e.name == t.name
        };
        if self.names.find(hash, same).is_some() {
            return Err(invalid(
                &t,
                "duplicate initializer name in the same graph".into(),
            ));
        }
        let n = numel(&t.dims).map_err(|w| invalid(&t, w))?;
        let storage = if t.data_location == Some(1) || !t.external_data.is_empty() {
            let canonical_dir = match &self.canonical_dir {
                Some(d) => d,
                None => self.canonical_dir.insert(
                    self.dir
                        .canonicalize()
                        .map_err(|e| Error::io(self.dir, "resolve the model's folder", e))?,
                ),
            };
            external_storage(&t, n, self.dir, canonical_dir, self.meta).map_err(
                |what| match what {
                    ExternalError::Tensor(w) => invalid(&t, w),
                    ExternalError::External(w) => Error::External {
                        file: path.to_path_buf(),
                        tensor: t.name.clone(),
                        offset: offset as u64,
                        what: w,
                    },
                },
            )?
        } else {
            inline_storage(&t, n).map_err(|w| invalid(&t, w))?
        };
        let narrow = |n: usize| {
            u32::try_from(n).map_err(|_| invalid(&t, "more than 4,294,967,295 initializers".into()))
        };
        let index = narrow(self.tensors.len())?;
        let graph_index = narrow(t.graph)?;
        let body_len = u32::try_from(t.body.len()).map_err(|_| {
            invalid(
                &t,
                format!(
                    "its TensorProto is {} bytes: protobuf messages are at most 2 GiB (a tensor \
                     that big must use external data)",
                    t.body.len()
                ),
            )
        })?;
        self.names
            .insert_unique(hash, (index, short), |&(_, h)| spread(h));
        Ok(TensorEntry {
            graph_index,
            name: std::mem::take(&mut t.name).into(),
            dims: self.shapes.share(t.dims.as_slice()),
            data_type: t.data_type,
            storage,
            body_start: t.body.start,
            body_len,
            // A varint is at most 10 bytes.
            prefix_len: t.prefix.len() as u8,
        })
    }

    /// The entries in the enumeration order (graphs in pre-order, file order within), with
    /// each graph's range of them recorded in `graphs`; or the first validation error.
    fn finish(self, graphs: &mut [GraphInfo]) -> Result<Vec<TensorEntry>, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut tensors = self.tensors;
        drop(self.names);
        // Nested graphs' initializers can come between their enclosing graph's in the file.
        if !tensors.is_sorted_by_key(|t| t.graph_index) {
            tensors.sort_by_key(|t| t.graph_index);
        }
        tensors.shrink_to_fit();
        for (i, t) in tensors.iter().enumerate() {
            let g = &mut graphs[t.graph_index as usize];
            if g.tensors.is_empty() {
                g.tensors = i..i;
            }
            g.tensors.end = i + 1;
        }
        Ok(tensors)
    }
}

/// Returns the allocator's free pages to the system. The skeleton and the analysis's graph index
/// free millions of small blocks scattered among live ones; glibc's `free` gives back only the
/// top of its heap, so without this the pages they held stay resident through the write.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases memory the allocator holds free; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
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

/// Calls `f` on `graph` and every graph nested in it, in the enumeration order of
/// [`crate::onnx::scan`] (see [`preorder`]).
fn for_each_graph_mut(
    graph: Option<&mut skeleton::Graph>,
    f: &mut impl FnMut(&mut skeleton::Graph),
) {
    let Some(g) = graph else { return };
    f(g);
    for n in &mut g.node {
        for a in &mut n.attribute {
            for_each_graph_mut(a.g.as_mut(), f);
            for sub in &mut a.graphs {
                for_each_graph_mut(Some(sub), f);
            }
        }
    }
}

/// Checks that prost's skeleton and the scanner see the same graphs (`scanned`) with the same
/// number of initializers each. The headers' names and dims are then the scanner's (the
/// skeleton is decoded [without its own](skeleton::decode_without_headers)); the fuzz target
/// compares the two decoders' names and dims.
fn cross_check(model: &skeleton::Model, scanned: &[scan::ScannedGraph]) -> Result<(), String> {
    let graphs = preorder(model);
    if graphs.len() != scanned.len() {
        return Err(format!(
            "the decoder sees {} graphs, the scanner {}",
            graphs.len(),
            scanned.len()
        ));
    }
    for (gi, g) in graphs.iter().enumerate() {
        if g.initializer.len() != scanned[gi].initializers {
            return Err(format!(
                "graph {:?}: the decoder sees {} initializers, the scanner {}",
                scanned[gi].path,
                g.initializer.len(),
                scanned[gi].initializers
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a loaded model holds per initializer for the whole run (issue: ≤ 200 bytes per
    /// initializer in all): its entry, and its skeleton header until the skeleton is released.
    #[test]
    fn per_tensor_records_stay_small() {
        assert_eq!(std::mem::size_of::<Storage>(), 24);
        assert!(std::mem::size_of::<TensorEntry>() <= 64);
        assert_eq!(std::mem::size_of::<skeleton::TensorHeader>(), 24);
    }
}
