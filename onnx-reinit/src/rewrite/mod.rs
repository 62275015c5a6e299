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
//!
//! This module holds the API and the order of the steps; each step lives in a module of its own:
//! `destination` (where each file goes, the checks that keep it off the input and inside the
//! output folder, the temporary file beside it), `layout` (which byte ranges of which file get
//! which values, and the re-framing of `int32_data`), `parallel` (the work items and how each is
//! done) and `persist` (flush, rename into place, clean-up after a failure).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::Error;
use crate::onnx::model::{LoadedModel, Storage};
use crate::onnx::values::ValuesMut;

mod destination;
mod fileio;
mod layout;
mod parallel;
mod persist;

use destination::OutputFile;
use layout::FileLayout;

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

/// Progress callback: `(bytes just done, total bytes to write)`, from any thread.
///
/// The rewrite calls it after each piece of work and, while no piece finishes, with 0 bytes
/// every [`PULSE`]: a whole-tensor fill (orthogonal, whose QR is one computation on the whole
/// matrix, not pieces; eye, dirac, gate blocks) holds the workers that wait for it, for seconds
/// on a large matrix, and a display must still be able to show that the work goes on.
pub type ProgressFn = dyn Fn(u64, u64) + Send + Sync;

pub use parallel::PULSE;

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
    /// With [`OutputTarget::Path`]: the name of the output's external data file, relative to
    /// the output's folder, instead of the input's `location`s. The model's external data must
    /// be in one file; every `location` entry of the output model is rewritten to this name
    /// (the tensors' offsets and lengths stay: the file is a copy of the input's). `None`: each
    /// side file keeps its location.
    pub data_name: Option<String>,
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
            data_name: None,
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
            .field("data_name", &self.data_name)
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
/// `int32_data`, external data with a checksum, external bytes shared with another tensor), a
/// piece size that is not a positive multiple of [`PIECE_ALIGN`], an existing output without
/// `force`, an output that is the input or one of its side files, a side file whose destination
/// is the output or leaves the output folder through a symlink. A filler that gives a piece
/// different values when asked twice fails the run. On error no output file is left and the
/// input is untouched.
pub fn rewrite(
    model: &LoadedModel,
    targets: &[usize],
    filler: &dyn Filler,
    opts: &RewriteOptions,
) -> Result<RewriteStats, Error> {
    Rewriter::new(model, filler, opts)?.run(targets)
}

/// Rewrites of this process that may have temporary files to remove (plus one per rewrite that
/// has renamed an output: its report is still to be given), or [`EXITING`] once a signal
/// handler has committed the process to exit at once. See [`exit_now_if_idle`].
static WRITERS: AtomicUsize = AtomicUsize::new(0);

/// [`WRITERS`]'s value once the process is exiting: no rewrite may start any more.
const EXITING: usize = usize::MAX;

/// A rewrite's place in [`WRITERS`], released when it ends without having renamed anything.
struct WriterSlot {
    committed: bool,
}

impl WriterSlot {
    /// `None` if the process is exiting (a signal arrived before this rewrite started).
    fn enter() -> Option<WriterSlot> {
        WRITERS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n != EXITING).then_some(n + 1)
            })
            .ok()
            .map(|_| WriterSlot { committed: false })
    }
}

impl Drop for WriterSlot {
    fn drop(&mut self) {
        // After a rename the slot is kept: the process has written an output and must not be
        // told by a signal that it wrote nothing.
        if !self.committed {
            WRITERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

/// For a signal handler of a process that runs rewrites (the CLI): if no rewrite is under way
/// or done, commits the process to exiting — no rewrite can start after this returns `true` —
/// so the handler may exit at once: nothing is written, nothing needs cleaning up, and the
/// load, analysis, plan or dry run in progress is simply abandoned. `false`: a rewrite has
/// temporary files (it stops at its cancellation flag and removes them) or has already renamed
/// its output; the handler must not exit.
pub(crate) fn exit_now_if_idle() -> bool {
    WRITERS
        .compare_exchange(0, EXITING, Ordering::AcqRel, Ordering::Acquire)
        .is_ok()
        || WRITERS.load(Ordering::Acquire) == EXITING
}

/// Holds off [`exit_now_if_idle`] while the returned guard lives (a file being written outside
/// a rewrite, such as `inspect`'s plot), keeping it held afterwards as a finished rewrite does.
/// `None` if the process is already exiting.
pub(crate) fn hold_exit() -> Option<impl Drop> {
    WriterSlot::enter().map(|mut s| {
        s.committed = true;
        s
    })
}

/// Marks the current rewrite as having renamed an output (see [`WriterSlot`]).
fn mark_committed(slot: &mut WriterSlot) {
    slot.committed = true;
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
            return Err(Error::InvalidPieceSize {
                file: model.path().to_path_buf(),
                piece_elems: opts.piece_elems,
                align: PIECE_ALIGN,
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
            tensor: self.model.tensors()[tensor].name.to_string(),
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
        let Some(mut slot) = WriterSlot::enter() else {
            return Err(Error::Cancelled { file: self.dest() });
        };
        let mut created = Vec::new();
        let result = self.run_in(targets, &mut created);
        if result.is_err() {
            persist::remove_created_dirs(&created);
        } else {
            mark_committed(&mut slot);
        }
        result
    }

    /// [`Self::run`], recording in `created` the folders it creates (in creation order).
    fn run_in(&self, targets: &[usize], created: &mut Vec<PathBuf>) -> Result<RewriteStats, Error> {
        self.check_targets(targets)?;
        let mut layouts = self.lay_out_files(targets, created)?;
        if let Some(m) = layouts.iter().position(|l| l.output.is_model) {
            self.measure_varints(&mut layouts[m])?;
            let relocated = match &self.opts.data_name {
                Some(name) => self.relocations(name)?,
                None => Vec::new(),
            };
            self.reframe(&mut layouts[m], relocated)?;
        }
        for layout in &layouts {
            layout
                .output
                .temp_file()
                .set_len(layout.out_len)
                .map_err(|e| Error::io(&layout.output.dest, "size the output", e))?;
        }
        let total: u64 = layouts.iter().map(|l| l.out_len).sum();
        if let Err(e) = self.execute(&layouts, total) {
            // A source that shrank under a copy is a read error there; say why.
            return Err(self.check_sources_unchanged(&layouts).err().unwrap_or(e));
        }
        self.persist(layouts, targets, total)
    }

    fn dest(&self) -> PathBuf {
        match &self.opts.output {
            OutputTarget::Path(p) => p.clone(),
            OutputTarget::InPlace => self.file(),
        }
    }

    /// Decides which files are written and which targets each holds, refusing bad
    /// destinations, and creates each file's temporary file beside its destination.
    fn lay_out_files(
        &self,
        targets: &[usize],
        created: &mut Vec<PathBuf>,
    ) -> Result<Vec<FileLayout>, Error> {
        let model = self.model;
        let input_meta = model
            .file
            .metadata()
            .map_err(|e| Error::io(model.path(), "read metadata", e))?;
        let inline_targets = targets.iter().any(|&i| {
            !matches!(
                model.tensors()[i].storage,
                Storage::External(_) | Storage::Empty
            )
        });
        let mut layouts = Vec::new();
        // Side files, keyed by destination path.
        let sides = match &self.opts.output {
            OutputTarget::InPlace => {
                if let Some(name) = &self.opts.data_name {
                    return Err(Error::DataName {
                        file: self.file(),
                        name: name.clone(),
                        what: "in place, the external data files keep their names".into(),
                    });
                }
                let canonical = model
                    .path()
                    .canonicalize()
                    .map_err(|e| Error::io(model.path(), "resolve the model path", e))?;
                if inline_targets {
                    layouts.push(FileLayout::new(self.model_output(canonical, true)?));
                }
                let sides = self.sides_in_place(targets);
                let main = inline_targets.then(|| model.path());
                destination::check_writable_in_place(
                    main.into_iter()
                        .chain(sides.values().map(|s| s.src.as_path())),
                    self.opts.force,
                )?;
                sides
            }
            OutputTarget::Path(dest) => {
                let (sides, inputs) = self.sides_beside(dest, targets, input_meta)?;
                self.check_new_outputs(dest, &sides, &inputs)?;
                layouts.push(FileLayout::new(
                    self.model_output(dest.clone(), self.opts.force)?,
                ));
                self.create_side_folders(dest, &sides, created)?;
                sides
            }
        };
        let overwrite = self.opts.force || self.opts.output == OutputTarget::InPlace;
        for (dest, side) in sides {
            let src = crate::onnx::model::open_regular(&side.src)
                .map_err(|e| Error::io(&side.src, "open", e))?;
            let mut layout =
                FileLayout::new(OutputFile::new(false, side.src, src, dest, overwrite)?);
            self.lay_out_side_targets(&mut layout, &side.targets)?;
            layouts.push(layout);
        }
        if let Some(main) = layouts.iter_mut().find(|l| l.output.is_model) {
            self.lay_out_inline_targets(main, targets);
        }
        Ok(layouts)
    }
}
