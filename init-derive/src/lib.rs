//! `#[derive(Initialize)]` for model structs: each field's initialization scheme written next to
//! it, fans computed at compile time from the field's type, misuse rejected at compile time.
//!
//! Use it through init-core's `derive` feature (`use init_core::Initialize;`), which re-exports
//! this macro next to the trait; the generated code calls `::init_core::__private` only.
//!
//! Attributes are validated with the `init-scheme` crate, the very grammar the CLI and
//! `Scheme::parse` use (init-core re-exports it), so error messages (with their "did you mean")
//! are the same.
#![warn(unreachable_pub)]

mod ast;
mod attr;
mod ctxt;
mod expand;
mod symbol;
mod valid;

use proc_macro::TokenStream;
use syn::{DeriveInput, parse_macro_input};

/// Derives `init_core::Initialize` (and `init_core::Zeroed`, so `T::initialized(Seed(42))`
/// builds a value) for a struct, from `#[init(...)]` attributes.
///
/// ```ignore
/// use init_core::{Initialize, Seed};
///
/// #[derive(Initialize)]
/// #[init(default = he_uniform, bias = zeros)]
/// struct Mlp<const H: usize> {
///     w1: [[f32; 784]; H],                    // [out][in]: he_uniform, fan_in 784
///     b1: [f32; H],                           // rank 1: zeros
///     #[init(glorot_normal, gain = 1.0)]      w2: [[f32; H]; 10],
///     #[init(constant = 0.01)]                b2: [f32; 10],
///     #[init(he_normal, mode = fan_out, nonlinearity = leaky_relu(0.2))] w3: [[f32; 10]; 10],
///     #[init(layout = in_out, glorot_uniform)] w4: [[f32; 4]; 10], // [in = 10][out = 4]
///     conv: Conv2d<3, 16, 3>,                 // derives Initialize: recursive
///     #[init(skip)]                           steps: u64,
/// }
/// let m = Mlp::<128>::initialized(Seed(42));
/// ```
///
/// # Attribute grammar
/// ```text
/// struct attribute  := #[init( struct_entry , ... )]
/// struct_entry      := default = SCHEME        scheme of fields without one (rank != 1, or
///                                              every rank when there is no `bias`)
///                    | bias = SCHEME           scheme of rank-1 fields without one
///                    | layout = out_in|in_out  default layout of the struct's fields
///                    | convention = true|framework  default fan convention of its fields
/// field attribute   := #[init( field_entry , ... )]
/// field_entry       := SCHEME_NAME             the field's scheme            he_uniform
///                    | SCHEME_NAME ( ARG,.. )  the scheme with parameters    he_normal(mode = fan_out)
///                    | SCHEME_NAME = VALUE     scheme and its first parameter constant = 0.01
///                    | PARAM = VALUE           a parameter of the scheme     gain = 1.0
///                    | skip                    leave the field alone; `initialized` uses Default
///                    | allow_symmetric         accept zeros/constant on a weight of rank >= 2
///                    | layout = out_in|in_out  how fans are read: [out][in][k…] (PyTorch, the
///                                              default) or [k…][in][out] (Keras)
///                    | fans = (EXPR, EXPR)     explicit (fan_in, fan_out)
///                    | shape = [EXPR, ..]      dims of a Vec<T> / Box<[T]> / ndarray field,
///                                              outermost first
///                    | len = EXPR              how many layers `initialized` puts in a
///                                              Vec/Box<[T]> of layers (else empty)
///                    | groups = EXPR           convolution groups: true fans in/g·k, out/g·k
///                    | transposed              a transposed conv weight ([in][out/g][k…] in
///                                              out_in, [k…][out][in] in in_out)
///                    | embedding               a [V, D] embedding table: fans (1, D)
///                    | convention = true|framework
///                                              true connectivity (default), or the framework's
///                                              formula (PyTorch's for out_in, Keras's for
///                                              in_out: groups ignored, transposed axes swapped)
///                    | with = PATH             a function `fn(&mut [E], &init_core::Site)`
///                                              fills the tensor instead of a scheme
/// SCHEME            := SCHEME_NAME | SCHEME_NAME ( ARG,.. )
/// ARG               := VALUE | PARAM = VALUE
/// VALUE             := number (0.02, -1, 5/3) | name (fan_out) | name ( ARG,.. ) (leaky_relu(0.2))
/// ```
/// Scheme names and parameters are those of `init_core::Scheme::parse` (zeros, ones,
/// constant(v), uniform(lo, hi), normal(mean, std), truncated_normal, fan_in_uniform,
/// glorot/xavier_{uniform,normal,truncated_normal}(gain), he/kaiming_{..}(mode, nonlinearity),
/// lecun_{..}, variance_scaling(scale, mode, distribution), orthogonal(gain), eye, dirac(groups)).
/// Keys may come in any order; several `#[init]` attributes on one item are merged.
///
/// # Which fields are what
/// - `skip`: untouched by `initialize`; `Default::default()` in `initialized`.
/// - A field with a scheme, or with `layout`/`fans`/`shape`/`allow_symmetric`, or whose type is
///   written as a float tensor (`f32`, `[[f32; I]; O]` of any rank, `Box<[[f32; I]; O]>`,
///   `Vec<f32>`, `Box<[f32]>`, ndarray's `Array1<f32>`..`Array6`/`ArrayD`/`Array<f32, D>`,
///   nalgebra's `SMatrix<f32, R, C>`/`SVector`/`SRowVector`; elements f32/f64/f16/bf16) is a
///   **tensor**: its own scheme, else the struct's `bias` (rank 1) or `default`. Its type must
///   implement `init_core::Tensor` (ndarray and nalgebra with init-core's features of those
///   names). A tensor the tokens do not show (a type alias, a generic `T`) needs a scheme or one
///   of those keys on the field (`#[init(layout = out_in)]` gives it the struct's defaults).
///   nalgebra is column-major: `SMatrix<T, R, C>` (y = M·x) has fan_in C and fan_out R.
/// - Any other field is a **layer**, initialized recursively through its own `Initialize`
///   (`[Layer; N]`, `Vec<Layer>`, `Box<Layer>` and `Option<Layer>` included).
///
/// Each tensor's values come from the stream of its path (`encoder.layers.0.w`), so two fields
/// with the same shape and scheme differ, and a field's values do not depend on other fields.
///
/// # Fans and compile-time checks
/// `[[f32; IN]; OUT]` has fan_in IN, fan_out OUT; `[[[[f32; K]; K]; C]; M]` has fan_in C·K²,
/// fan_out M·K² (with `layout = in_out` the last two dims are `[in][out]`); `groups`,
/// `transposed`, `embedding` and `convention` change how they are read (init-core's
/// `Fans::of`/`Fans::embedding`). The dims are the `init_core::Shape` constants of the field's
/// type, so rank and dimension checks are constants per monomorphization. These are compile errors, on the offending token:
/// an unknown scheme, nonlinearity, key or parameter (with the closest valid names); a duplicate
/// key or a second scheme; a bad value (`std = -1`); a zero-sized dimension; a fan-based scheme
/// on a scalar or rank-1 field without `fans`; `zeros`/`constant` on a field of rank >= 2
/// without `allow_symmetric`; orthogonal/eye below rank 2, dirac outside rank 3..=5; keys that
/// have no effect; a `Vec<f32>` without `shape`; enums and unions. Where the tokens do not fix
/// a rank or a dimension (a const generic `H`, a type alias, a generic type), the same checks
/// are emitted as `const { assert!(..) }` and fail when the type is instantiated.
/// Run-time-shaped fields (`Vec`, `Box<[T]>`, ndarray) are checked when initialized: a length that
/// disagrees with `shape` panics with the field's path.
///
/// # Models sized at run time
/// `shape`, `fans`, `groups` and `len` are Rust expressions evaluated when the field is
/// initialized, so they may read the struct (`shape = [self.d_out, self.d_in]`, even through a
/// method). Such a struct is built by its own constructor (the burn pattern: sized from a
/// config) and initialized in place with `initialize_with_seed`; it has no `Zeroed` (there is no
/// `self` to read before it exists), so `initialized` is unavailable, and a `Vec<Layer>` holds
/// however many layers the constructor put in it.
///
/// # Custom initializers
/// `#[init(with = path::to::f)]` calls `f(&mut elements, &site)` instead of a scheme, where
/// `init_core::Site` gives the tensor's path, dims, fans (by the field's `layout`, `groups`,
/// `transposed`, `convention`, `embedding` or `fans`) and its stream: drawing from that stream
/// keeps the determinism contract. Hand-written `Initialize` impls get the same through
/// `Initializer::fill` (a scheme) and `Initializer::fill_with` (a function).
///
/// # Large models
/// Array fields live inside the struct, so a by-value model lives where its value does; debug
/// builds move the value a few times on its way out of `initialized`. Box the big tensors
/// (`Box<[[f32; 4096]; 4096]>` is allocated zeroed on the heap, never built on the stack) or
/// use `Vec<f32>` with `shape = [..]`.
#[proc_macro_derive(Initialize, attributes(init))]
pub fn derive_initialize(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    derive(&input).into()
}

fn derive(input: &DeriveInput) -> proc_macro2::TokenStream {
    let cx = ctxt::Ctxt::default();
    let Some(ast) = ast::parse(&cx, input) else {
        return finish_with_errors(cx, input);
    };
    let actions = valid::check(&cx, &ast);
    if cx.len() > 0 {
        return finish_with_errors(cx, input);
    }
    expand::expand(&ast, &actions)
}

fn finish_with_errors(cx: ctxt::Ctxt, input: &DeriveInput) -> proc_macro2::TokenStream {
    match cx.finish() {
        Ok(()) => unreachable!("called with errors"),
        Err(e) => expand::fallback(input, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::derive;

    fn expand(src: &str) -> String {
        derive(&syn::parse_str(src).expect("valid Rust")).to_string()
    }

    #[test]
    fn emits_one_impl_pair_in_a_const_block() {
        let out = expand(
            "#[init(default = he_uniform, bias = zeros)]
             struct Dense<const I: usize, const O: usize> { w: [[f32; I]; O], b: [f32; O] }",
        );
        if std::env::var_os("INIT_DERIVE_PRINT").is_some() {
            println!("{out}");
        }
        assert!(out.starts_with("# [doc (hidden)]"));
        assert!(out.contains("const _ : () ="));
        assert!(out.contains("Spec :: new (\"w\" , \"he_uniform\")"));
        assert!(out.contains("Spec :: new (\"b\" , \"zeros\")"));
        assert!(!out.contains("compile_error"));
    }

    #[test]
    fn the_issue_example_expands() {
        let out = expand(
            "#[init(default = he_uniform, bias = zeros)]
             struct Mlp<const H: usize> {
                 #[init(he_uniform)]                  w1: [[f32; 784]; H],
                 #[init(zeros)]                       b1: [f32; H],
                 #[init(glorot_normal, gain = 1.0)]   w2: [[f32; H]; 10],
                 #[init(constant = 0.01)]             b2: [f32; 10],
                 #[init(he_normal, mode = fan_out, nonlinearity = leaky_relu(0.2))]
                 w3: [[f32; 10]; 10],
                 #[init(layout = in_out, glorot_uniform)] w4: [[f32; 4]; 10],
                 conv: Conv2d<3, 16, 3>,
                 #[init(skip)]                        steps: u64,
             }",
        );
        if std::env::var_os("INIT_DERIVE_PRINT").is_some() {
            println!("{out}");
        }
        assert!(!out.contains("compile_error"));
        for spec in [
            "Spec :: new (\"w2\" , \"glorot_normal\")",
            "Spec :: new (\"b2\" , \"constant(0.01)\")",
            "Spec :: new (\"w3\" , \"he_normal(mode=fan_out,nonlinearity=leaky_relu(0.2))\")",
            "Spec :: new (\"w4\" , \"glorot_uniform\") . layout (__init :: Layout :: InOut)",
        ] {
            assert!(out.contains(spec), "{spec} not in {out}");
        }
        assert!(!out.contains("\"steps\""));
    }

    #[test]
    fn errors_come_with_a_fallback_impl() {
        let out = expand("struct S { #[init(he_unifrom)] w: [[f32; 3]; 4] }");
        assert!(out.contains("compile_error"));
        assert!(out.contains("did you mean `he_uniform`"));
        assert!(out.contains("unreachable"));
    }
}
