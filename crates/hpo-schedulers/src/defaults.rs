//! Default values for serde's `#[serde(default = "...")]` on scheduler settings.

pub(crate) fn one() -> f64 {
    1.0
}
pub(crate) fn two() -> f64 {
    2.0
}
pub(crate) fn three() -> f64 {
    3.0
}
pub(crate) fn half() -> f64 {
    0.5
}
pub(crate) fn quarter() -> f64 {
    0.25
}
pub(crate) fn one_count() -> usize {
    1
}
