use init_core::Initialize;

#[derive(Initialize)]
#[init(defaul = he_uniform, layot = in_out)]
struct Mlp {
    #[init(he_uniform, skp)]
    w1: [[f32; 784]; 128],
    #[init(he_uniform, gain = 2.0)]
    w2: [[f32; 128]; 10],
    #[init(gian = 2.0)]
    w3: [[f32; 10]; 10],
    #[init(zeros, allow_symmetric = true)]
    w4: [[f32; 10]; 10],
}

fn main() {}
