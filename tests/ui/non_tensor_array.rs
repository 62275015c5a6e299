// An array of something that is neither a float nor a layer, given a scheme: the error names
// what a tensor field may be, not an internal trait.
use init_core::Initialize;

#[derive(Default)]
struct Weight(f32);

#[derive(Initialize)]
struct Layer {
    #[init(he_uniform)]
    w: [[Weight; 4]; 8],
}

fn main() {}
