//! What each scheme needs of the rank of the tensor it fills.

use crate::scheme::{Scheme, SchemeKind};
use core::ops::RangeInclusive;

/// What a scheme needs of a tensor's rank (its number of dimensions).
///
/// The one statement of it: init-core's fills and run-time checks, the derive's compile-time
/// checks and onnx-reinit's planner all ask [`Scheme::rank_requirement`] and word their errors
/// with [`RankRequirement::message`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RankRequirement {
    /// Any rank: constants and the fixed distributions.
    Any,
    /// fan_in and fan_out, for the variance-scaling schemes: given explicitly, or read from a
    /// tensor of rank >= 2 (a bias or a scalar has none).
    Fans,
    /// The rows × cols view (rows = dim 0, the other dims flattened) of a tensor of rank >= 2:
    /// orthogonal and eye.
    Matrix,
    /// A convolution weight `[out, in, k…]` of rank 3, 4 or 5 (1-D to 3-D kernels): dirac.
    ConvWeight,
}

impl RankRequirement {
    /// The ranks admitted; `has_fans`: the caller gives fans explicitly (which lifts
    /// [`RankRequirement::Fans`]'s rank >= 2 and nothing else).
    pub fn ranks(self, has_fans: bool) -> RangeInclusive<usize> {
        match self {
            RankRequirement::Any => 0..=usize::MAX,
            RankRequirement::Fans if has_fans => 0..=usize::MAX,
            RankRequirement::Fans | RankRequirement::Matrix => 2..=usize::MAX,
            RankRequirement::ConvWeight => 3..=5,
        }
    }

    /// Whether a tensor of `rank` qualifies, `has_fans` as in [`RankRequirement::ranks`].
    pub fn admits(self, rank: usize, has_fans: bool) -> bool {
        self.ranks(has_fans).contains(&rank)
    }

    /// The lowest rank admitted without explicit fans.
    pub fn min_rank(self) -> usize {
        *self.ranks(false).start()
    }

    /// What the scheme needs, worded to follow its name: `"needs fan_in and fan_out"`,
    /// `"needs a tensor of rank >= 2"`, `"needs a convolution weight of rank 3, 4 or 5"`.
    pub fn message(self) -> &'static str {
        match self {
            RankRequirement::Any => "takes a tensor of any rank",
            RankRequirement::Fans => "needs fan_in and fan_out",
            RankRequirement::Matrix => "needs a tensor of rank >= 2",
            RankRequirement::ConvWeight => "needs a convolution weight of rank 3, 4 or 5",
        }
    }

    /// The ranks that fail without explicit fans, in words (`"rank < 2"`), for checks that
    /// know the rank only as a bound.
    pub fn failing_ranks(self) -> &'static str {
        match self {
            RankRequirement::Any => "no rank",
            RankRequirement::Fans | RankRequirement::Matrix => "rank < 2",
            RankRequirement::ConvWeight => "a rank outside 3..=5",
        }
    }
}

impl Scheme {
    /// What this scheme needs of the rank of the tensor it fills.
    pub fn rank_requirement(&self) -> RankRequirement {
        match self.kind() {
            SchemeKind::Scaled { .. } => RankRequirement::Fans,
            SchemeKind::Orthogonal { .. } | SchemeKind::Eye { .. } => RankRequirement::Matrix,
            SchemeKind::Dirac { .. } => RankRequirement::ConvWeight,
            SchemeKind::Constant(_)
            | SchemeKind::Uniform { .. }
            | SchemeKind::Normal { .. }
            | SchemeKind::TruncatedNormal { .. } => RankRequirement::Any,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RankRequirement;
    use crate::Scheme;

    fn need(s: &str) -> RankRequirement {
        Scheme::parse(s).unwrap().rank_requirement()
    }

    #[test]
    fn each_kind_states_its_ranks() {
        for (s, ok, bad) in [
            ("zeros", &[0, 1, 2, 7][..], &[][..]),
            ("he_uniform", &[2, 4], &[0, 1]),
            ("orthogonal", &[2, 3, 6], &[0, 1]),
            ("eye", &[2], &[1]),
            ("dirac", &[3, 4, 5], &[0, 1, 2, 6]),
        ] {
            for &r in ok {
                assert!(need(s).admits(r, false), "{s} rank {r}");
            }
            for &r in bad {
                assert!(!need(s).admits(r, false), "{s} rank {r}");
            }
        }
        // Explicit fans lift the fan rule only.
        assert!(need("he_uniform").admits(1, true));
        assert!(!need("orthogonal").admits(1, true));
        assert!(!need("dirac").admits(2, true));
        assert_eq!(need("he_normal"), RankRequirement::Fans);
        assert_eq!(need("eye").min_rank(), 2);
    }
}
