//! The initialization schemes of initforge: their names, parameters, gains, the one text
//! grammar, and what each needs of a tensor's rank.
//!
//! `no_std` + `alloc`, without dependencies, so that both sides of the workspace share one
//! definition: `init-core` (which re-exports this crate as `init_core::scheme` and fills
//! tensors) and the proc macro `init-derive` (which validates `#[init(...)]` attributes with
//! exactly the parser the CLI uses, and prints exactly the same canonical names). This is the
//! split serde/serde_derive use; depend on `init-core` rather than on this crate directly.
//!
//! ```
//! use init_scheme::{Scheme, SchemeKind};
//! let s: Scheme = "orthogonal(gain = 2)".parse().unwrap();
//! assert_eq!(s.kind(), SchemeKind::Orthogonal { gain: 2.0 });
//! assert_eq!(s.to_string(), "orthogonal(gain=2)");
//! ```
//!
//! # Grammar
//! ```text
//! scheme := name [ "(" arg { "," arg } ")" ]
//! arg    := [ key "=" ] value
//! value  := number | name [ "(" arg { "," arg } ")" ]
//! ```
//! White space is ignored. Names are case-insensitive and `-` may stand for `_`.
//! A family name alone (`he`, `glorot`, `lecun`, `kaiming`, `xavier`) means its uniform variant,
//! as Keras's `HeUniform`/`GlorotUniform`; `uniform` alone is the ±1/√fan_in rule
//! (`fan_in_uniform`); `normal` alone is N(0, 1) (PyTorch's `normal_` default).
#![no_std]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

extern crate alloc;

mod rank;
mod scheme;

pub use rank::RankRequirement;
pub use scheme::{
    Distribution, Family, FanMode, NONLINEARITY_NAMES, Nonlinearity, SCHEME_NAMES, Scheme,
    SchemeError, SchemeKind, TRUNC_STD_CORRECTION, TruncForm, closest,
};
