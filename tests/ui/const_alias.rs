//! A type alias hides the rank from the macro: the symmetric-init check becomes a
//! `const { assert!(..) }` at the scheme's token.
use init_core::{Initialize, Seed};

type Weight = [[f32; 8]; 8];

#[derive(Initialize)]
struct Aliased {
    #[init(zeros)]
    w: Weight,
}

fn main() {
    let _ = Aliased::initialized(Seed(1));
}
