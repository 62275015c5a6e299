//! Compile-time shapes of nested arrays, for `#[derive(Initialize)]`.
//!
//! `[[f32; IN]; OUT]` is a rank-2 tensor with dims `[OUT, IN]`; its fans are associated
//! constants, so a `struct Dense<const I: usize, const O: usize>` gets its fans per
//! monomorphization and misuse (rank 0, a zero dimension) is a compile-time error.

use crate::element::Element;
use crate::fans::Layout;

/// The highest rank a compile-time shape may have.
pub const MAX_RANK: usize = 8;

/// A fixed-capacity list of dimensions, usable in `const` contexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Number of dimensions.
    pub rank: usize,
    /// The dimensions, outermost first; entries past `rank` are 0.
    pub dims: [usize; MAX_RANK],
}

impl Dims {
    /// The rank-0 (scalar) shape.
    pub const SCALAR: Dims = Dims {
        rank: 0,
        dims: [0; MAX_RANK],
    };

    /// `n` prepended as a new outermost dimension.
    pub const fn prepend(self, n: usize) -> Dims {
        assert!(
            self.rank < MAX_RANK,
            "init-core: arrays of rank above 8 are not supported"
        );
        let mut dims = [0; MAX_RANK];
        dims[0] = n;
        let mut i = 0;
        while i < self.rank {
            dims[i + 1] = self.dims[i];
            i += 1;
        }
        Dims {
            rank: self.rank + 1,
            dims,
        }
    }

    /// The dimensions as a slice.
    pub fn as_slice(&self) -> &[usize] {
        &self.dims[..self.rank]
    }

    /// ∏ dims (1 for a scalar).
    pub const fn numel(&self) -> usize {
        let mut p = 1;
        let mut i = 0;
        while i < self.rank {
            p *= self.dims[i];
            i += 1;
        }
        p
    }

    /// Whether any dimension is zero.
    pub const fn has_zero(&self) -> bool {
        let mut i = 0;
        while i < self.rank {
            if self.dims[i] == 0 {
                return true;
            }
            i += 1;
        }
        false
    }

    /// (fan_in, fan_out) for a dense/conv weight in `layout`, groups 1; (0, 0) below rank 2.
    pub const fn fans(&self, layout: Layout) -> (usize, usize) {
        if self.rank < 2 {
            return (0, 0);
        }
        let r = self.rank;
        let mut rf = 1;
        let (out, inp) = match layout {
            Layout::OutIn => {
                let mut i = 2;
                while i < r {
                    rf *= self.dims[i];
                    i += 1;
                }
                (self.dims[0], self.dims[1])
            }
            Layout::InOut => {
                let mut i = 0;
                while i + 2 < r {
                    rf *= self.dims[i];
                    i += 1;
                }
                (self.dims[r - 1], self.dims[r - 2])
            }
        };
        (inp * rf, out * rf)
    }
}

/// A value laid out as a dense, row-major tensor of [`Element`]s whose shape is known at
/// compile time.
///
/// # Safety
/// Implementors guarantee that `Self` is exactly `NUMEL` contiguous `Elem`s with no padding, so
/// the flat views are sound.
pub unsafe trait Shape: Sized {
    /// The element type.
    type Elem: Element;
    /// The dimensions, outermost first.
    const DIMS: Dims;
    /// Number of elements.
    const NUMEL: usize = Self::DIMS.numel();
    /// Rank.
    const RANK: usize = Self::DIMS.rank;
    /// fan_in in the PyTorch layout `[out, in, k…]` (0 below rank 2).
    const FAN_IN: usize = Self::DIMS.fans(Layout::OutIn).0;
    /// fan_out in the PyTorch layout (0 below rank 2).
    const FAN_OUT: usize = Self::DIMS.fans(Layout::OutIn).1;

    /// The elements in row-major order.
    fn flat(&self) -> &[Self::Elem] {
        // SAFETY: the trait's contract: Self is NUMEL contiguous Elems.
        unsafe { core::slice::from_raw_parts((self as *const Self).cast(), Self::NUMEL) }
    }

    /// The elements in row-major order, mutable.
    fn flat_mut(&mut self) -> &mut [Self::Elem] {
        // SAFETY: as in `flat`; the borrow is unique.
        unsafe { core::slice::from_raw_parts_mut((self as *mut Self).cast(), Self::NUMEL) }
    }

    /// All elements zero.
    fn zeroed() -> Self;
}

macro_rules! scalar_shape {
    ($($t:ty),*) => {$(
        // SAFETY: a scalar is one element.
        unsafe impl Shape for $t {
            type Elem = $t;
            const DIMS: Dims = Dims::SCALAR;
            fn zeroed() -> Self {
                <$t as Element>::ZERO
            }
        }
    )*};
}
scalar_shape!(f32, f64, half::f16, half::bf16);

// SAFETY: arrays have no padding between elements, so [T; N] is N·T::NUMEL contiguous Elems.
unsafe impl<T: Shape, const N: usize> Shape for [T; N] {
    type Elem = T::Elem;
    const DIMS: Dims = T::DIMS.prepend(N);
    fn zeroed() -> Self {
        core::array::from_fn(|_| T::zeroed())
    }
}
