use init_core::Initialize;

#[derive(Initialize)]
#[init(default = glorot_unifrm)]
struct Mlp {
    #[init(he_unifom)]
    w1: [[f32; 784]; 128],
    #[init(xavier_normel, gain = 2.0)]
    w2: [[f32; 128]; 10],
    #[init(skp)]
    steps: u64,
}

fn main() {}
