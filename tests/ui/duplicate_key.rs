use init_core::Initialize;

#[derive(Initialize)]
#[init(default = he_uniform, default = glorot_uniform)]
struct Mlp {
    #[init(glorot_normal, gain = 1.0, gain = 2.0)]
    w1: [[f32; 784]; 128],
    #[init(layout = in_out, he_uniform, layout = out_in)]
    w2: [[f32; 128]; 10],
    #[init(he_uniform, zeros)]
    w3: [[f32; 10]; 10],
    #[init(skip)]
    #[init(skip)]
    steps: u64,
}

fn main() {}
