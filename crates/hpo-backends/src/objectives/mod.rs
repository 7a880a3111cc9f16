//! Built-in trial functions for the thread backend, named in experiment files as
//! `[backend] type = "threads", objective = "<name>"`.

mod digits;
mod height;
mod mlp;

use std::sync::Arc;

use hpo_core::Config;

pub use digits::{Digits, digits};
pub use height::height;
pub use mlp::{Mlp, MlpSettings, digits_mlp};

use crate::threads::TrialFn;

/// The built-in objectives: name and what it does.
pub const BUILTIN: [(&str, &str); 2] = [
    ("digits-mlp", "trains an MLP classifier on the 8x8 digits data, reporting epoch, val_error, val_loss, train_loss"),
    ("height", "Syne Tune's train_height toy: mean_loss = 1/(0.1 + width*step/100) + 0.1*height per step"),
];

/// The built-in objective called `name`. `epochs_key` is the config key holding the number
/// of epochs (the experiment's `max_resource_attr`), if any.
pub fn builtin(name: &str, epochs_key: Option<&str>) -> Option<Arc<TrialFn>> {
    let epochs_key = epochs_key.map(str::to_owned);
    match name {
        "digits-mlp" => Some(Arc::new(move |ctx, reporter| digits_mlp(ctx, reporter, epochs_key.as_deref()))),
        "height" => Some(Arc::new(move |ctx, reporter| height(ctx, reporter, epochs_key.as_deref()))),
        _ => None,
    }
}

/// Reads an optional integer from the config, with a default.
pub(crate) fn int_or(config: &Config, key: &str, default: i64) -> Result<i64, crate::TrialError> {
    match config.get(key) {
        None => Ok(default),
        Some(_) => Ok(config.i64(key)?),
    }
}

/// Reads an optional float from the config, with a default.
pub(crate) fn float_or(config: &Config, key: &str, default: f64) -> Result<f64, crate::TrialError> {
    match config.get(key) {
        None => Ok(default),
        Some(_) => Ok(config.f64(key)?),
    }
}
