use std::io::Read;
use std::sync::OnceLock;

use ndarray::{Array2, Axis};
use rand::{RngExt, SeedableRng};

/// The 8x8 digits data (UCI, CC BY 4.0; see `data/digits/README.md`), compiled into the binary.
const DIGITS_GZ: &[u8] = include_bytes!("../../data/digits/digits.csv.gz");

/// The digits data split 75/25 into training and validation sets, stratified by label with
/// a fixed seed (so every trial sees the same split), features standardized on the
/// training set.
#[derive(Debug)]
pub struct Digits {
    /// Training images, one row of 64 pixels each.
    pub x_train: Array2<f32>,
    /// Training labels (0-9).
    pub y_train: Vec<usize>,
    /// Validation images.
    pub x_val: Array2<f32>,
    /// Validation labels.
    pub y_val: Vec<usize>,
}

pub const CLASSES: usize = 10;
const FEATURES: usize = 64;

/// The data, loaded once per process.
pub fn digits() -> Result<&'static Digits, crate::Error> {
    static DIGITS: OnceLock<Result<Digits, crate::Error>> = OnceLock::new();
    DIGITS.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Digits, crate::Error> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(DIGITS_GZ)
        .read_to_string(&mut text)
        .map_err(|e| crate::Error::Data(format!("digits data: {e}")))?;
    let mut rows: Vec<(Vec<f32>, usize)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<f32> = line
            .split(',')
            .map(|f| f.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .map_err(|e| crate::Error::Data(format!("digits data line {}: {e}", i + 1)))?;
        if fields.len() != FEATURES + 1 {
            return Err(crate::Error::Data(format!(
                "digits data line {}: {} columns, expected 65",
                i + 1,
                fields.len()
            )));
        }
        let label = fields[FEATURES] as usize;
        rows.push((fields[..FEATURES].to_vec(), label.min(CLASSES - 1)));
    }
    // Stratified split: a quarter of each class goes to validation.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for class in 0..CLASSES {
        let mut idx: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1 == class).collect();
        for i in (1..idx.len()).rev() {
            idx.swap(i, rng.random_range(0..=i));
        }
        let n_val = idx.len() / 4;
        val.extend_from_slice(&idx[..n_val]);
        train.extend_from_slice(&idx[n_val..]);
    }
    train.sort_unstable();
    val.sort_unstable();
    let matrix = |idx: &[usize]| Array2::from_shape_fn((idx.len(), FEATURES), |(r, c)| rows[idx[r]].0[c]);
    let (mut x_train, mut x_val) = (matrix(&train), matrix(&val));
    let mean = x_train.mean_axis(Axis(0)).ok_or_else(|| crate::Error::Data("digits data is empty".into()))?;
    let std = x_train.std_axis(Axis(0), 0.0).mapv(|s| if s > 1e-6 { s } else { 1.0 });
    for x in [&mut x_train, &mut x_val] {
        *x -= &mean;
        *x /= &std;
    }
    Ok(Digits {
        x_train,
        y_train: train.iter().map(|&i| rows[i].1).collect(),
        x_val,
        y_val: val.iter().map(|&i| rows[i].1).collect(),
    })
}
