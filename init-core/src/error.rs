//! The one error type of init-core.

use alloc::string::String;

pub use crate::scheme::SchemeError;

/// Why an initialization could not be done. Every fallible operation returns it; nothing in
/// init-core panics on bad parameters.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InitError {
    /// A scheme name or parameter is invalid.
    #[error(transparent)]
    Scheme(#[from] SchemeError),
    /// A fan-based scheme needs fans but one of them is zero.
    #[error(
        "{scheme}: fan_in = {fan_in} and fan_out = {fan_out}; a fan-based scheme needs both > 0"
    )]
    ZeroFan {
        /// The scheme's name.
        scheme: &'static str,
        /// fan_in.
        fan_in: u64,
        /// fan_out.
        fan_out: u64,
    },
    /// A fan-based scheme was given no fans (`init_tensor(.., None, ..)`).
    #[error(
        "{scheme} scales its values by fan_in/fan_out, so it needs fans: pass \
         `Some(Fans::of(shape, rule)?)`, or call `SchemeExt::fill`, which reads them from the shape"
    )]
    NeedsFans {
        /// The scheme's name.
        scheme: &'static str,
    },
    /// The tensor has fewer dimensions than the scheme or fan rule needs.
    #[error("{what} needs a tensor of rank >= {min}, got rank {rank}")]
    RankTooLow {
        /// The scheme or rule.
        what: &'static str,
        /// The rank it needs.
        min: usize,
        /// The rank given.
        rank: usize,
    },
    /// The slice length disagrees with the shape's element count.
    #[error("the shape holds {expected} elements but the buffer has {got}")]
    LengthMismatch {
        /// Elements the shape holds.
        expected: usize,
        /// Elements the buffer holds.
        got: usize,
    },
    /// A dimension product overflows, or a layout/axis/group is inconsistent with the shape.
    #[error("invalid shape: {0}")]
    BadShape(String),
    /// A shard was asked of a scheme that is computed from the whole tensor at once.
    #[error(
        "{scheme} is computed from the whole matrix (a QR decomposition) and cannot be filled \
         shard by shard; initialize the full tensor and take the shard from it"
    )]
    WholeTensorOnly {
        /// The scheme's name.
        scheme: &'static str,
    },
}
