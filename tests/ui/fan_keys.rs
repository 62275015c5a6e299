// The fan keys: misuse and contradictions.
use init_core::Initialize;

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform, groups = 0)]
    a: [[[[f32; 3]; 3]; 1]; 16],
    #[init(zeros, groups = 2, allow_symmetric)]
    b: [[[[f32; 3]; 3]; 1]; 16],
    #[init(normal(0, 0.02), embedding)]
    c: [[f32; 8]; 100],
    #[init(he_uniform, embedding, fans = (1, 8))]
    d: [[f32; 8]; 100],
    #[init(he_uniform, embedding)]
    e: [[[f32; 8]; 4]; 100],
    #[init(he_uniform, convention = pytorch)]
    f: [[f32; 8]; 4],
    #[init(he_uniform, transposed = true)]
    g: [[f32; 8]; 4],
}

fn main() {}
