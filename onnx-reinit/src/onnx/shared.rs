//! [`SharedStr`] and [`SharedDims`]: a tensor's name, graph path and dims, held once.
//!
//! The loader's entries, the analysis and the report's untouched rows all name every
//! initializer with its graph and shape. Held as `String`s and `Vec`s each stage kept its own
//! copy (two allocations a tensor per stage, ~64 bytes for a tiny tensor); these reference-counted
//! values are cloned instead, so a model of millions of initializers holds each name and shape
//! once. Both read like the types they replace (`Deref` to `str` / `[i64]`, comparisons with
//! strings, vectors and arrays, `Debug` and serde as the plain value), so the JSON documents and
//! every printed form are unchanged.
//!
//! Each is one pointer (8 bytes) to a block holding the count, the length and the values
//! (`triomphe::ThinArc`), not the 16 of an `Arc<str>`: every stage holds a name, a graph path
//! and a shape per tensor, so the pointer's size counts once per stage and tensor. Empty values
//! allocate nothing.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use triomphe::ThinArc;

/// A shared, immutable slice behind one pointer; `None` is the empty slice.
#[derive(Clone, Default)]
struct Thin<T>(Option<ThinArc<(), T>>);

impl<T: Copy> Thin<T> {
    fn new(items: &[T]) -> Thin<T> {
        Thin((!items.is_empty()).then(|| ThinArc::from_header_and_slice((), items)))
    }

    fn slice(&self) -> &[T] {
        self.0.as_ref().map_or(&[], |a| &a.slice)
    }

    /// Whether `self` and `other` share one allocation (or are both empty): then they are
    /// equal without comparing their contents (the stages compare shared names a lot).
    fn shares(&self, other: &Thin<T>) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => std::ptr::eq(a.slice.as_ptr(), b.slice.as_ptr()),
            (None, None) => true,
            _ => false,
        }
    }
}

/// An immutable, cheaply cloned string: clones share one allocation.
#[derive(Clone, Default)]
pub struct SharedStr(Thin<u8>);

impl SharedStr {
    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: the bytes were copied from a `str` (every constructor takes one).
        unsafe { std::str::from_utf8_unchecked(self.0.slice()) }
    }
}

impl PartialEq for SharedStr {
    fn eq(&self, other: &SharedStr) -> bool {
        self.0.shares(&other.0) || self.as_str() == other.as_str()
    }
}

impl Eq for SharedStr {}

impl Hash for SharedStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for SharedStr {
    fn partial_cmp(&self, other: &SharedStr) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SharedStr {
    fn cmp(&self, other: &SharedStr) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Deref for SharedStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for SharedStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for SharedStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for SharedStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<String> for SharedStr {
    fn from(s: String) -> SharedStr {
        SharedStr(Thin::new(s.as_bytes()))
    }
}

impl From<&str> for SharedStr {
    fn from(s: &str) -> SharedStr {
        SharedStr(Thin::new(s.as_bytes()))
    }
}

impl From<&String> for SharedStr {
    fn from(s: &String) -> SharedStr {
        SharedStr(Thin::new(s.as_bytes()))
    }
}

impl From<SharedStr> for String {
    fn from(s: SharedStr) -> String {
        s.as_str().to_owned()
    }
}

impl PartialEq<str> for SharedStr {
    fn eq(&self, other: &str) -> bool {
        *self.as_str() == *other
    }
}

impl PartialEq<&str> for SharedStr {
    fn eq(&self, other: &&str) -> bool {
        *self.as_str() == **other
    }
}

impl PartialEq<String> for SharedStr {
    fn eq(&self, other: &String) -> bool {
        *self.as_str() == **other
    }
}

impl PartialEq<SharedStr> for String {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.as_str()
    }
}

impl PartialEq<SharedStr> for str {
    fn eq(&self, other: &SharedStr) -> bool {
        *self == *other.as_str()
    }
}

impl PartialEq<SharedStr> for &str {
    fn eq(&self, other: &SharedStr) -> bool {
        **self == *other.as_str()
    }
}

impl Serialize for SharedStr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SharedStr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedStr, D::Error> {
        String::deserialize(d).map(SharedStr::from)
    }
}

/// A tensor's dims, immutable and cheaply cloned: clones share one allocation.
#[derive(Clone, Default)]
pub struct SharedDims(Thin<i64>);

impl SharedDims {
    /// The dims.
    pub fn as_slice(&self) -> &[i64] {
        self.0.slice()
    }
}

impl PartialEq for SharedDims {
    fn eq(&self, other: &SharedDims) -> bool {
        self.0.shares(&other.0) || self.as_slice() == other.as_slice()
    }
}

impl Eq for SharedDims {}

impl Hash for SharedDims {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl Deref for SharedDims {
    type Target = [i64];
    fn deref(&self) -> &[i64] {
        self.as_slice()
    }
}

impl AsRef<[i64]> for SharedDims {
    fn as_ref(&self) -> &[i64] {
        self.as_slice()
    }
}

// Hashes as the slice, so a set of them is looked up by slice.
impl Borrow<[i64]> for SharedDims {
    fn borrow(&self) -> &[i64] {
        self.as_slice()
    }
}

impl<'a> IntoIterator for &'a SharedDims {
    type Item = &'a i64;
    type IntoIter = std::slice::Iter<'a, i64>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

impl fmt::Debug for SharedDims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_slice(), f)
    }
}

impl From<Vec<i64>> for SharedDims {
    fn from(v: Vec<i64>) -> SharedDims {
        SharedDims(Thin::new(&v))
    }
}

impl From<&[i64]> for SharedDims {
    fn from(v: &[i64]) -> SharedDims {
        SharedDims(Thin::new(v))
    }
}

impl<const N: usize> From<[i64; N]> for SharedDims {
    fn from(v: [i64; N]) -> SharedDims {
        SharedDims(Thin::new(&v))
    }
}

impl PartialEq<[i64]> for SharedDims {
    fn eq(&self, other: &[i64]) -> bool {
        *self.as_slice() == *other
    }
}

impl PartialEq<&[i64]> for SharedDims {
    fn eq(&self, other: &&[i64]) -> bool {
        *self.as_slice() == **other
    }
}

impl PartialEq<Vec<i64>> for SharedDims {
    fn eq(&self, other: &Vec<i64>) -> bool {
        *self.as_slice() == **other
    }
}

impl PartialEq<SharedDims> for Vec<i64> {
    fn eq(&self, other: &SharedDims) -> bool {
        **self == *other.as_slice()
    }
}

impl<const N: usize> PartialEq<[i64; N]> for SharedDims {
    fn eq(&self, other: &[i64; N]) -> bool {
        *self.as_slice() == *other
    }
}

impl Serialize for SharedDims {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.as_slice().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedDims {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedDims, D::Error> {
        Vec::<i64>::deserialize(d).map(SharedDims::from)
    }
}

/// Gives equal values one shared allocation: [`Self::share`] returns the value already made
/// for an equal key, or makes one. Bounded at [`Interner::MAX`] distinct values, past which each
/// value gets its own allocation, as without it (a model of millions of distinct shapes or
/// reasons does not grow a table of them too).
#[derive(Debug)]
pub(crate) struct Interner<T>(std::collections::HashSet<T>);

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Interner(std::collections::HashSet::new())
    }
}

impl<T: Clone + Eq + Hash> Interner<T> {
    /// Distinct values shared (real models have a few hundred shapes and reasons).
    pub(crate) const MAX: usize = 4096;

    /// The shared value equal to `key`.
    pub(crate) fn share<Q>(&mut self, key: &Q) -> T
    where
        Q: ?Sized + Eq + Hash,
        T: Borrow<Q> + for<'q> From<&'q Q>,
    {
        if let Some(v) = self.0.get(key) {
            return v.clone();
        }
        let v = T::from(key);
        if self.0.len() < Self::MAX {
            self.0.insert(v.clone());
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Equal values share one allocation, up to the bound; past it values are equal but
    /// their own.
    #[test]
    fn the_interner_shares_equal_values_up_to_its_bound() {
        let mut shapes = Interner::<SharedDims>::default();
        let (a, b) = (shapes.share(&[3i64, 4][..]), shapes.share(&[3i64, 4][..]));
        assert!(a.0.shares(&b.0));
        for k in 1..Interner::<SharedDims>::MAX as i64 {
            shapes.share(&[k][..]);
        }
        let late = [-1i64];
        let (c, d) = (shapes.share(&late[..]), shapes.share(&late[..]));
        assert_eq!(c, d);
        assert!(!c.0.shares(&d.0));
        assert!(shapes.share(&[3i64, 4][..]).0.shares(&a.0));
    }

    /// One pointer each: every stage holds a name, a graph path and a shape per tensor.
    #[test]
    fn shared_values_are_one_pointer() {
        assert_eq!(std::mem::size_of::<SharedStr>(), 8);
        assert_eq!(std::mem::size_of::<SharedDims>(), 8);
        assert_eq!(SharedStr::default(), "");
        assert_eq!(SharedStr::from(""), SharedStr::default());
        assert_eq!(SharedDims::default(), [0i64; 0]);
        assert_eq!(SharedDims::from(Vec::new()).as_slice(), &[] as &[i64]);
        let sorted: std::collections::BTreeSet<SharedStr> =
            ["b", "a", "c"].into_iter().map(SharedStr::from).collect();
        assert_eq!(
            sorted.iter().map(SharedStr::as_str).collect::<String>(),
            "abc"
        );
    }

    #[test]
    fn clones_share_one_allocation_and_read_as_the_plain_values() {
        let name = SharedStr::from("fc.weight".to_owned());
        let copy = name.clone();
        assert!(name.0.shares(&copy.0));
        assert_eq!(name, "fc.weight");
        assert_eq!(format!("{name} {name:?}"), "fc.weight \"fc.weight\"");
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"fc.weight\"");
        let back: SharedStr = serde_json::from_str("\"fc.weight\"").unwrap();
        assert_eq!(back, name);

        let dims = SharedDims::from(vec![3, 4]);
        let copy = dims.clone();
        assert!(dims.0.shares(&copy.0));
        assert_eq!(dims, [3, 4]);
        assert_eq!(dims, vec![3, 4]);
        assert_eq!(format!("{dims:?}"), "[3, 4]");
        assert_eq!(serde_json::to_string(&dims).unwrap(), "[3,4]");
        let back: SharedDims = serde_json::from_str("[3,4]").unwrap();
        assert_eq!(back, dims);
    }
}
