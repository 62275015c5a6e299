//! Every key the `#[init(...)]` attribute knows, in one place.

/// The attribute's name.
pub const INIT: &str = "init";

/// Field: leave the field alone (built with `Default` by `initialized`).
pub const SKIP: &str = "skip";
/// Field: accept `zeros`/`constant` on a weight of rank ≥ 2.
pub const ALLOW_SYMMETRIC: &str = "allow_symmetric";
/// Field and struct: `out_in` (PyTorch, the default) or `in_out` (Keras).
pub const LAYOUT: &str = "layout";
/// Field: explicit `(fan_in, fan_out)`.
pub const FANS: &str = "fans";
/// Field: the dims of a run-time-shaped buffer.
pub const SHAPE: &str = "shape";
/// Field: how many layers `initialized` puts in a `Vec` of layers.
pub const LEN: &str = "len";

/// Struct: the scheme of fields without one (rank ≠ 1, or every rank if no `bias`).
pub const DEFAULT: &str = "default";
/// Struct: the scheme of rank-1 fields without one.
pub const BIAS: &str = "bias";

/// Keys a field's `#[init(...)]` takes besides a scheme and its parameters.
pub const FIELD_KEYS: &[&str] = &[SKIP, ALLOW_SYMMETRIC, LAYOUT, FANS, SHAPE, LEN];
/// Keys the struct's `#[init(...)]` takes.
pub const STRUCT_KEYS: &[&str] = &[DEFAULT, BIAS, LAYOUT];

/// `layout = ..` values.
pub const OUT_IN: &str = "out_in";
/// `layout = ..` values.
pub const IN_OUT: &str = "in_out";
