//! Metadata values: `ValueRef` borrows from the file (arrays stay unparsed until read),
//! `Value` is owned (for the writer).

use std::fmt;

use crate::reader::Cursor;
use crate::{GgufError, Result};

/// The 13 GGUF metadata value types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    pub fn from_id(id: u32) -> Option<ValueType> {
        use ValueType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "u8",
            I8 => "i8",
            U16 => "u16",
            I16 => "i16",
            U32 => "u32",
            I32 => "i32",
            F32 => "f32",
            Bool => "bool",
            String => "string",
            Array => "array",
            U64 => "u64",
            I64 => "i64",
            F64 => "f64",
        }
    }

    /// Encoded size of a scalar of this type; `None` for strings and arrays.
    pub fn scalar_size(self) -> Option<u64> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }
}

/// A metadata value read in place from the file.
#[derive(Clone, Copy)]
pub enum ValueRef<'a> {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    /// Raw bytes of the string (GGUF strings should be UTF-8; see [`ValueRef::as_str`]).
    String(&'a [u8]),
    U64(u64),
    I64(i64),
    F64(f64),
    Array(ArrayRef<'a>),
}

/// An array read in place: elements are decoded when iterated.
#[derive(Clone, Copy)]
pub struct ArrayRef<'a> {
    pub(crate) elem_type: ValueType,
    pub(crate) len: u64,
    /// The encoded elements (exactly their bytes), starting at file offset `offset`.
    pub(crate) bytes: &'a [u8],
    pub(crate) offset: u64,
}

impl<'a> ValueRef<'a> {
    pub fn value_type(&self) -> ValueType {
        match self {
            ValueRef::U8(_) => ValueType::U8,
            ValueRef::I8(_) => ValueType::I8,
            ValueRef::U16(_) => ValueType::U16,
            ValueRef::I16(_) => ValueType::I16,
            ValueRef::U32(_) => ValueType::U32,
            ValueRef::I32(_) => ValueType::I32,
            ValueRef::F32(_) => ValueType::F32,
            ValueRef::Bool(_) => ValueType::Bool,
            ValueRef::String(_) => ValueType::String,
            ValueRef::U64(_) => ValueType::U64,
            ValueRef::I64(_) => ValueType::I64,
            ValueRef::F64(_) => ValueType::F64,
            ValueRef::Array(_) => ValueType::Array,
        }
    }

    /// "u32", "string", "array[string]", "array[array[i32]]"...
    pub fn type_name(&self) -> String {
        match self {
            ValueRef::Array(a) => a.type_name(),
            v => v.value_type().name().to_string(),
        }
    }

    /// Integer value, if this is any integer type.
    pub fn as_i128(&self) -> Option<i128> {
        Some(match *self {
            ValueRef::U8(v) => v.into(),
            ValueRef::I8(v) => v.into(),
            ValueRef::U16(v) => v.into(),
            ValueRef::I16(v) => v.into(),
            ValueRef::U32(v) => v.into(),
            ValueRef::I32(v) => v.into(),
            ValueRef::U64(v) => v.into(),
            ValueRef::I64(v) => v.into(),
            _ => return None,
        })
    }

    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            ValueRef::F32(v) => Some(v.into()),
            ValueRef::F64(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::String(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<ArrayRef<'a>> {
        match *self {
            ValueRef::Array(a) => Some(a),
            _ => None,
        }
    }

    /// An owned copy (arrays decoded in full).
    pub fn to_owned_value(&self) -> Value {
        match *self {
            ValueRef::U8(v) => Value::U8(v),
            ValueRef::I8(v) => Value::I8(v),
            ValueRef::U16(v) => Value::U16(v),
            ValueRef::I16(v) => Value::I16(v),
            ValueRef::U32(v) => Value::U32(v),
            ValueRef::I32(v) => Value::I32(v),
            ValueRef::F32(v) => Value::F32(v),
            ValueRef::Bool(v) => Value::Bool(v),
            ValueRef::String(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
            ValueRef::U64(v) => Value::U64(v),
            ValueRef::I64(v) => Value::I64(v),
            ValueRef::F64(v) => Value::F64(v),
            ValueRef::Array(a) => {
                Value::Array(a.elem_type, a.iter().map(|v| v.to_owned_value()).collect())
            }
        }
    }

    /// Raw-preserving owned copy: strings keep their exact bytes (for byte-identical rewrites).
    pub fn to_owned_raw(&self) -> Value {
        match *self {
            ValueRef::String(b) => Value::Bytes(b.to_vec()),
            ValueRef::Array(a) => {
                Value::Array(a.elem_type, a.iter().map(|v| v.to_owned_raw()).collect())
            }
            _ => self.to_owned_value(),
        }
    }
}

impl<'a> ArrayRef<'a> {
    pub fn len(&self) -> u64 {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    pub fn elem_type(&self) -> ValueType {
        self.elem_type
    }

    pub fn type_name(&self) -> String {
        if self.elem_type == ValueType::Array {
            // Nested arrays may differ per element; name the first one's type.
            match self.iter().next() {
                Some(first) => format!("array[{}]", first.type_name()),
                None => "array[array]".to_string(),
            }
        } else {
            format!("array[{}]", self.elem_type.name())
        }
    }

    /// Decode elements in order. The array was fully validated when the file was opened,
    /// so decoding cannot fail.
    pub fn iter(&self) -> impl Iterator<Item = ValueRef<'a>> + 'a {
        let mut cur = Cursor::new(self.bytes, self.offset);
        let elem_type = self.elem_type;
        (0..self.len).map(move |_| {
            cur.read_value(elem_type, 0)
                .expect("array elements were validated when the file was parsed")
        })
    }

    /// Elements as raw string bytes, when this is an array of strings.
    pub fn strings(&self) -> Option<impl Iterator<Item = &'a [u8]> + 'a> {
        if self.elem_type != ValueType::String {
            return None;
        }
        Some(self.iter().map(|v| match v {
            ValueRef::String(b) => b,
            _ => unreachable!("elem_type is String"),
        }))
    }

    /// Collect a numeric array into `Vec<T>` with lossless conversion (e.g. i32 token types).
    pub fn to_vec<T: FromValue<'a>>(&self) -> Option<Vec<T>> {
        self.iter().map(|v| T::from_value(&v)).collect()
    }
}

/// Conversion from a metadata value: integers convert when the value fits, floats from f32/f64.
pub trait FromValue<'a>: Sized {
    const EXPECTED: &'static str;
    fn from_value(v: &ValueRef<'a>) -> Option<Self>;
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl<'a> FromValue<'a> for $t {
            const EXPECTED: &'static str = stringify!($t);
            fn from_value(v: &ValueRef<'a>) -> Option<Self> {
                v.as_i128().and_then(|x| <$t>::try_from(x).ok())
            }
        }
    )*};
}
int_from_value!(u8, i8, u16, i16, u32, i32, u64, i64, usize);

impl<'a> FromValue<'a> for f32 {
    const EXPECTED: &'static str = "f32";
    fn from_value(v: &ValueRef<'a>) -> Option<Self> {
        v.as_f64().map(|x| x as f32)
    }
}
impl<'a> FromValue<'a> for f64 {
    const EXPECTED: &'static str = "f64";
    fn from_value(v: &ValueRef<'a>) -> Option<Self> {
        v.as_f64()
    }
}
impl<'a> FromValue<'a> for bool {
    const EXPECTED: &'static str = "bool";
    fn from_value(v: &ValueRef<'a>) -> Option<Self> {
        match *v {
            ValueRef::Bool(b) => Some(b),
            _ => None,
        }
    }
}
impl<'a> FromValue<'a> for &'a str {
    const EXPECTED: &'static str = "string";
    fn from_value(v: &ValueRef<'a>) -> Option<Self> {
        v.as_str()
    }
}
impl<'a> FromValue<'a> for String {
    const EXPECTED: &'static str = "string";
    fn from_value(v: &ValueRef<'a>) -> Option<Self> {
        v.as_str().map(str::to_owned)
    }
}
impl<'a> FromValue<'a> for ArrayRef<'a> {
    const EXPECTED: &'static str = "array";
    fn from_value(v: &ValueRef<'a>) -> Option<Self> {
        v.as_array()
    }
}

impl fmt::Debug for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Scalars as themselves, strings quoted (JSON-escaped), arrays summarised.
impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ValueRef::U8(v) => write!(f, "{v}"),
            ValueRef::I8(v) => write!(f, "{v}"),
            ValueRef::U16(v) => write!(f, "{v}"),
            ValueRef::I16(v) => write!(f, "{v}"),
            ValueRef::U32(v) => write!(f, "{v}"),
            ValueRef::I32(v) => write!(f, "{v}"),
            ValueRef::U64(v) => write!(f, "{v}"),
            ValueRef::I64(v) => write!(f, "{v}"),
            ValueRef::F32(v) => write!(f, "{v}"),
            ValueRef::F64(v) => write!(f, "{v}"),
            ValueRef::Bool(v) => write!(f, "{v}"),
            ValueRef::String(b) => write!(f, "{:?}", String::from_utf8_lossy(b)),
            ValueRef::Array(a) => write!(f, "[{} × {}]", a.len, a.type_name()),
        }
    }
}

/// An owned metadata value, for the writer.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    /// A string given as raw bytes (written as a GGUF string).
    Bytes(Vec<u8>),
    U64(u64),
    I64(i64),
    F64(f64),
    /// Element type and elements; every element must have that type.
    Array(ValueType, Vec<Value>),
}

impl Value {
    pub fn value_type(&self) -> ValueType {
        match self {
            Value::U8(_) => ValueType::U8,
            Value::I8(_) => ValueType::I8,
            Value::U16(_) => ValueType::U16,
            Value::I16(_) => ValueType::I16,
            Value::U32(_) => ValueType::U32,
            Value::I32(_) => ValueType::I32,
            Value::F32(_) => ValueType::F32,
            Value::Bool(_) => ValueType::Bool,
            Value::String(_) | Value::Bytes(_) => ValueType::String,
            Value::U64(_) => ValueType::U64,
            Value::I64(_) => ValueType::I64,
            Value::F64(_) => ValueType::F64,
            Value::Array(..) => ValueType::Array,
        }
    }

    /// Array of strings.
    pub fn strings<S: Into<String>>(items: impl IntoIterator<Item = S>) -> Value {
        Value::Array(
            ValueType::String,
            items.into_iter().map(|s| Value::String(s.into())).collect(),
        )
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<()> {
        match self {
            Value::U8(v) => out.push(*v),
            Value::I8(v) => out.push(*v as u8),
            Value::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Bool(v) => out.push(*v as u8),
            Value::String(s) => encode_str(s.as_bytes(), out),
            Value::Bytes(b) => encode_str(b, out),
            Value::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Value::Array(t, items) => {
                out.extend_from_slice(&(*t as u32).to_le_bytes());
                out.extend_from_slice(&(items.len() as u64).to_le_bytes());
                for it in items {
                    if it.value_type() != *t {
                        return Err(GgufError::Writer(format!(
                            "array of {} holds a {}",
                            t.name(),
                            it.value_type().name()
                        )));
                    }
                    it.encode(out)?;
                }
            }
        }
        Ok(())
    }
}

pub(crate) fn encode_str(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

macro_rules! value_from {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for Value { fn from(x: $t) -> Value { Value::$v(x) } }
    )*};
}
value_from!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, f32 => F32,
    bool => Bool, String => String, u64 => U64, i64 => I64, f64 => F64);
impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}
