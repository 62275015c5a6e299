use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform)]
    w: Vec<f32>,
    #[init(zeros)]
    b: Box<[f32]>,
    // A float tensor with no scheme and no struct-level default.
    v: [[f32; 8]; 8],
}

fn main() {}
