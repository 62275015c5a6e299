//! Re-initialize the weights of an ONNX model, byte-exactly.
pub mod skeleton;
