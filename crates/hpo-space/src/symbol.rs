//! [`Symbol`]: an interned string, for the texts an experiment makes again and again.

use std::borrow::Borrow;
use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Arc, LazyLock, Mutex};

use serde::de::Visitor;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A text an experiment repeats in every trial: a hyperparameter's name, a categorical
/// value, a metric's name. The first 4,096 distinct texts of the process are kept for its
/// life, and a symbol made again from the same text is the same pointer, copied without
/// counting references across threads; texts past those are shared by reference count.
#[derive(Clone)]
pub struct Symbol(Repr);

/// Thin pointers, so that configs and reports stay small enough to move without a copy loop.
#[derive(Clone)]
enum Repr {
    Interned(&'static String),
    Shared(Arc<String>),
}

/// How many distinct texts a process keeps for its life (a script that reports a new metric
/// name at every step must not fill the memory).
const MAX_INTERNED: usize = 4096;

static INTERNED: LazyLock<Mutex<HashMap<&'static str, &'static String>>> = LazyLock::new(Mutex::default);

/// How many interned texts each thread keeps at hand, looked up without the lock.
const RECENT: usize = 32;

thread_local! {
    static RECENT_SYMBOLS: RefCell<Vec<&'static String>> = const { RefCell::new(Vec::new()) };
}

impl Symbol {
    /// The symbol of `text`: one of the symbols this thread made lately, or else looked up
    /// (and kept) under a lock.
    pub fn new(text: &str) -> Symbol {
        let recent = RECENT_SYMBOLS.with_borrow(|recent| recent.iter().find(|known| known.as_str() == text).copied());
        if let Some(known) = recent {
            return Symbol(Repr::Interned(known));
        }
        let shared = || Symbol(Repr::Shared(Arc::new(text.to_owned())));
        let Ok(mut interned) = INTERNED.lock() else { return shared() };
        let known = match interned.get(text) {
            Some(&known) => known,
            None if interned.len() >= MAX_INTERNED => return shared(),
            None => {
                let leaked: &'static String = Box::leak(Box::new(text.to_owned()));
                interned.insert(leaked.as_str(), leaked);
                leaked
            }
        };
        RECENT_SYMBOLS.with_borrow_mut(|recent| {
            if recent.len() == RECENT {
                recent.remove(0);
            }
            recent.push(known);
        });
        Symbol(Repr::Interned(known))
    }

    /// The text.
    #[inline]
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Interned(text) => text,
            Repr::Shared(text) => text,
        }
    }

    /// Whether the text is `text`: short texts are compared inline, without a call to `memcmp`.
    #[inline]
    pub fn is(&self, text: &str) -> bool {
        let own = self.as_str();
        own.len() == text.len() && own.bytes().zip(text.bytes()).all(|(a, b)| a == b)
    }
}

impl Deref for Symbol {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Symbol {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for Symbol {
    #[inline]
    fn eq(&self, other: &Symbol) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Symbol {}

impl PartialOrd for Symbol {
    #[inline]
    fn partial_cmp(&self, other: &Symbol) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// In the order of the texts, as `String`s are ordered.
impl Ord for Symbol {
    #[inline]
    fn cmp(&self, other: &Symbol) -> Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl Hash for Symbol {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Symbol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for Symbol {
    fn from(text: &str) -> Symbol {
        Symbol::new(text)
    }
}

impl From<String> for Symbol {
    fn from(text: String) -> Symbol {
        Symbol::new(&text)
    }
}

impl From<&String> for Symbol {
    fn from(text: &String) -> Symbol {
        Symbol::new(text)
    }
}

impl From<&Symbol> for Symbol {
    fn from(symbol: &Symbol) -> Symbol {
        symbol.clone()
    }
}

impl Serialize for Symbol {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Symbol {
    /// Made from the text as read, without an owned copy when the text is known.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Symbol, D::Error> {
        struct SymbolVisitor;
        impl Visitor<'_> for SymbolVisitor {
            type Value = Symbol;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Symbol, E> {
                Ok(Symbol::new(text))
            }
        }
        deserializer.deserialize_str(SymbolVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::{MAX_INTERNED, Repr, Symbol};

    #[test]
    fn texts_are_kept_once_up_to_a_bound_then_shared() {
        assert_eq!(std::mem::size_of::<Symbol>(), 16);
        let (a, b) = (Symbol::new("val_loss"), Symbol::from(String::from("val_loss")));
        assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "the same text is the same symbol");
        for i in 0..MAX_INTERNED {
            Symbol::new(&format!("step_{i}"));
        }
        let past = Symbol::new("a text past the bound");
        assert!(matches!(past.0, Repr::Shared(_)));
        assert_eq!(past.as_str(), "a text past the bound");
        assert_eq!(past.clone(), past);
        assert_eq!(Symbol::new("val_loss").as_str().as_ptr(), a.as_str().as_ptr());
    }

    #[test]
    fn orders_and_compares_as_its_text() {
        let (a, b) = (Symbol::new("lr"), Symbol::new("momentum"));
        assert!(a < b && a.is("lr") && !a.is("l") && !a.is("lR"));
        assert_eq!(serde_json::to_string(&b).unwrap(), r#""momentum""#);
        assert_eq!(serde_json::from_str::<Symbol>(r#""lr""#).unwrap(), a);
        assert_eq!(format!("{a} {a:?}"), r#"lr "lr""#);
    }
}
