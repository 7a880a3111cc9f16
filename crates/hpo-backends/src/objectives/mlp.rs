//! A small multi-layer perceptron trained with Adam (or SGD with momentum), epoch by epoch,
//! like scikit-learn's `MLPClassifier(solver="adam")` that made the digits-mlp benchmark.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::objectives::digits::{CLASSES, Digits, digits};
use crate::objectives::{float_or, int_or};
use crate::threads::{Reporter, TrialContext, TrialError};

/// The hidden layers' activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// max(0, x).
    Relu,
    /// tanh(x).
    Tanh,
}

/// How the weights are updated.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Optimizer {
    /// Adam with this first-moment decay (beta1; beta2 is 0.999).
    Adam {
        /// The first moment's decay.
        beta1: f32,
    },
    /// Stochastic gradient descent with (heavy-ball) momentum.
    Sgd {
        /// The velocity's decay.
        momentum: f32,
    },
}

/// The hyperparameters the MLP reads from a config (missing ones take the defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct MlpSettings {
    /// Units of each hidden layer, input side first.
    pub widths: Vec<usize>,
    /// The optimizer.
    pub optimizer: Optimizer,
    /// The step size.
    pub learning_rate: f32,
    /// Examples per step.
    pub batch_size: usize,
    /// L2 penalty.
    pub weight_decay: f32,
    /// Activation of the hidden layers.
    pub activation: Activation,
    /// Passes over the training data.
    pub epochs: usize,
}

impl MlpSettings {
    /// Reads `num_layers` (1) hidden layers of `width_1`, `width_2`, ... units each (any
    /// missing: `hidden_width`, 64), `optimizer` ("adam", the default, with `beta1` 0.9, or
    /// "sgd" with `momentum` 0), `learning_rate` (1e-3), `batch_size` (64), `weight_decay`
    /// (1e-4), `activation` ("relu" or "tanh") and the number of epochs from `epochs_key`
    /// (else `epochs`, default 10).
    pub fn from_config(config: &hpo_core::Config, epochs_key: Option<&str>) -> Result<Self, TrialError> {
        let positive = |key: &str, v: i64| -> Result<usize, TrialError> {
            usize::try_from(v)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("`{key}` must be a positive integer, got {v}").into())
        };
        let activation = match config.get("activation") {
            None => Activation::Relu,
            Some(_) => match config.str("activation")? {
                "relu" => Activation::Relu,
                "tanh" => Activation::Tanh,
                other => {
                    return Err(format!("`activation` must be \"relu\" or \"tanh\", got {other:?}").into());
                }
            },
        };
        let unit = |key: &str, default: f64| -> Result<f32, TrialError> {
            let x = float_or(config, key, default)?;
            if (0.0..1.0).contains(&x) {
                Ok(x as f32)
            } else {
                Err(format!("`{key}` must be in [0, 1), got {x}").into())
            }
        };
        let optimizer = match config.get("optimizer") {
            None => Optimizer::Adam { beta1: unit("beta1", 0.9)? },
            Some(_) => match config.str("optimizer")? {
                "adam" => Optimizer::Adam { beta1: unit("beta1", 0.9)? },
                "sgd" => Optimizer::Sgd { momentum: unit("momentum", 0.0)? },
                other => return Err(format!("`optimizer` must be \"adam\" or \"sgd\", got {other:?}").into()),
            },
        };
        let epochs_key = epochs_key.unwrap_or("epochs");
        let hidden_width = positive("hidden_width", int_or(config, "hidden_width", 64)?)?;
        let num_layers = positive("num_layers", int_or(config, "num_layers", 1)?)?;
        let widths = (1..=num_layers)
            .map(|k| {
                let key = format!("width_{k}");
                positive(&key, int_or(config, &key, hidden_width as i64)?)
            })
            .collect::<Result<Vec<usize>, TrialError>>()?;
        let settings = MlpSettings {
            widths,
            optimizer,
            learning_rate: float_or(config, "learning_rate", 1e-3)? as f32,
            batch_size: positive("batch_size", int_or(config, "batch_size", 64)?)?,
            weight_decay: float_or(config, "weight_decay", 1e-4)? as f32,
            activation,
            epochs: positive(epochs_key, int_or(config, epochs_key, 10)?)?,
        };
        // Checked before anything is allocated: a trial too large for memory fails alone
        // instead of aborting the process with all the other trials in it.
        let parameters = settings.parameters();
        if parameters > MAX_PARAMETERS {
            return Err(format!(
                "hidden layers of {:?} units (`hidden_width`, or `width_1`, `width_2`, ...) make {parameters:.3e} weights; the built-in MLP takes at most {MAX_PARAMETERS:.0e}",
                settings.widths
            )
            .into());
        }
        Ok(settings)
    }
}

impl MlpSettings {
    /// Units per layer, the digits' pixels first and their classes last.
    fn layer_sizes(&self) -> Vec<usize> {
        [&[INPUTS][..], &self.widths, &[CLASSES]].concat()
    }

    /// The network's weights and biases.
    fn parameters(&self) -> f64 {
        self.layer_sizes().windows(2).map(|pair| (pair[0] as f64 + 1.0) * pair[1] as f64).sum()
    }
}

/// The most weights the built-in MLP trains (with Adam's moments, 160 MB).
const MAX_PARAMETERS: f64 = 1e7;
/// The digits' pixels.
const INPUTS: usize = 64;

/// Adam's moment estimates for one parameter array.
struct Moments<D: ndarray::Dimension> {
    m: ndarray::Array<f32, D>,
    v: ndarray::Array<f32, D>,
}

impl<D: ndarray::Dimension> Moments<D> {
    fn new(shape: D) -> Self {
        Moments { m: ndarray::Array::zeros(shape.clone()), v: ndarray::Array::zeros(shape) }
    }

    /// One update with step size `lr_t` (Adam's, bias-corrected).
    fn step(
        &mut self,
        param: &mut ndarray::Array<f32, D>,
        grad: &ndarray::Array<f32, D>,
        lr_t: f32,
        optimizer: Optimizer,
    ) {
        const B2: f32 = 0.999;
        const EPS: f32 = 1e-8;
        match optimizer {
            Optimizer::Adam { beta1 } => {
                Zip::from(param).and(&mut self.m).and(&mut self.v).and(grad).for_each(|p, m, v, &g| {
                    *m = beta1 * *m + (1.0 - beta1) * g;
                    *v = B2 * *v + (1.0 - B2) * g * g;
                    *p -= lr_t * *m / (v.sqrt() + EPS);
                })
            }
            // The velocity lives in the first moment's array (saved in checkpoints alike).
            Optimizer::Sgd { momentum } => Zip::from(param).and(&mut self.m).and(grad).for_each(|p, m, &g| {
                *m = momentum * *m + g;
                *p -= lr_t * *m;
            }),
        }
    }
}

/// A fully connected network with softmax output.
pub struct Mlp {
    weights: Vec<Array2<f32>>,
    biases: Vec<Array1<f32>>,
    activation: Activation,
    w_moments: Vec<Moments<ndarray::Ix2>>,
    b_moments: Vec<Moments<ndarray::Ix1>>,
    steps: i32,
}

impl Mlp {
    /// Layer sizes from input to output; Glorot-uniform initial weights, as scikit-learn.
    pub fn new(sizes: &[usize], activation: Activation, rng: &mut ChaCha8Rng) -> Mlp {
        let mut weights = Vec::new();
        let mut biases = Vec::new();
        for pair in sizes.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let bound = (6.0 / (fan_in + fan_out) as f32).sqrt();
            weights.push(Array2::from_shape_simple_fn((fan_in, fan_out), || rng.random_range(-bound..bound)));
            biases.push(Array1::from_shape_simple_fn(fan_out, || rng.random_range(-bound..bound)));
        }
        Mlp {
            w_moments: weights.iter().map(|w| Moments::new(w.raw_dim())).collect(),
            b_moments: biases.iter().map(|b| Moments::new(b.raw_dim())).collect(),
            weights,
            biases,
            activation,
            steps: 0,
        }
    }

    /// Outputs of every layer: hidden activations, then the logits last.
    fn forward(&self, x: ArrayView2<f32>) -> Vec<Array2<f32>> {
        let mut outputs: Vec<Array2<f32>> = Vec::with_capacity(self.weights.len());
        for (i, (w, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            let input = outputs.last().map_or(x, |o| o.view());
            let mut z = input.dot(w) + b;
            if i + 1 < self.weights.len() {
                match self.activation {
                    Activation::Relu => z.mapv_inplace(|v| v.max(0.0)),
                    Activation::Tanh => z.mapv_inplace(f32::tanh),
                }
            }
            outputs.push(z);
        }
        outputs
    }

    /// One pass over the training data in shuffled mini-batches; returns the mean loss.
    pub fn train_epoch(&mut self, data: &Digits, s: &MlpSettings, rng: &mut ChaCha8Rng) -> f32 {
        let n = data.y_train.len();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut total_loss = 0.0;
        for batch in order.chunks(s.batch_size) {
            let x = data.x_train.select(Axis(0), batch);
            let labels: Vec<usize> = batch.iter().map(|&i| data.y_train[i]).collect();
            total_loss += self.step(&x, &labels, s) * batch.len() as f32;
        }
        total_loss / n as f32
    }

    /// One optimizer step on a mini-batch; returns its mean cross-entropy.
    fn step(&mut self, x: &Array2<f32>, labels: &[usize], s: &MlpSettings) -> f32 {
        let outputs = self.forward(x.view());
        let Some(logits) = outputs.last() else {
            return 0.0;
        };
        let batch = labels.len() as f32;
        let (mut delta, loss) = softmax_cross_entropy(logits, labels);
        delta /= batch;
        self.steps += 1;
        let lr_t = match s.optimizer {
            Optimizer::Adam { beta1 } => {
                s.learning_rate * (1.0 - 0.999f32.powi(self.steps)).sqrt() / (1.0 - beta1.powi(self.steps))
            }
            Optimizer::Sgd { .. } => s.learning_rate,
        };
        for layer in (0..self.weights.len()).rev() {
            let input = if layer == 0 { x.view() } else { outputs[layer - 1].view() };
            let mut grad_w = input.t().dot(&delta);
            grad_w.scaled_add(s.weight_decay, &self.weights[layer]);
            let grad_b = delta.sum_axis(Axis(0));
            if layer > 0 {
                let mut next = delta.dot(&self.weights[layer].t());
                let act = &outputs[layer - 1];
                match self.activation {
                    Activation::Relu => Zip::from(&mut next).and(act).for_each(|d, &a| {
                        if a <= 0.0 {
                            *d = 0.0;
                        }
                    }),
                    Activation::Tanh => Zip::from(&mut next).and(act).for_each(|d, &a| *d *= 1.0 - a * a),
                }
                delta = next;
            }
            self.w_moments[layer].step(&mut self.weights[layer], &grad_w, lr_t, s.optimizer);
            self.b_moments[layer].step(&mut self.biases[layer], &grad_b, lr_t, s.optimizer);
        }
        loss / batch
    }

    /// (error rate, mean log loss) on a labelled set.
    pub fn evaluate(&self, x: &Array2<f32>, labels: &[usize]) -> (f64, f64) {
        let outputs = self.forward(x.view());
        let Some(logits) = outputs.last() else {
            return (1.0, f64::NAN);
        };
        let (_, loss) = softmax_cross_entropy(logits, labels);
        let wrong = logits
            .outer_iter()
            .zip(labels)
            .filter(|(row, label)| {
                let best =
                    row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                best.0 != **label
            })
            .count();
        (wrong as f64 / labels.len() as f64, f64::from(loss) / labels.len() as f64)
    }
}

/// Softmax probabilities minus one-hot labels (the logits' gradient, unscaled) and the
/// summed cross-entropy.
fn softmax_cross_entropy(logits: &Array2<f32>, labels: &[usize]) -> (Array2<f32>, f32) {
    let mut probs = logits.clone();
    let mut loss = 0.0;
    for (mut row, &label) in probs.outer_iter_mut().zip(labels) {
        let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        row.mapv_inplace(|v| (v - max).exp());
        let sum = row.sum();
        row /= sum;
        loss -= row[label].max(1e-12).ln();
        row[label] -= 1.0;
    }
    (probs, loss)
}

const CHECKPOINT: &str = "mlp.ckpt";

impl Mlp {
    /// All parameters and optimizer moments, in a fixed order.
    fn arrays(&self) -> Vec<&[f32]> {
        let mut out: Vec<&[f32]> = Vec::new();
        for i in 0..self.weights.len() {
            for a in [&self.weights[i], &self.w_moments[i].m, &self.w_moments[i].v] {
                out.push(a.as_slice().unwrap_or(&[]));
            }
            for a in [&self.biases[i], &self.b_moments[i].m, &self.b_moments[i].v] {
                out.push(a.as_slice().unwrap_or(&[]));
            }
        }
        out
    }

    /// Writes a checkpoint after `epoch` (a JSON header line, then raw little-endian f32s),
    /// atomically: a reader never sees half a file.
    pub fn save(&self, dir: &std::path::Path, epoch: usize) -> std::io::Result<()> {
        let header = serde_json::json!({ "epoch": epoch, "steps": self.steps });
        let mut bytes = header.to_string().into_bytes();
        bytes.push(b'\n');
        for array in self.arrays() {
            bytes.extend(array.iter().flat_map(|x| x.to_le_bytes()));
        }
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(format!("{CHECKPOINT}.tmp"));
        std::fs::write(&tmp, bytes)?;
        std::fs::rename(tmp, dir.join(CHECKPOINT))
    }

    /// Restores parameters saved by [`Mlp::save`] into a network of the same shape; returns
    /// the epoch it was saved after, or `None` if there is no usable checkpoint.
    pub fn load(&mut self, dir: &std::path::Path) -> Option<usize> {
        let bytes = std::fs::read(dir.join(CHECKPOINT)).ok()?;
        let newline = bytes.iter().position(|&b| b == b'\n')?;
        let header: serde_json::Value = serde_json::from_slice(&bytes[..newline]).ok()?;
        let mut floats = bytes[newline + 1..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        let expected: usize = self.arrays().iter().map(|a| a.len()).sum();
        if bytes.len() - newline - 1 != expected * 4 {
            return None; // another architecture
        }
        for i in 0..self.weights.len() {
            let Moments { m, v } = &mut self.w_moments[i];
            for a in [&mut self.weights[i], m, v] {
                a.iter_mut().for_each(|x| *x = floats.next().unwrap_or(0.0));
            }
            let Moments { m, v } = &mut self.b_moments[i];
            for a in [&mut self.biases[i], m, v] {
                a.iter_mut().for_each(|x| *x = floats.next().unwrap_or(0.0));
            }
        }
        self.steps = i32::try_from(header["steps"].as_i64()?).ok()?;
        usize::try_from(header["epoch"].as_u64()?).ok()
    }
}

/// The `digits-mlp` objective: trains an MLP on the digits data, reporting `epoch`,
/// `val_error`, `val_loss`, `train_loss` and `parameters` (the network's weights and biases:
/// its size, an objective to trade accuracy against) after every epoch. With a checkpoint folder it
/// saves after every epoch and, when the folder holds a checkpoint (a resumed trial, or one
/// copied from another trial by PBT), continues from it.
pub fn digits_mlp(ctx: &TrialContext, reporter: &mut Reporter, epochs_key: Option<&str>) -> Result<(), TrialError> {
    let settings = MlpSettings::from_config(&ctx.config, epochs_key)?;
    let data = digits()?;
    let mut rng = ChaCha8Rng::seed_from_u64(ctx.seed);
    let mut mlp = Mlp::new(&settings.layer_sizes(), settings.activation, &mut rng);
    let done = ctx.checkpoint_dir.as_deref().and_then(|dir| mlp.load(dir)).unwrap_or(0);
    if done > 0 {
        rng = ChaCha8Rng::seed_from_u64(ctx.seed ^ done as u64);
    }
    for epoch in done + 1..=settings.epochs {
        let train_loss = mlp.train_epoch(data, &settings, &mut rng);
        let (val_error, val_loss) = mlp.evaluate(&data.x_val, &data.y_val);
        if let Some(dir) = &ctx.checkpoint_dir {
            mlp.save(dir, epoch).map_err(|e| format!("saving a checkpoint in {}: {e}", dir.display()))?;
        }
        reporter.report([
            ("epoch", epoch as f64),
            ("val_error", val_error),
            ("val_loss", val_loss),
            ("train_loss", f64::from(train_loss)),
            ("parameters", settings.parameters()),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parameters_count_weights_and_biases() {
        let settings =
            MlpSettings::from_config(&config(serde_json::json!({"width_1": 32, "width_2": 16, "num_layers": 2})), None)
                .unwrap();
        // (64 + 1) * 32 + (32 + 1) * 16 + (16 + 1) * 10
        assert_eq!(settings.parameters(), 2080.0 + 528.0 + 170.0);
    }

    fn config(json: serde_json::Value) -> hpo_core::Config {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn layer_widths_and_the_optimizer_come_from_the_config() {
        let s = MlpSettings::from_config(
            &config(serde_json::json!({ "num_layers": 3, "width_2": 16, "hidden_width": 32 })),
            None,
        )
        .unwrap();
        assert_eq!(s.widths, [32, 16, 32]);
        assert_eq!(s.optimizer, Optimizer::Adam { beta1: 0.9 });
        assert_eq!(s.layer_sizes(), [64, 32, 16, 32, 10]);
        let sgd = config(serde_json::json!({ "optimizer": "sgd", "momentum": 0.5 }));
        assert_eq!(MlpSettings::from_config(&sgd, None).unwrap().optimizer, Optimizer::Sgd { momentum: 0.5 });
        let bad = |json| MlpSettings::from_config(&config(json), None).unwrap_err().to_string();
        assert!(bad(serde_json::json!({ "optimizer": "rmsprop" })).contains("`optimizer` must be \"adam\" or \"sgd\""));
        assert!(
            bad(serde_json::json!({ "optimizer": "sgd", "momentum": 1.0 })).contains("`momentum` must be in [0, 1)")
        );
        assert!(
            bad(serde_json::json!({ "num_layers": 2, "width_2": 0 })).contains("`width_2` must be a positive integer")
        );
    }

    #[test]
    fn sgd_with_momentum_learns_the_digits() {
        let data = digits().unwrap();
        let s = MlpSettings::from_config(
            &config(
                serde_json::json!({ "optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.05, "batch_size": 32 }),
            ),
            None,
        )
        .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let mut mlp = Mlp::new(&s.layer_sizes(), s.activation, &mut rng);
        let before = mlp.evaluate(&data.x_val, &data.y_val).0;
        for _ in 0..3 {
            mlp.train_epoch(data, &s, &mut rng);
        }
        let after = mlp.evaluate(&data.x_val, &data.y_val).0;
        assert!(before > 0.5 && after < 0.15, "validation error {before} -> {after}");
    }
}
