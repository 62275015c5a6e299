// `with` replaces the scheme; a tensor of integers is one error on the element type.
use init_core::Initialize;

fn mine(out: &mut [f32], _: &init_core::Site<'_>) {
    out.fill(0.5);
}

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform, with = mine)]
    a: [[f32; 8]; 4],
    #[init(with = "mine")]
    b: [[f32; 8]; 4],
    #[init(he_uniform)]
    c: [[i32; 8]; 4],
    #[init(zeros, shape = [4])]
    d: Vec<u8>,
}

fn main() {}
