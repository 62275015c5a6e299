use init_core::{Initialize, Initializer, Seed};

#[derive(Initialize)]
struct Dense {
    #[init(he_unifom)]
    w: [[f32; 8]; 8],
}

#[derive(Initialize)]
struct Net {
    a: Dense,
    b: [Dense; 2],
}

fn main() {
    // Uses of the types compile against the fallback impls: the typo above is the only error.
    let mut net = Net::initialized(Seed(1));
    net.initialize(&mut Initializer::new(Seed(2)));
}
