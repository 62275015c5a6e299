//! Writing new values into a model without re-encoding it.
//!
//! The output is the input with only the target tensors' payload bytes replaced: every other
//! byte (doc strings, `metadata_props`, unknown fields, other tensors) is copied unchanged. For
//! `raw_data`, `float_data`, `double_data` and external data the new payload has exactly the old
//! length. For `int32_data` (f16/bf16 bit patterns as varints) the length changes, so the payload
//! field and the length prefixes of every enclosing message (tensor, graph, attribute, node, …,
//! up to `ModelProto.graph`) are rewritten and the bytes between them shifted; nothing else is
//! re-encoded.
//!
//! Values come from a [`Filler`] in pieces of [`RewriteOptions::piece_elems`] elements whose
//! start offsets are multiples of the piece size; pieces of all tensors are filled and written in
//! parallel (rayon) with positional writes, so memory is bounded by a few pieces per thread
//! whatever the model size, and positional writes (not a writable mapping) turn a full disk into
//! an error instead of a crash. On a little-endian machine a piece's values are written from
//! their own memory (no encoding pass), unchanged bytes are copied inside the kernel
//! (`copy_file_range`), and each written range is handed to writeback at once
//! (`sync_file_range`), so the final `fsync` overlaps the generation instead of following it:
//! a rewrite to a new file takes about the time of a plain `cp` without any flush.
//!
//! Safety of the files: every output is written to a temporary file in its destination folder,
//! flushed to disk, and only then renamed into place — side files first, the `.onnx` last. On any
//! error before the renames, the temporary files are removed and nothing else has changed; the
//! input is never opened for writing (in place, a patched copy is renamed over it).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::fs::{self, File, Metadata};
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;
use tempfile::NamedTempFile;

use crate::error::Error;
use crate::onnx::external;
mod fileio;
use crate::onnx::model::{DType, LoadedModel, Storage};
use crate::onnx::values::{self, ValuesBuf, ValuesMut};
use crate::onnx::wire;

/// The source of new values.
///
/// `fill(tensor, start, out)` must write `out.len()` values for elements `start ..` of tensor
/// `tensor` (an index into [`LoadedModel::tensors`]), in `out`'s type, which is the tensor's type.
/// Every value must be written: `out` is a reused buffer that still holds an earlier piece's
/// values (clearing it first would cost a pass over memory per piece).
/// The values must be a pure function of `(tensor, start, out.len())`: pieces are filled in any
/// order, on any thread, and an `int32_data` tensor's pieces are filled twice (once to measure
/// their encoded length, once to write them; a mismatch is reported as an error).
pub trait Filler: Sync {
    /// Fills `out` with the values of elements `start .. start + out.len()` of `tensor`.
    fn fill(&self, tensor: usize, start: u64, out: ValuesMut<'_>);
}

/// Where the rewritten model goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputTarget {
    /// A new `.onnx` file; external side files are copied next to it under their relative
    /// locations. Never the input itself (nor one of its side files).
    Path(PathBuf),
    /// Replace the input model (and the side files holding targets) by patched copies.
    InPlace,
}

/// Default piece size, in elements.
pub const DEFAULT_PIECE_ELEMS: usize = 1 << 18;

/// Piece sizes must be a multiple of this (the sampling chunk size of `init-core`, so that a
/// piece is a whole number of generator chunks).
pub const PIECE_ALIGN: usize = 1 << 16;

/// Progress callback: `(bytes just done, total bytes to write)`.
pub type ProgressFn = dyn Fn(u64, u64) + Send + Sync;

/// Options of [`rewrite`].
#[derive(Clone)]
pub struct RewriteOptions {
    /// Destination.
    pub output: OutputTarget,
    /// Overwrite an existing output (never the input, which needs [`OutputTarget::InPlace`]).
    pub force: bool,
    /// Elements per piece; a positive multiple of [`PIECE_ALIGN`]. Default
    /// [`DEFAULT_PIECE_ELEMS`].
    pub piece_elems: usize,
    /// When set to `true` (e.g. by a Ctrl-C handler), the rewrite stops at the next piece,
    /// removes its temporary files and returns [`Error::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Called after each piece of work with the bytes it wrote and the total to write.
    pub progress: Option<Arc<ProgressFn>>,
}

impl RewriteOptions {
    /// Options with `force = false`, the default piece size, no cancellation and no progress.
    pub fn new(output: OutputTarget) -> Self {
        RewriteOptions {
            output,
            force: false,
            piece_elems: DEFAULT_PIECE_ELEMS,
            cancel: None,
            progress: None,
        }
    }
}

impl fmt::Debug for RewriteOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RewriteOptions")
            .field("output", &self.output)
            .field("force", &self.force)
            .field("piece_elems", &self.piece_elems)
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.as_ref().map(|_| "Fn"))
            .finish()
    }
}

/// What [`rewrite`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RewriteStats {
    /// The `.onnx` written (the input's canonical path in place).
    pub output: PathBuf,
    /// Side files written (copies next to the output, or patched in place).
    pub side_files: Vec<PathBuf>,
    /// Number of tensors rewritten.
    pub tensors: usize,
    /// Number of elements written.
    pub elements: u64,
    /// Bytes of payload written.
    pub payload_bytes: u64,
    /// Total bytes written to all files (payload and copied bytes).
    pub bytes_written: u64,
    /// Tensors whose `int32_data` changed length and were re-framed.
    pub reframed: usize,
    /// Length of the written `.onnx` (equals the input's length unless something was re-framed;
    /// in place with only external targets, the model file is not rewritten at all).
    pub output_len: u64,
}

/// Rewrites the payloads of `targets` (indices into [`LoadedModel::tensors`]) with values from
/// `filler`, writing per `opts`.
///
/// Refuses (before writing anything): an index out of range or listed twice, a tensor that is
/// not f32/f64/f16/bf16, storage that cannot be rewritten (unpacked or multi-segment
/// `int32_data`, external data with a checksum), a piece size that is not a positive multiple of
/// [`PIECE_ALIGN`], an existing output without `force`, an output that is the input or one of its
/// side files. On error no output file is left and the input is untouched.
pub fn rewrite(
    model: &LoadedModel,
    targets: &[usize],
    filler: &dyn Filler,
    opts: &RewriteOptions,
) -> Result<RewriteStats, Error> {
    Rewriter::new(model, filler, opts)?.run(targets)
}

/// A run of one fixed-width target's elements stored contiguously in one file.
#[derive(Debug, Clone)]
struct Region {
    elem_start: u64,
    elems: u64,
    /// Byte offset in the source file.
    offset: u64,
}

#[derive(Debug)]
struct FixedTarget {
    tensor: usize,
    dtype: DType,
    width: u64,
    /// Sorted by `elem_start`, covering the tensor's elements.
    regions: Vec<Region>,
}

#[derive(Debug)]
struct VarintTarget {
    tensor: usize,
    dtype: DType,
    /// The packed `int32_data` field's length prefix and body in the source.
    prefix: Range<u64>,
    body: Range<u64>,
    /// Encoded byte length of each piece (measured in a first pass).
    piece_lens: Vec<u64>,
    /// Output offset of each piece relative to the new body's start.
    piece_offsets: Vec<u64>,
    /// New length prefix.
    new_prefix: Vec<u8>,
}

/// A source range replaced by content of another length.
#[derive(Debug)]
struct Splice {
    input: Range<u64>,
    new_len: u64,
    /// `None`: the content is a varint target's (index into `FilePlan::varint`); otherwise bytes.
    bytes: Option<Vec<u8>>,
    varint: Option<usize>,
}

/// One file to write: a copy of `src` with targets patched and splices applied.
struct FilePlan {
    /// Whether this is the model file (as opposed to an external side file).
    is_model: bool,
    src_path: PathBuf,
    src: File,
    src_len: u64,
    dest: PathBuf,
    /// Overwrite `dest` if it exists (force, or in place).
    overwrite: bool,
    fixed: Vec<FixedTarget>,
    varint: Vec<VarintTarget>,
    /// Sorted by input start, disjoint.
    splices: Vec<Splice>,
    /// `cum[k]`: total length change of the first `k` splices.
    cum: Vec<i64>,
    out_len: u64,
    /// The temporary file in `dest`'s folder that becomes `dest`.
    temp: NamedTempFile,
}

impl FilePlan {
    /// Plans a copy of `src` to `dest`, creating the temporary file beside `dest` with the
    /// source's permissions (a temporary file is private by default) and, when `dest` is `src`
    /// (in place), its owner.
    fn new(
        is_model: bool,
        src_path: PathBuf,
        src: File,
        dest: PathBuf,
        overwrite: bool,
    ) -> Result<Self, Error> {
        let meta = src
            .metadata()
            .map_err(|e| Error::io(&src_path, "read metadata", e))?;
        let dir = parent_dir(&dest);
        let temp = NamedTempFile::new_in(&dir)
            .map_err(|e| Error::io(&dir, "create a temporary file in", e))?;
        // In place, the replacement keeps the original's owner and group, so that a run as
        // another user (root) does not take the model away from its owner. Best effort: only a
        // privileged process may give a file away, and an unprivileged one owns its files.
        if fs::metadata(&dest).is_ok_and(|d| same_file(&d, &meta)) {
            let _ = std::os::unix::fs::fchown(temp.as_file(), Some(meta.uid()), Some(meta.gid()));
        }
        temp.as_file()
            .set_permissions(meta.permissions())
            .map_err(|e| Error::io(&dest, "set the permissions of the output", e))?;
        let src_len = meta.len();
        Ok(FilePlan {
            is_model,
            src_path,
            src,
            src_len,
            dest,
            overwrite,
            fixed: Vec::new(),
            varint: Vec::new(),
            splices: Vec::new(),
            cum: vec![0],
            out_len: src_len,
            temp,
        })
    }

    /// Output offset of source offset `x` (which is not strictly inside a splice).
    fn map(&self, x: u64) -> u64 {
        let k = self.splices.partition_point(|s| s.input.end <= x);
        // Lengths fit in i64 (files are far below 2^63 bytes).
        (x as i64 + self.cum[k]) as u64
    }

    fn temp_file(&self) -> &File {
        self.temp.as_file()
    }
}

/// A unit of parallel work.
#[derive(Debug, Clone, Copy)]
enum Work {
    /// Copy source bytes `[start, start + len)` to their mapped output offset.
    Copy { plan: usize, start: u64, len: u64 },
    /// Fill and write piece `piece` of fixed-width target `target`.
    Fixed {
        plan: usize,
        target: usize,
        piece: u64,
    },
    /// Fill and write piece `piece` of varint target `target`.
    Varint {
        plan: usize,
        target: usize,
        piece: u64,
    },
    /// Write a splice's literal bytes (a new length prefix; for a varint target, its prefix).
    Splice { plan: usize, splice: usize },
}

/// Bytes copied per work item: large enough to amortize a syscall, small enough to bound memory.
const COPY_CHUNK: u64 = 4 << 20;

#[derive(Default)]
struct Scratch {
    values: ValuesBuf,
    bytes: Vec<u8>,
    copy: Vec<u8>,
}

struct Rewriter<'a> {
    model: &'a LoadedModel,
    filler: &'a dyn Filler,
    opts: &'a RewriteOptions,
    pe: u64,
}

fn same_file(a: &Metadata, b: &Metadata) -> bool {
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Creates `dir` and its missing ancestors, appending each folder it creates to `created`.
fn create_dirs(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), Error> {
    let missing: Vec<&Path> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && fs::symlink_metadata(d).is_err())
        .collect();
    for d in missing.into_iter().rev() {
        match fs::create_dir(d) {
            Ok(()) => created.push(d.to_path_buf()),
            // Created concurrently by someone else: theirs, not ours to remove.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(Error::io(d, "create the folder", e)),
        }
    }
    Ok(())
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

impl<'a> Rewriter<'a> {
    fn new(
        model: &'a LoadedModel,
        filler: &'a dyn Filler,
        opts: &'a RewriteOptions,
    ) -> Result<Self, Error> {
        if opts.piece_elems == 0 || !opts.piece_elems.is_multiple_of(PIECE_ALIGN) {
            return Err(Error::InvalidOption {
                what: format!(
                    "piece_elems {} is not a positive multiple of {PIECE_ALIGN}",
                    opts.piece_elems
                ),
            });
        }
        Ok(Rewriter {
            model,
            filler,
            opts,
            pe: opts.piece_elems as u64,
        })
    }

    fn file(&self) -> PathBuf {
        self.model.path().to_path_buf()
    }

    fn unsupported(&self, tensor: usize, what: String) -> Error {
        Error::Unsupported {
            file: self.file(),
            tensor: self.model.tensors()[tensor].name.clone(),
            what,
        }
    }

    fn pieces(&self, tensor: usize) -> u64 {
        self.model.tensors()[tensor].numel().div_ceil(self.pe)
    }

    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    /// Checks every target before anything is created.
    fn check_targets(&self, targets: &[usize]) -> Result<(), Error> {
        let mut seen = HashSet::new();
        for &i in targets {
            let t = self.model.tensor_checked(i)?;
            if !seen.insert(i) {
                return Err(Error::InvalidOption {
                    what: format!("tensor {:?} (#{i}) listed twice", t.name),
                });
            }
            let dtype = t.dtype();
            if !dtype.is_float() {
                return Err(self.unsupported(
                    i,
                    format!(
                        "data_type {} is never modified (only FLOAT, DOUBLE, FLOAT16, BFLOAT16)",
                        dtype.onnx_name()
                    ),
                ));
            }
            match &t.storage {
                Storage::Raw { .. } | Storage::Empty => {}
                Storage::FloatData { .. } if dtype == DType::F32 => {}
                Storage::DoubleData { .. } if dtype == DType::F64 => {}
                Storage::Int32Data { segments } if matches!(dtype, DType::F16 | DType::BF16) => {
                    if segments.len() != 1 || !segments[0].packed {
                        return Err(self.unsupported(
                            i,
                            format!(
                                "int32_data in {} segment(s), {}; only a single packed run can be \
                                 re-framed",
                                segments.len(),
                                if segments.iter().all(|s| s.packed) {
                                    "packed"
                                } else {
                                    "unpacked"
                                }
                            ),
                        ));
                    }
                }
                Storage::External { checksum, .. } => {
                    if checksum.is_some() {
                        return Err(self.unsupported(
                            i,
                            "external data carries a checksum, which new values would \
                             invalidate"
                                .into(),
                        ));
                    }
                }
                other => {
                    return Err(self.unsupported(
                        i,
                        format!("{} values stored in {}", dtype.onnx_name(), other.kind()),
                    ));
                }
            }
        }
        self.check_external_aliasing(&seen)
    }

    /// Refuses a target whose external bytes overlap another tensor's: writing one would
    /// silently change the other.
    fn check_external_aliasing(&self, targets: &HashSet<usize>) -> Result<(), Error> {
        let mut ranges: Vec<(&Path, u64, u64, usize)> = self
            .model
            .tensors()
            .iter()
            .enumerate()
            .filter_map(|(i, t)| match &t.storage {
                Storage::External {
                    path,
                    offset,
                    length,
                    ..
                } if *length > 0 => Some((path.as_path(), *offset, offset + length, i)),
                _ => None,
            })
            .collect();
        ranges.sort_unstable();
        // Sweep each file's ranges in offset order, remembering the one reaching furthest.
        let mut reach: Option<(&Path, u64, usize)> = None;
        for &(path, start, end, i) in &ranges {
            if let Some((p, r_end, r_i)) = reach
                && p == path
                && start < r_end
                && (targets.contains(&i) || targets.contains(&r_i))
            {
                let (t, other) = if targets.contains(&i) {
                    (i, r_i)
                } else {
                    (r_i, i)
                };
                return Err(self.unsupported(
                    t,
                    format!(
                        "its external bytes overlap those of tensor {:?}",
                        self.model.tensors()[other].name
                    ),
                ));
            }
            match reach {
                Some((p, r_end, _)) if p == path && r_end >= end => {}
                _ => reach = Some((path, end, i)),
            }
        }
        Ok(())
    }

    fn run(&self, targets: &[usize]) -> Result<RewriteStats, Error> {
        let mut created = Vec::new();
        let result = self.run_in(targets, &mut created);
        if result.is_err() {
            // The temporary files are gone (dropped with their plans): remove the folders made
            // for side files too, deepest first. `remove_dir` leaves a non-empty folder alone.
            for d in created.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
        result
    }

    /// [`Self::run`], recording in `created` the folders it creates (in creation order).
    fn run_in(&self, targets: &[usize], created: &mut Vec<PathBuf>) -> Result<RewriteStats, Error> {
        self.check_targets(targets)?;
        let mut plans = self.plan_files(targets, created)?;
        let main_plan = plans.iter().position(|p| p.is_model);
        if let Some(m) = main_plan {
            self.measure_varints(&mut plans[m])?;
            self.reframe(&mut plans[m])?;
        }
        for plan in &plans {
            plan.temp_file()
                .set_len(plan.out_len)
                .map_err(|e| Error::io(&plan.dest, "size the output", e))?;
        }
        let work = self.work_items(&plans);
        let total: u64 = plans.iter().map(|p| p.out_len).sum();
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        work.par_iter()
            .try_for_each_init(Scratch::default, |s, w| {
                if self.cancelled() {
                    return Err(Error::Cancelled { file: self.dest() });
                }
                let done = self.do_work(&plans, *w, s)?;
                if let Some(p) = &self.opts.progress {
                    p(done, total);
                }
                Ok(())
            })?;
        self.finish(plans, targets, total)
    }

    fn dest(&self) -> PathBuf {
        match &self.opts.output {
            OutputTarget::Path(p) => p.clone(),
            OutputTarget::InPlace => self.file(),
        }
    }

    /// Decides which files are written and which targets each holds, and refuses bad
    /// destinations.
    fn plan_files(
        &self,
        targets: &[usize],
        created: &mut Vec<PathBuf>,
    ) -> Result<Vec<FilePlan>, Error> {
        let model = self.model;
        let tensors = model.tensors();
        let input_meta = model
            .file
            .metadata()
            .map_err(|e| Error::io(model.path(), "read metadata", e))?;
        let inline_targets = targets.iter().any(|&i| {
            !matches!(
                tensors[i].storage,
                Storage::External { .. } | Storage::Empty
            )
        });
        let mut plans = Vec::new();
        // Side files, keyed by destination path.
        let mut sides: BTreeMap<PathBuf, (PathBuf, Vec<usize>)> = BTreeMap::new();
        match &self.opts.output {
            OutputTarget::InPlace => {
                let canonical = model
                    .path()
                    .canonicalize()
                    .map_err(|e| Error::io(model.path(), "resolve the model path", e))?;
                if inline_targets {
                    plans.push(FilePlan::new(
                        true,
                        model.path().to_path_buf(),
                        model
                            .file
                            .try_clone()
                            .map_err(|e| Error::io(model.path(), "reopen the model", e))?,
                        canonical,
                        true,
                    )?);
                }
                for &i in targets {
                    if let Storage::External { path, .. } = &tensors[i].storage {
                        sides
                            .entry(path.clone())
                            .or_insert_with(|| (path.clone(), Vec::new()))
                            .1
                            .push(i);
                    }
                }
            }
            OutputTarget::Path(dest) => {
                let dest = dest.clone();
                let dest_dir = parent_dir(&dest);
                let mut inputs: Vec<(PathBuf, Metadata)> =
                    vec![(model.path().to_path_buf(), input_meta)];
                let target_set: HashSet<usize> = targets.iter().copied().collect();
                for (i, t) in tensors.iter().enumerate() {
                    if let Storage::External { location, path, .. } = &t.storage {
                        let rel = external::checked_relative(location).map_err(|what| {
                            Error::External {
                                file: self.file(),
                                tensor: t.name.clone(),
                                offset: t.offset as u64,
                                what,
                            }
                        })?;
                        let entry = sides
                            .entry(dest_dir.join(rel))
                            .or_insert_with(|| (path.clone(), Vec::new()));
                        if target_set.contains(&i) {
                            entry.1.push(i);
                        }
                        let meta = fs::metadata(path)
                            .map_err(|e| Error::io(path, "read external data", e))?;
                        inputs.push((path.clone(), meta));
                    }
                }
                let check_dest = |d: &Path| -> Result<(), Error> {
                    match fs::metadata(d) {
                        Ok(m) => {
                            if inputs.iter().any(|(_, im)| same_file(im, &m)) {
                                return Err(Error::OutputIsInput {
                                    file: d.to_path_buf(),
                                });
                            }
                            if m.is_dir() {
                                return Err(Error::io(
                                    d,
                                    "write the output",
                                    std::io::Error::other("it is a directory"),
                                ));
                            }
                            if !self.opts.force {
                                return Err(Error::OutputExists {
                                    file: d.to_path_buf(),
                                });
                            }
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    }
                };
                check_dest(&dest)?;
                for side_dest in sides.keys() {
                    if *side_dest == dest {
                        return Err(Error::InvalidOption {
                            what: format!(
                                "the output {} is also the location of external data",
                                dest.display()
                            ),
                        });
                    }
                    check_dest(side_dest)?;
                }
                plans.push(FilePlan::new(
                    true,
                    model.path().to_path_buf(),
                    model
                        .file
                        .try_clone()
                        .map_err(|e| Error::io(model.path(), "reopen the model", e))?,
                    dest.clone(),
                    self.opts.force,
                )?);
                // Side destinations in sub-folders: create them, then check they did not lead
                // outside the output folder through a symlink.
                let canonical_dest_dir = dest_dir
                    .canonicalize()
                    .map_err(|e| Error::io(&dest_dir, "resolve the output folder", e))?;
                for side_dest in sides.keys() {
                    let d = parent_dir(side_dest);
                    create_dirs(&d, created)?;
                    let cd = d
                        .canonicalize()
                        .map_err(|e| Error::io(&d, "resolve the folder", e))?;
                    if !cd.starts_with(&canonical_dest_dir) {
                        return Err(Error::InvalidOption {
                            what: format!(
                                "output side file {} would leave the output folder through a \
                                 symlink",
                                side_dest.display()
                            ),
                        });
                    }
                }
            }
        }
        if self.opts.output == OutputTarget::InPlace {
            // Replacing a read-only file by rename would succeed; honour the permission instead.
            let main = inline_targets.then(|| model.path().to_path_buf());
            for p in main.iter().chain(sides.values().map(|(src, _)| src)) {
                let meta = fs::metadata(p).map_err(|e| Error::io(p, "read metadata", e))?;
                if meta.permissions().readonly() {
                    return Err(Error::io(
                        p,
                        "modify in place",
                        std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                    ));
                }
            }
        }
        for (dest, (src_path, side_targets)) in sides {
            let src = File::open(&src_path).map_err(|e| Error::io(&src_path, "open", e))?;
            let overwrite = self.opts.force || self.opts.output == OutputTarget::InPlace;
            let mut plan = FilePlan::new(false, src_path, src, dest, overwrite)?;
            for i in side_targets {
                if let Storage::External { offset, length, .. } = &tensors[i].storage {
                    if offset + length > plan.src_len {
                        return Err(Error::External {
                            file: self.file(),
                            tensor: tensors[i].name.clone(),
                            offset: tensors[i].offset as u64,
                            what: format!(
                                "{} shrank to {} bytes since the model was opened",
                                plan.src_path.display(),
                                plan.src_len
                            ),
                        });
                    }
                    plan.fixed
                        .push(self.fixed_target(i, vec![(0, numel_of(model, i), *offset)]));
                }
            }
            plans.push(plan);
        }
        // Inline targets go into the main plan (the one whose source is the model).
        if let Some(main) = plans.iter_mut().find(|p| p.is_model) {
            for &i in targets {
                let t = &tensors[i];
                let bytes_regions = |segments: &[crate::onnx::model::Segment]| {
                    values::with_starts(segments)
                        .map(|(s, seg)| (s, seg.elements, seg.bytes.start as u64))
                        .collect::<Vec<_>>()
                };
                match &t.storage {
                    Storage::Raw { bytes } => main
                        .fixed
                        .push(self.fixed_target(i, vec![(0, t.numel(), bytes.start as u64)])),
                    Storage::FloatData { segments } | Storage::DoubleData { segments } => {
                        main.fixed
                            .push(self.fixed_target(i, bytes_regions(segments)));
                    }
                    Storage::Int32Data { segments } => {
                        let seg = &segments[0];
                        main.varint.push(VarintTarget {
                            tensor: i,
                            dtype: t.dtype(),
                            prefix: seg.prefix.start as u64..seg.prefix.end as u64,
                            body: seg.bytes.start as u64..seg.bytes.end as u64,
                            piece_lens: Vec::new(),
                            piece_offsets: Vec::new(),
                            new_prefix: Vec::new(),
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(plans)
    }

    fn fixed_target(&self, tensor: usize, regions: Vec<(u64, u64, u64)>) -> FixedTarget {
        let dtype = self.model.tensors()[tensor].dtype();
        FixedTarget {
            tensor,
            dtype,
            width: dtype.size().unwrap_or(4) as u64,
            regions: regions
                .into_iter()
                .filter(|r| r.1 > 0)
                .map(|(elem_start, elems, offset)| Region {
                    elem_start,
                    elems,
                    offset,
                })
                .collect(),
        }
    }

    /// Fills `n` values of piece `piece` of `tensor` into the scratch buffer.
    fn fill_piece<'s>(
        &self,
        s: &'s mut ValuesBuf,
        tensor: usize,
        dtype: DType,
        piece: u64,
    ) -> ValuesMut<'s> {
        let start = piece * self.pe;
        let n = (self.model.tensors()[tensor].numel() - start).min(self.pe) as usize;
        let mut v = s.view(dtype, n);
        self.filler.fill(tensor, start, v.reborrow_prefix(n));
        v
    }

    /// First pass over `int32_data` targets: the encoded length of every piece.
    fn measure_varints(&self, plan: &mut FilePlan) -> Result<(), Error> {
        let jobs: Vec<(usize, u64)> = plan
            .varint
            .iter()
            .enumerate()
            .flat_map(|(k, v)| (0..self.pieces(v.tensor)).map(move |p| (k, p)))
            .collect();
        let lens: Vec<u64> = jobs
            .par_iter()
            .map_init(ValuesBuf::default, |s, &(k, p)| {
                let v = &plan.varint[k];
                values::varints_len(&self.fill_piece(s, v.tensor, v.dtype, p))
            })
            .collect();
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        for (&(k, _), len) in jobs.iter().zip(lens) {
            plan.varint[k].piece_lens.push(len);
        }
        for v in &mut plan.varint {
            let mut acc = 0u64;
            v.piece_offsets = v
                .piece_lens
                .iter()
                .map(|l| {
                    let o = acc;
                    acc += l;
                    o
                })
                .collect();
            wire::put_varint(acc, &mut v.new_prefix);
        }
        Ok(())
    }

    /// Builds the splices of the main file: each varint target's field, and the length prefix of
    /// every enclosing message whose body length changed.
    fn reframe(&self, plan: &mut FilePlan) -> Result<(), Error> {
        if plan.varint.is_empty() {
            return Ok(());
        }
        let frames = &self.model.scan.frames;
        let ancestors = |f: usize| std::iter::successors(Some(f), |&f| frames[f].parent);
        let mut delta: HashMap<usize, i64> = HashMap::new();
        for (k, v) in plan.varint.iter().enumerate() {
            let body_len: u64 = v.piece_lens.iter().sum();
            let new_len = v.new_prefix.len() as u64 + body_len;
            let old_len = v.body.end - v.prefix.start;
            let d = new_len as i64 - old_len as i64;
            plan.splices.push(Splice {
                input: v.prefix.start..v.body.end,
                new_len,
                bytes: None,
                varint: Some(k),
            });
            for f in ancestors(self.model.tensors()[v.tensor].frame) {
                *delta.entry(f).or_insert(0) += d;
            }
        }
        // Deepest first, so a prefix that changes size is added to its ancestors before they
        // are encoded.
        let mut order: Vec<(usize, usize)> =
            delta.keys().map(|&f| (ancestors(f).count(), f)).collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        for (_, f) in order {
            let d = delta[&f];
            if d == 0 {
                continue;
            }
            let frame = &frames[f];
            let new_body =
                u64::try_from(frame.body.len() as i64 + d).map_err(|_| Error::Inconsistent {
                    file: self.file(),
                    what: format!("re-framing the message at byte {}", frame.body.start),
                })?;
            let mut prefix = Vec::new();
            wire::put_varint(new_body, &mut prefix);
            let pd = prefix.len() as i64 - frame.prefix.len() as i64;
            plan.splices.push(Splice {
                input: frame.prefix.start as u64..frame.prefix.end as u64,
                new_len: prefix.len() as u64,
                bytes: Some(prefix),
                varint: None,
            });
            if pd != 0 {
                for a in ancestors(f).skip(1) {
                    *delta.entry(a).or_insert(0) += pd;
                }
            }
        }
        plan.splices.sort_by_key(|s| s.input.start);
        let mut acc = 0i64;
        plan.cum = std::iter::once(0)
            .chain(plan.splices.iter().map(|s| {
                acc += s.new_len as i64 - (s.input.end - s.input.start) as i64;
                acc
            }))
            .collect();
        plan.out_len = (plan.src_len as i64 + acc) as u64;
        Ok(())
    }

    fn work_items(&self, plans: &[FilePlan]) -> Vec<Work> {
        let mut work = Vec::new();
        for (pi, plan) in plans.iter().enumerate() {
            // Everything not rewritten is copied: the gaps between holes.
            let mut holes: Vec<Range<u64>> = plan
                .splices
                .iter()
                .map(|s| s.input.clone())
                .chain(plan.fixed.iter().flat_map(|t| {
                    t.regions
                        .iter()
                        .map(move |r| r.offset..r.offset + r.elems * t.width)
                }))
                .collect();
            holes.sort_by_key(|r| r.start);
            let mut pos = 0u64;
            let mut push_gap = |from: u64, to: u64| {
                let mut s = from;
                while s < to {
                    let len = (to - s).min(COPY_CHUNK);
                    work.push(Work::Copy {
                        plan: pi,
                        start: s,
                        len,
                    });
                    s += len;
                }
            };
            for h in &holes {
                if h.start > pos {
                    push_gap(pos, h.start);
                }
                pos = pos.max(h.end);
            }
            push_gap(pos, plan.src_len);
            for (ti, t) in plan.fixed.iter().enumerate() {
                for piece in 0..self.pieces(t.tensor) {
                    work.push(Work::Fixed {
                        plan: pi,
                        target: ti,
                        piece,
                    });
                }
            }
            for (ti, t) in plan.varint.iter().enumerate() {
                for piece in 0..self.pieces(t.tensor) {
                    work.push(Work::Varint {
                        plan: pi,
                        target: ti,
                        piece,
                    });
                }
            }
            for si in 0..plan.splices.len() {
                work.push(Work::Splice {
                    plan: pi,
                    splice: si,
                });
            }
        }
        work
    }

    /// Performs one work item; returns the bytes written.
    fn do_work(&self, plans: &[FilePlan], w: Work, s: &mut Scratch) -> Result<u64, Error> {
        let write = |plan: &FilePlan, bytes: &[u8], at: u64| {
            plan.temp_file()
                .write_all_at(bytes, at)
                .map_err(|e| Error::io(&plan.dest, "write the output", e))
        };
        match w {
            Work::Copy { plan, start, len } => {
                let plan = &plans[plan];
                let at = plan.map(start);
                fileio::copy_range(&plan.src, start, plan.temp_file(), at, len, &mut s.copy)
                    .map_err(|e| match e {
                        fileio::CopyError::Read(e) => Error::io(&plan.src_path, "read", e),
                        fileio::CopyError::Write(e) => Error::io(&plan.dest, "write the output", e),
                    })?;
                fileio::start_writeback(plan.temp_file(), at, len);
                Ok(len)
            }
            Work::Fixed {
                plan,
                target,
                piece,
            } => {
                let plan = &plans[plan];
                let t = &plan.fixed[target];
                let start = piece * self.pe;
                let v = self.fill_piece(&mut s.values, t.tensor, t.dtype, piece);
                let n = v.len() as u64;
                let bytes = values::le_bytes(&v, &mut s.bytes);
                let end = start + n;
                let first = t
                    .regions
                    .partition_point(|r| r.elem_start + r.elems <= start);
                for r in t.regions[first..].iter().take_while(|r| r.elem_start < end) {
                    let lo = start.max(r.elem_start);
                    let hi = end.min(r.elem_start + r.elems);
                    let src = &bytes
                        [((lo - start) * t.width) as usize..((hi - start) * t.width) as usize];
                    let at = plan.map(r.offset + (lo - r.elem_start) * t.width);
                    write(plan, src, at)?;
                    fileio::start_writeback(plan.temp_file(), at, src.len() as u64);
                }
                Ok(n * t.width)
            }
            Work::Varint {
                plan,
                target,
                piece,
            } => {
                let plan = &plans[plan];
                let t = &plan.varint[target];
                let v = self.fill_piece(&mut s.values, t.tensor, t.dtype, piece);
                s.bytes.clear();
                values::encode_varints(&v, &mut s.bytes);
                if s.bytes.len() as u64 != t.piece_lens[piece as usize] {
                    return Err(Error::InvalidOption {
                        what: format!(
                            "the filler gave different values for the same piece of tensor {:?} \
                             (it must be a pure function of tensor and offset)",
                            self.model.tensors()[t.tensor].name
                        ),
                    });
                }
                let body_out = plan.map(t.prefix.start) + t.new_prefix.len() as u64;
                write(plan, &s.bytes, body_out + t.piece_offsets[piece as usize])?;
                Ok(s.bytes.len() as u64)
            }
            Work::Splice { plan, splice } => {
                let plan = &plans[plan];
                let sp = &plan.splices[splice];
                let bytes = match (&sp.bytes, sp.varint) {
                    (Some(b), _) => b.as_slice(),
                    (None, Some(k)) => plan.varint[k].new_prefix.as_slice(),
                    (None, None) => &[],
                };
                write(plan, bytes, plan.map(sp.input.start))?;
                Ok(bytes.len() as u64)
            }
        }
    }

    /// Flushes every temporary file, then renames them into place (side files first).
    fn finish(
        &self,
        mut plans: Vec<FilePlan>,
        targets: &[usize],
        total: u64,
    ) -> Result<RewriteStats, Error> {
        for plan in &plans {
            plan.temp_file()
                .sync_all()
                .map_err(|e| Error::io(&plan.dest, "flush the output to disk", e))?;
        }
        // The flush of a big model takes a while: a cancel that arrived meanwhile still stops
        // the run cleanly, as nothing has been renamed yet.
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        // The main model last: a reader never sees a new model whose side files are old.
        plans.sort_by_key(|p| p.is_model);
        let mut persisted: Vec<PathBuf> = Vec::new();
        let mut stats = RewriteStats {
            output: self.dest(),
            side_files: Vec::new(),
            tensors: targets.len(),
            elements: targets
                .iter()
                .map(|&i| self.model.tensors()[i].numel())
                .sum(),
            payload_bytes: 0,
            bytes_written: total,
            reframed: 0,
            output_len: self.model.bytes().len() as u64,
        };
        for plan in &plans {
            stats.payload_bytes += plan
                .fixed
                .iter()
                .map(|t| self.model.tensors()[t.tensor].numel() * t.width)
                .sum::<u64>();
            stats.payload_bytes += plan
                .varint
                .iter()
                .map(|v| v.piece_lens.iter().sum::<u64>())
                .sum::<u64>();
        }
        for plan in plans {
            let temp = plan.temp;
            let result = if plan.overwrite {
                temp.persist(&plan.dest).map(drop)
            } else {
                temp.persist_noclobber(&plan.dest).map(drop)
            };
            if let Err(e) = result {
                // Undo what was already renamed into a new output; in place nothing can be
                // undone (the originals are gone), which is why side files go first.
                if self.opts.output != OutputTarget::InPlace {
                    for p in &persisted {
                        let _ = fs::remove_file(p);
                    }
                }
                return Err(if e.error.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::OutputExists { file: plan.dest }
                } else {
                    Error::io(&plan.dest, "rename the output into place", e.error)
                });
            }
            // Make the rename itself durable; failing to sync a folder is not worth failing for.
            if let Ok(d) = File::open(parent_dir(&plan.dest)) {
                let _ = d.sync_all();
            }
            if plan.is_model {
                stats.output_len = plan.out_len;
                stats.output.clone_from(&plan.dest);
                stats.reframed = plan.varint.len();
            } else {
                stats.side_files.push(plan.dest.clone());
            }
            persisted.push(plan.dest);
        }
        Ok(stats)
    }
}

fn numel_of(model: &LoadedModel, i: usize) -> u64 {
    model.tensors()[i].numel()
}
