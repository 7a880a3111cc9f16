#![warn(missing_docs)]
//! Search spaces for hyperparameter optimization.
//!
//! A [`Space`] maps hyperparameter names to [`Domain`]s. It samples configs from a seeded
//! RNG, validates configs, encodes them to and from \[0,1\]^d for model-based searchers, and
//! enumerates grids. Spaces are written in TOML or JSON:
//!
//! ```
//! let space = hpo_space::Space::from_toml_str(r#"
//! learning_rate = { loguniform = [1e-4, 1e-1] }
//! batch_size = { randint = [32, 256] }
//! act = { choice = ["relu", "tanh"] }
//! max_epochs = 10
//! "#, "space.toml").unwrap();
//! assert_eq!(space.len(), 4);
//! assert_eq!(space.encoded_dim(), 4); // lr, batch_size, act as one-hot over 2, constant: none
//! ```
//!
//! or built in code with [`Space::builder`].
//!
//! A parameter may be active only under a condition on others, and combinations may be
//! forbidden; an inactive parameter is absent from the config:
//!
//! ```
//! let space = hpo_space::Space::from_toml_str(r#"
//! optimizer = { choice = ["sgd", "adam"] }
//! momentum = { uniform = [0.0, 0.99], when = "optimizer == 'sgd'" }
//! batch_size = { ordinal = [32, 256, 1024] }
//! learning_rate = { loguniform = [1e-4, 1.0] }
//! forbid = ["batch_size >= 1024 and learning_rate > 0.1"]
//! "#, "space.toml").unwrap();
//! use rand::SeedableRng;
//! let config = space.sample(&mut rand_chacha::ChaCha8Rng::seed_from_u64(7));
//! assert_eq!(config.get("momentum").is_some(), config.str("optimizer").unwrap() == "sgd");
//! ```

mod condition;
mod domain;
mod space;
mod symbol;
mod symbol_map;
mod value;

pub use condition::Condition;
pub use domain::{Axis, Domain, DomainError, KEYWORDS};
pub use space::{Grid, Location, Space, SpaceBuilder, SpaceError, line_of};
pub use symbol::Symbol;
pub use symbol_map::SymbolMap;
pub use value::{Config, ConfigError, Value};
