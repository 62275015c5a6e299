//! Compile-time shapes of nested arrays, for `#[derive(Initialize)]`.
//!
//! `[[f32; IN]; OUT]` is a rank-2 tensor with dims `[OUT, IN]`; its fans are associated
//! constants, so a `struct Dense<const I: usize, const O: usize>` gets its fans per
//! monomorphization and misuse (rank 0, a zero dimension) is a compile-time error.
//!
//! Two traits:
//! - [`Shape`]: a value that *is* a dense row-major block of elements whose dims are constants
//!   (nested arrays of f32/f64/f16/bf16; nalgebra's `SMatrix` with the `nalgebra` feature).
//! - [`Tensor`]: anything a `#[derive(Initialize)]` field can hold a scheme for: every [`Shape`]
//!   array, boxed or not, plus run-time-shaped buffers (`Vec<T>` and `Box<[T]>` with a declared
//!   `shape = [..]`, ndarray's `Array<T, D>` with the `ndarray` feature). It carries the rank
//!   and dims as constants where the type fixes them, which is what the derive's
//!   `const { assert!(..) }` checks read.

use crate::element::Element;
use crate::error::InitError;
use crate::fans::{Layout, checked_product};
use alloc::boxed::Box;
use alloc::format;
use alloc::vec::Vec;

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
    #[must_use]
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
/// `[[f32; IN]; OUT]` has `DIMS = [OUT, IN]`; every constant below is evaluated per
/// monomorphization, so `<[[f32; I]; O] as Shape>::FAN_IN` is a constant even for
/// const-generic `I` and `O`:
/// ```
/// use init_core::Shape;
/// const FANS: (usize, usize) = (<[[[[f32; 3]; 3]; 16]; 32] as Shape>::FAN_IN,
///                               <[[[[f32; 3]; 3]; 16]; 32] as Shape>::FAN_OUT);
/// assert_eq!(FANS, (16 * 9, 32 * 9));
/// ```
///
/// # Safety
/// Implementors guarantee that `Self` is exactly `NUMEL` contiguous `Elem`s with no padding, in
/// the row-major order of `DIMS`, and that the all-zero bit pattern is a valid `Self` (every
/// element +0.0), so the flat views and the zeroed constructors are sound.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tensor of f32, f64, f16 or bf16",
    label = "a tensor field is an array (nested to any rank) of f32/f64/f16/bf16, a Vec/Box<[T]> of them with `shape`, or an ndarray/nalgebra array",
    note = "a field of layers takes no scheme (remove it to initialize the layers recursively); a field that holds no parameters takes `#[init(skip)]`"
)]
pub unsafe trait Shape: Sized {
    /// The element type.
    type Elem: Element;
    /// The dimensions, outermost first (the order of the elements in memory).
    const DIMS: Dims;
    /// How [`Shape::FAN_IN`]/[`Shape::FAN_OUT`] read `DIMS`: [`Layout::OutIn`] (PyTorch's
    /// `[out][in]`) for arrays; [`Layout::InOut`] for column-major matrices, whose memory order is
    /// `[in][out]`.
    const LAYOUT: Layout = Layout::OutIn;
    /// Number of elements.
    const NUMEL: usize = Self::DIMS.numel();
    /// Rank.
    const RANK: usize = Self::DIMS.rank;
    /// fan_in in the type's [`Shape::LAYOUT`] (0 below rank 2).
    const FAN_IN: usize = Self::DIMS.fans(Self::LAYOUT).0;
    /// fan_out in the type's [`Shape::LAYOUT`] (0 below rank 2).
    const FAN_OUT: usize = Self::DIMS.fans(Self::LAYOUT).1;

    /// The elements in row-major order.
    fn flat(&self) -> &[Self::Elem] {
        // SAFETY: the trait's contract: Self is NUMEL contiguous Elems.
        unsafe { core::slice::from_raw_parts(core::ptr::from_ref(self).cast(), Self::NUMEL) }
    }

    /// The elements in row-major order, mutable.
    fn flat_mut(&mut self) -> &mut [Self::Elem] {
        // SAFETY: as in `flat`; the borrow is unique.
        unsafe { core::slice::from_raw_parts_mut(core::ptr::from_mut(self).cast(), Self::NUMEL) }
    }

    /// All elements zero.
    fn zeroed() -> Self {
        // SAFETY: the trait's contract: all-zero bits are a valid Self (every element +0.0).
        unsafe { core::mem::zeroed() }
    }

    /// All elements zero, allocated directly on the heap (never built on the stack, so a
    /// `Box<[[f32; 4096]; 4096]>` does not overflow it).
    fn zeroed_box() -> Box<Self> {
        let layout = core::alloc::Layout::new::<Self>();
        if layout.size() == 0 {
            // SAFETY: for a zero-sized type a dangling, aligned pointer is a valid Box, and
            // (by the trait's contract) the value it points to is valid.
            return unsafe { Box::from_raw(core::ptr::NonNull::<Self>::dangling().as_ptr()) };
        }
        // No `Self` is ever built on the stack here (not even in a branch not taken: debug
        // builds reserve stack for every temporary of the function).
        // SAFETY: the layout has a non-zero size; a null result is handled; the allocation is
        // zero-filled, which the trait's contract makes a valid Self, and it was made with
        // Self's layout by the global allocator, as Box::from_raw requires.
        unsafe {
            let p = alloc::alloc::alloc_zeroed(layout).cast::<Self>();
            if p.is_null() {
                alloc::alloc::handle_alloc_error(layout);
            }
            Box::from_raw(p)
        }
    }
}

macro_rules! scalar_shape {
    ($($t:ty),*) => {$(
        // SAFETY: a scalar is one element, and 0.0 is all-zero bits in every element type.
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

// SAFETY: arrays have no padding between elements, so [T; N] is N·T::NUMEL contiguous Elems,
// and all-zero bits are valid because they are for T.
unsafe impl<T: Shape, const N: usize> Shape for [T; N] {
    type Elem = T::Elem;
    const DIMS: Dims = T::DIMS.prepend(N);
}

/// A tensor a `#[derive(Initialize)]` field can give a scheme to: its elements in row-major
/// order and its shape, as constants where the type fixes them.
///
/// Implemented for every [`Shape`] array and scalar, `Box` of those, `Vec<T>` and `Box<[T]>`
/// (whose shape the field declares with `shape = [..]`), and behind features for ndarray's
/// `Array<T, D>` and nalgebra's `SMatrix<T, R, C>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a tensor a scheme can be given to",
    label = "not an array of f32/f64/f16/bf16, a Vec/Box<[T]> with `shape`, or an ndarray/nalgebra array",
    note = "a field whose type derives `Initialize` takes no scheme: remove the scheme to initialize it recursively, or write `#[init(skip)]`"
)]
pub trait Tensor {
    /// The element type.
    type Elem: Element;
    /// The rank when the type fixes it (`None`: known only at run time).
    const RANK: Option<usize>;
    /// The dims when the type fixes them.
    const DIMS: Option<Dims> = None;
    /// How fans are read when the field does not say (see [`Shape::LAYOUT`]).
    const LAYOUT: Layout = Layout::OutIn;

    /// The dims of this value, outermost first. `declared` is the field's `shape = [..]`:
    /// required by types that do not know their shape (`Vec`, `Box<[T]>`), checked against the
    /// value by the others.
    fn dims(&self, declared: Option<&[usize]>) -> Result<Vec<usize>, InitError>;

    /// The elements in the row-major order of [`Tensor::dims`].
    fn elems_mut(&mut self) -> &mut [Self::Elem];

    /// A tensor of zeros (`declared` as for [`Tensor::dims`]).
    fn zeros(declared: Option<&[usize]>) -> Result<Self, InitError>
    where
        Self: Sized;

    /// What `#[derive(Initialize)]` calls for a tensor field (through the trait, so that a
    /// field type that is not a tensor is reported once, on the field). Not a public API.
    #[doc(hidden)]
    fn __init_field(
        &mut self,
        init: &mut crate::init::Initializer,
        spec: &crate::init::__private::Spec<'_>,
    ) {
        crate::init::__private::tensor(self, init, spec);
    }
}

/// `declared` checked against a type's own dims.
pub(crate) fn check_declared(own: &[usize], declared: Option<&[usize]>) -> Result<(), InitError> {
    match declared {
        Some(d) if d != own => Err(InitError::BadShape(format!(
            "`shape = {d:?}` disagrees with the value's shape {own:?}"
        ))),
        _ => Ok(()),
    }
}

/// `Tensor` for a [`Shape`] type and for its `Box`.
macro_rules! shape_tensor {
    ($(impl[$($g:tt)*] $t:ty;)*) => {$(
        impl<$($g)*> $crate::shape::Tensor for $t {
            type Elem = <$t as $crate::shape::Shape>::Elem;
            const RANK: Option<usize> = Some(<$t as $crate::shape::Shape>::RANK);
            const DIMS: Option<$crate::shape::Dims> = Some(<$t as $crate::shape::Shape>::DIMS);
            const LAYOUT: $crate::fans::Layout = <$t as $crate::shape::Shape>::LAYOUT;
            fn dims(&self, declared: Option<&[usize]>) -> Result<::alloc::vec::Vec<usize>, $crate::error::InitError> {
                let own = <$t as $crate::shape::Shape>::DIMS;
                $crate::shape::check_declared(own.as_slice(), declared)?;
                Ok(own.as_slice().to_vec())
            }
            fn elems_mut(&mut self) -> &mut [Self::Elem] {
                $crate::shape::Shape::flat_mut(self)
            }
            fn zeros(declared: Option<&[usize]>) -> Result<Self, $crate::error::InitError> {
                $crate::shape::check_declared(<$t as $crate::shape::Shape>::DIMS.as_slice(), declared)?;
                Ok(<$t as $crate::shape::Shape>::zeroed())
            }
        }
        impl<$($g)*> $crate::shape::Tensor for ::alloc::boxed::Box<$t> {
            type Elem = <$t as $crate::shape::Tensor>::Elem;
            const RANK: Option<usize> = <$t as $crate::shape::Tensor>::RANK;
            const DIMS: Option<$crate::shape::Dims> = <$t as $crate::shape::Tensor>::DIMS;
            const LAYOUT: $crate::fans::Layout = <$t as $crate::shape::Tensor>::LAYOUT;
            fn dims(&self, declared: Option<&[usize]>) -> Result<::alloc::vec::Vec<usize>, $crate::error::InitError> {
                (**self).dims(declared)
            }
            fn elems_mut(&mut self) -> &mut [Self::Elem] {
                $crate::shape::Shape::flat_mut(&mut **self)
            }
            fn zeros(declared: Option<&[usize]>) -> Result<Self, $crate::error::InitError> {
                $crate::shape::check_declared(<$t as $crate::shape::Shape>::DIMS.as_slice(), declared)?;
                Ok(<$t as $crate::shape::Shape>::zeroed_box())
            }
        }
    )*};
}
#[allow(unused_imports)] // used by the `nalgebra` interop
pub(crate) use shape_tensor;

shape_tensor! {
    impl[] f32;
    impl[] f64;
    impl[] half::f16;
    impl[] half::bf16;
    impl[T: Shape, const N: usize] [T; N];
}

/// The dims declared for a flat buffer of `len` elements.
fn declared_dims(declared: Option<&[usize]>, len: usize) -> Result<Vec<usize>, InitError> {
    let d = declared.ok_or_else(|| {
        InitError::BadShape(format!(
            "a flat buffer ({len} elements) does not know its shape: declare it with \
             `#[init(shape = [..])]`"
        ))
    })?;
    let numel = checked_product(d)?;
    if numel != len {
        return Err(InitError::BadShape(format!(
            "`shape = {d:?}` holds {numel} elements but the buffer has {len}"
        )));
    }
    Ok(d.to_vec())
}

fn declared_numel(declared: Option<&[usize]>) -> Result<usize, InitError> {
    let d = declared.ok_or_else(|| {
        InitError::BadShape(
            "a flat buffer cannot be built without its shape: declare it with \
             `#[init(shape = [..])]`"
                .into(),
        )
    })?;
    checked_product(d)
}

impl<E: Element> Tensor for Vec<E> {
    type Elem = E;
    const RANK: Option<usize> = None;
    fn dims(&self, declared: Option<&[usize]>) -> Result<Vec<usize>, InitError> {
        declared_dims(declared, self.len())
    }
    fn elems_mut(&mut self) -> &mut [E] {
        self
    }
    fn zeros(declared: Option<&[usize]>) -> Result<Self, InitError> {
        Ok(alloc::vec![E::ZERO; declared_numel(declared)?])
    }
}

impl<E: Element> Tensor for Box<[E]> {
    type Elem = E;
    const RANK: Option<usize> = None;
    fn dims(&self, declared: Option<&[usize]>) -> Result<Vec<usize>, InitError> {
        declared_dims(declared, self.len())
    }
    fn elems_mut(&mut self) -> &mut [E] {
        self
    }
    fn zeros(declared: Option<&[usize]>) -> Result<Self, InitError> {
        Ok(alloc::vec![E::ZERO; declared_numel(declared)?].into_boxed_slice())
    }
}
