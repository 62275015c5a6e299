//! The payload-free view of an ONNX model that analysis reads.
//!
//! These are hand-written `prost` messages declaring only the fields analysis needs, with the
//! field numbers of `onnx.proto` (proto2). Every field not declared here — tensor payloads
//! (`raw_data`, `float_data`, …), doc strings, `metadata_props`, value types other than tensors
//! — is skipped by prost's decoder by its length, so decoding a 2 GB model allocates only the
//! graph structure. The skeleton is never encoded back: the rewrite patches the original bytes
//! at the places [`crate::onnx::scan`] records.
//!
//! The messages are declared through `skeleton_messages!`, which also derives the schema that
//! [`crate::onnx::scan::locate_decode_error`] walks to give a prost failure its byte offset.

use crate::onnx::shared::{SharedDims, SharedStr};

/// Declares the skeleton's messages once: emits each struct (with its `prost` attributes) as
/// written, and derives from the same attributes the schema [`SkeletonMessage::field`] that
/// [`crate::onnx::scan::locate_decode_error`] walks, so the two cannot disagree.
///
/// `pub struct Name as Label` names the message `Label` in located errors (default: `Name`).
/// Only the attribute shapes used below are accepted; another field kind fails to compile in
/// `field_kind!` until its wire kind is added there.
macro_rules! skeleton_messages {
    ($(
        $(#[$meta:meta])*
        pub struct $name:ident $(as $label:ident)? $([$manual:ident])? {
            $(
                $(#[doc = $doc:literal])*
                #[prost($kind:ident $(= $kind_arg:tt)?, $cardinality:ident,
                    $(packed = $packed:tt,)? tag = $tag:tt)]
                pub $field:ident: $ty:ty,
            )*
        }
    )*) => {
        $(
            skeleton_struct! {
                [$($manual)?]
                $(#[$meta])*
                pub struct $name {
                    $(
                        $(#[doc = $doc])*
                        #[prost($kind $(= $kind_arg)?, $cardinality, $(packed = $packed,)? tag = $tag)]
                        pub $field: $ty,
                    )*
                }
            }

            impl Declared for $name {
                const MESSAGE: SkeletonMessage = SkeletonMessage::$name;
            }
        )*

        /// The messages of the skeleton, as the decode-error locator names them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum SkeletonMessage {
            $(
                #[doc = concat!("[`", stringify!($name), "`].")]
                $name,
            )*
        }

        impl SkeletonMessage {
            /// The message's name in located decode errors (`Graph`, `ValueInfo`, …).
            pub(crate) fn label(self) -> &'static str {
                match self {
                    $(SkeletonMessage::$name => message_label!($($label)? $name),)*
                }
            }

            /// How prost decodes field `number` of this message; `None`: skipped as unknown.
            pub(crate) fn field(self, number: u32) -> Option<FieldKind> {
                match self {
                    $(SkeletonMessage::$name => {
                        $(
                            if number == const { tag_number($tag) } {
                                return Some(field_kind!($kind $cardinality $ty));
                            }
                        )*
                        None
                    })*
                }
            }

            /// Whether prost decodes `bytes` as this message.
            #[cfg(test)]
            fn decodes(self, bytes: &[u8]) -> bool {
                match self {
                    $(SkeletonMessage::$name => <$name as prost::Message>::decode(bytes).is_ok(),)*
                }
            }

            /// Every message, in declaration order.
            #[cfg(test)]
            const ALL: &'static [SkeletonMessage] = &[$(SkeletonMessage::$name),*];
        }
    };
}

/// Emits one message of `skeleton_messages!`: as written (for `#[derive(prost::Message)]`), or,
/// marked `[manual]`, without the `prost` field attributes, for a message whose `prost::Message`
/// is implemented by hand (the attributes still give its schema).
macro_rules! skeleton_struct {
    ([] $(#[$meta:meta])* pub struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        pub struct $name { $($body)* }
    };
    ([manual]
        $(#[$meta:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                #[prost($($attr:tt)*)]
                pub $field:ident: $ty:ty,
            )*
        }
    ) => {
        $(#[$meta])*
        pub struct $name {
            $(
                $(#[doc = $doc])*
                pub $field: $ty,
            )*
        }
    };
}

macro_rules! message_label {
    ($label:ident $name:ident) => {
        stringify!($label)
    };
    ($name:ident) => {
        stringify!($name)
    };
}

/// The wire kind of a field from its `prost` type and cardinality.
macro_rules! field_kind {
    (string $cardinality:ident $ty:ty) => {
        FieldKind::Str
    };
    (bytes $cardinality:ident $ty:ty) => {
        FieldKind::Bytes
    };
    (int32 optional $ty:ty) => {
        FieldKind::Varint
    };
    (int64 optional $ty:ty) => {
        FieldKind::Varint
    };
    (float optional $ty:ty) => {
        FieldKind::Fixed32
    };
    (int32 repeated $ty:ty) => {
        FieldKind::RepeatedVarint
    };
    (int64 repeated $ty:ty) => {
        FieldKind::RepeatedVarint
    };
    (float repeated $ty:ty) => {
        FieldKind::RepeatedFixed32
    };
    (double repeated $ty:ty) => {
        FieldKind::RepeatedFixed64
    };
    (message $cardinality:ident $ty:ty) => {
        FieldKind::Message(<$ty as Embedded>::MESSAGE)
    };
}

/// How the skeleton decodes one field: what prost accepts on the wire for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// A UTF-8 string.
    Str,
    /// Bytes (any content).
    Bytes,
    /// A single varint (`int32`, `int64`).
    Varint,
    /// A single `float`.
    Fixed32,
    /// A repeated varint: unpacked, or packed in a length-delimited run.
    RepeatedVarint,
    /// A repeated `float` (4 bytes), unpacked or packed.
    RepeatedFixed32,
    /// A repeated `double` (8 bytes), unpacked or packed.
    RepeatedFixed64,
    /// An embedded message.
    Message(SkeletonMessage),
}

/// A struct declared by `skeleton_messages!`.
trait Declared {
    const MESSAGE: SkeletonMessage;
}

/// A message-typed field (`Option<M>` or `Vec<M>`): which message it holds.
trait Embedded {
    const MESSAGE: SkeletonMessage;
}

impl<M: Declared> Embedded for Option<M> {
    const MESSAGE: SkeletonMessage = M::MESSAGE;
}

impl<M: Declared> Embedded for Vec<M> {
    const MESSAGE: SkeletonMessage = M::MESSAGE;
}

/// The number in a `prost` `tag = "N"` attribute, evaluated at compile time.
const fn tag_number(tag: &str) -> u32 {
    let digits = tag.as_bytes();
    assert!(!digits.is_empty(), "empty prost tag");
    let mut number = 0u32;
    let mut i = 0;
    while i < digits.len() {
        assert!(digits[i].is_ascii_digit(), "prost tag is not a number");
        number = number * 10 + (digits[i] - b'0') as u32;
        i += 1;
    }
    number
}

skeleton_messages! {
    /// `ModelProto`, fields that analysis reads.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Model {
        /// `ir_version = 1`.
        #[prost(int64, optional, tag = "1")]
        pub ir_version: Option<i64>,
        /// `opset_import = 8`.
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetId>,
        /// `producer_name = 2`.
        #[prost(string, optional, tag = "2")]
        pub producer_name: Option<String>,
        /// `graph = 7`.
        #[prost(message, optional, tag = "7")]
        pub graph: Option<Graph>,
    }

    /// `OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetId {
        /// `domain = 1`; empty means the default ONNX domain.
        #[prost(string, optional, tag = "1")]
        pub domain: Option<String>,
        /// `version = 2`.
        #[prost(int64, optional, tag = "2")]
        pub version: Option<i64>,
    }

    /// `GraphProto`, without payloads.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Graph {
        /// `node = 1`, in the file's (topological) order.
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<Node>,
        /// `name = 2`.
        #[prost(string, optional, tag = "2")]
        pub name: Option<String>,
        /// `initializer = 5`, payload fields skipped.
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorHeader>,
        /// `input = 11`.
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfo>,
        /// `output = 12`.
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfo>,
    }

    /// `NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Node {
        /// `input = 1`; an empty string is an omitted optional input.
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        /// `output = 2`.
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        /// `name = 3`.
        #[prost(string, optional, tag = "3")]
        pub name: Option<String>,
        /// `op_type = 4`.
        #[prost(string, optional, tag = "4")]
        pub op_type: Option<String>,
        /// `domain = 7`.
        #[prost(string, optional, tag = "7")]
        pub domain: Option<String>,
        /// `attribute = 5`.
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<Attribute>,
    }

    /// `AttributeProto`, the value kinds analysis reads (numbers, strings, small constant tensors,
    /// nested graphs).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Attribute {
        /// `name = 1`.
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        /// `type = 20` (`AttributeType`: 1 FLOAT, 2 INT, 3 STRING, 4 TENSOR, 5 GRAPH, 6 FLOATS, 7 INTS,
        /// 8 STRINGS, 9 TENSORS, 10 GRAPHS).
        #[prost(int32, optional, tag = "20")]
        pub r#type: Option<i32>,
        /// `f = 2`.
        #[prost(float, optional, tag = "2")]
        pub f: Option<f32>,
        /// `i = 3`.
        #[prost(int64, optional, tag = "3")]
        pub i: Option<i64>,
        /// `s = 4`.
        #[prost(bytes = "vec", optional, tag = "4")]
        pub s: Option<Vec<u8>>,
        /// `t = 5`: a `Constant` node's value, decoded with its payload (constants are small).
        #[prost(message, optional, tag = "5")]
        pub t: Option<ConstTensor>,
        /// `g = 6`: the body of `If`/`Loop`/`Scan`.
        #[prost(message, optional, tag = "6")]
        pub g: Option<Graph>,
        /// `floats = 7`.
        #[prost(float, repeated, packed = "false", tag = "7")]
        pub floats: Vec<f32>,
        /// `ints = 8`.
        #[prost(int64, repeated, packed = "false", tag = "8")]
        pub ints: Vec<i64>,
        /// `graphs = 11`.
        #[prost(message, repeated, tag = "11")]
        pub graphs: Vec<Graph>,
    }

    /// `TensorProto` without its payload: name, type and shape. Where the data lives
    /// (`external_data = 13`, `data_location = 14`) is the scanner's to read and validate
    /// ([`crate::onnx::storage`]); declared here too, it cost 32 bytes in every initializer's
    /// header that nothing read.
    ///
    /// Its `prost::Message` is written by hand (below) so that the name and dims are the
    /// shared values of [`crate::onnx::shared`]: a loaded model's headers are decoded empty and
    /// then given the loader's own values, 24 bytes a header and no allocation of their own.
    #[derive(Clone, PartialEq, Default, Debug)]
    pub struct TensorHeader [manual] {
        /// `dims = 1`.
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: SharedDims,
        /// `data_type = 2` (`TensorProto.DataType`: 1 FLOAT, 10 FLOAT16, 11 DOUBLE, 16 BFLOAT16, …).
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        /// `name = 8` (empty when absent).
        #[prost(string, optional, tag = "8")]
        pub name: SharedStr,
    }

    /// `TensorProto` with the payload fields, for `Constant` attributes only.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ConstTensor {
        /// `dims = 1`.
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: Vec<i64>,
        /// `data_type = 2`.
        #[prost(int32, optional, tag = "2")]
        pub data_type: Option<i32>,
        /// `float_data = 4`.
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        /// `int32_data = 5`.
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        /// `int64_data = 7`.
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        /// `name = 8`.
        #[prost(string, optional, tag = "8")]
        pub name: Option<String>,
        /// `raw_data = 9`.
        #[prost(bytes = "vec", optional, tag = "9")]
        pub raw_data: Option<Vec<u8>>,
        /// `double_data = 10`.
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
    }

    /// `ValueInfoProto`, name and (tensor) type.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfo {
        /// `name = 1`.
        #[prost(string, optional, tag = "1")]
        pub name: Option<String>,
        /// `type = 2`.
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// `TypeProto`, the tensor variant only (others are skipped).
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        /// `tensor_type = 1`.
        #[prost(message, optional, tag = "1")]
        pub tensor_type: Option<TensorTypeProto>,
    }

    /// `TypeProto.Tensor`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorTypeProto as TensorType {
        /// `elem_type = 1`.
        #[prost(int32, optional, tag = "1")]
        pub elem_type: Option<i32>,
        /// `shape = 2`.
        #[prost(message, optional, tag = "2")]
        pub shape: Option<TensorShapeProto>,
    }

    /// `TensorShapeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto as Shape {
        /// `dim = 1`.
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<Dimension>,
    }

    /// `TensorShapeProto.Dimension`: a fixed size or a symbolic name.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Dimension {
        /// `dim_value = 1`.
        #[prost(int64, optional, tag = "1")]
        pub dim_value: Option<i64>,
        /// `dim_param = 2`.
        #[prost(string, optional, tag = "2")]
        pub dim_param: Option<String>,
    }
}

thread_local! {
    /// Set by [`decode_without_headers`] while it decodes.
    static WITHOUT_HEADERS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `decode` with every [`TensorHeader`] it decodes left empty (default name, dims and
/// type): the fields are still decoded and checked exactly as prost would, then dropped.
///
/// For the loader, which already holds every initializer's name and dims (the scanner read
/// them): it decodes the skeleton this way, then gives the headers its own shared values, so a
/// model of millions of initializers does not hold a second copy of each name and shape.
pub(crate) fn decode_without_headers<T>(decode: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            WITHOUT_HEADERS.with(|w| w.set(self.0));
        }
    }
    let _reset = Reset(WITHOUT_HEADERS.with(|w| w.replace(true)));
    decode()
}

impl prost::Message for TensorHeader {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        use prost::encoding::{WireType, encode_key, encode_varint, int32, int64};
        int64::encode_repeated(1, &self.dims, buf);
        if let Some(t) = &self.data_type {
            int32::encode(2, t, buf);
        }
        if !self.name.is_empty() {
            // `string::encode` takes a `&String`: the bytes are written as it writes them.
            encode_key(8, WireType::LengthDelimited, buf);
            encode_varint(self.name.len() as u64, buf);
            buf.put_slice(self.name.as_bytes());
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        use prost::encoding::{int32, int64, skip_field, string};
        let keep = !WITHOUT_HEADERS.with(std::cell::Cell::get);
        let field = |e: prost::DecodeError, f: &'static str| {
            let mut e = e;
            e.push("TensorHeader", f);
            e
        };
        match tag {
            1 => {
                let mut dims = if keep { self.dims.to_vec() } else { Vec::new() };
                int64::merge_repeated(wire_type, &mut dims, buf, ctx)
                    .map_err(|e| field(e, "dims"))?;
                if keep {
                    self.dims = dims.into();
                }
            }
            2 => {
                let mut t = self.data_type.unwrap_or_default();
                int32::merge(wire_type, &mut t, buf, ctx).map_err(|e| field(e, "data_type"))?;
                if keep {
                    self.data_type = Some(t);
                }
            }
            8 => {
                let mut name = String::new();
                string::merge(wire_type, &mut name, buf, ctx).map_err(|e| field(e, "name"))?;
                if keep {
                    self.name = name.into();
                }
            }
            _ => skip_field(wire_type, tag, buf, ctx)?,
        }
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        use prost::encoding::{encoded_len_varint, int32, int64, key_len};
        int64::encoded_len_repeated(1, &self.dims)
            + self
                .data_type
                .as_ref()
                .map_or(0, |t| int32::encoded_len(2, t))
            + if self.name.is_empty() {
                0
            } else {
                key_len(8) + encoded_len_varint(self.name.len() as u64) + self.name.len()
            }
    }

    fn clear(&mut self) {
        *self = TensorHeader::default();
    }
}

impl Node {
    /// The node's op type, `""` when absent.
    pub fn op(&self) -> &str {
        self.op_type.as_deref().unwrap_or("")
    }

    /// The attribute called `name`, if present.
    pub fn attr(&self, name: &str) -> Option<&Attribute> {
        self.attribute
            .iter()
            .find(|a| a.name.as_deref() == Some(name))
    }

    /// Integer attribute `name`, or `default`.
    pub fn attr_i(&self, name: &str, default: i64) -> i64 {
        self.attr(name).and_then(|a| a.i).unwrap_or(default)
    }

    /// Float attribute `name`, or `default`.
    pub fn attr_f(&self, name: &str, default: f32) -> f32 {
        self.attr(name).and_then(|a| a.f).unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The derived schema against prost's own decoder: for every message, field number and wire
    /// type, a message holding just that field decodes exactly when the schema says prost takes
    /// that wire type (any, for a field the skeleton does not declare).
    #[test]
    fn schema_agrees_with_prost() {
        let mut declared = 0;
        for &message in SkeletonMessage::ALL {
            for number in 1..64u32 {
                let kind = message.field(number);
                declared += usize::from(kind.is_some());
                // Varint 1, eight bytes, an empty length-delimited body, four bytes.
                for (wire, payload) in [(0u8, &[1u8][..]), (1, &[0; 8]), (2, &[0]), (5, &[0; 4])] {
                    let mut bytes = Vec::new();
                    crate::onnx::wire::put_varint(
                        u64::from(number << 3 | u32::from(wire)),
                        &mut bytes,
                    );
                    bytes.extend_from_slice(payload);
                    let expected = matches!(
                        (kind, wire),
                        (None, _)
                            | (
                                Some(FieldKind::Str | FieldKind::Bytes | FieldKind::Message(_)),
                                2
                            )
                            | (Some(FieldKind::Varint), 0)
                            | (Some(FieldKind::Fixed32), 5)
                            | (Some(FieldKind::RepeatedVarint), 0 | 2)
                            | (Some(FieldKind::RepeatedFixed32), 2 | 5)
                            | (Some(FieldKind::RepeatedFixed64), 1 | 2)
                    );
                    assert_eq!(
                        message.decodes(&bytes),
                        expected,
                        "{message:?} field {number} ({kind:?}) with wire type {wire}"
                    );
                }
            }
        }
        assert_eq!(declared, 46);
    }

    /// The hand-written `TensorHeader` encodes as prost's derived code does (`ConstTensor`
    /// declares the same three fields with the same numbers), decodes back, and decodes empty
    /// under [`decode_without_headers`].
    #[test]
    fn tensor_header_encodes_as_prost_and_decodes_back() {
        use prost::Message as _;
        let header = TensorHeader {
            dims: vec![3, 0, 70_000].into(),
            data_type: Some(10),
            name: "layer.0.weight".into(),
        };
        let derived = ConstTensor {
            dims: vec![3, 0, 70_000],
            data_type: Some(10),
            name: Some("layer.0.weight".to_owned()),
            ..ConstTensor::default()
        };
        let bytes = header.encode_to_vec();
        assert_eq!(bytes, derived.encode_to_vec());
        assert_eq!(header.encoded_len(), bytes.len());
        assert_eq!(TensorHeader::decode(&bytes[..]).unwrap(), header);
        let empty = decode_without_headers(|| TensorHeader::decode(&bytes[..]).unwrap());
        assert_eq!(empty, TensorHeader::default());
        assert_eq!(TensorHeader::default().encode_to_vec(), Vec::<u8>::new());
    }

    #[test]
    fn labels_name_messages_for_errors() {
        assert_eq!(SkeletonMessage::Graph.label(), "Graph");
        assert_eq!(SkeletonMessage::TensorTypeProto.label(), "TensorType");
        assert_eq!(
            SkeletonMessage::Attribute.field(6),
            Some(FieldKind::Message(SkeletonMessage::Graph))
        );
    }
}
