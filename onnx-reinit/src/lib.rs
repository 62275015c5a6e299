//! Re-initialize the weights of an ONNX model, byte-exactly.
pub mod analysis;
pub mod apply;
pub mod error;
pub mod external;
mod fileio;
pub mod inspect;
pub mod model;
pub mod pipeline;
pub mod plan;
pub mod report;
pub mod rewrite;
pub mod scan;
pub mod skeleton;
pub mod values;
pub mod wire;
