//! Re-initialize the weights of an ONNX model, byte-exactly.
#![warn(unreachable_pub)]
pub mod analysis;
pub mod apply;
pub mod cli;
pub mod error;
pub mod inspect;
pub mod onnx;
pub mod pipeline;
pub mod plan;
pub mod preset;
pub mod report;
pub mod rewrite;
pub mod table;
