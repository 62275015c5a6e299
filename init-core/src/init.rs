//! The `Initialize` trait that `#[derive(Initialize)]` implements, its context, and the
//! hidden runtime the derive's generated code calls.

use crate::fans::Fans;
use crate::rng::key_of;
use crate::sample::Stream;
use alloc::string::String;
use alloc::vec::Vec;

/// The seed of a run. Same seed, same values (see the crate's determinism contract).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Seed(pub u64);

/// Carries the seed and the path of the value being initialized (`"encoder.layers.0.w"`); each
/// tensor's stream key is [`key_of`] its path, so two fields of the same shape and scheme get
/// different values, and a field's values do not depend on which other fields exist.
#[derive(Clone, Debug)]
pub struct Initializer {
    seed: u64,
    path: String,
    log: Option<Vec<Record>>,
}

/// What was written to one tensor field, when the [`Initializer`] keeps a log
/// ([`Initializer::logging`]): for reports, examples and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    /// The field's path (`"conv1.w"`), whose key seeded its stream.
    pub path: String,
    /// The scheme, in canonical form (`he_normal(mode=fan_out)`).
    pub scheme: String,
    /// The dims, outermost first.
    pub dims: Vec<usize>,
    /// The fans the scheme used (`None` for schemes without fans below rank 2).
    pub fans: Option<Fans>,
    /// The std the scheme gives this tensor ([`crate::SchemeExt::expected_std`]).
    pub expected_std: f64,
    /// The mean of the written values.
    pub mean: f64,
    /// The std of the written values.
    pub std: f64,
}

impl Initializer {
    /// A root context.
    pub fn new(seed: Seed) -> Initializer {
        Initializer {
            seed: seed.0,
            path: String::new(),
            log: None,
        }
    }

    /// A root context that records every tensor it initializes (see [`Initializer::log`]).
    /// The values written are the same as without the log.
    pub fn logging(seed: Seed) -> Initializer {
        Initializer {
            log: Some(Vec::new()),
            ..Initializer::new(seed)
        }
    }

    /// The tensors initialized so far, in order, if this context keeps a log.
    pub fn log(&self) -> &[Record] {
        self.log.as_deref().unwrap_or_default()
    }

    /// The seed.
    pub fn seed(&self) -> Seed {
        Seed(self.seed)
    }

    /// The current path (`""` at the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Run `f` with `segment` appended to the path (`.`-separated).
    pub fn scoped<R>(&mut self, segment: &str, f: impl FnOnce(&mut Initializer) -> R) -> R {
        let len = self.path.len();
        if !self.path.is_empty() {
            self.path.push('.');
        }
        self.path.push_str(segment);
        let r = f(self);
        self.path.truncate(len);
        r
    }

    /// The stream of the tensor at the current path.
    pub fn stream(&self) -> Stream {
        Stream {
            seed: self.seed,
            key: key_of(&self.path),
        }
    }
}

/// What a custom initializer (`#[init(with = path::to::f)]`, [`Initializer::fill_with`]) is
/// told about the tensor it fills.
///
/// `stream` is the tensor's own stream (the seed and [`key_of`] its path), the one a scheme
/// would draw from: drawing from it (for example with [`crate::Sampler::fill`]) keeps the
/// determinism contract (values a pure function of seed, path and shape).
#[derive(Clone, Copy, Debug)]
pub struct Site<'a> {
    /// The tensor's path (`"encoder.layers.0.w"`).
    pub path: &'a str,
    /// Its dims, outermost first.
    pub dims: &'a [usize],
    /// Its fans under the field's rule (`layout`, `groups`, `transposed`, `convention`,
    /// `embedding`, or explicit `fans`); `None` below rank 2 without `fans`.
    pub fans: Option<Fans>,
    /// The tensor's stream.
    pub stream: Stream,
}

impl Initializer {
    /// Fill the tensor `out` (the elements of `shape`, row-major) named `segment` under the
    /// current path with `scheme`, reading fans from `shape` by `rule`: what
    /// `#[derive(Initialize)]` does for a field, for hand-written [`Initialize`] impls. The
    /// values are those [`crate::SchemeExt::fill`] gives with the full path as the name.
    pub fn fill<T: crate::Element>(
        &mut self,
        segment: &str,
        scheme: &crate::Scheme,
        out: &mut [T],
        shape: &[usize],
        rule: crate::FanRule,
    ) -> Result<(), crate::InitError> {
        self.scoped(segment, |init| {
            let fans = if scheme.needs_fans() {
                Some(Fans::of(shape, rule)?)
            } else {
                None
            };
            crate::init_tensor(scheme, out, shape, fans, init.stream())?;
            init.record(&alloc::format!("{scheme}"), shape, fans, out, || {
                crate::SchemeExt::expected_std(scheme, shape, fans).unwrap_or(f64::NAN)
            });
            Ok(())
        })
    }

    /// Fill the tensor `out` named `segment` with a custom initializer `f`, which gets the
    /// tensor's [`Site`] (path, dims, fans by `rule` when the rank is ≥ 2, and its stream): the
    /// equivalent of `#[init(with = f)]` for hand-written [`Initialize`] impls.
    pub fn fill_with<T: crate::Element>(
        &mut self,
        segment: &str,
        out: &mut [T],
        shape: &[usize],
        rule: crate::FanRule,
        f: impl FnOnce(&mut [T], &Site<'_>),
    ) -> Result<(), crate::InitError> {
        let numel = crate::fans::checked_product(shape)?;
        if numel != out.len() {
            return Err(crate::InitError::LengthMismatch {
                expected: numel,
                got: out.len(),
            });
        }
        let fans = if shape.len() >= 2 {
            Some(Fans::of(shape, rule)?)
        } else {
            None
        };
        self.scoped(segment, |init| {
            init.custom(out, shape, fans, f);
        });
        Ok(())
    }

    /// Run a custom initializer at the current path and log it.
    fn custom<T: crate::Element>(
        &mut self,
        out: &mut [T],
        dims: &[usize],
        fans: Option<Fans>,
        f: impl FnOnce(&mut [T], &Site<'_>),
    ) {
        let site = Site {
            path: &self.path,
            dims,
            fans,
            stream: self.stream(),
        };
        f(out, &site);
        self.record("custom", dims, fans, out, || f64::NAN);
    }

    /// Append to the log, if kept: the written values' mean and std.
    fn record<T: crate::Element>(
        &mut self,
        scheme: &str,
        dims: &[usize],
        fans: Option<Fans>,
        out: &[T],
        expected_std: impl FnOnce() -> f64,
    ) {
        let Some(log) = &mut self.log else { return };
        let n = out.len() as f64;
        let mean = out.iter().map(|x| x.to_f64()).sum::<f64>() / n;
        let var = out
            .iter()
            .map(|x| (x.to_f64() - mean) * (x.to_f64() - mean))
            .sum::<f64>()
            / n;
        log.push(Record {
            path: self.path.clone(),
            scheme: scheme.into(),
            expected_std: expected_std(),
            dims: dims.to_vec(),
            fans,
            mean,
            std: libm::sqrt(var),
        });
    }
}

/// A value whose parameters can be (re-)initialized from a seeded context.
///
/// `#[derive(Initialize)]` (feature `derive`) implements it for model structs, together with
/// [`Zeroed`], so that `Model::initialized(Seed(42))` builds one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` does not implement `Initialize`",
    label = "a field without a scheme is initialized recursively, so its type must implement `Initialize`",
    note = "derive it (`#[derive(Initialize)]`); if the field is a tensor, give it a scheme (`#[init(he_uniform)]`); or leave it alone with `#[init(skip)]`"
)]
pub trait Initialize {
    /// Overwrite every initializable parameter; fields marked `skip` are left as they are.
    fn initialize(&mut self, init: &mut Initializer);

    /// Re-initialize from a seed (a root context).
    fn initialize_with_seed(&mut self, seed: Seed) {
        self.initialize(&mut Initializer::new(seed));
    }

    /// What `#[derive(Initialize)]` calls for a nested field: `initialize` under `name`.
    /// Through the trait so that a field type that is not a layer is reported once, on the
    /// field. Not a public API.
    #[doc(hidden)]
    fn __init_field(&mut self, init: &mut Initializer, name: &str) {
        init.scoped(name, |init| self.initialize(init));
    }

    /// What `#[derive(Initialize)]`'s `Zeroed` impl calls for a nested field (see
    /// `__init_field`). Not a public API.
    #[doc(hidden)]
    fn __zeroed() -> Self
    where
        Self: Sized + Zeroed,
    {
        Self::zeroed()
    }

    /// A new value with every parameter initialized from `seed`: [`Zeroed::zeroed`], then
    /// [`Initialize::initialize`] at the root path.
    fn initialized(seed: Seed) -> Self
    where
        Self: Sized + Zeroed,
    {
        let mut value = Self::zeroed();
        value.initialize_with_seed(seed);
        value
    }
}

/// A layer's all-zero value: the starting point of [`Initialize::initialized`].
///
/// `#[derive(Initialize)]` implements it field by field: tensors are built zeroed (boxed arrays
/// directly on the heap; `Vec`/`Box<[T]>` from their declared `shape`), nested layers by their
/// own `Zeroed`, and `#[init(skip)]` fields by `Default`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no zeroed value, which `Initialize::initialized` starts from",
    note = "derive `Initialize` for it, implement `init_core::Zeroed`, or mark the field `#[init(skip)]` (built with `Default`)",
    note = "a struct whose `shape`/`len` reads `self` (`shape = [self.d_out, self.d_in]`) has no zeroed value: build it with your constructor, then call `initialize_with_seed`"
)]
pub trait Zeroed: Sized {
    /// The value with every parameter zero (and empty collections empty).
    fn zeroed() -> Self;
}

impl<T: Zeroed, const N: usize> Zeroed for [T; N] {
    fn zeroed() -> Self {
        core::array::from_fn(|_| T::zeroed())
    }
}

/// Empty: a `Vec` of layers does not know how many it holds (the derive's `len = N` builds N).
impl<T> Zeroed for Vec<T> {
    fn zeroed() -> Self {
        Vec::new()
    }
}

/// Empty, as for `Vec`.
impl<T> Zeroed for alloc::boxed::Box<[T]> {
    fn zeroed() -> Self {
        alloc::boxed::Box::default()
    }
}

impl<T: Zeroed> Zeroed for alloc::boxed::Box<T> {
    fn zeroed() -> Self {
        alloc::boxed::Box::new(T::zeroed())
    }
}

impl<T> Zeroed for Option<T> {
    fn zeroed() -> Self {
        None
    }
}

impl<T: Initialize, const N: usize> Initialize for [T; N] {
    fn initialize(&mut self, init: &mut Initializer) {
        for (i, x) in self.iter_mut().enumerate() {
            init.scoped(&alloc::format!("{i}"), |init| x.initialize(init));
        }
    }
}

impl<T: Initialize> Initialize for Vec<T> {
    fn initialize(&mut self, init: &mut Initializer) {
        self.as_mut_slice().initialize(init);
    }
}

impl<T: Initialize> Initialize for [T] {
    fn initialize(&mut self, init: &mut Initializer) {
        for (i, x) in self.iter_mut().enumerate() {
            init.scoped(&alloc::format!("{i}"), |init| x.initialize(init));
        }
    }
}

impl<T: Initialize + ?Sized> Initialize for alloc::boxed::Box<T> {
    fn initialize(&mut self, init: &mut Initializer) {
        (**self).initialize(init);
    }
}

impl<T: Initialize> Initialize for Option<T> {
    fn initialize(&mut self, init: &mut Initializer) {
        if let Some(x) = self {
            x.initialize(init);
        }
    }
}

/// Items the derive's generated code calls. Not a public API: names and signatures may change
/// in any release.
#[doc(hidden)]
pub mod __private {
    pub use crate::element::Element;
    pub use crate::fans::{Convention, Layout};
    pub use crate::init::{Initialize, Initializer, Zeroed};
    pub use crate::shape::{Shape, Tensor};

    use super::Site;
    use crate::SchemeExt as _;
    use crate::error::InitError;
    use crate::fans::{FanRule, Fans};
    use crate::scheme::{RankRequirement, Scheme};
    use crate::shape::Dims;
    use alloc::string::String;
    use alloc::vec::Vec;
    use core::fmt::Display;

    /// What the derive knows about one tensor field.
    #[derive(Clone, Copy, Debug)]
    pub struct Spec<'a> {
        name: &'a str,
        scheme: &'a str,
        bias: Option<&'a str>,
        layout: Option<Layout>,
        fans: Option<(usize, usize)>,
        shape: Option<&'a [usize]>,
        groups: usize,
        transposed: bool,
        embedding: bool,
        convention: Convention,
    }

    impl<'a> Spec<'a> {
        /// Field `name` (its path segment) with `scheme` (canonical text, validated by the
        /// derive).
        pub const fn new(name: &'a str, scheme: &'a str) -> Self {
            Spec {
                name,
                scheme,
                bias: None,
                layout: None,
                fans: None,
                shape: None,
                groups: 1,
                transposed: false,
                embedding: false,
                convention: Convention::True,
            }
        }
        /// `groups = G`.
        #[must_use]
        pub const fn groups(mut self, groups: usize) -> Self {
            self.groups = groups;
            self
        }
        /// `transposed`.
        #[must_use]
        pub const fn transposed(mut self) -> Self {
            self.transposed = true;
            self
        }
        /// `embedding`.
        #[must_use]
        pub const fn embedding(mut self) -> Self {
            self.embedding = true;
            self
        }
        /// `convention = ..`.
        #[must_use]
        pub const fn convention(mut self, convention: Convention) -> Self {
            self.convention = convention;
            self
        }
        /// The struct-level `bias` scheme, used instead when the tensor has rank 1.
        #[must_use]
        pub const fn bias(mut self, scheme: &'a str) -> Self {
            self.bias = Some(scheme);
            self
        }
        /// `layout = ..`.
        #[must_use]
        pub const fn layout(mut self, layout: Layout) -> Self {
            self.layout = Some(layout);
            self
        }
        /// `fans = (fan_in, fan_out)`.
        #[must_use]
        pub const fn fans(mut self, fan_in: usize, fan_out: usize) -> Self {
            self.fans = Some((fan_in, fan_out));
            self
        }
        /// `shape = [..]`.
        #[must_use]
        pub const fn shape(mut self, shape: &'a [usize]) -> Self {
            self.shape = Some(shape);
            self
        }
    }

    fn fail(path: &str, message: impl Display) -> ! {
        panic!("#[derive(Initialize)]: field `{path}`: {message}")
    }

    /// Initialize the tensor field `spec.name` of the value at `init`'s path.
    ///
    /// # Panics
    /// On what the derive could not check at compile time: a run-time shape that disagrees with
    /// the buffer or the declared `shape`, or a rank the scheme cannot use.
    pub fn tensor<T: Tensor + ?Sized>(t: &mut T, init: &mut Initializer, spec: &Spec<'_>) {
        init.scoped(spec.name, |init| {
            if let Err(e) = fill(t, init, spec) {
                fail(init.path(), e);
            }
        });
    }

    /// Initialize the tensor field `spec.name` with the user's function (`with = f`).
    ///
    /// # Panics
    /// As [`tensor`], on a run-time shape that disagrees with the buffer or the declared shape.
    pub fn custom<T: Tensor + ?Sized, F: FnOnce(&mut [T::Elem], &Site<'_>)>(
        t: &mut T,
        init: &mut Initializer,
        spec: &Spec<'_>,
        f: F,
    ) {
        init.scoped(spec.name, |init| {
            let r = dims_and_fans(t, spec, None).map(|(dims, fans)| {
                init.custom(t.elems_mut(), &dims, fans, f);
            });
            if let Err(e) = r {
                fail(init.path(), e);
            }
        });
    }

    /// The field's dims and its fans under the spec's rule (`None` below rank 2 without
    /// explicit fans, and for a scheme without fans).
    fn dims_and_fans<T: Tensor + ?Sized>(
        t: &T,
        spec: &Spec<'_>,
        scheme: Option<&Scheme>,
    ) -> Result<(Vec<usize>, Option<Fans>), String> {
        let dims = t.dims(spec.shape).map_err(|e| alloc::format!("{e}"))?;
        if dims.contains(&0) {
            return Err(alloc::format!(
                "shape {dims:?} has a zero-sized dimension, so the field holds no parameters"
            ));
        }
        let err = |e: InitError| alloc::format!("{e}");
        let layout = spec.layout.unwrap_or(T::LAYOUT);
        // A scheme without fans still reports them (in the log) where the shape has them, but
        // a shape they cannot be read from is only an error for a scheme that needs them.
        let wants = scheme.is_none_or(Scheme::needs_fans);
        let computed = match spec.fans {
            Some((i, o)) => return Ok((dims, Some(Fans::new(i as u64, o as u64).map_err(err)?))),
            None if spec.embedding => {
                if dims.len() == 2 {
                    Fans::embedding(&dims, layout, spec.convention)
                } else {
                    Err(InitError::BadShape(alloc::format!(
                        "`embedding` is for a [V, D] table of rank 2, but the shape is {dims:?}"
                    )))
                }
            }
            None if dims.len() >= 2 => {
                let rule = FanRule {
                    layout,
                    groups: spec.groups as u64,
                    transposed: spec.transposed,
                    convention: spec.convention,
                };
                Fans::of(&dims, rule)
            }
            None => return Ok((dims, None)),
        };
        match computed {
            Ok(f) => Ok((dims, Some(f))),
            Err(e) if wants => Err(err(e)),
            Err(_) => Ok((dims, None)),
        }
    }

    fn fill<T: Tensor + ?Sized>(
        t: &mut T,
        init: &mut Initializer,
        spec: &Spec<'_>,
    ) -> Result<(), String> {
        let dims = t.dims(spec.shape).map_err(|e| alloc::format!("{e}"))?;
        let text = match spec.bias {
            Some(bias) if dims.len() == 1 => bias,
            _ => spec.scheme,
        };
        let scheme = Scheme::parse(text).map_err(|e| alloc::format!("{e}"))?;
        let (dims, fans) = dims_and_fans(t, spec, Some(&scheme))?;
        if let Some(r) = rank_error(&scheme, dims.len(), spec.fans.is_some()) {
            return Err(alloc::format!(
                "{scheme} {r}, but the tensor has shape {dims:?}"
            ));
        }
        let out = t.elems_mut();
        crate::init_tensor(&scheme, out, &dims, fans, init.stream())
            .map_err(|e: InitError| alloc::format!("{scheme}: {e}"))?;
        init.record(&alloc::format!("{scheme}"), &dims, fans, out, || {
            scheme.expected_std(&dims, fans).unwrap_or(f64::NAN)
        });
        Ok(())
    }

    fn rank_error(scheme: &Scheme, rank: usize, has_fans: bool) -> Option<String> {
        let need = scheme.rank_requirement();
        if need.admits(rank, has_fans) {
            return None;
        }
        Some(match need {
            RankRequirement::Fans => alloc::format!(
                "{} (rank >= {}, or `fans = (fan_in, fan_out)`)",
                need.message(),
                need.min_rank()
            ),
            _ => need.message().into(),
        })
    }

    /// `n` zeroed layers (`len = n`).
    pub fn zeroed_layers<C: FromIterator<T>, T: Zeroed>(n: usize) -> C {
        (0..n).map(|_| T::zeroed()).collect()
    }

    /// Whether a rank fixed by the type (`<T as Tensor>::RANK`) is within `lo..=hi`; `true`
    /// when the rank is only known at run time (checked there).
    pub const fn rank_in(rank: Option<usize>, lo: usize, hi: usize) -> bool {
        match rank {
            Some(r) => lo <= r && r <= hi,
            None => true,
        }
    }

    /// Whether a rank fixed by the type is `r`.
    pub const fn rank_is(rank: Option<usize>, r: usize) -> bool {
        matches!(rank, Some(x) if x == r)
    }

    /// Whether dims fixed by the type (`<T as Tensor>::DIMS`) include a zero.
    pub const fn zero_dim(dims: Option<Dims>) -> bool {
        match dims {
            Some(d) => d.has_zero(),
            None => false,
        }
    }

    /// The zero tensor `<T as Tensor>::zeros` built for field `name`.
    ///
    /// # Panics
    /// If it could not be built (a run-time-shaped type without a declared shape).
    pub fn built<T>(zeros: Result<T, InitError>, name: &str) -> T {
        zeros.unwrap_or_else(|e| fail(name, e))
    }
}
