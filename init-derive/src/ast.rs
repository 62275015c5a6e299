//! The derive's input as plain values: the struct, its fields, their attributes, and what each
//! field's type looks like syntactically.

use crate::attr::{self, FieldAttrs, StructAttrs};
use crate::ctxt::Ctxt;
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    Data, DeriveInput, Expr, ExprLit, GenericArgument, Generics, Ident, Lit, Member, PathArguments,
    Type,
};

pub(crate) struct Input<'a> {
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    pub attrs: StructAttrs,
    pub fields: Vec<Field<'a>>,
    /// `true` for `struct S;`.
    pub unit: bool,
}

pub(crate) struct Field<'a> {
    pub member: Member,
    /// The path segment of the field (its name or index).
    pub name: String,
    pub ty: &'a Type,
    /// The field's name, or its type for a tuple field: where field-level errors point.
    pub span: Span,
    pub attrs: FieldAttrs,
    pub kind: TyKind<'a>,
}

/// What a field's type is, as far as the tokens tell.
pub(crate) enum TyKind<'a> {
    /// `[..[E; D1]..; D0]` of a float `E` (f32, f64, f16, bf16), or `E` itself (rank 0),
    /// possibly in a `Box`: rank and dim expressions known.
    Fixed {
        dims: Vec<&'a Expr>,
        elem: &'a Type,
        boxed: bool,
    },
    /// `Vec<E>` or `Box<[E]>` of a float: a flat buffer whose shape the field declares.
    Flat { what: &'static str },
    /// ndarray's `Array*<E, ..>` or nalgebra's `SMatrix`/`SVector`/`SRowVector<E, ..>` of a
    /// float: a tensor whose rank the trait system knows.
    Foreign,
    /// `Vec<T>` or `Box<[T]>` of anything else: a list of layers.
    List { elem: &'a Type },
    /// Anything else: a layer, a type alias, a generic, an ndarray/nalgebra array… The trait
    /// system decides.
    Opaque,
}

impl TyKind<'_> {
    /// The rank when the tokens fix it (`shape` gives it for flat buffers).
    pub(crate) fn rank(&self, shape_len: Option<usize>) -> Option<usize> {
        match self {
            TyKind::Fixed { dims, .. } => Some(dims.len()),
            TyKind::Flat { .. } => shape_len,
            TyKind::Foreign | TyKind::List { .. } | TyKind::Opaque => None,
        }
    }

    /// Whether the tokens say this is a tensor of floats.
    pub(crate) fn is_float_tensor(&self) -> bool {
        matches!(
            self,
            TyKind::Fixed { .. } | TyKind::Flat { .. } | TyKind::Foreign
        )
    }
}

/// A struct, or an error for enums and unions.
pub(crate) fn parse<'a>(cx: &Ctxt, input: &'a DeriveInput) -> Option<Input<'a>> {
    let data = match &input.data {
        Data::Struct(s) => s,
        Data::Enum(e) => {
            cx.error_at(
                e.enum_token.span,
                "#[derive(Initialize)] is for structs: an enum's variants hold different \
                 parameters, so there is no one way to initialize it; derive it on the \
                 structs its variants hold, or implement `Initialize` by hand",
            );
            return None;
        }
        Data::Union(u) => {
            cx.error_at(
                u.union_token.span,
                "#[derive(Initialize)] is for structs: a union's fields overlap, so \
                 initializing one would overwrite another",
            );
            return None;
        }
    };
    let attrs = attr::struct_attrs(cx, &input.attrs);
    let fields = data
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (member, name, span) = match &f.ident {
                Some(id) => (Member::Named(id.clone()), id.to_string(), id.span()),
                None => (Member::Unnamed(i.into()), i.to_string(), f.ty.span()),
            };
            Field {
                member,
                name,
                ty: &f.ty,
                span,
                attrs: attr::field_attrs(cx, &f.attrs),
                kind: classify(&f.ty),
            }
        })
        .collect();
    Some(Input {
        ident: &input.ident,
        generics: &input.generics,
        attrs,
        fields,
        unit: matches!(data.fields, syn::Fields::Unit),
    })
}

fn strip(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => strip(&g.elem),
        Type::Paren(p) => strip(&p.elem),
        _ => ty,
    }
}

fn is_float(ty: &Type) -> bool {
    let Type::Path(p) = strip(ty) else {
        return false;
    };
    p.qself.is_none()
        && p.path.segments.last().is_some_and(|s| {
            matches!(s.arguments, PathArguments::None)
                && ["f32", "f64", "f16", "bf16"].iter().any(|f| s.ident == f)
        })
}

/// `Name<T>` → `T` for a path type whose last segment is `Name` with one type argument.
fn single_arg<'a>(ty: &'a Type, name: &str) -> Option<&'a Type> {
    let Type::Path(p) = strip(ty) else {
        return None;
    };
    let seg = p.path.segments.last()?;
    if p.qself.is_some() || seg.ident != name {
        return None;
    }
    let PathArguments::AngleBracketed(a) = &seg.arguments else {
        return None;
    };
    let mut types = a.args.iter().filter_map(|g| match g {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    });
    let t = types.next()?;
    types.next().is_none().then_some(t)
}

/// Dims of an array nest ending in a float, outermost first, and the float.
fn array_dims(ty: &Type) -> Option<(Vec<&Expr>, &Type)> {
    let mut dims = Vec::new();
    let mut t = strip(ty);
    while let Type::Array(a) = t {
        dims.push(&a.len);
        t = strip(&a.elem);
    }
    is_float(t).then_some((dims, t))
}

fn classify(ty: &Type) -> TyKind<'_> {
    let inner = single_arg(ty, "Box");
    if let Some((dims, elem)) = array_dims(inner.unwrap_or(ty)) {
        return TyKind::Fixed {
            dims,
            elem,
            boxed: inner.is_some(),
        };
    }
    let list = match inner.map(strip) {
        Some(Type::Slice(s)) => Some((&*s.elem, "Box<[T]>")),
        _ => single_arg(ty, "Vec").map(|e| (e, "Vec<T>")),
    };
    match list {
        Some((elem, what)) if is_float(elem) => TyKind::Flat { what },
        Some((elem, _)) => TyKind::List { elem },
        None if is_foreign_tensor(ty) => TyKind::Foreign,
        None => TyKind::Opaque,
    }
}

/// The array types of ndarray and nalgebra that init-core implements `Tensor` for (behind
/// features), recognised by name when their element type is written as a float.
const FOREIGN_TENSORS: &[&str] = &[
    "Array",
    "Array0",
    "Array1",
    "Array2",
    "Array3",
    "Array4",
    "Array5",
    "Array6",
    "ArrayD",
    "SMatrix",
    "SVector",
    "SRowVector",
];

fn is_foreign_tensor(ty: &Type) -> bool {
    let Type::Path(p) = strip(ty) else {
        return false;
    };
    let Some(seg) = p.path.segments.last() else {
        return false;
    };
    let PathArguments::AngleBracketed(a) = &seg.arguments else {
        return false;
    };
    p.qself.is_none()
        && FOREIGN_TENSORS.iter().any(|n| seg.ident == n)
        && matches!(a.args.first(), Some(GenericArgument::Type(t)) if is_float(t))
}

/// The element type when `ty` is written as a primitive that is not a float (`u8`, `i32`,
/// `usize`, `bool`…), alone, in nested arrays, or in a `Vec`/`Box<[T]>`/`Box<[T; N]>`.
pub(crate) fn non_float_elem(ty: &Type) -> Option<&Type> {
    const PRIMITIVES: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "bool", "char",
    ];
    let mut t = strip(ty);
    loop {
        t = match t {
            Type::Array(a) => strip(&a.elem),
            Type::Slice(s) => strip(&s.elem),
            _ => match single_arg(t, "Vec").or_else(|| single_arg(t, "Box")) {
                Some(inner) => strip(inner),
                None => break,
            },
        };
    }
    let Type::Path(p) = t else { return None };
    (p.qself.is_none() && PRIMITIVES.iter().any(|n| p.path.is_ident(n))).then_some(t)
}

/// The value of an integer literal expression.
pub(crate) fn int_literal(e: &Expr) -> Option<u128> {
    match e {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse().ok(),
        Expr::Group(g) => int_literal(&g.expr),
        Expr::Paren(p) => int_literal(&p.expr),
        _ => None,
    }
}
