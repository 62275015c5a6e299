//! The `Initialize` trait that `#[derive(Initialize)]` implements, and its context.

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
}

impl Initializer {
    /// A root context.
    pub fn new(seed: Seed) -> Initializer {
        Initializer {
            seed: seed.0,
            path: String::new(),
        }
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

/// A value whose parameters can be (re-)initialized from a seeded context.
pub trait Initialize {
    /// Overwrite every initializable parameter; fields marked `skip` are left as they are.
    fn initialize(&mut self, init: &mut Initializer);

    /// Re-initialize from a seed (a root context).
    fn initialize_with_seed(&mut self, seed: Seed) {
        self.initialize(&mut Initializer::new(seed));
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
