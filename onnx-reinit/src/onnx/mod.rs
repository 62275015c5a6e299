//! Bytes → validated model: the wire-format scanner, the payload-free skeleton, external data,
//! the loaded model and its values. Nothing here knows about roles, schemes or rewriting.
pub mod dtype;
pub mod external;
pub mod model;
mod residency;
pub mod scan;
pub mod skeleton;
pub mod storage;
pub mod values;
pub mod wire;
