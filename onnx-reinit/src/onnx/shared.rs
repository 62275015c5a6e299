//! [`SharedStr`] and [`SharedDims`]: a tensor's name, graph path and dims, held once.
//!
//! The loader's entries, the analysis and the report's untouched rows all name every
//! initializer with its graph and shape. Held as `String`s and `Vec`s each stage kept its own
//! copy (two allocations a tensor per stage, ~64 bytes for a tiny tensor); these reference-counted
//! values are cloned instead, so a model of millions of initializers holds each name and shape
//! once. Both read like the types they replace (`Deref` to `str` / `[i64]`, comparisons with
//! strings, vectors and arrays, `Debug` and serde as the plain value), so the JSON documents and
//! every printed form are unchanged.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An immutable, cheaply cloned string (an `Arc<str>`): clones share one allocation.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SharedStr(Arc<str>);

impl SharedStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.0, f)
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr(s.into())
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr(s.into())
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> SharedStr {
        SharedStr(s.as_str().into())
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> String {
        s.0.as_ref().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.0
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.0
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedStr, D::Error> {
        String::deserialize(d).map(SharedStr::from)
    }
}

/// A tensor's dims, immutable and cheaply cloned (an `Arc<[i64]>`): clones share one
/// allocation.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct SharedDims(Arc<[i64]>);

impl SharedDims {
    /// The dims.
    pub fn as_slice(&self) -> &[i64] {
        &self.0
    }
}

impl Deref for SharedDims {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        &self.0
    }
}

impl AsRef<[i64]> for SharedDims {
    fn as_ref(&self) -> &[i64] {
        &self.0
    }
}

// Hashes as the slice (`Arc<[i64]>` hashes its contents), so a set of them is looked up by slice.
impl Borrow<[i64]> for SharedDims {
    fn borrow(&self) -> &[i64] {
        &self.0
    }
}

impl<'a> IntoIterator for &'a SharedDims {
    type Item = &'a i64;
    type IntoIter = std::slice::Iter<'a, i64>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Debug for SharedDims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<Vec<i64>> for SharedDims {
    fn from(v: Vec<i64>) -> SharedDims {
        SharedDims(v.into())
    }
}

impl From<&[i64]> for SharedDims {
    fn from(v: &[i64]) -> SharedDims {
        SharedDims(v.into())
    }
}

impl<const N: usize> From<[i64; N]> for SharedDims {
    fn from(v: [i64; N]) -> SharedDims {
        SharedDims(v.as_slice().into())
    }
}

impl PartialEq<[i64]> for SharedDims {
    fn eq(&self, other: &[i64]) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&[i64]> for SharedDims {
    fn eq(&self, other: &&[i64]) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Vec<i64>> for SharedDims {
    fn eq(&self, other: &Vec<i64>) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<SharedDims> for Vec<i64> {
    fn eq(&self, other: &SharedDims) -> bool {
        **self == *other.0
    }
}

impl<const N: usize> PartialEq<[i64; N]> for SharedDims {
    fn eq(&self, other: &[i64; N]) -> bool {
        *self.0 == *other
    }
}

impl Serialize for SharedDims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedDims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedDims, D::Error> {
        Vec::<i64>::deserialize(d).map(SharedDims::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_allocation_and_read_as_the_plain_values() {
        let name = SharedStr::from("fc.weight".to_owned());
        let copy = name.clone();
        assert!(std::ptr::eq(name.as_str(), copy.as_str()));
        assert_eq!(name, "fc.weight");
        assert_eq!(format!("{name} {name:?}"), "fc.weight \"fc.weight\"");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"fc.weight\"");
        let back: SharedStr = serde_json::from_str("\"fc.weight\"").unwrap();
        assert_eq!(back, name);

        let dims = SharedDims::from(vec![3, 4]);
        let copy = dims.clone();
        assert!(std::ptr::eq(dims.as_slice(), copy.as_slice()));
        assert_eq!(dims, [3, 4]);
        assert_eq!(dims, vec![3, 4]);
        assert_eq!(format!("{dims:?}"), "[3, 4]");
        assert_eq!(serde_json::to_string(&dims).unwrap(), "[3,4]");
        let back: SharedDims = serde_json::from_str("[3,4]").unwrap();
        assert_eq!(back, dims);
    }
}
