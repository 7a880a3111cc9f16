use crate::objectives::{float_or, int_or};
use crate::threads::{Reporter, TrialContext, TrialError};

/// Syne Tune's `train_height` example: a cheap function with a learning curve.
/// Config: `width`, `height`, and the number of steps (`epochs_key`, else `steps`, default 10).
/// Reports `epoch` and `mean_loss` after every step.
pub fn height(ctx: &TrialContext, reporter: &mut Reporter, epochs_key: Option<&str>) -> Result<(), TrialError> {
    let width = float_or(&ctx.config, "width", 10.0)?;
    let height = float_or(&ctx.config, "height", 0.0)?;
    let steps = int_or(&ctx.config, epochs_key.unwrap_or("steps"), 10)?;
    for step in 0..steps {
        let mean_loss = 1.0 / (0.1 + width * step as f64 / 100.0) + 0.1 * height;
        reporter.report([("epoch", (step + 1) as f64), ("mean_loss", mean_loss)])?;
    }
    Ok(())
}
