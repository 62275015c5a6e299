use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(zeros)]
    w: [[f32; 64]; 32],
    #[init(constant = 0.1)]
    k: [[[[f32; 3]; 3]; 16]; 32],
    #[init(ones, shape = [32, 64])]
    v: Vec<f32>,
    // Said on purpose: accepted.
    #[init(zeros, allow_symmetric)]
    gate: [[f32; 64]; 32],
    // Rank 1: fine.
    #[init(zeros)]
    b: [f32; 32],
}

#[derive(Initialize)]
#[init(default = zeros)]
struct ZeroDefault {
    w: [[f32; 64]; 32],
    b: [f32; 32],
}

fn main() {}
