use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform)]
    w: [[f32; 0]; 32],
    #[init(zeros)]
    b: [f32; 0],
    #[init(he_uniform, shape = [32, 0])]
    v: Vec<f32>,
}

fn main() {}
