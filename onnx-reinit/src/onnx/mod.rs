//! Bytes → validated model. Nothing here knows about roles, schemes or rewriting.
//!
//! - [`wire`]: the panic-free protobuf wire-format reader every other module walks with.
//! - [`scan`]: where each initializer's payload lies, without decoding it; locates decode errors.
//! - [`skeleton`]: the payload-free prost messages analysis reads.
//! - [`dtype`]: element types, one table of ONNX's `TensorProto.DataType` codes.
//! - [`storage`]: where a tensor's values lie (`raw_data`, typed fields, external), checked.
//! - [`external`]: which side files external data may name.
//! - `residency`: dropping the mapped pages a pass over the model has moved past.
//! - [`model`]: the opened, cross-checked and validated model.
//! - [`values`]: typed reads of initializer values, whatever their storage.
//! - [`shared`]: names and dims held once, shared by the entries, the analysis and the report.
pub mod dtype;
pub mod external;
mod fault;
pub mod model;
mod residency;
pub mod scan;
pub mod shared;
pub mod skeleton;
pub mod storage;
pub mod values;
pub mod wire;
