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

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::{self, File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::error::Error;
use crate::onnx::external;
use crate::onnx::model::{LoadedModel, Storage};
use crate::onnx::values::{self, ValuesMut};

mod destination;
mod fileio;
mod layout;
mod parallel;
mod persist;

use destination::{create_dirs, parent_dir, same_file};
use layout::{FileLayout, VarintTarget};
use parallel::Scratch;

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

/// One rewrite in progress: its input, its value source and its options.
struct Rewriter<'a> {
    model: &'a LoadedModel,
    filler: &'a dyn Filler,
    opts: &'a RewriteOptions,
    /// [`RewriteOptions::piece_elems`], checked.
    piece_elems: u64,
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
            piece_elems: opts.piece_elems as u64,
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
        self.model.tensors()[tensor]
            .numel()
            .div_ceil(self.piece_elems)
    }

    fn cancelled(&self) -> bool {
        self.opts
            .cancel
            .as_ref()
            .is_some_and(|c| c.load(Ordering::Relaxed))
    }

    fn run(&self, targets: &[usize]) -> Result<RewriteStats, Error> {
        let mut created = Vec::new();
        let result = self.run_in(targets, &mut created);
        if result.is_err() {
            // The temporary files are gone (dropped with their layouts): remove the folders made
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
        let mut layouts = self.lay_out_files(targets, created)?;
        let main_layout = layouts.iter().position(|l| l.is_model);
        if let Some(m) = main_layout {
            self.measure_varints(&mut layouts[m])?;
            self.reframe(&mut layouts[m])?;
        }
        for layout in &layouts {
            layout
                .temp_file()
                .set_len(layout.out_len)
                .map_err(|e| Error::io(&layout.dest, "size the output", e))?;
        }
        let work = self.work_items(&layouts);
        let total: u64 = layouts.iter().map(|l| l.out_len).sum();
        if self.cancelled() {
            return Err(Error::Cancelled { file: self.dest() });
        }
        work.par_iter()
            .try_for_each_init(Scratch::default, |s, w| {
                if self.cancelled() {
                    return Err(Error::Cancelled { file: self.dest() });
                }
                let done = self.do_work(&layouts, *w, s)?;
                if let Some(p) = &self.opts.progress {
                    p(done, total);
                }
                Ok(())
            })?;
        self.persist(layouts, targets, total)
    }

    fn dest(&self) -> PathBuf {
        match &self.opts.output {
            OutputTarget::Path(p) => p.clone(),
            OutputTarget::InPlace => self.file(),
        }
    }

    /// Decides which files are written and which targets each holds, and refuses bad
    /// destinations.
    fn lay_out_files(
        &self,
        targets: &[usize],
        created: &mut Vec<PathBuf>,
    ) -> Result<Vec<FileLayout>, Error> {
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
        let mut layouts = Vec::new();
        // Side files, keyed by destination path.
        let mut sides: BTreeMap<PathBuf, (PathBuf, Vec<usize>)> = BTreeMap::new();
        match &self.opts.output {
            OutputTarget::InPlace => {
                let canonical = model
                    .path()
                    .canonicalize()
                    .map_err(|e| Error::io(model.path(), "resolve the model path", e))?;
                if inline_targets {
                    layouts.push(FileLayout::new(
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
                layouts.push(FileLayout::new(
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
            let mut layout = FileLayout::new(false, src_path, src, dest, overwrite)?;
            for i in side_targets {
                if let Storage::External { offset, length, .. } = &tensors[i].storage {
                    if offset + length > layout.src_len {
                        return Err(Error::External {
                            file: self.file(),
                            tensor: tensors[i].name.clone(),
                            offset: tensors[i].offset as u64,
                            what: format!(
                                "{} shrank to {} bytes since the model was opened",
                                layout.src_path.display(),
                                layout.src_len
                            ),
                        });
                    }
                    layout
                        .fixed
                        .push(self.fixed_target(i, vec![(0, tensors[i].numel(), *offset)]));
                }
            }
            layouts.push(layout);
        }
        // Inline targets go into the main layout (the one whose source is the model).
        if let Some(main) = layouts.iter_mut().find(|l| l.is_model) {
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
        Ok(layouts)
    }
}
