//! Layout, type, routing and pooling ops: the walk passes them, they have no parameters.
//!
//! Routing ops pass because they move elements without changing them: the moved elements still
//! meet the same nonlinearity.

use super::{OpSpec, Outputs, Slots, Walk};

/// Continue from output 0 when the walked value is the data input.
const DATA: Walk = Walk::Transparent {
    slots: Slots::Data,
    outputs: Outputs::First,
};

/// The layout, routing and pooling specs.
pub(crate) static SPECS: &[OpSpec] = &[
    // Layout, type and routing.
    OpSpec::new(
        &[
            "Reshape",
            "Transpose",
            "Flatten",
            "Squeeze",
            "Unsqueeze",
            "Identity",
            "Dropout",
            "Cast",
            "CastLike",
            "Expand",
            "Tile",
            "Pad",
            "Resize",
            "Upsample",
            "DepthToSpace",
            "SpaceToDepth",
            "Slice",
        ],
        DATA,
    ),
    OpSpec::new(
        &["Split"],
        Walk::Transparent {
            slots: Slots::Data,
            outputs: Outputs::All,
        },
    ),
    OpSpec::new(
        &["Concat"],
        Walk::Transparent {
            slots: Slots::Any,
            outputs: Outputs::First,
        },
    ),
    // The selected values, not the condition.
    OpSpec::new(
        &["Where"],
        Walk::Transparent {
            slots: Slots::From(1),
            outputs: Outputs::First,
        },
    ),
    // Pooling and reductions used as pooling.
    OpSpec::new(
        &[
            "MaxPool",
            "AveragePool",
            "GlobalAveragePool",
            "GlobalMaxPool",
            "LpPool",
            "GlobalLpPool",
            "ReduceMean",
            "ReduceMax",
            "ReduceMin",
            "ReduceSum",
        ],
        DATA,
    ),
];
