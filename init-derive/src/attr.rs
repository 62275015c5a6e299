//! `#[init(...)]` attributes → plain values, with the span of every token kept for errors.
//!
//! Parsing only: which keys are present, their values, duplicates and unknown keys. Whether
//! the scheme and its parameters make sense is `valid.rs`'s job (through the shared grammar).

use crate::ctxt::Ctxt;
use crate::symbol::{
    ALLOW_SYMMETRIC, BIAS, CONVENTION, DEFAULT, EMBEDDING, FANS, FIELD_KEYS, FRAMEWORK, GROUPS,
    IN_OUT, INIT, LAYOUT, LEN, OUT_IN, SHAPE, SKIP, STRUCT_KEYS, TRANSPOSED, TRUE, WITH,
};
use init_scheme::{Scheme, closest};
use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::meta::ParseNestedMeta;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Attribute, Expr, ExprLit, Ident, Lit, Token, UnOp};

/// A scheme as written: a name and its parameters (from `name(args)`, `name = value`, or the
/// attribute's other `key = value` entries).
#[derive(Clone)]
pub(crate) struct SchemeAttr {
    /// The scheme's name token.
    pub name: Ident,
    /// Its parameters in order.
    pub args: Vec<Arg>,
}

/// One scheme parameter.
#[derive(Clone)]
pub(crate) struct Arg {
    /// `key = ` if named.
    pub key: Option<Ident>,
    /// The value in the shared grammar's syntax.
    pub text: String,
    /// The value's tokens, for errors.
    pub span: Span,
}

impl SchemeAttr {
    /// The scheme in the shared grammar: `name(k=v,..)`.
    pub(crate) fn text(&self) -> String {
        let mut s = self.name.to_string();
        if !self.args.is_empty() {
            s.push('(');
            for (i, a) in self.args.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                if let Some(k) = &a.key {
                    s.push_str(&k.to_string());
                    s.push('=');
                }
                s.push_str(&a.text);
            }
            s.push(')');
        }
        s
    }
}

/// `layout = ..`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum LayoutAttr {
    /// `[out][in][k…]`.
    OutIn,
    /// `[k…][in][out]`.
    InOut,
}

/// `convention = ..`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ConventionAttr {
    /// Real connections (groups divide, transposed axes read as they are).
    True,
    /// PyTorch's `_calculate_fan_in_and_fan_out` (out_in) or Keras's `compute_fans` (in_out).
    Framework,
}

/// A value with the span of its key.
pub(crate) struct Keyed<T> {
    pub key: Span,
    pub value: T,
}

/// A field's `#[init(...)]` attributes.
#[derive(Default)]
pub(crate) struct FieldAttrs {
    pub skip: Option<Span>,
    pub allow_symmetric: Option<Span>,
    pub layout: Option<Keyed<LayoutAttr>>,
    pub fans: Option<Keyed<(Expr, Expr)>>,
    pub shape: Option<Keyed<Vec<Expr>>>,
    pub len: Option<Keyed<Expr>>,
    pub groups: Option<Keyed<Expr>>,
    pub transposed: Option<Span>,
    pub embedding: Option<Span>,
    pub convention: Option<Keyed<ConventionAttr>>,
    pub with: Option<Keyed<syn::Path>>,
    pub scheme: Option<SchemeAttr>,
    /// `key = value` entries that are neither field keys nor a scheme: the scheme's parameters
    /// (attached to `scheme` once the attributes are read).
    pub params: Vec<Arg>,
    /// Whether reading the attributes reported an error (then the field is not checked
    /// further: one error, not a cascade).
    pub had_errors: bool,
    /// Keys seen, for duplicate detection.
    seen: Vec<String>,
}

impl FieldAttrs {
    /// Whether any key that only makes sense on a tensor is present.
    pub(crate) fn has_tensor_keys(&self) -> bool {
        self.layout.is_some()
            || self.fans.is_some()
            || self.shape.is_some()
            || self.allow_symmetric.is_some()
            || self.fan_keys().next().is_some()
            || self.with.is_some()
    }

    /// Spans and names of the keys that tell how fans are read besides `layout`.
    pub(crate) fn fan_keys(&self) -> impl Iterator<Item = (Span, &'static str)> + '_ {
        let groups = self.groups.as_ref().map(|k| (k.key, GROUPS));
        let transposed = self.transposed.map(|s| (s, TRANSPOSED));
        let embedding = self.embedding.map(|s| (s, EMBEDDING));
        let convention = self.convention.as_ref().map(|k| (k.key, CONVENTION));
        groups
            .into_iter()
            .chain(transposed)
            .chain(embedding)
            .chain(convention)
    }

    /// Spans of every key other than `skip`, for "skip takes nothing else".
    pub(crate) fn other_keys(&self) -> Vec<Span> {
        let mut v = Vec::new();
        v.extend(self.allow_symmetric);
        v.extend(self.layout.as_ref().map(|k| k.key));
        v.extend(self.fans.as_ref().map(|k| k.key));
        v.extend(self.shape.as_ref().map(|k| k.key));
        v.extend(self.len.as_ref().map(|k| k.key));
        v.extend(self.fan_keys().map(|(s, _)| s));
        v.extend(self.with.as_ref().map(|k| k.key));
        v.extend(self.scheme.as_ref().map(|s| s.name.span()));
        v
    }
}

/// The struct's `#[init(...)]` attributes.
#[derive(Default)]
pub(crate) struct StructAttrs {
    pub default: Option<Keyed<SchemeAttr>>,
    pub bias: Option<Keyed<SchemeAttr>>,
    pub layout: Option<Keyed<LayoutAttr>>,
    pub convention: Option<Keyed<ConventionAttr>>,
    seen: Vec<String>,
}

fn is_init(attr: &Attribute) -> bool {
    attr.path().is_ident(INIT)
}

/// The key as a string (a single identifier; keywords allowed).
fn key_of(meta: &ParseNestedMeta) -> syn::Result<Ident> {
    meta.path
        .get_ident()
        .cloned()
        .ok_or_else(|| meta.error("expected a key such as `he_uniform`, `skip` or `gain = 1.0`"))
}

/// Records `key`; an error if it was seen before.
fn first_time(cx: &Ctxt, seen: &mut Vec<String>, key: &Ident) -> bool {
    let k = key.to_string();
    if seen.contains(&k) {
        cx.error_spanned_by(key, format_args!("duplicate key `{k}`"));
        false
    } else {
        seen.push(k);
        true
    }
}

/// Consumes whatever follows a key we reject, so parsing goes on to the next entry.
fn skip_value(meta: &ParseNestedMeta) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.value()?.parse::<Expr>()?;
    } else if meta.input.peek(syn::token::Paren) {
        let content;
        syn::parenthesized!(content in meta.input);
        content.parse::<TokenStream>()?;
    }
    Ok(())
}

/// Reads every `#[init(...)]` on a struct.
pub(crate) fn struct_attrs(cx: &Ctxt, attrs: &[Attribute]) -> StructAttrs {
    let mut out = StructAttrs::default();
    for attr in attrs.iter().filter(|a| is_init(a)) {
        let r = attr.parse_nested_meta(|meta| {
            let key = key_of(&meta)?;
            let k = key.to_string();
            match k.as_str() {
                DEFAULT | BIAS => {
                    let expr: Expr = meta.value()?.parse()?;
                    if !first_time(cx, &mut out.seen, &key) {
                        return Ok(());
                    }
                    match scheme_of_expr(&expr) {
                        Ok(s) => {
                            let keyed = Some(Keyed {
                                key: key.span(),
                                value: s,
                            });
                            if k == DEFAULT {
                                out.default = keyed;
                            } else {
                                out.bias = keyed;
                            }
                        }
                        Err(e) => cx.syn_error(e),
                    }
                }
                LAYOUT => {
                    let expr: Expr = meta.value()?.parse()?;
                    if first_time(cx, &mut out.seen, &key) {
                        out.layout = layout_of(cx, &key, &expr);
                    }
                }
                CONVENTION => {
                    let expr: Expr = meta.value()?.parse()?;
                    if first_time(cx, &mut out.seen, &key) {
                        out.convention = convention_of(cx, &key, &expr);
                    }
                }
                _ => {
                    skip_value(&meta)?;
                    let mut msg = format!(
                        "unknown struct-level key `{k}` (expected one of: {})",
                        STRUCT_KEYS.join(", ")
                    );
                    if let Some(s) = closest(&k, STRUCT_KEYS).first() {
                        msg = format!("unknown struct-level key `{k}`; did you mean `{s}`?");
                    } else if Scheme::parse(&k).is_ok() {
                        msg = format!(
                            "unknown struct-level key `{k}`; a struct-level scheme is written \
                             `default = {k}`"
                        );
                    }
                    cx.error_spanned_by(&key, msg);
                }
            }
            Ok(())
        });
        if let Err(e) = r {
            cx.syn_error(e);
        }
    }
    out
}

/// Reads every `#[init(...)]` on a field.
pub(crate) fn field_attrs(cx: &Ctxt, attrs: &[Attribute]) -> FieldAttrs {
    let mut out = FieldAttrs::default();
    let errors_before = cx.len();
    for attr in attrs.iter().filter(|a| is_init(a)) {
        let r = attr.parse_nested_meta(|meta| field_entry(cx, &mut out, &meta));
        if let Err(e) = r {
            cx.syn_error(e);
        }
    }
    if let Some(s) = &mut out.scheme {
        // `dirac, groups = 2`: `groups` is dirac's own parameter (dirac uses no fans).
        if init_scheme::Scheme::parse(&s.name.to_string())
            .is_ok_and(|x| matches!(x.kind(), init_scheme::SchemeKind::Dirac { .. }))
            && let Some(g) = out.groups.take()
        {
            match value_text(&g.value) {
                Ok(text) => out.params.push(Arg {
                    key: Some(Ident::new(GROUPS, g.key)),
                    text,
                    span: g.value.span(),
                }),
                Err(e) => cx.syn_error(e),
            }
        }
        s.args.append(&mut out.params);
    }
    out.had_errors = cx.len() > errors_before;
    out
}

fn field_entry(cx: &Ctxt, out: &mut FieldAttrs, meta: &ParseNestedMeta) -> syn::Result<()> {
    let key = key_of(meta)?;
    let k = key.to_string();
    let has_value = meta.input.peek(Token![=]);
    let has_list = meta.input.peek(syn::token::Paren);
    match k.as_str() {
        SKIP | ALLOW_SYMMETRIC | TRANSPOSED | EMBEDDING => {
            if has_value || has_list {
                skip_value(meta)?;
                cx.error_spanned_by(&key, format_args!("`{k}` takes no value"));
            } else if first_time(cx, &mut out.seen, &key) {
                let at = Some(key.span());
                match k.as_str() {
                    SKIP => out.skip = at,
                    ALLOW_SYMMETRIC => out.allow_symmetric = at,
                    TRANSPOSED => out.transposed = at,
                    _ => out.embedding = at,
                }
            }
            return Ok(());
        }
        LAYOUT | FANS | SHAPE | LEN | GROUPS | CONVENTION | WITH => {
            let expr: Expr = meta.value()?.parse()?;
            if !first_time(cx, &mut out.seen, &key) {
                return Ok(());
            }
            let at = key.span();
            match k.as_str() {
                LAYOUT => out.layout = layout_of(cx, &key, &expr),
                CONVENTION => out.convention = convention_of(cx, &key, &expr),
                GROUPS => {
                    if int_value(&expr) == Some(0) {
                        cx.error_spanned_by(&expr, "`groups = 0`: a convolution has >= 1 group");
                    }
                    out.groups = Some(Keyed {
                        key: at,
                        value: expr,
                    });
                }
                WITH => match expr {
                    Expr::Path(p) if p.qself.is_none() => {
                        out.with = Some(Keyed {
                            key: at,
                            value: p.path,
                        });
                    }
                    other => cx.error_spanned_by(
                        other,
                        "expected `with = path::to::function`, a function \
                         `fn(&mut [E], &init_core::Site)` that fills the tensor",
                    ),
                },
                FANS => match expr {
                    Expr::Tuple(t) if t.elems.len() == 2 => {
                        let mut it = t.elems.into_iter();
                        let (i, o) = (it.next(), it.next());
                        if let (Some(i), Some(o)) = (i, o) {
                            out.fans = Some(Keyed {
                                key: at,
                                value: (i, o),
                            });
                        }
                    }
                    other => cx.error_spanned_by(
                        other,
                        "expected `fans = (fan_in, fan_out)`, two integer expressions",
                    ),
                },
                SHAPE => match expr {
                    Expr::Array(a) if !a.elems.is_empty() => {
                        out.shape = Some(Keyed {
                            key: at,
                            value: a.elems.into_iter().collect(),
                        });
                    }
                    other => cx.error_spanned_by(
                        other,
                        "expected `shape = [d0, d1, ..]`, one or more integer expressions, outermost first",
                    ),
                },
                _ => {
                    out.len = Some(Keyed {
                        key: at,
                        value: expr,
                    });
                }
            }
            return Ok(());
        }
        _ => {}
    }
    // Not a field key: a scheme, a scheme parameter, or a mistake.
    if has_list {
        // `he_normal(mode = fan_out)`.
        let content;
        syn::parenthesized!(content in meta.input);
        let args = Punctuated::<Expr, Token![,]>::parse_terminated(&content)?;
        let parsed: syn::Result<Vec<Arg>> = args.iter().map(arg_of_expr).collect();
        match parsed {
            Ok(args) => set_scheme(cx, out, key, args),
            Err(e) => cx.syn_error(e),
        }
        return Ok(());
    }
    if has_value {
        let expr: Expr = meta.value()?.parse()?;
        let text = match value_text(&expr) {
            Ok(t) => t,
            Err(e) => {
                cx.syn_error(e);
                return Ok(());
            }
        };
        let arg = Arg {
            key: None,
            text,
            span: expr.span(),
        };
        if is_scheme_name(&k) {
            // `constant = 0.01`: the scheme with its first parameter.
            set_scheme(cx, out, key, vec![arg]);
        } else if first_time(cx, &mut out.seen, &key) {
            out.params.push(Arg {
                key: Some(key),
                ..arg
            });
        }
        return Ok(());
    }
    // A bare word: the scheme, or an unknown key.
    if out.scheme.is_some() && !is_scheme_name(&k) {
        let mut msg = format!(
            "unknown key `{k}` (field keys: {}; other entries are the scheme's parameters, \
             written `name = value`)",
            FIELD_KEYS.join(", ")
        );
        if let Some(s) = closest(&k, FIELD_KEYS).first() {
            msg = format!("unknown key `{k}`; did you mean `{s}`?");
        }
        cx.error_spanned_by(&key, msg);
        return Ok(());
    }
    set_scheme(cx, out, key, Vec::new());
    Ok(())
}

fn set_scheme(cx: &Ctxt, out: &mut FieldAttrs, name: Ident, args: Vec<Arg>) {
    if let Some(first) = &out.scheme {
        cx.error_spanned_by(
            &name,
            format_args!(
                "a second scheme `{name}`: a field takes one scheme (this one already has `{}`)",
                first.name
            ),
        );
        return;
    }
    out.scheme = Some(SchemeAttr { name, args });
}

/// Whether the shared grammar knows `name` as a scheme (aliases included).
pub(crate) fn is_scheme_name(name: &str) -> bool {
    !matches!(
        Scheme::parse(name),
        Err(init_scheme::SchemeError::UnknownScheme { .. }
            | init_scheme::SchemeError::Syntax { .. })
    )
}

fn layout_of(cx: &Ctxt, key: &Ident, expr: &Expr) -> Option<Keyed<LayoutAttr>> {
    let value = match expr {
        Expr::Path(p) if p.path.is_ident(OUT_IN) => LayoutAttr::OutIn,
        Expr::Path(p) if p.path.is_ident(IN_OUT) => LayoutAttr::InOut,
        other => {
            cx.error_spanned_by(
                other,
                "expected `layout = out_in` ([out][in][k…], PyTorch) or `layout = in_out` \
                 ([k…][in][out], Keras)",
            );
            return None;
        }
    };
    Some(Keyed {
        key: key.span(),
        value,
    })
}

fn convention_of(cx: &Ctxt, key: &Ident, expr: &Expr) -> Option<Keyed<ConventionAttr>> {
    let value = match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) if b.value => ConventionAttr::True,
        Expr::Path(p) if p.path.is_ident(TRUE) => ConventionAttr::True,
        Expr::Path(p) if p.path.is_ident(FRAMEWORK) => ConventionAttr::Framework,
        other => {
            cx.error_spanned_by(
                other,
                format_args!(
                    "expected `{CONVENTION} = {TRUE}` (real connections: groups divide both \
                     fans, transposed convolutions read as they are) or `{CONVENTION} = \
                     {FRAMEWORK}` (PyTorch's `_calculate_fan_in_and_fan_out` for out_in, \
                     Keras's `compute_fans` for in_out)"
                ),
            );
            return None;
        }
    };
    Some(Keyed {
        key: key.span(),
        value,
    })
}

/// The value of an integer literal (for literal checks such as `groups = 0`).
fn int_value(e: &Expr) -> Option<u128> {
    crate::ast::int_literal(e)
}

/// `he_uniform` or `he_normal(mode = fan_out)` as a value (struct-level `default = ..`).
fn scheme_of_expr(expr: &Expr) -> syn::Result<SchemeAttr> {
    match expr {
        Expr::Path(p) => match p.path.get_ident() {
            Some(name) => Ok(SchemeAttr {
                name: name.clone(),
                args: Vec::new(),
            }),
            None => Err(syn::Error::new_spanned(p, "expected a scheme name")),
        },
        Expr::Call(c) => {
            let Expr::Path(p) = &*c.func else {
                return Err(syn::Error::new_spanned(&c.func, "expected a scheme name"));
            };
            let Some(name) = p.path.get_ident() else {
                return Err(syn::Error::new_spanned(p, "expected a scheme name"));
            };
            Ok(SchemeAttr {
                name: name.clone(),
                args: c.args.iter().map(arg_of_expr).collect::<syn::Result<_>>()?,
            })
        }
        Expr::Group(g) => scheme_of_expr(&g.expr),
        other => Err(syn::Error::new_spanned(
            other,
            "expected a scheme: `he_uniform` or `he_normal(mode = fan_out)`",
        )),
    }
}

/// `value` or `key = value` inside a scheme's parentheses.
fn arg_of_expr(expr: &Expr) -> syn::Result<Arg> {
    if let Expr::Assign(a) = expr {
        if let Expr::Path(p) = &*a.left
            && let Some(k) = p.path.get_ident()
        {
            return Ok(Arg {
                key: Some(k.clone()),
                text: value_text(&a.right)?,
                span: a.right.span(),
            });
        }
        return Err(syn::Error::new_spanned(
            &a.left,
            "expected a parameter name",
        ));
    }
    Ok(Arg {
        key: None,
        text: value_text(expr)?,
        span: expr.span(),
    })
}

/// A parameter value in the shared grammar's syntax: numbers (`0.01`, `-1`, `5/3`), names
/// (`fan_out`), and calls (`leaky_relu(0.2)`, `leaky_relu(negative_slope = 0.2)`).
pub(crate) fn value_text(expr: &Expr) -> syn::Result<String> {
    if let Some(e) = const_expr_error(expr) {
        return Err(e);
    }
    Ok(match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_digits().to_owned(),
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_digits().to_owned(),
        Expr::Unary(u) if matches!(u.op, UnOp::Neg(_)) => format!("-{}", value_text(&u.expr)?),
        Expr::Binary(b) if matches!(b.op, syn::BinOp::Div(_)) => {
            format!("{}/{}", value_text(&b.left)?, value_text(&b.right)?)
        }
        Expr::Paren(p) => value_text(&p.expr)?,
        Expr::Group(g) => value_text(&g.expr)?,
        Expr::Path(p) if p.path.get_ident().is_some() => p.to_token_stream().to_string(),
        Expr::Call(c) => {
            let Expr::Path(p) = &*c.func else {
                return Err(syn::Error::new_spanned(&c.func, "expected a name"));
            };
            if p.path.get_ident().is_none() {
                return Err(syn::Error::new_spanned(p, "expected a name"));
            }
            let args: Vec<String> = c
                .args
                .iter()
                .map(|a| {
                    let a = arg_of_expr(a)?;
                    Ok(match a.key {
                        Some(k) => format!("{k}={}", a.text),
                        None => a.text,
                    })
                })
                .collect::<syn::Result<_>>()?;
            format!("{}({})", p.to_token_stream(), args.join(","))
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => {
            return Err(syn::Error::new_spanned(
                s,
                format_args!(
                    "scheme values are written without quotes: `{}` rather than `\"{}\"`",
                    s.value(),
                    s.value()
                ),
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "expected a number (`0.02`, `-1`, `5/3`), a name (`fan_out`) or a call \
                 (`leaky_relu(0.2)`)",
            ));
        }
    })
}

/// An error for a Rust constant or expression where the scheme grammar wants a number
/// (`gain = SQRT_2`, `std = 1.0 / 64.0_f64.sqrt()`), or `None` if `expr` is not one.
fn const_expr_error(expr: &Expr) -> Option<syn::Error> {
    let name = match expr {
        Expr::Path(p) => {
            let last = p.path.segments.last()?.ident.to_string();
            let is_const = p.path.segments.len() > 1
                || (last.chars().any(|c| c.is_ascii_uppercase())
                    && !last.chars().any(|c| c.is_ascii_lowercase()));
            if !is_const {
                return None;
            }
            last
        }
        Expr::MethodCall(_) | Expr::Cast(_) | Expr::Macro(_) => String::new(),
        Expr::Binary(b) if !matches!(b.op, syn::BinOp::Div(_)) => String::new(),
        Expr::Call(c) if !matches!(&*c.func, Expr::Path(p) if p.path.get_ident().is_some()) => {
            String::new()
        }
        _ => return None,
    };
    let known = KNOWN_CONSTANTS.iter().find(|(n, _)| *n == name);
    let fix = match known {
        Some((n, v)) => format!("write `{v}` (the value of `{n}`)"),
        None => "write the number (`1.4142135623730951`) or a ratio of numbers (`5/3`)".into(),
    };
    Some(syn::Error::new_spanned(
        expr,
        format_args!(
            "a scheme parameter must be a number written in the attribute: the derive checks \
             the scheme when it expands, before Rust constants and expressions have values; \
             {fix}"
        ),
    ))
}

/// `core::f64::consts` values a gain or std is commonly written with.
const KNOWN_CONSTANTS: &[(&str, &str)] = &[
    ("SQRT_2", "1.4142135623730951"),
    ("FRAC_1_SQRT_2", "0.7071067811865476"),
    ("PI", "3.141592653589793"),
    ("E", "2.718281828459045"),
    ("LN_2", "0.6931471805599453"),
    ("FRAC_2_SQRT_PI", "1.1283791670955126"),
];
