//! A generic field's rank is known per instantiation: a fan-based scheme on a rank-1
//! instantiation fails there, at the scheme's token.
use init_core::{Initialize, Seed};

#[derive(Initialize)]
#[init(default = he_normal, bias = zeros)]
struct Generic<T, U> {
    #[init(he_normal)]
    t: T,
    // Under struct defaults: `zeros` if rank 1, `he_normal` otherwise; rank 0 has no fans.
    #[init(layout = out_in)]
    u: U,
}

fn main() {
    let _ = Generic::<[[f32; 4]; 4], [f32; 4]>::initialized(Seed(1)); // fine
    let _ = Generic::<[f32; 16], f32>::initialized(Seed(1));
}
