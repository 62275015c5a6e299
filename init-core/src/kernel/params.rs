//! Per-fill constants: a sampler resolved for one element width.

use super::tail::{TailSampler, normal_mass};

/// A sampler resolved for one element width: the constants every chunk's kernel uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum KernelParams {
    Constant(f64),
    Uniform32 {
        mid: f32,
        half: f32,
        lo: f32,
        hi: f32,
    },
    Uniform64 {
        mid: f64,
        half: f64,
        lo: f64,
        hi: f64,
    },
    Normal32 {
        mean: f32,
        std: f32,
    },
    Normal64 {
        mean: f64,
        std: f64,
    },
    /// Truncated normal by rejection from the block normals: z kept when a ≤ z ≤ b.
    Reject32 {
        a: f32,
        b: f32,
        mean: f32,
        std: f32,
        lo: f32,
        hi: f32,
    },
    Reject64 {
        a: f64,
        b: f64,
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    },
    /// Truncated normal with little mass in [lo, hi]: the scalar tail samplers.
    Tail {
        wide: bool,
        tail: TailSampler,
        mean: f64,
        std: f64,
        lo: f64,
        hi: f64,
    },
}

/// The rejection sampler is used when the interval holds at least this much of the normal's
/// mass (PyTorch's threshold since PR #174997); below it, the tail samplers.
pub(crate) const REJECTION_MIN_MASS: f64 = 0.3;

impl KernelParams {
    pub(crate) fn new(s: &crate::Sampler, wide: bool) -> KernelParams {
        use crate::Sampler;
        if !s.is_valid() {
            return KernelParams::Constant(f64::NAN);
        }
        match *s {
            Sampler::Constant(v) => KernelParams::Constant(v),
            Sampler::Uniform { lo, hi } => {
                let (mid, half) = (0.5 * (lo + hi), 0.5 * (hi - lo));
                if wide {
                    KernelParams::Uniform64 { mid, half, lo, hi }
                } else {
                    KernelParams::Uniform32 {
                        mid: mid as f32,
                        half: half as f32,
                        lo: lo as f32,
                        hi: hi as f32,
                    }
                }
            }
            Sampler::Normal { mean, std } => {
                if wide {
                    KernelParams::Normal64 { mean, std }
                } else {
                    KernelParams::Normal32 {
                        mean: mean as f32,
                        std: std as f32,
                    }
                }
            }
            Sampler::TruncatedNormal { mean, std, lo, hi } => {
                let (a, b) = ((lo - mean) / std, (hi - mean) / std);
                if normal_mass(a, b) >= REJECTION_MIN_MASS {
                    if wide {
                        KernelParams::Reject64 {
                            a,
                            b,
                            mean,
                            std,
                            lo,
                            hi,
                        }
                    } else {
                        KernelParams::Reject32 {
                            a: a as f32,
                            b: b as f32,
                            mean: mean as f32,
                            std: std as f32,
                            lo: lo as f32,
                            hi: hi as f32,
                        }
                    }
                } else {
                    KernelParams::Tail {
                        wide,
                        tail: TailSampler::new(a, b),
                        mean,
                        std,
                        lo,
                        hi,
                    }
                }
            }
        }
    }
}
