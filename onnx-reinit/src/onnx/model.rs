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

use std::collections::HashSet;
use std::fs::File;
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
    /// The graph's path: `""` for the main graph, e.g. `"/If_0.then_branch"` for a nested one
    /// (one allocation per graph, shared by its tensors).
    pub graph: SharedStr,
    /// Index of the graph in [`LoadedModel::graphs`] (pre-order).
    pub graph_index: usize,
    /// Position among the graph's initializers.
    pub index_in_graph: usize,
    /// `TensorProto.name` (shared with the analysis and the report, see
    /// [`crate::onnx::shared`]).
    pub name: SharedStr,
    /// `TensorProto.dims` (validated non-negative, product fits in `u64`; shared like `name`).
    pub dims: SharedDims,
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
        let unmapper = Unmapper::new(map);
        let mut scan = scan::scan_with(map, &|offset| unmapper.upto(offset))
            .map_err(|e| malformed(e.offset, e.context, e.what))?;
        // Grown by doubling while scanning: give back the spare capacity before the skeleton
        // and the entries are allocated next to it (a large allocation shrinks in place).
        scan.tensors.shrink_to_fit();
        scan.frames.shrink_to_fit();
        if !scan.has_graph {
            return Err(malformed(
                0,
                String::new(),
                "no graph (ModelProto field 7): not an ONNX model".into(),
            ));
        }
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
        // The entries are built, and take the scanned names and dims, before the skeleton is
        // decoded: the scanned tensors (~360 bytes each with their payload ranges) are freed
        // first, so that they and the skeleton's headers are never held at once. A decode
        // failure or a disagreement with the scanner is still reported before a tensor's
        // validation error, as when the skeleton was decoded first.
        let validated = validate(path, &dir, meta, &scan, &mut graphs);
        let tensors = match validated {
            Ok(mut tensors) => {
                for (e, t) in tensors.iter_mut().zip(&mut scan.tensors) {
                    e.name = std::mem::take(&mut t.name).into();
                    e.dims = std::mem::take(&mut t.dims).into();
                }
                // The scanned tensors have served (storage, validation); only the frames stay,
                // for the rewrite's re-framing.
                scan.tensors = Vec::new();
                scan.frames.shrink_to_fit();
                Ok(tensors)
            }
            Err(e) => Err(e),
        };
        // prost names the field path but not the offset: locate the failure in the wire format.
        let unmapper = Unmapper::new(map);
        let decoded = <skeleton::Model as prost::Message>::decode(UnmappingBuf {
            bytes: map,
            pos: 0,
            unmapper: &unmapper,
        });
        unmapper.upto(map.len());
        let mut skeleton = decoded.map_err(|e| match scan::locate_decode_error(map) {
            Some(at) => malformed(at.offset, at.context, at.what),
            None => Error::Decode {
                file: path.to_path_buf(),
                what: e.to_string(),
            },
        })?;
        let checked = match &tensors {
            Ok(tensors) => cross_check(
                &skeleton,
                &scan.graphs,
                tensors
                    .iter()
                    .map(|t| (t.graph_index, t.name.as_str(), t.dims.as_slice())),
            ),
            Err(_) => cross_check(
                &skeleton,
                &scan.graphs,
                scan.tensors
                    .iter()
                    .map(|t| (t.graph, t.name.as_str(), t.dims.as_slice())),
            ),
        };
        checked.map_err(|what| Error::Inconsistent {
            file: path.to_path_buf(),
            what,
        })?;
        // prost grew the initializer lists by doubling: give back the spare half of a big one
        // (shrinking a large allocation remaps it in place, no copy).
        shrink_initializers(skeleton.graph.as_mut());

        let tensors = tensors?;
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

/// Validates every scanned initializer of `scan` (duplicate names, dims, storage) into its
/// entry, with an empty name and dims (the caller moves the scanned ones in), and records each
/// graph's range of entries in `graphs`.
fn validate(
    path: &Path,
    dir: &Path,
    meta: &std::fs::Metadata,
    scan: &Scan,
    graphs: &mut [GraphInfo],
) -> Result<Vec<TensorEntry>, Error> {
    let mut tensors = Vec::with_capacity(scan.tensors.len());
    let graph_paths: Vec<SharedStr> = scan.graphs.iter().map(|g| g.path.as_str().into()).collect();
    let mut canonical_dir = None;
    let mut names: HashSet<(usize, &str)> = HashSet::with_capacity(scan.tensors.len());
    for (i, t) in scan.tensors.iter().enumerate() {
        let graph_path = &scan.graphs[t.graph].path;
        let invalid = |what: String| Error::InvalidTensor {
            file: path.to_path_buf(),
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
                        .map_err(|e| Error::io(dir, "resolve the model's folder", e))?,
                ),
            };
            external_storage(t, n, dir, canonical_dir, meta).map_err(|what| match what {
                ExternalError::Tensor(w) => invalid(w),
                ExternalError::External(w) => Error::External {
                    file: path.to_path_buf(),
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
            graph: graph_paths[t.graph].clone(),
            graph_index: t.graph,
            index_in_graph: t.index_in_graph,
            // Moved from the scan below, once `names` no longer borrows them.
            name: SharedStr::default(),
            dims: SharedDims::default(),
            data_type: t.data_type,
            storage,
            numel: n,
            frame: t.frame,
            offset: scan.frames[t.frame].body.start,
        });
    }
    Ok(tensors)
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

/// Shrinks the initializer lists of `graph` and of every graph nested in it to their length.
fn shrink_initializers(graph: Option<&mut skeleton::Graph>) {
    let Some(g) = graph else { return };
    g.initializer.shrink_to_fit();
    for n in &mut g.node {
        for a in &mut n.attribute {
            shrink_initializers(a.g.as_mut());
            for sub in &mut a.graphs {
                shrink_initializers(Some(sub));
            }
        }
    }
}

/// Checks that prost's skeleton and the scanner see the same graphs (`scanned`) and
/// initializers (`tensors`: graph index, name and dims of each, in the scanner's order).
fn cross_check<'a>(
    model: &skeleton::Model,
    scanned: &[scan::ScannedGraph],
    mut tensors: impl Iterator<Item = (usize, &'a str, &'a [i64])>,
) -> Result<(), String> {
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
        for h in &g.initializer {
            let Some((graph, t_name, t_dims)) = tensors.next() else {
                return Err("the scanner found fewer initializers".into());
            };
            let name = h.name.as_deref().unwrap_or("");
            if graph != gi || t_name != name || t_dims != h.dims.as_slice() {
                return Err(format!(
                    "graph {:?}: initializer {name:?} {:?} decoded, {:?} {:?} scanned",
                    scanned[gi].path, h.dims, t_name, t_dims
                ));
            }
        }
    }
    Ok(())
}
