//! Value sources: Constant, Shape and Size (static outputs) and the random ops.

use super::{OpSpec, Source, Walk};

/// The value-source specs.
pub(crate) static SPECS: &[OpSpec] = &[
    OpSpec::new(&["Constant"], Walk::Opaque).source(Source::Static),
    // They read only shapes: static outputs, and neither a parameter use nor a walk branch.
    OpSpec::new(&["Shape", "Size"], Walk::ShapeOnly).source(Source::Static),
    // Random even from constant inputs.
    OpSpec::new(
        &[
            "RandomNormal",
            "RandomUniform",
            "RandomNormalLike",
            "RandomUniformLike",
            "Multinomial",
            "Bernoulli",
        ],
        Walk::Opaque,
    )
    .source(Source::Random),
];
