//! The field actions → code: one `Initialize` and one `Zeroed` impl inside
//! `const _: () = { .. };`, calling `::init_core::__private` only.

use crate::ast::Input;
use crate::attr::{ConventionAttr, LayoutAttr};
use crate::valid::{Action, Check, FieldActions, TensorPlan, When, Zero};
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned};
use syn::{DeriveInput, Ident, Type, WherePredicate, parse_quote};

/// The generated impls.
pub(crate) fn expand(input: &Input, actions: &FieldActions) -> TokenStream {
    let ident = input.ident;
    let init = Ident::new("init", Span::mixed_site());
    let params = generic_params(input);
    let mut init_bounds: Vec<WherePredicate> = Vec::new();
    let mut zeroed_bounds: Vec<WherePredicate> = Vec::new();
    let mut checks = Vec::new();
    let mut seen_dims: Vec<String> = Vec::new();
    let mut stmts = Vec::new();
    let mut zeroed = Vec::new();
    // A shape or length read from `self` (`shape = [self.d_out, self.d_in]`) exists only once
    // the user's constructor has built the value: such a struct is initialized in place
    // (`initialize_with_seed`) and gets no `Zeroed` impl, which would have no `self`.
    let mut reads_self = false;
    for (field, action) in &actions.fields {
        let ty = field.ty;
        let member = &field.member;
        let name = &field.name;
        let generic = mentions(ty, &params);
        match action {
            Action::Skip => {
                if generic {
                    zeroed_bounds.push(parse_quote!(#ty: ::core::default::Default));
                }
                let span = syn::spanned::Spanned::span(ty);
                zeroed.push(quote_spanned!(span=> #member: ::core::default::Default::default()));
            }
            Action::Nested { len } => {
                let span = syn::spanned::Spanned::span(ty);
                stmts.push(quote_spanned!(span=>
                    <#ty as __init::Initialize>::__init_field(&mut self.#member, #init, #name);
                ));
                if generic {
                    init_bounds.push(parse_quote!(#ty: __init::Initialize));
                }
                if let Some((n, elem)) = len {
                    reads_self |= mentions_self(&quote!(#n));
                    if mentions(elem, &params) {
                        zeroed_bounds.push(parse_quote!(#elem: __init::Zeroed));
                    }
                    zeroed.push(quote!(#member: __init::zeroed_layers::<_, #elem>(#n)));
                } else {
                    if generic {
                        zeroed_bounds.push(parse_quote!(#ty: __init::Initialize + __init::Zeroed));
                    }
                    zeroed.push(
                        quote_spanned!(span=> #member: <#ty as __init::Initialize>::__zeroed()),
                    );
                }
            }
            Action::Tensor(t) => {
                // Float arrays and Vec/Box<[T]> of floats are tensors whatever their dims.
                if generic && matches!(t.zeroed, Zero::Tensor) && !t.flat {
                    init_bounds.push(parse_quote!(#ty: __init::Tensor));
                    zeroed_bounds.push(parse_quote!(#ty: __init::Tensor));
                }
                for c in &t.checks {
                    // One check per distinct dimension (`H` may size several fields).
                    if let Check::DimNonZero { dim, .. } = c {
                        let text = quote!(#dim).to_string();
                        if seen_dims.contains(&text) {
                            continue;
                        }
                        seen_dims.push(text);
                    }
                    checks.push(check(ty, c));
                }
                let (setup, spec) = spec(name, t);
                reads_self |= mentions_self(&setup) || mentions_self(&spec);
                let span = syn::spanned::Spanned::span(ty);
                let spec_var = Ident::new("__init_spec", Span::mixed_site());
                let call = match t.with {
                    None => quote_spanned!(span=>
                        <#ty as __init::Tensor>::__init_field(&mut self.#member, #init, &#spec_var);
                    ),
                    Some(path) => quote_spanned!(span=>
                        __init::custom::<#ty, _>(&mut self.#member, #init, &#spec_var, #path);
                    ),
                };
                // The spec's values are computed before the field is borrowed, so a shape
                // read from `self` (even through a method) does not conflict with it.
                stmts.push(quote!({
                    #setup
                    let #spec_var = #spec;
                    #call
                }));
                let shape = t.shape.map_or_else(
                    || quote!(::core::option::Option::None),
                    |dims| quote!(::core::option::Option::Some(&[#(#dims),*])),
                );
                zeroed.push(match &t.zeroed {
                    Zero::Array { dims, elem } => {
                        let mut e = quote!(<#elem as __init::Element>::ZERO);
                        for d in dims.iter().rev() {
                            e = quote!([#e; #d]);
                        }
                        quote!(#member: #e)
                    }
                    Zero::BoxedArray => quote!(#member: __init::Shape::zeroed_box()),
                    Zero::Tensor => quote_spanned!(span=>
                        #member: __init::built(<#ty as __init::Tensor>::zeros(#shape), #name)
                    ),
                });
            }
        }
    }
    let (impl_generics, ty_generics, _) = input.generics.split_for_impl();
    let init_where = where_clause(input, &init_bounds);
    let zeroed_where = where_clause(input, &zeroed_bounds);
    let zeroed_impl = if reads_self {
        TokenStream::new()
    } else {
        let body = if input.unit {
            quote!(Self)
        } else {
            // `Self { 0: .., 1: .. }` builds tuple structs too.
            quote!(Self { #(#zeroed),* })
        };
        quote! {
            #[automatically_derived]
            impl #impl_generics __init::Zeroed for #ident #ty_generics #zeroed_where {
                fn zeroed() -> Self {
                    #body
                }
            }
        }
    };
    let unused = actions
        .fields
        .iter()
        .all(|(_, a)| matches!(a, Action::Skip));
    let init_param = if unused {
        quote!(_: &mut __init::Initializer)
    } else {
        quote!(#init: &mut __init::Initializer)
    };
    quote! {
        #[doc(hidden)]
        #[allow(non_upper_case_globals, unused_qualifications, clippy::all)]
        const _: () = {
            use ::init_core::__private as __init;
            #[automatically_derived]
            impl #impl_generics __init::Initialize for #ident #ty_generics #init_where {
                fn initialize(&mut self, #init_param) {
                    #(#checks)*
                    #(#stmts)*
                }
            }
            #zeroed_impl
        };
    }
}

/// Whether tokens read `self`.
fn mentions_self(ts: &TokenStream) -> bool {
    ts.clone().into_iter().any(|t| match t {
        TokenTree::Ident(i) => i == "self",
        TokenTree::Group(g) => mentions_self(&g.stream()),
        _ => false,
    })
}

/// `Spec::new(name, scheme)` and its options, and the statements computing what it borrows
/// (the declared shape), to run before it.
fn spec(name: &str, t: &TensorPlan) -> (TokenStream, TokenStream) {
    let scheme = &t.scheme;
    let mut setup = TokenStream::new();
    let mut s = quote!(__init::Spec::new(#name, #scheme));
    if let Some(b) = &t.bias {
        s.extend(quote!(.bias(#b)));
    }
    match t.layout {
        Some(LayoutAttr::InOut) => s.extend(quote!(.layout(__init::Layout::InOut))),
        Some(LayoutAttr::OutIn) => s.extend(quote!(.layout(__init::Layout::OutIn))),
        None => {}
    }
    if let Some((i, o)) = t.fans {
        s.extend(quote!(.fans(#i, #o)));
    }
    if let Some(dims) = t.shape {
        let var = Ident::new("__init_shape", Span::mixed_site());
        setup.extend(quote!(let #var: &[usize] = &[#(#dims),*];));
        s.extend(quote!(.shape(#var)));
    }
    if let Some(g) = t.groups {
        s.extend(quote!(.groups(#g)));
    }
    if t.transposed {
        s.extend(quote!(.transposed()));
    }
    if t.embedding {
        s.extend(quote!(.embedding()));
    }
    match t.convention {
        Some(ConventionAttr::Framework) => {
            s.extend(quote!(.convention(__init::Convention::Framework)));
        }
        Some(ConventionAttr::True) => s.extend(quote!(.convention(__init::Convention::True))),
        None => {}
    }
    (setup, s)
}

/// `const { assert!(..) };` at the token the check is about.
fn check(ty: &Type, c: &Check) -> TokenStream {
    match c {
        Check::DimNonZero { dim, message } => {
            let span = syn::spanned::Spanned::span(dim);
            quote_spanned!(span=> const { ::core::assert!((#dim) != 0, #message) };)
        }
        Check::NoZeroDim { span, message } => {
            let ty_span = syn::spanned::Spanned::span(ty);
            let dims = quote_spanned!(ty_span=> <#ty as __init::Tensor>::DIMS);
            quote_spanned!(*span=> const { ::core::assert!(!__init::zero_dim(#dims), #message) };)
        }
        Check::Rank {
            when,
            lo,
            hi,
            span,
            message,
        } => {
            let hi = if *hi == usize::MAX {
                quote!(usize::MAX)
            } else {
                quote!(#hi)
            };
            let ty_span = syn::spanned::Spanned::span(ty);
            let rank = quote_spanned!(ty_span=> <#ty as __init::Tensor>::RANK);
            let ok = quote_spanned!(*span=> __init::rank_in(#rank, #lo, #hi));
            let cond = match when {
                When::Always => ok,
                When::RankNot1 => quote_spanned!(*span=> __init::rank_is(#rank, 1) || #ok),
                When::Rank1 => quote_spanned!(*span=> !__init::rank_is(#rank, 1) || #ok),
            };
            quote_spanned!(*span=> const { ::core::assert!(#cond, #message) };)
        }
    }
}

/// Names of the struct's type and const parameters.
fn generic_params(input: &Input) -> Vec<Ident> {
    input
        .generics
        .params
        .iter()
        .filter_map(|p| match p {
            syn::GenericParam::Type(t) => Some(t.ident.clone()),
            syn::GenericParam::Const(c) => Some(c.ident.clone()),
            syn::GenericParam::Lifetime(_) => None,
        })
        .collect()
}

/// Whether `ty` names one of `params` (then its bound cannot be checked at the definition).
fn mentions(ty: &Type, params: &[Ident]) -> bool {
    fn walk(ts: TokenStream, params: &[Ident]) -> bool {
        ts.into_iter().any(|t| match t {
            TokenTree::Ident(i) => params.contains(&i),
            TokenTree::Group(g) => walk(g.stream(), params),
            _ => false,
        })
    }
    !params.is_empty() && walk(quote!(#ty), params)
}

fn where_clause(input: &Input, extra: &[WherePredicate]) -> TokenStream {
    let mut preds: Vec<TokenStream> = input
        .generics
        .where_clause
        .iter()
        .flat_map(|w| w.predicates.iter().map(|p| quote!(#p)))
        .collect();
    preds.extend(extra.iter().map(|p| quote!(#p)));
    if preds.is_empty() {
        TokenStream::new()
    } else {
        quote!(where #(#preds),*)
    }
}

/// What is emitted when the input has errors: the errors, and impls with the same signatures
/// so that uses of the type do not fail a second time.
pub(crate) fn fallback(input: &DeriveInput, errors: &syn::Error) -> TokenStream {
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let errors = errors.to_compile_error();
    quote! {
        #errors
        #[doc(hidden)]
        const _: () = {
            #[automatically_derived]
            impl #impl_generics ::init_core::__private::Initialize for #ident #ty_generics #where_clause {
                fn initialize(&mut self, _: &mut ::init_core::__private::Initializer) {
                    ::core::unreachable!()
                }
            }
            #[automatically_derived]
            impl #impl_generics ::init_core::__private::Zeroed for #ident #ty_generics #where_clause {
                fn zeroed() -> Self {
                    ::core::unreachable!()
                }
            }
        };
    }
}
