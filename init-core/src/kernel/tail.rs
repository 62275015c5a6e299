//! Normal distribution helpers and the tail samplers.

/// The standard normal density.
pub(crate) fn phi(x: f64) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    libm::exp(-0.5 * x * x) / libm::sqrt(core::f64::consts::TAU)
}

/// The standard normal CDF.
pub(crate) fn big_phi(x: f64) -> f64 {
    0.5 * libm::erfc(-x / core::f64::consts::SQRT_2)
}

/// P(a ≤ Z ≤ b) for a standard normal Z, accurate in both tails.
pub(crate) fn normal_mass(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        big_phi(-a) - big_phi(-b)
    } else if b <= 0.0 {
        big_phi(b) - big_phi(a)
    } else {
        1.0 - big_phi(a) - big_phi(-b)
    }
}

/// Exact samplers of a standard normal on [a, b] for intervals with little mass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TailSampler {
    /// Interval mirrored to lie at or right of its point nearest 0 when one-sided.
    lo: f64,
    hi: f64,
    flip: bool,
    method: TailMethod,
}

#[derive(Clone, Copy, Debug)]
enum TailMethod {
    /// Uniform proposal on [lo, hi], accepted with exp((m² − z²)/2), m = min |z|.
    Uniform { m2: f64 },
    /// Robert (1995): z = lo + E/λ, accepted with exp(−(z − λ)²/2), rejected above hi.
    Exponential { lambda: f64 },
}

impl TailSampler {
    pub(crate) fn new(a: f64, b: f64) -> TailSampler {
        // Mirror intervals on the negative side so the tail is on the right.
        let (lo, hi, flip) = if b <= 0.0 {
            (-b, -a, true)
        } else {
            (a, b, false)
        };
        let method = if lo > 0.0 && (hi - lo) * lo > 1.0 {
            TailMethod::Exponential {
                lambda: 0.5 * (lo + libm::sqrt(lo * lo + 4.0)),
            }
        } else {
            let m = if lo > 0.0 { lo } else { 0.0 };
            TailMethod::Uniform { m2: m * m }
        };
        TailSampler {
            lo,
            hi,
            flip,
            method,
        }
    }

    /// Whether this is the exponential (far one-sided tail) method.
    #[cfg(test)]
    pub(crate) fn is_exponential(&self) -> bool {
        matches!(self.method, TailMethod::Exponential { .. })
    }

    /// One draw; `next` gives a pair of uniforms in (0, 1) per proposal.
    #[inline]
    pub(crate) fn sample(&self, mut next: impl FnMut() -> (f64, f64)) -> f64 {
        loop {
            let (u1, u2) = next();
            let z = match self.method {
                TailMethod::Uniform { m2 } => {
                    let z = self.lo + (self.hi - self.lo) * u1;
                    (libm::log(u2) <= 0.5 * (m2 - z * z)).then_some(z)
                }
                TailMethod::Exponential { lambda } => {
                    let z = self.lo - libm::log(u1) / lambda;
                    let d = z - lambda;
                    (z <= self.hi && libm::log(u2) <= -0.5 * d * d).then_some(z)
                }
            };
            if let Some(z) = z {
                return if self.flip { -z } else { z };
            }
        }
    }
}
