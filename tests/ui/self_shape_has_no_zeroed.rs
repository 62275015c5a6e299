// A shape read from `self` exists only once the user's constructor has built the value, so
// such a struct has no `initialized` (no `Zeroed`): the error says how to build it instead.
use init_core::{Initialize, Seed};

#[derive(Initialize)]
struct Linear {
    #[init(skip)]
    d_in: usize,
    #[init(skip)]
    d_out: usize,
    #[init(he_uniform, shape = [self.d_out, self.d_in])]
    w: Vec<f32>,
}

fn main() {
    let _ = Linear::initialized(Seed(1));
}
