//! The errors of loading, reading and rewriting a model.
//!
//! Every variant names the file it concerns and, where one is involved, the tensor (with its
//! graph path); errors about malformed bytes carry the byte offset. Messages are one line, meant
//! to be printed as they are by the CLI.

use std::path::PathBuf;

use crate::onnx::model::DType;

/// An error of the loading and rewrite layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation failed.
    #[error("{}: cannot {action}: {io}", file.display())]
    Io {
        /// The file (or folder) concerned.
        file: PathBuf,
        /// What was being done, e.g. `"open the model"`.
        action: &'static str,
        /// The underlying error (kept out of `source()` because the message already shows it).
        io: std::io::Error,
    },

    /// The bytes are not a well-formed ONNX protobuf.
    #[error("{}: malformed ONNX model at byte {offset}{}: {what}", file.display(), ctx(context))]
    Malformed {
        /// The model file.
        file: PathBuf,
        /// Absolute byte offset of the problem.
        offset: u64,
        /// Where in the model structure (graph, node, initializer), possibly empty.
        context: String,
        /// What is wrong.
        what: String,
    },

    /// prost could not decode the payload-free skeleton (after the scanner accepted the bytes).
    #[error("{}: cannot decode the model structure: {what}", file.display())]
    Decode {
        /// The model file.
        file: PathBuf,
        /// prost's description.
        what: String,
    },

    /// The scanner and the skeleton decoder disagree about the initializers (should not happen
    /// for any input the scanner accepts; reported rather than trusted).
    #[error("{}: inconsistent model structure: {what}", file.display())]
    Inconsistent {
        /// The model file.
        file: PathBuf,
        /// What disagrees.
        what: String,
    },

    /// An initializer's header contradicts itself or its payload (bad dims, wrong length,
    /// payload in several places, duplicate name, …).
    #[error("{}: tensor {tensor:?} (graph {graph:?}, TensorProto at byte {offset}): {what}",
            file.display())]
    InvalidTensor {
        /// The model file.
        file: PathBuf,
        /// The graph path (`""` for the main graph).
        graph: String,
        /// The tensor name.
        tensor: String,
        /// Offset of the tensor's `TensorProto` body.
        offset: u64,
        /// What is wrong.
        what: String,
    },

    /// An initializer's external data is refused (bad location, missing file, out of range).
    #[error("{}: tensor {tensor:?} (TensorProto at byte {offset}): external data: {what}",
            file.display())]
    External {
        /// The model file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Offset of the tensor's `TensorProto` body.
        offset: u64,
        /// What is wrong.
        what: String,
    },

    /// The operation is valid ONNX but not supported for this tensor.
    #[error("{}: tensor {tensor:?}: not supported: {what}", file.display())]
    Unsupported {
        /// The model file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// What is not supported.
        what: String,
    },

    /// A tensor index out of range, or a tensor named that does not exist.
    #[error("{}: no tensor {what}", file.display())]
    NoSuchTensor {
        /// The model file.
        file: PathBuf,
        /// The index or name asked for.
        what: String,
    },

    /// The output (or one of its side files) exists and `force` was not set.
    #[error("{}: output already exists (use force to overwrite it)", file.display())]
    OutputExists {
        /// The existing file.
        file: PathBuf,
    },

    /// The output path is the input model (or one of its side files) without `InPlace`.
    #[error("{}: refusing to write the output over the input; use in-place to modify the model \
             itself", file.display())]
    OutputIsInput {
        /// The file that would be overwritten.
        file: PathBuf,
    },

    /// A new output's external data file would be one the input reads its own external data
    /// from: an output beside the input (or anywhere the same relative `location` leads back to
    /// the input's data), which copies each side file under its `location`.
    #[error("{}: the output's external data file would be the input's own (tensor {tensor:?} \
             of {} keeps its data there under location {location:?}, and the output copies it \
             under the same location beside itself)", file.display(), model.display())]
    SideFileIsInput {
        /// The side file both would use.
        file: PathBuf,
        /// The input model.
        model: PathBuf,
        /// A tensor whose external data is there.
        tensor: String,
        /// The tensor's `location` as written in the model.
        location: String,
    },

    /// A `data_name` (`--data-name`) that cannot apply: not a plain relative path, in place, or
    /// a model whose external data is in several files.
    #[error("{}: data name {name:?}: {what}", file.display())]
    DataName {
        /// The input model.
        file: PathBuf,
        /// The name given.
        name: String,
        /// Why it cannot apply.
        what: String,
    },

    /// An output side file would be the output model itself (an external `location` with the
    /// output's file name).
    #[error("{}: the output is also where tensor {tensor:?} of {} keeps its external data",
            file.display(), model.display())]
    OutputIsSideFile {
        /// The output model.
        file: PathBuf,
        /// The input model.
        model: PathBuf,
        /// A tensor whose external data goes there.
        tensor: String,
    },

    /// An output side file's folder leads outside the output folder through a symlink.
    #[error("{}: output side file (external data of tensor {tensor:?} of {}) would leave the \
             output folder through a symlink", file.display(), model.display())]
    SideFileEscapes {
        /// The side file's destination.
        file: PathBuf,
        /// The input model.
        model: PathBuf,
        /// A tensor whose external data goes there.
        tensor: String,
    },

    /// The rewrite's piece size is not a positive multiple of
    /// [`PIECE_ALIGN`](crate::rewrite::PIECE_ALIGN).
    #[error("{}: invalid rewrite option: piece_elems {piece_elems} is not a positive multiple \
             of {align}", file.display())]
    InvalidPieceSize {
        /// The model file.
        file: PathBuf,
        /// The piece size asked for.
        piece_elems: usize,
        /// The multiple it must be.
        align: usize,
    },

    /// A tensor listed more than once among the rewrite's targets.
    #[error("{}: tensor {tensor:?} (#{index}) listed twice as a rewrite target", file.display())]
    DuplicateTarget {
        /// The model file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// Its index in the model's tensors.
        index: usize,
    },

    /// The filler gave a piece different values when asked twice (it must be a pure function
    /// of tensor and offset; an `int32_data` tensor's pieces are filled once to measure them and
    /// once to write them).
    #[error("{}: tensor {tensor:?}: the filler gave different values for the same piece \
             (elements {start}..{end}); it must be a pure function of tensor and offset",
            file.display())]
    NondeterministicFiller {
        /// The model file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// First element of the piece.
        start: u64,
        /// End (exclusive) of the piece.
        end: u64,
    },

    /// Values asked for in a buffer of another element type than the tensor's.
    #[error("{}: tensor {tensor:?}: cannot read {} values into a {buffer:?} buffer",
            file.display(), stored.onnx_name())]
    BufferTypeMismatch {
        /// The model file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// The tensor's element type.
        stored: DType,
        /// The buffer's element type.
        buffer: DType,
    },

    /// Elements asked for past the end of a tensor.
    #[error("{}: tensor {tensor:?}: elements {start}..{end} out of range (tensor has {numel})",
            file.display())]
    ElementsOutOfRange {
        /// The model file.
        file: PathBuf,
        /// The tensor name.
        tensor: String,
        /// First element asked for.
        start: u64,
        /// End (exclusive) of the elements asked for (saturated at `u64::MAX`).
        end: u64,
        /// The tensor's element count.
        numel: u64,
    },

    /// The input (the model or a side file) changed while it was being read: truncated,
    /// extended or rewritten by another process. Nothing was written.
    #[error("{}: the input changed under onnx-reinit: {what}; nothing was written (run again \
             once the file is complete)", file.display())]
    InputChanged {
        /// The file that changed.
        file: PathBuf,
        /// What changed.
        what: String,
    },

    /// An existing output path that is not a regular file (a device node, a FIFO, a socket, a
    /// folder): replacing it by a rename would destroy it (`/dev/null` run as root), and writing
    /// into it would not give a model file.
    #[error("{}: refusing to replace a {kind} with the output (only a missing path or a regular \
             file can be an output, even with force)", file.display())]
    OutputNotRegular {
        /// The existing path.
        file: PathBuf,
        /// What it is, e.g. `"character device"`.
        kind: &'static str,
    },

    /// A file to modify in place has other hard links: the rewrite replaces it by a new file,
    /// so the other names would keep the old contents.
    #[error("{}: has {links} hard links; in place replaces the file by a new one and the other \
             links would keep the old contents (use force to do it anyway)", file.display())]
    HardLinked {
        /// The file to modify in place.
        file: PathBuf,
        /// Its link count.
        links: u64,
    },

    /// The rewrite was cancelled through its cancellation flag; nothing was written.
    #[error("{}: rewrite cancelled; no output written", file.display())]
    Cancelled {
        /// The destination that was not written.
        file: PathBuf,
    },
}

fn ctx(context: &str) -> String {
    if context.is_empty() {
        String::new()
    } else {
        format!(" ({context})")
    }
}

impl Error {
    pub(crate) fn io(file: impl Into<PathBuf>, action: &'static str, io: std::io::Error) -> Self {
        Error::Io {
            file: file.into(),
            action,
            io,
        }
    }
}
