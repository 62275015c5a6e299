//! Re-initialize the weights of an ONNX model, byte-exactly.
pub mod analysis;
pub mod error;
pub mod external;
pub mod model;
pub mod rewrite;
pub mod scan;
pub mod skeleton;
pub mod values;
pub mod wire;
