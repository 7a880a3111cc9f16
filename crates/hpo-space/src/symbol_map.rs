//! [`SymbolMap`]: values by [`Symbol`], for the small maps made and dropped on the tuner's hot
//! path (a config, a report's metrics).

use std::fmt;
use std::marker::PhantomData;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use smallvec::SmallVec;

use crate::Symbol;

/// Values by name in name order, as a `BTreeMap<String, V>` keeps them (and serialized as
/// such a map); the first `N` held inline, so that a map of up to `N` interned names
/// allocates nothing.
#[derive(Clone, PartialEq)]
pub struct SymbolMap<V, const N: usize> {
    sorted: SmallVec<[(Symbol, V); N]>,
}

/// Maps up to this many entries are searched by a scan, larger ones by bisection.
const SCANNED: usize = 8;

impl<V, const N: usize> SymbolMap<V, N> {
    /// An empty map.
    pub fn new() -> Self {
        SymbolMap { sorted: SmallVec::new() }
    }

    /// Where `name` is, or where it would go.
    #[inline]
    fn position(&self, name: &str) -> Result<usize, usize> {
        if self.sorted.len() <= SCANNED {
            // A few short names: a scan that compares them inline beats a search, and a
            // call to `memcmp` per name.
            return match self.sorted.iter().position(|(n, _)| n.is(name)) {
                Some(i) => Ok(i),
                None => Err(self.sorted.partition_point(|(n, _)| n.as_str() < name)),
            };
        }
        self.sorted.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// The value of `name`, if any.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&V> {
        self.position(name).ok().map(|i| &self.sorted[i].1)
    }

    /// Sets `name` to `value`; the value it had, if any.
    pub fn insert(&mut self, name: Symbol, value: V) -> Option<V> {
        if self.sorted.last().is_none_or(|(last, _)| last.bytes().lt(name.bytes())) {
            self.sorted.push((name, value)); // names mostly come in order
            return None;
        }
        match self.position(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.sorted[i].1, value)),
            Err(i) => {
                self.sorted.insert(i, (name, value));
                None
            }
        }
    }

    /// Appends `name`, which the caller knows comes after every name in the map (a space's
    /// parameters drawn in name order): no comparison.
    pub(crate) fn push_in_order(&mut self, name: Symbol, value: V) {
        debug_assert!(self.sorted.last().is_none_or(|(last, _)| *last < name), "{name} out of order");
        self.sorted.push((name, value));
    }

    /// Removes `name`, returning its value if it had one.
    pub fn remove(&mut self, name: &str) -> Option<V> {
        self.position(name).ok().map(|i| self.sorted.remove(i).1)
    }

    /// Every (name, value), in name order.
    #[inline]
    pub fn entries(&self) -> &[(Symbol, V)] {
        &self.sorted
    }

    /// How many entries there are.
    #[inline]
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// Whether the entries spilled from their inline space onto the heap.
    pub fn spilled(&self) -> bool {
        self.sorted.spilled()
    }
}

impl<V, const N: usize> Default for SymbolMap<V, N> {
    fn default() -> Self {
        SymbolMap::new()
    }
}

impl<V: fmt::Debug, const N: usize> fmt::Debug for SymbolMap<V, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.sorted.iter().map(|(name, value)| (name.as_str(), value))).finish()
    }
}

impl<V: Serialize, const N: usize> Serialize for SymbolMap<V, N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (name, value) in &self.sorted {
            map.serialize_entry(name.as_str(), value)?;
        }
        map.end()
    }
}

impl<'de, V: Deserialize<'de>, const N: usize> Deserialize<'de> for SymbolMap<V, N> {
    /// The last of a repeated name wins, as a map reads it.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MapVisitor<V, const N: usize>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>, const N: usize> Visitor<'de> for MapVisitor<V, N> {
            type Value = SymbolMap<V, N>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map from names to values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<SymbolMap<V, N>, A::Error> {
                let mut map = SymbolMap::new();
                while let Some((name, value)) = access.next_entry::<Symbol, V>()? {
                    map.insert(name, value);
                }
                Ok(map)
            }
        }
        deserializer.deserialize_map(MapVisitor(PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::SymbolMap;
    use crate::Symbol;

    #[test]
    fn reads_like_a_sorted_map_searched_by_scan_or_bisection() {
        for n in [3, 20] {
            let mut map = SymbolMap::<usize, 4>::new();
            for i in (0..n).rev() {
                assert_eq!(map.insert(Symbol::new(&format!("p{i:02}")), i), None);
            }
            let names: Vec<&str> = map.entries().iter().map(|(k, _)| k.as_str()).collect();
            assert_eq!(names, (0..n).map(|i| format!("p{i:02}")).collect::<Vec<_>>());
            assert!((0..n).all(|i| map.get(&format!("p{i:02}")) == Some(&i)));
            assert_eq!(map.get("p"), None);
            assert_eq!(map.insert(Symbol::new("p01"), 7), Some(1));
            assert_eq!(map.remove("p01"), Some(7));
            assert_eq!((map.len(), map.spilled()), (n - 1, n > 4));
            let json = serde_json::to_string(&map).unwrap();
            assert_eq!(serde_json::from_str::<SymbolMap<usize, 4>>(&json).unwrap(), map);
        }
        let repeated: SymbolMap<i32, 2> = serde_json::from_str(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(format!("{repeated:?}"), r#"{"a": 2}"#);
    }
}
