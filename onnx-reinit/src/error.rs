//! The errors of loading, reading and rewriting a model.
//!
//! Every variant names the file it concerns and, where one is involved, the tensor (with its
//! graph path); errors about malformed bytes carry the byte offset. Messages are one line, meant
//! to be printed as they are by the CLI.

use std::path::PathBuf;

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

    /// An invalid option or argument.
    #[error("invalid rewrite option: {what}")]
    InvalidOption {
        /// What is wrong.
        what: String,
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
