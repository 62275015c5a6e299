//! Every key the `#[init(...)]` attribute knows, in one place.

/// The attribute's name.
pub(crate) const INIT: &str = "init";

/// Field: leave the field alone (built with `Default` by `initialized`).
pub(crate) const SKIP: &str = "skip";
/// Field: accept `zeros`/`constant` on a weight of rank ≥ 2.
pub(crate) const ALLOW_SYMMETRIC: &str = "allow_symmetric";
/// Field and struct: `out_in` (PyTorch, the default) or `in_out` (Keras).
pub(crate) const LAYOUT: &str = "layout";
/// Field: explicit `(fan_in, fan_out)`.
pub(crate) const FANS: &str = "fans";
/// Field: the dims of a run-time-shaped buffer.
pub(crate) const SHAPE: &str = "shape";
/// Field: how many layers `initialized` puts in a `Vec` of layers.
pub(crate) const LEN: &str = "len";

/// Field: convolution groups (fans in/g, out/g under the true convention).
pub(crate) const GROUPS: &str = "groups";
/// Field: a transposed convolution weight (`[in, out/g, k…]` in out_in).
pub(crate) const TRANSPOSED: &str = "transposed";
/// Field and struct: `true` (real connections, the default) or `framework` (PyTorch/Keras).
pub(crate) const CONVENTION: &str = "convention";
/// Field: an embedding table `[V, D]`: fans (1, D) (true) or PyTorch's (D, V) (framework).
pub(crate) const EMBEDDING: &str = "embedding";
/// Field: a user function that fills the tensor instead of a scheme.
pub(crate) const WITH: &str = "with";

/// Struct: the scheme of fields without one (rank ≠ 1, or every rank if no `bias`).
pub(crate) const DEFAULT: &str = "default";
/// Struct: the scheme of rank-1 fields without one.
pub(crate) const BIAS: &str = "bias";

/// Keys a field's `#[init(...)]` takes besides a scheme and its parameters.
pub(crate) const FIELD_KEYS: &[&str] = &[
    SKIP,
    ALLOW_SYMMETRIC,
    LAYOUT,
    FANS,
    SHAPE,
    LEN,
    GROUPS,
    TRANSPOSED,
    CONVENTION,
    EMBEDDING,
    WITH,
];
/// Keys the struct's `#[init(...)]` takes.
pub(crate) const STRUCT_KEYS: &[&str] = &[DEFAULT, BIAS, LAYOUT, CONVENTION];

/// `convention = ..` values.
pub(crate) const TRUE: &str = "true";
/// `convention = ..` values.
pub(crate) const FRAMEWORK: &str = "framework";

/// `layout = ..` values.
pub(crate) const OUT_IN: &str = "out_in";
/// `layout = ..` values.
pub(crate) const IN_OUT: &str = "in_out";
