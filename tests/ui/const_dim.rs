//! A const-generic dimension is checked when the type is instantiated: `const { assert!(..) }`
//! at the dimension's token.
use init_core::{Initialize, Seed};

#[derive(Initialize)]
struct Dense<const I: usize, const O: usize> {
    #[init(he_uniform)]
    w: [[f32; I]; O],
}

fn main() {
    let _ = Dense::<0, 4>::initialized(Seed(1));
}
