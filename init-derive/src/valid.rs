//! Checks, each error on the exact token, and the field actions `expand.rs` turns into code.
//!
//! Everything the tokens decide is checked here, at macro time, with the shared scheme grammar
//! (the `init-scheme` crate, which init-core re-exports). What only the monomorphized types decide
//! (the rank of a type alias or a generic, the value of a const-generic dimension) becomes a
//! [`Check`]: a `const { assert!(..) }` in the generated code, spanned at the same token.

use crate::ast::{Field, Input, TyKind, int_literal};
use crate::attr::{ConventionAttr, LayoutAttr, SchemeAttr};
use crate::ctxt::Ctxt;
use crate::symbol::{
    ALLOW_SYMMETRIC, EMBEDDING, FANS, FIELD_KEYS, GROUPS, SHAPE, TRANSPOSED, WITH,
};
use init_scheme::{RankRequirement, SCHEME_NAMES, Scheme, SchemeError, closest};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{Expr, Type};

/// Each field of the struct and what the generated code does with it.
pub(crate) struct FieldActions<'a> {
    pub fields: Vec<(&'a Field<'a>, Action<'a>)>,
}

pub(crate) enum Action<'a> {
    /// `#[init(skip)]`.
    Skip,
    /// A layer (or an array/list of layers): its own `Initialize`.
    Nested {
        /// `len = N` and the list's element type.
        len: Option<(&'a Expr, &'a Type)>,
    },
    /// A tensor with a scheme.
    Tensor(TensorPlan<'a>),
}

pub(crate) struct TensorPlan<'a> {
    /// Canonical scheme text.
    pub scheme: String,
    /// Canonical text of the struct's `bias`, when the rank is only known at run time.
    pub bias: Option<String>,
    pub layout: Option<LayoutAttr>,
    pub fans: Option<(&'a Expr, &'a Expr)>,
    pub shape: Option<&'a [Expr]>,
    pub groups: Option<&'a Expr>,
    pub transposed: bool,
    pub embedding: bool,
    pub convention: Option<ConventionAttr>,
    /// `with = path`: the user's function fills the tensor (then `scheme` is empty).
    pub with: Option<&'a syn::Path>,
    pub checks: Vec<Check<'a>>,
    /// How `Zeroed` builds it.
    pub zeroed: Zero<'a>,
    /// A `Vec`/`Box<[T]>` of floats (always a `Tensor`).
    pub flat: bool,
}

/// How a tensor field is built zeroed.
#[derive(Clone)]
pub(crate) enum Zero<'a> {
    /// `[[E::ZERO; D1]; D0]`: an array the tokens show, built in place (no copies through
    /// helper functions, which matter for large arrays in debug builds).
    Array { dims: Vec<&'a Expr>, elem: &'a Type },
    /// `Shape::zeroed_box()`: a boxed array, allocated zeroed on the heap.
    BoxedArray,
    /// `Tensor::zeros(shape)`.
    Tensor,
}

/// A check the types decide: emitted as `const { assert!(..) }` at `span`.
pub(crate) enum Check<'a> {
    /// `assert!(dim != 0)`.
    DimNonZero { dim: &'a Expr, message: String },
    /// `assert!(!zero_dim::<T>())`.
    NoZeroDim { span: Span, message: String },
    /// `assert!(guard || rank_in::<T>(lo, hi))`.
    Rank {
        when: When,
        lo: usize,
        hi: usize,
        span: Span,
        message: String,
    },
}

/// When a candidate scheme applies (struct defaults pick by rank).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum When {
    Always,
    /// The struct's `default` when it also has a `bias`.
    RankNot1,
    /// The struct's `bias`.
    Rank1,
}

impl When {
    fn applies(self, rank: usize) -> bool {
        match self {
            When::Always => true,
            When::RankNot1 => rank != 1,
            When::Rank1 => rank == 1,
        }
    }
}

/// Where a field's scheme came from.
#[derive(Clone, Copy)]
enum Origin<'s> {
    Own(&'s SchemeAttr),
    Default(&'s SchemeAttr),
    Bias(&'s SchemeAttr),
}

impl Origin<'_> {
    fn attr(self) -> &'static str {
        match self {
            Origin::Own(_) => "",
            Origin::Default(_) => "the struct-level `default = ",
            Origin::Bias(_) => "the struct-level `bias = ",
        }
    }

    /// "`he_uniform`" or "the struct-level `default = he_uniform`".
    fn describe(self) -> String {
        match self {
            Origin::Own(s) => format!("`{}`", s.name),
            Origin::Default(s) | Origin::Bias(s) => format!("{}{}`", self.attr(), s.name),
        }
    }
}

/// The shared grammar's verdict on a scheme, reported on the token it is about.
pub(crate) fn parse_scheme(cx: &Ctxt, s: &SchemeAttr) -> Option<Scheme> {
    match Scheme::parse(&s.text()) {
        Ok(scheme) => Some(scheme),
        Err(e) => {
            let span = error_span(s, &e);
            let message = match &e {
                SchemeError::UnknownScheme { name, suggestions } if suggestions.is_empty() => {
                    match closest(name, FIELD_KEYS).first() {
                        Some(k) => format!("unknown key or scheme `{name}`; did you mean `{k}`?"),
                        None => e.to_string(),
                    }
                }
                // `layuot = in_out` after a scheme reads as the scheme's parameter: when it is
                // closer to a field key than to any of the scheme's parameters, say so.
                SchemeError::BadParameter { message, .. }
                    if message.starts_with("unknown parameter `")
                        && !message.contains("did you mean") =>
                {
                    let name = message.split('`').nth(1).unwrap_or_default();
                    match closest(name, FIELD_KEYS).first() {
                        Some(k) => format!("{e}; or did you mean the field key `{k}`?"),
                        None => e.to_string(),
                    }
                }
                _ => e.to_string(),
            };
            cx.error_at(span, message);
            None
        }
    }
}

fn error_span(s: &SchemeAttr, e: &SchemeError) -> Span {
    let by_key = |k: &str| {
        s.args
            .iter()
            .find(|a| a.key.as_ref().is_some_and(|key| key == k))
    };
    match e {
        SchemeError::UnknownNonlinearity { .. } => by_key("nonlinearity").map(|a| a.span),
        SchemeError::BadParameter {
            scheme: "leaky_relu" | "nonlinearity",
            ..
        } => by_key("nonlinearity").map(|a| a.span),
        SchemeError::BadParameter { message, .. } => message
            .split('`')
            .nth(1)
            .and_then(by_key)
            .and_then(|a| a.key.as_ref().map(syn::Ident::span)),
        SchemeError::BadValue { param, .. } => by_key(param)
            .or_else(|| (s.args.len() == 1).then(|| &s.args[0]))
            .map(|a| a.span),
        SchemeError::UnknownScheme { .. } | SchemeError::Syntax { .. } => None,
    }
    .unwrap_or_else(|| s.name.span())
}

/// Checks the struct-level defaults and every field.
pub(crate) fn check<'a>(cx: &Ctxt, input: &'a Input<'a>) -> FieldActions<'a> {
    let default = input
        .attrs
        .default
        .as_ref()
        .and_then(|d| Some((&d.value, parse_scheme(cx, &d.value)?)));
    let bias = input
        .attrs
        .bias
        .as_ref()
        .and_then(|b| Some((&b.value, parse_scheme(cx, &b.value)?)));
    let defaults = Defaults {
        default,
        bias,
        struct_layout: input.attrs.layout.as_ref().map(|l| l.value),
        struct_convention: input.attrs.convention.as_ref().map(|l| l.value),
        failed: (input.attrs.default.is_some() && default.is_none())
            || (input.attrs.bias.is_some() && bias.is_none()),
    };
    let fields = input
        .fields
        .iter()
        .filter_map(|f| Some((f, field(cx, f, &defaults)?)))
        .collect();
    FieldActions { fields }
}

struct Defaults<'a> {
    default: Option<(&'a SchemeAttr, Scheme)>,
    bias: Option<(&'a SchemeAttr, Scheme)>,
    struct_layout: Option<LayoutAttr>,
    struct_convention: Option<ConventionAttr>,
    /// A default was written but is invalid (already reported).
    failed: bool,
}

fn field<'a>(cx: &Ctxt, f: &'a Field<'a>, d: &Defaults<'a>) -> Option<Action<'a>> {
    let a = &f.attrs;
    if a.had_errors {
        return None;
    }
    if a.skip.is_some() {
        for span in a.other_keys() {
            cx.error_at(
                span,
                "a `skip` field takes no other keys: it is left as it is (and built with \
                 `Default` by `initialized`)",
            );
        }
        for p in &a.params {
            if let Some(k) = &p.key {
                cx.error_spanned_by(k, "a `skip` field takes no other keys");
            }
        }
        return Some(Action::Skip);
    }
    if a.scheme.is_none() {
        for p in &a.params {
            let Some(k) = &p.key else { continue };
            let name = k.to_string();
            let mut near = closest(&name, SCHEME_NAMES);
            near.extend(closest(&name, FIELD_KEYS));
            let msg = match near.first() {
                Some(s) => format!("unknown key `{name}`; did you mean `{s}`?"),
                None => format!(
                    "unknown key `{name}`: not a field key ({}), and the field names no scheme \
                     it could be a parameter of",
                    FIELD_KEYS.join(", ")
                ),
            };
            cx.error_spanned_by(k, msg);
        }
        if !a.params.is_empty() {
            return None;
        }
    }
    let own = a.scheme.as_ref().map(|s| (s, parse_scheme(cx, s)));
    let is_tensor = own.is_some() || a.has_tensor_keys() || f.kind.is_float_tensor();
    // (Not after a scheme that failed to parse: that error is the one to fix first.)
    if is_tensor
        && !matches!(own, Some((_, None)))
        && let Some(elem) = crate::ast::non_float_elem(f.ty)
    {
        // One error on the element, rather than a trait error per generated impl.
        cx.error_spanned_by(
            elem,
            format_args!(
                "`{}` is given a scheme, so it is a tensor, and a tensor holds f32, f64, f16 or \
                 bf16 (in nested arrays, a Vec/Box<[T]> with `shape`, or an ndarray/nalgebra \
                 array), not `{}`; for a non-parameter field write `#[init(skip)]`",
                f.name,
                quote::ToTokens::to_token_stream(elem)
            ),
        );
        return None;
    }
    if !is_tensor {
        let len = match (&a.len, &f.kind) {
            (None, _) => None,
            (Some(l), TyKind::List { elem }) => Some((&l.value, *elem)),
            (Some(l), _) => {
                cx.error_at(
                    l.key,
                    "`len = N` is for a `Vec` or `Box<[T]>` of layers: how many zeroed layers \
                     `initialized` builds",
                );
                None
            }
        };
        return Some(Action::Nested { len });
    }
    if let Some(l) = &a.len {
        cx.error_at(
            l.key,
            "`len` is for lists of layers; a tensor's size is its type, or its `shape = [..]`",
        );
    }
    let errors_before = cx.len();
    check_dims(cx, f);
    let shape = a.shape.as_ref().map(|s| s.value.as_slice());
    let rank = f.kind.rank(shape.map(<[Expr]>::len));
    if let Some((i, o)) = a.fans.as_ref().map(|k| &k.value) {
        for e in [i, o] {
            if int_literal(e) == Some(0) {
                cx.error_spanned_by(e, "a fan of 0: fans must be > 0");
            }
        }
    }

    check_fan_keys(cx, f, rank);
    if let Some(w) = &a.with {
        if let Some(s) = &a.scheme {
            cx.error_spanned_by(
                &s.name,
                format_args!(
                    "a field with `{WITH} = ..` takes no scheme: the function fills it (drop \
                     `{}` or `{WITH}`)",
                    s.name
                ),
            );
        }
        if a.allow_symmetric.is_some() {
            cx.error_at(
                a.allow_symmetric.unwrap_or(w.key),
                format_args!("`{ALLOW_SYMMETRIC}` has no effect with `{WITH}`"),
            );
        }
        if cx.len() > errors_before {
            return None;
        }
        return Some(Action::Tensor(plan(f, d, String::new(), None, Vec::new())));
    }

    // The candidate schemes and when each applies.
    let mut candidates: Vec<(Origin, Scheme, When)> = Vec::new();
    match own {
        Some((_, None)) => return None,
        Some((s, Some(scheme))) => candidates.push((Origin::Own(s), scheme, When::Always)),
        None => {
            if d.failed {
                return None;
            }
            let def = d.default.map(|(s, x)| (Origin::Default(s), x));
            let bias = d.bias.map(|(s, x)| (Origin::Bias(s), x));
            match (rank, def, bias) {
                (None, Some((o, x)), Some((ob, xb))) => {
                    candidates.push((o, x, When::RankNot1));
                    candidates.push((ob, xb, When::Rank1));
                }
                (Some(1), _, Some((o, x)))
                | (Some(_) | None, Some((o, x)), _)
                | (None, None, Some((o, x))) => candidates.push((o, x, When::Always)),
                (_, _, _) => {
                    let what = match rank {
                        Some(r) => format!("a rank-{r} tensor"),
                        None => "a tensor".to_owned(),
                    };
                    cx.error_at(
                        f.span,
                        format_args!(
                            "`{}` is {what} without a scheme: give it one \
                             (`#[init(he_uniform)]`), give the struct a default \
                             (`#[init(default = he_uniform, bias = zeros)]`), or `#[init(skip)]`",
                            f.name
                        ),
                    );
                    return None;
                }
            }
        }
    }

    let mut checks = Vec::new();
    for &(origin, scheme, when) in &candidates {
        let at = match origin {
            Origin::Own(s) => s.name.span(),
            Origin::Default(_) | Origin::Bias(_) => f.span,
        };
        for (lo, hi, need) in requirements(f, &scheme) {
            match rank {
                Some(r) if when.applies(r) && !(lo..=hi).contains(&r) => {
                    cx.error_at(at, need.message(origin, &f.name, &format!("rank {r}")));
                }
                Some(_) => {}
                None => checks.push(Check::Rank {
                    when,
                    lo,
                    hi,
                    span: at,
                    message: need.message(origin, &f.name, need.failing_ranks()),
                }),
            }
        }
    }
    if let Some((sa, Some(scheme))) = own {
        if !scheme.needs_fans() {
            if let Some(k) = &a.fans {
                cx.error_at(
                    k.key,
                    format_args!("`fans` has no effect: `{}` does not use fans", sa.name),
                );
            }
            if let Some(k) = &a.layout {
                cx.error_at(
                    k.key,
                    format_args!(
                        "`layout` has no effect: it tells how to read fans, and `{}` does not \
                         use fans",
                        sa.name
                    ),
                );
            }
            for (span, key) in a.fan_keys() {
                cx.error_at(
                    span,
                    format_args!(
                        "`{key}` has no effect: it tells how to read fans, and `{}` does not \
                         use fans",
                        sa.name
                    ),
                );
            }
        }
        if !scheme.is_symmetric()
            && let Some(span) = a.allow_symmetric
        {
            {
                cx.error_at(
                    span,
                    format_args!(
                        "`{ALLOW_SYMMETRIC}` has no effect: `{}` gives units different values",
                        sa.name
                    ),
                );
            }
        }
    }
    if cx.len() > errors_before {
        return None;
    }
    match &f.kind {
        TyKind::Fixed { dims, .. } => {
            for dim in dims.iter().copied().filter(|e| int_literal(e).is_none()) {
                let text = quote::ToTokens::to_token_stream(dim).to_string();
                checks.push(Check::DimNonZero {
                    dim,
                    message: format!(
                        "dimension `{text}` (of field `{}`) is zero, so the field holds no \
                         parameters",
                        f.name
                    ),
                });
            }
        }
        TyKind::Foreign | TyKind::Opaque | TyKind::List { .. } => checks.push(Check::NoZeroDim {
            span: f.ty.span(),
            message: format!(
                "field `{}` has a zero-sized dimension, so it holds no parameters",
                f.name
            ),
        }),
        TyKind::Flat { .. } => {}
    }
    let text = |s: &Scheme| s.to_string();
    let (scheme, bias) = match candidates.as_slice() {
        [(_, s, _)] => (text(s), None),
        [(_, s, _), (_, b, _)] => (text(s), Some(text(b))),
        _ => unreachable!("one or two candidates"),
    };
    Some(Action::Tensor(plan(f, d, scheme, bias, checks)))
}

/// The tensor plan of field `f` with its scheme(s) and post-monomorphization checks.
fn plan<'a>(
    f: &'a Field<'a>,
    d: &Defaults<'a>,
    scheme: String,
    bias: Option<String>,
    checks: Vec<Check<'a>>,
) -> TensorPlan<'a> {
    let a = &f.attrs;
    TensorPlan {
        scheme,
        bias,
        layout: a.layout.as_ref().map(|l| l.value).or(d.struct_layout),
        fans: a.fans.as_ref().map(|k| (&k.value.0, &k.value.1)),
        shape: a.shape.as_ref().map(|s| s.value.as_slice()),
        groups: a.groups.as_ref().map(|k| &k.value),
        transposed: a.transposed.is_some(),
        embedding: a.embedding.is_some(),
        convention: a
            .convention
            .as_ref()
            .map(|c| c.value)
            .or(d.struct_convention),
        with: a.with.as_ref().map(|w| &w.value),
        checks,
        flat: matches!(f.kind, TyKind::Flat { .. }),
        zeroed: match &f.kind {
            TyKind::Fixed {
                boxed: false,
                dims,
                elem,
            } => Zero::Array {
                dims: dims.clone(),
                elem,
            },
            TyKind::Fixed { boxed: true, .. } => Zero::BoxedArray,
            _ => Zero::Tensor,
        },
    }
}

/// `groups`, `transposed`, `embedding` and `fans` that contradict each other or the rank.
fn check_fan_keys(cx: &Ctxt, f: &Field, rank: Option<usize>) {
    let a = &f.attrs;
    if let Some(e) = a.embedding {
        if let Some(k) = &a.fans {
            cx.error_at(
                k.key,
                format_args!(
                    "`{FANS}` and `{EMBEDDING}` both say what the fans are: keep one \
                     (`{EMBEDDING}` gives (1, D) for a [V, D] table)"
                ),
            );
        }
        if let Some(k) = &a.groups {
            cx.error_at(
                k.key,
                format_args!("`{GROUPS}` is for convolutions, not an `{EMBEDDING}` table"),
            );
        }
        if let Some(t) = a.transposed {
            cx.error_at(
                t,
                format_args!("`{TRANSPOSED}` is for convolutions, not an `{EMBEDDING}` table"),
            );
        }
        if let Some(r) = rank.filter(|&r| r != 2) {
            cx.error_at(
                e,
                format_args!(
                    "`{EMBEDDING}` is for a [V, D] table of rank 2, but `{}` has rank {r}",
                    f.name
                ),
            );
        }
    }
    if a.fans.is_some() {
        for (span, key) in a
            .fan_keys()
            .filter(|(_, k)| *k == GROUPS || *k == TRANSPOSED)
        {
            cx.error_at(
                span,
                format_args!("`{key}` has no effect: `{FANS}` gives the fans directly"),
            );
        }
    }
}

/// Literal zero dims, and `shape` where it does not belong or is missing.
fn check_dims(cx: &Ctxt, f: &Field) {
    let a = &f.attrs;
    let zero = |e: &Expr| {
        cx.error_spanned_by(
            e,
            format_args!(
                "zero-sized dimension: field `{}` would hold no parameters",
                f.name
            ),
        );
    };
    match (&f.kind, &a.shape) {
        (TyKind::Fixed { dims, .. }, shape) => {
            if let Some(s) = shape {
                cx.error_at(
                    s.key,
                    format_args!(
                        "`{SHAPE}` is for run-time-shaped fields (Vec, Box<[T]>, ndarray): this \
                         field's shape is its type"
                    ),
                );
            }
            for dim in dims.iter().filter(|e| int_literal(e) == Some(0)) {
                zero(dim);
            }
        }
        (TyKind::Flat { what }, None) => cx.error_spanned_by(
            f.ty,
            format_args!(
                "a `{what}` field does not know its shape: declare it, outermost first, e.g. \
                 `#[init(he_uniform, shape = [fan_out, fan_in])]`"
            ),
        ),
        (_, Some(s)) => {
            for dim in s.value.iter().filter(|e| int_literal(e) == Some(0)) {
                zero(dim);
            }
        }
        (_, None) => {}
    }
}

/// What a scheme needs of a field's rank.
#[derive(Clone, Copy)]
enum Need {
    /// The scheme's own requirement (fans, a matrix, a convolution weight).
    Scheme(RankRequirement),
    /// `zeros`/`constant`: rank < 2, or `allow_symmetric`.
    NotSymmetric,
}

impl Need {
    /// The ranks that fail, for messages of checks the types decide.
    fn failing_ranks(self) -> &'static str {
        match self {
            Need::Scheme(r) => r.failing_ranks(),
            Need::NotSymmetric => "rank >= 2",
        }
    }

    fn message(self, origin: Origin, field: &str, rank: &str) -> String {
        let what = origin.describe();
        match self {
            Need::Scheme(r @ RankRequirement::Fans) => format!(
                "{what} {}, but `{field}` has {rank} (a bias or a scalar has no fans): give them \
                 with `fans = (fan_in, fan_out)`, or use a scheme without fans such as zeros or \
                 normal(0, 0.02)",
                r.message()
            ),
            Need::Scheme(r) => format!("{what} {}, but `{field}` has {rank}", r.message()),
            Need::NotSymmetric => format!(
                "{what} gives every unit of `{field}` ({rank}) the same value, so all units \
                 compute and learn the same thing and symmetry is never broken: use a random \
                 scheme such as he_uniform or glorot_uniform, or write `{ALLOW_SYMMETRIC}` if \
                 this is intended"
            ),
        }
    }
}

/// The rank ranges a scheme needs on this field.
fn requirements(f: &Field, scheme: &Scheme) -> Vec<(usize, usize, Need)> {
    let a = &f.attrs;
    let mut out = Vec::new();
    let need = scheme.rank_requirement();
    let ranks = need.ranks(a.fans.is_some());
    if ranks != (0..=usize::MAX) {
        out.push((*ranks.start(), *ranks.end(), Need::Scheme(need)));
    }
    if scheme.is_symmetric() && a.allow_symmetric.is_none() {
        out.push((0, 1, Need::NotSymmetric));
    }
    out
}
