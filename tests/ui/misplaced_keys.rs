use init_core::Initialize;

#[derive(Initialize)]
struct Inner {
    #[init(he_uniform)]
    w: [[f32; 8]; 8],
}

#[derive(Initialize)]
struct Layer {
    #[init(zeros, layout = in_out)]
    a: [f32; 8],
    #[init(normal, fans = (3, 4))]
    b: [[f32; 8]; 8],
    #[init(he_uniform, allow_symmetric)]
    c: [[f32; 8]; 8],
    #[init(skip, he_uniform)]
    d: [[f32; 8]; 8],
    #[init(he_uniform, shape = [8, 8])]
    e: [[f32; 8]; 8],
    #[init(he_uniform, len = 3)]
    f: [[f32; 8]; 8],
    #[init(len = 3)]
    g: Inner,
}

fn main() {}
