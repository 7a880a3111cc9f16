//! Domains of single hyperparameters: sampling, membership, \[0,1\] encoding and grids.

use rand::{Rng, RngExt};
use serde_json::json;

use crate::value::Value;

/// The domain of one hyperparameter.
///
/// Integer ranges include both ends. `finrange`/`logfinrange` are `size` evenly spaced
/// values from `low` to `high` inclusive (on a log scale for the latter). `ordinal` is an
/// ordered list (encoded by position), `choice` an unordered one (encoded one-hot).
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // `low`, `high` and `size` are described above
pub enum Domain {
    /// `{ uniform = [low, high] }`: a float.
    Uniform { low: f64, high: f64 },
    /// `{ loguniform = [low, high] }`: a float, uniform on a log scale.
    LogUniform { low: f64, high: f64 },
    /// `{ randint = [low, high] }`: an integer.
    RandInt { low: i64, high: i64 },
    /// `{ lograndint = [low, high] }`: an integer, uniform on a log scale.
    LogRandInt { low: i64, high: i64 },
    /// `{ choice = [...] }`: one of unordered values.
    Choice(Vec<Value>),
    /// `{ ordinal = [...] }`: one of ordered values.
    Ordinal(Vec<Value>),
    /// `{ finrange = [low, high, size] }`: evenly spaced floats.
    FinRange { low: f64, high: f64, size: usize },
    /// `{ logfinrange = [low, high, size] }`: floats evenly spaced on a log scale.
    LogFinRange { low: f64, high: f64, size: usize },
    /// A scalar: the same value in every config.
    Constant(Value),
}

/// A domain whose parameters make no sense, or a value outside a domain: what was expected.
/// [`crate::SpaceError`] adds which parameter and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DomainError(pub String);

impl From<String> for DomainError {
    fn from(message: String) -> Self {
        DomainError(message)
    }
}

impl From<&str> for DomainError {
    fn from(message: &str) -> Self {
        DomainError(message.to_owned())
    }
}

/// The keywords of the search-space syntax, e.g. `{ loguniform = [1e-4, 1e-1] }`.
pub const KEYWORDS: [&str; 8] =
    ["uniform", "loguniform", "randint", "lograndint", "choice", "ordinal", "finrange", "logfinrange"];

impl Domain {
    /// Checks the domain's own parameters; the message says what was expected.
    pub fn check(&self) -> Result<(), DomainError> {
        let kw = self.keyword();
        match *self {
            Domain::Uniform { low, high } => Ok(finite_ordered(kw, low, high)?),
            Domain::LogUniform { low, high } => {
                finite_ordered(kw, low, high)?;
                positive(kw, low, high)
            }
            Domain::RandInt { low, high } => int_ordered(kw, low, high),
            Domain::LogRandInt { low, high } => {
                int_ordered(kw, low, high)?;
                if low < 1 {
                    return Err(
                        format!("`{kw}` is on a log scale and needs 1 <= low < high, got [{low}, {high}]").into()
                    );
                }
                Ok(())
            }
            Domain::Choice(ref values) | Domain::Ordinal(ref values) => {
                if values.is_empty() {
                    return Err(format!("`{kw}` needs at least one value").into());
                }
                if let Some(x) = values.iter().filter_map(Value::as_f64).find(|x| !x.is_finite()) {
                    return Err(format!("`{kw}` values must be finite, got {x}").into());
                }
                Ok(())
            }
            Domain::FinRange { low, high, size } | Domain::LogFinRange { low, high, size } => {
                finite_ordered(kw, low, high)?;
                if matches!(self, Domain::LogFinRange { .. }) {
                    positive(kw, low, high)?;
                }
                if size < 2 {
                    return Err(format!("`{kw}` needs a size of at least 2, got {size}").into());
                }
                Ok(())
            }
            Domain::Constant(Value::Float(x)) if !x.is_finite() => {
                Err(format!("a constant must be finite, got {x}").into())
            }
            Domain::Constant(_) => Ok(()),
        }
    }

    /// The keyword that spells this domain (`"constant"` for constants).
    pub fn keyword(&self) -> &'static str {
        match self {
            Domain::Uniform { .. } => "uniform",
            Domain::LogUniform { .. } => "loguniform",
            Domain::RandInt { .. } => "randint",
            Domain::LogRandInt { .. } => "lograndint",
            Domain::Choice(_) => "choice",
            Domain::Ordinal(_) => "ordinal",
            Domain::FinRange { .. } => "finrange",
            Domain::LogFinRange { .. } => "logfinrange",
            Domain::Constant(_) => "constant",
        }
    }

    /// The number of values if the domain is finite and the count fits a `usize`.
    pub fn cardinality(&self) -> Option<usize> {
        match *self {
            Domain::Uniform { .. } | Domain::LogUniform { .. } => None,
            Domain::RandInt { low, high } | Domain::LogRandInt { low, high } => int_count(low, high),
            Domain::Choice(ref v) | Domain::Ordinal(ref v) => Some(v.len()),
            Domain::FinRange { size, .. } | Domain::LogFinRange { size, .. } => Some(size),
            Domain::Constant(_) => Some(1),
        }
    }

    /// Draws a value uniformly (log-uniformly on log domains).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Value {
        match *self {
            Domain::Uniform { low, high } => Value::Float((low + rng.random::<f64>() * (high - low)).min(high)),
            Domain::LogUniform { low, high } => {
                let (a, b) = (low.ln(), high.ln());
                Value::Float((a + rng.random::<f64>() * (b - a)).exp().clamp(low, high))
            }
            Domain::RandInt { low, high } => Value::Int(rng.random_range(low..=high)),
            Domain::LogRandInt { low, high } => {
                // Log-uniform over the widened interval, so each end gets half a step.
                let (a, b) = (widened_ln_low(low), widened_ln_high(high));
                let x = (a + rng.random::<f64>() * (b - a)).exp().round() as i64;
                Value::Int(x.clamp(low, high))
            }
            Domain::Choice(ref v) | Domain::Ordinal(ref v) => v[rng.random_range(0..v.len())].clone(),
            Domain::FinRange { size, .. } | Domain::LogFinRange { size, .. } => {
                self.nth_value(rng.random_range(0..size))
            }
            Domain::Constant(ref v) => v.clone(),
        }
    }

    /// Whether `value` belongs to the domain; the message says why not.
    pub fn validate(&self, value: &Value) -> Result<(), DomainError> {
        let ok = match *self {
            Domain::Uniform { low, high } | Domain::LogUniform { low, high } => {
                value.as_f64().is_some_and(|x| (low..=high).contains(&x))
            }
            Domain::RandInt { low, high } | Domain::LogRandInt { low, high } => {
                value.as_i64().is_some_and(|x| (low..=high).contains(&x))
            }
            Domain::Constant(ref c) => c.matches(value),
            _ => self.position(value).is_some(),
        };
        if ok { Ok(()) } else { Err(format!("{value:?} is not in {}", self.to_json()).into()) }
    }

    /// How many coordinates the domain takes in the \[0,1\]^d encoding.
    pub fn encoded_dim(&self) -> usize {
        match self {
            Domain::Choice(v) => v.len(),
            Domain::Constant(_) => 0,
            _ => 1,
        }
    }

    /// Appends the \[0,1\] encoding of `value` (assumed valid) to `out`.
    ///
    /// Linear domains map affinely, log domains after taking logs; integers and positions in
    /// finite domains are widened by half a step so every value owns an equal slice of \[0,1\];
    /// `choice` is one-hot.
    pub fn encode(&self, value: &Value, out: &mut Vec<f64>) {
        match *self {
            Domain::Uniform { low, high } => out.push(unit(value.as_f64().unwrap_or(low), low, high)),
            Domain::LogUniform { low, high } => out.push(unit(value.as_f64().unwrap_or(low).ln(), low.ln(), high.ln())),
            Domain::RandInt { low, high } => {
                let x = value.as_i64().unwrap_or(low);
                // i128: a full-width i64 range does not overflow.
                out.push(((i128::from(x) - i128::from(low)) as f64 + 0.5) / int_span(low, high))
            }
            Domain::LogRandInt { low, high } => {
                let x = value.as_i64().unwrap_or(low) as f64;
                out.push(unit(x.ln(), widened_ln_low(low), widened_ln_high(high)))
            }
            Domain::Choice(ref v) => one_hot(self.position(value).unwrap_or(0), v.len(), out),
            Domain::Ordinal(_) | Domain::FinRange { .. } | Domain::LogFinRange { .. } => {
                out.push(slice_center(self.position(value).unwrap_or(0), self.cardinality().unwrap_or(1)))
            }
            Domain::Constant(_) => {}
        }
    }

    /// Appends `encode(&sample(rng))`: the same draws and numbers, without making the value
    /// (a finite domain encodes the position it drew).
    pub fn sample_encoded<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut Vec<f64>) {
        match *self {
            Domain::Choice(ref v) => one_hot(rng.random_range(0..v.len()), v.len(), out),
            Domain::Ordinal(ref v) => out.push(slice_center(rng.random_range(0..v.len()), v.len())),
            Domain::FinRange { size, .. } | Domain::LogFinRange { size, .. } => {
                out.push(slice_center(rng.random_range(0..size), size))
            }
            _ => self.encode(&self.sample(rng), out),
        }
    }

    /// Appends `encode(&decode(coords))`, the encoding of the nearest value, without making it.
    pub fn snap(&self, coords: &[f64], out: &mut Vec<f64>) {
        match *self {
            Domain::Choice(ref v) => one_hot(strongest(coords).min(v.len() - 1), v.len(), out),
            Domain::Ordinal(_) | Domain::FinRange { .. } | Domain::LogFinRange { .. } => {
                let n = self.cardinality().unwrap_or(1);
                out.push(slice_center(nth_slice(coords, n), n))
            }
            _ => self.encode(&self.decode(coords), out),
        }
    }

    /// The value whose encoding is nearest to `coords` (exactly `encoded_dim()` of them).
    /// Coordinates outside \[0,1\] are clamped.
    pub fn decode(&self, coords: &[f64]) -> Value {
        let u = coords.first().copied().unwrap_or(0.5).clamp(0.0, 1.0);
        match *self {
            Domain::Uniform { low, high } => Value::Float((low + u * (high - low)).clamp(low, high)),
            Domain::LogUniform { low, high } => {
                Value::Float((low.ln() + u * (high.ln() - low.ln())).exp().clamp(low, high))
            }
            Domain::RandInt { low, high } => {
                let offset = (u * int_span(low, high)).floor() as i128;
                Value::Int((i128::from(low) + offset).clamp(i128::from(low), i128::from(high)) as i64)
            }
            Domain::LogRandInt { low, high } => {
                let (a, b) = (widened_ln_low(low), widened_ln_high(high));
                Value::Int(((a + u * (b - a)).exp().round() as i64).clamp(low, high))
            }
            Domain::Choice(ref v) => v[strongest(coords).min(v.len() - 1)].clone(),
            Domain::Ordinal(_) | Domain::FinRange { .. } | Domain::LogFinRange { .. } => {
                self.nth_value(nth_slice(coords, self.cardinality().unwrap_or(1)))
            }
            Domain::Constant(ref c) => c.clone(),
        }
    }

    /// The grid axis of this domain with `points` per numeric parameter: every value of a
    /// finite domain with at most `points` values (and of every categorical and `finrange`),
    /// else `points` evenly spaced values (log-spaced on log domains). Nothing is listed
    /// that can be computed from its index, so the axis of a huge domain is small.
    pub fn grid_axis(&self, points: usize) -> Result<Axis, DomainError> {
        let points = points.max(1);
        let all = |n: usize| Axis { domain: self.clone(), kind: AxisKind::Positions, len: n };
        Ok(match *self {
            Domain::Choice(ref v) | Domain::Ordinal(ref v) => all(v.len()),
            Domain::FinRange { size, .. } | Domain::LogFinRange { size, .. } => all(size),
            Domain::Constant(_) => all(1),
            Domain::RandInt { low, high } | Domain::LogRandInt { low, high }
                if int_count(low, high).is_some_and(|n| n <= points) =>
            {
                all(int_count(low, high).unwrap_or(points))
            }
            // Rounding after exp() can repeat small values: list them once, deduplicated.
            Domain::LogRandInt { .. } => {
                if points > MAX_LISTED_POINTS {
                    return Err(format!(
                        "a grid of {points} `lograndint` values is too large to list (at most {MAX_LISTED_POINTS})"
                    )
                    .into());
                }
                let mut values: Vec<Value> = (0..points).map(|i| self.at_fraction(fraction(i, points))).collect();
                values.dedup();
                let len = values.len();
                Axis { domain: self.clone(), kind: AxisKind::Listed(values), len }
            }
            // Evenly spaced values are distinct (integers: more values than points, so the
            // step exceeds 1).
            _ => Axis { domain: self.clone(), kind: AxisKind::Fractions, len: points },
        })
    }

    /// The value a fraction `u` of the way from low to high (on the domain's scale, ends
    /// included), for grids over numeric domains.
    fn at_fraction(&self, u: f64) -> Value {
        match *self {
            Domain::Uniform { low, high } => Value::Float(if u >= 1.0 { high } else { low + u * (high - low) }),
            Domain::LogUniform { low, high } => {
                Value::Float(if u >= 1.0 { high } else { (low.ln() + u * (high.ln() - low.ln())).exp() })
            }
            Domain::RandInt { low, high } => {
                Value::Int((low as f64 + u * (int_span(low, high) - 1.0)).round().clamp(low as f64, high as f64) as i64)
            }
            Domain::LogRandInt { low, high } => Value::Int(
                ((low as f64).ln() + u * ((high as f64).ln() - (low as f64).ln()))
                    .exp()
                    .round()
                    .clamp(low as f64, high as f64) as i64,
            ),
            _ => self.decode(&[u]),
        }
    }

    /// The i-th value of a finite, ordered domain (`choice`, `ordinal`, `finrange`, `logfinrange`).
    pub(crate) fn nth_value(&self, i: usize) -> Value {
        match *self {
            Domain::Choice(ref v) | Domain::Ordinal(ref v) => v[i].clone(),
            Domain::FinRange { low, high, size } => {
                Value::Float(if i + 1 >= size { high } else { low + (high - low) * i as f64 / (size - 1) as f64 })
            }
            Domain::LogFinRange { low, high, size } => Value::Float(if i + 1 >= size {
                high
            } else {
                (low.ln() + (high.ln() - low.ln()) * i as f64 / (size - 1) as f64).exp()
            }),
            Domain::RandInt { low, .. } | Domain::LogRandInt { low, .. } => {
                Value::Int(low.saturating_add(i64::try_from(i).unwrap_or(i64::MAX)))
            }
            Domain::Constant(ref c) => c.clone(),
            Domain::Uniform { .. } | Domain::LogUniform { .. } => self.decode(&[0.5]),
        }
    }

    /// Position of `value` among a finite domain's values.
    fn position(&self, value: &Value) -> Option<usize> {
        match self {
            Domain::Choice(v) | Domain::Ordinal(v) => v.iter().position(|c| c.matches(value)),
            Domain::FinRange { low, high, size } | Domain::LogFinRange { low, high, size } => {
                // Computed, not searched: a range may hold billions of values.
                let x = value.as_f64()?;
                let (x, low, high) = if matches!(self, Domain::LogFinRange { .. }) {
                    (x.ln(), low.ln(), high.ln())
                } else {
                    (x, *low, *high)
                };
                let guess = ((x - low) / (high - low) * (size - 1) as f64).round();
                if !(0.0..=(size - 1) as f64).contains(&guess) {
                    return None;
                }
                let guess = guess as usize;
                (guess.saturating_sub(1)..=(guess + 1).min(size - 1)).find(|&i| self.nth_value(i).matches(value))
            }
            _ => None,
        }
    }

    /// The domain in the search-space syntax, e.g. `{"uniform": [0.0, 1.0]}`.
    pub fn to_json(&self) -> serde_json::Value {
        let v = |values: &Vec<Value>| serde_json::to_value(values).unwrap_or_default();
        match self {
            Domain::Uniform { low, high } => json!({ "uniform": [low, high] }),
            Domain::LogUniform { low, high } => json!({ "loguniform": [low, high] }),
            Domain::RandInt { low, high } => json!({ "randint": [low, high] }),
            Domain::LogRandInt { low, high } => json!({ "lograndint": [low, high] }),
            Domain::Choice(values) => json!({ "choice": v(values) }),
            Domain::Ordinal(values) => json!({ "ordinal": v(values) }),
            Domain::FinRange { low, high, size } => json!({ "finrange": [low, high, size] }),
            Domain::LogFinRange { low, high, size } => json!({ "logfinrange": [low, high, size] }),
            Domain::Constant(c) => serde_json::to_value(c).unwrap_or_default(),
        }
    }

    /// Parses one domain from the search-space syntax; a scalar is a constant.
    pub fn from_json(spec: &serde_json::Value) -> Result<Domain, DomainError> {
        use serde_json::Value as J;
        let domain = match spec {
            J::Bool(b) => Domain::Constant(Value::Bool(*b)),
            J::String(s) => Domain::Constant(Value::Str(s.into())),
            J::Number(n) => Domain::Constant(match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Float(n.as_f64().ok_or("number out of range")?),
            }),
            J::Array(_) => {
                return Err("expected a domain such as { choice = [...] } or a constant, got a bare list".into());
            }
            J::Null => return Err("expected a domain or a constant, got null".into()),
            J::Object(map) => {
                let mut entries = map.iter();
                let (Some((kw, args)), None) = (entries.next(), entries.next()) else {
                    return Err(format!(
                        "expected exactly one keyword ({}), got {} keys",
                        KEYWORDS.join(", "),
                        map.len()
                    )
                    .into());
                };
                parse_keyword(kw, args)?
            }
        };
        domain.check()?;
        Ok(domain)
    }
}

fn parse_keyword(kw: &str, args: &serde_json::Value) -> Result<Domain, String> {
    let list = || -> Result<&Vec<serde_json::Value>, String> {
        args.as_array().ok_or_else(|| format!("`{kw}` expects a list, got {args}"))
    };
    let floats = |n: usize, what: &str| -> Result<Vec<f64>, String> {
        let l = list()?;
        let xs: Option<Vec<f64>> = l.iter().map(serde_json::Value::as_f64).collect();
        match xs {
            Some(xs) if xs.len() == n => Ok(xs),
            _ => Err(format!("`{kw}` expects {what}, got {args}")),
        }
    };
    let ints = || -> Result<(i64, i64), String> {
        let l = list()?;
        match l.as_slice() {
            [a, b] if a.is_i64() && b.is_i64() => Ok((a.as_i64().unwrap_or(0), b.as_i64().unwrap_or(0))),
            _ => Err(format!("`{kw}` expects two integers [low, high], got {args}")),
        }
    };
    let values = || -> Result<Vec<Value>, String> {
        serde_json::from_value(serde_json::Value::Array(list()?.clone()))
            .map_err(|_| format!("`{kw}` expects a list of numbers, strings or booleans, got {args}"))
    };
    let finrange = || -> Result<(f64, f64, usize), String> {
        let l = list()?;
        match l.as_slice() {
            [a, b, n] if a.is_number() && b.is_number() && n.is_u64() => {
                Ok((a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0), n.as_u64().unwrap_or(0) as usize))
            }
            _ => Err(format!("`{kw}` expects [low, high, size] with an integer size, got {args}")),
        }
    };
    Ok(match kw {
        "uniform" => {
            let x = floats(2, "two numbers [low, high]")?;
            Domain::Uniform { low: x[0], high: x[1] }
        }
        "loguniform" => {
            let x = floats(2, "two numbers [low, high]")?;
            Domain::LogUniform { low: x[0], high: x[1] }
        }
        "randint" => {
            let (low, high) = ints()?;
            Domain::RandInt { low, high }
        }
        "lograndint" => {
            let (low, high) = ints()?;
            Domain::LogRandInt { low, high }
        }
        "choice" => Domain::Choice(values()?),
        "ordinal" => Domain::Ordinal(values()?),
        "finrange" => {
            let (low, high, size) = finrange()?;
            Domain::FinRange { low, high, size }
        }
        "logfinrange" => {
            let (low, high, size) = finrange()?;
            Domain::LogFinRange { low, high, size }
        }
        other => {
            return Err(format!("unknown keyword `{other}`; expected one of {}", KEYWORDS.join(", ")));
        }
    })
}

fn finite_ordered(kw: &str, low: f64, high: f64) -> Result<(), DomainError> {
    if !(low.is_finite() && high.is_finite()) {
        return Err(format!("`{kw}` needs finite bounds, got [{low}, {high}]").into());
    }
    if low >= high {
        return Err(format!("`{kw}` needs low < high, got [{low}, {high}]").into());
    }
    Ok(())
}

fn positive(kw: &str, low: f64, high: f64) -> Result<(), DomainError> {
    if low <= 0.0 {
        return Err(format!("`{kw}` is on a log scale and needs 0 < low < high, got [{low}, {high}]").into());
    }
    Ok(())
}

fn int_ordered(kw: &str, low: i64, high: i64) -> Result<(), DomainError> {
    if low >= high {
        return Err(format!("`{kw}` needs low < high, got [{low}, {high}]").into());
    }
    Ok(())
}

fn unit(x: f64, low: f64, high: f64) -> f64 {
    ((x - low) / (high - low)).clamp(0.0, 1.0)
}

fn widened_ln_low(low: i64) -> f64 {
    (low as f64 - 0.5).ln()
}

fn widened_ln_high(high: i64) -> f64 {
    (high as f64 + 0.5).ln()
}

/// One-hot encoding of position `i` among `n`.
fn one_hot(i: usize, n: usize, out: &mut Vec<f64>) {
    out.extend((0..n).map(|j| if j == i { 1.0 } else { 0.0 }));
}

/// The center of the `i`th of `n` equal slices of \[0,1\]: a finite domain's encoding.
fn slice_center(i: usize, n: usize) -> f64 {
    (i as f64 + 0.5) / n as f64
}

/// The slice of \[0,1\] (of `n`) that the first coordinate falls in.
fn nth_slice(coords: &[f64], n: usize) -> usize {
    let u = coords.first().copied().unwrap_or(0.5).clamp(0.0, 1.0);
    ((u * n as f64).floor() as usize).min(n - 1)
}

/// The position of the largest coordinate of a one-hot block (the first on ties).
fn strongest(coords: &[f64]) -> usize {
    coords.iter().enumerate().fold((0, f64::NEG_INFINITY), |best, (i, &c)| if c > best.1 { (i, c) } else { best }).0
}

/// The most values a grid axis lists explicitly (only `lograndint` with fewer points than
/// values needs a list).
const MAX_LISTED_POINTS: usize = 1_000_000;

/// How many integers `low..=high` holds, if that fits a `usize`.
fn int_count(low: i64, high: i64) -> Option<usize> {
    usize::try_from(i128::from(high) - i128::from(low) + 1).ok()
}

/// `high - low + 1` as a float, without overflow.
fn int_span(low: i64, high: i64) -> f64 {
    (i128::from(high) - i128::from(low) + 1) as f64
}

/// The i-th of n evenly spaced fractions of [0, 1], ends included.
fn fraction(i: usize, n: usize) -> f64 {
    if n == 1 { 0.5 } else { i as f64 / (n - 1) as f64 }
}

/// One parameter's grid values, each computed from its index.
#[derive(Clone, Debug)]
pub struct Axis {
    domain: Domain,
    kind: AxisKind,
    len: usize,
}

#[derive(Clone, Debug)]
enum AxisKind {
    /// Every value of a finite domain, in order.
    Positions,
    /// `len` evenly spaced values of a numeric domain, ends included.
    Fractions,
    /// Values listed explicitly.
    Listed(Vec<Value>),
}

impl Axis {
    /// How many values the axis has.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the axis has no value (never, for a checked domain).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `i`-th value (`i < len()`).
    pub fn get(&self, i: usize) -> Value {
        match &self.kind {
            AxisKind::Positions => self.domain.nth_value(i),
            AxisKind::Fractions => self.domain.at_fraction(fraction(i, self.len)),
            AxisKind::Listed(values) => values[i.min(values.len() - 1)].clone(),
        }
    }

    /// Every value, in order.
    pub fn values(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len).map(|i| self.get(i))
    }
}
