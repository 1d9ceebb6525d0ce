//! FLTS time-series core, shared by every stage (pure Rust, no dataframe library).
//!
//! The shared rules of `docs/data-contract.md` live here once, so that
//! preprocess, the trainers, Prophet, the baselines and inference cut and score
//! exactly the same windows.
//!
//! # Layout
//! - [`frame`]: [`Frame`], a timestamp column plus named `f64` columns.
//! - [`roles`]: [`Roles`], which columns are features and targets, and the interval.
//! - [`scaler`]: [`Scaler`] (min-max or standard), fitted on the training part,
//!   its JSON form, and [`ProcessedMeta`] (the Parquet key-value metadata).
//! - [`windows`]: [`make_windows`] and [`Windows`] (model input and target tensors).
//! - [`evaluate`](mod@evaluate): [`evaluate`](fn@evaluate), metrics in scaled units and per target
//!   in original units.
//! - [`outliers`]: [`OutlierMethod`] and [`fit_bounds`], clip bounds fitted on
//!   training rows (the trainers apply them to model inputs only).
//! - [`baselines`]: last-value and seasonal-naive predictions on the same windows.
//! - [`error`]: [`SeriesError`], whose messages name the column and row.

pub mod baselines;
pub mod error;
pub mod evaluate;
pub mod frame;
pub mod outliers;
pub mod roles;
pub mod scaler;
pub mod windows;

pub use baselines::{baselines, last_value_predictions, season_rows, seasonal_naive_predictions};
pub use error::SeriesError;
pub use evaluate::{Evaluation, evaluate, metrics};
pub use frame::{Column, Frame};
pub use outliers::{OutlierMethod, OutlierParams, fit_bounds};
pub use roles::Roles;
pub use scaler::{ProcessedMeta, Scaler, ScalerColumn, ScalerKind};
pub use windows::{ValidationSplit, WindowSpec, Windows, gap_rows, make_windows};
