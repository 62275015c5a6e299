use init_core::Initialize;

#[derive(Initialize)]
struct Mlp {
    #[init(he_normal, mode = fan_out, nonlinearity = relux)]
    w1: [[f32; 784]; 128],
    #[init(he_normal, mode = fan_inn)]
    w2: [[f32; 128]; 10],
}

fn main() {}
