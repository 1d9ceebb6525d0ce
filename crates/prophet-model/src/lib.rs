//! Prophet models for FLTS: fit one per target column, save the fit as JSON, forecast any timestamps from
//! the JSON in another process.
//!
//! Fitting is Prophet's own: [augurs-prophet] builds the model (features, changepoints, scaling) as Python
//! Prophet does, and [`posterior`] finds its MAP estimate in native code with Stan's L-BFGS, as Python
//! Prophet's default fit does through cmdstan. Forecasting is done by this crate from the saved parameters
//! with Prophet's formula, because augurs cannot rebuild a model from saved parameters; see [`model`] for the
//! formula and how intervals are simulated. The crate is pure computation: no Kafka, S3 or MLflow.
//!
//! ```no_run
//! use prophet_model::{Fitter, FittedSet, ProphetConfig};
//! # fn main() -> Result<(), prophet_model::ProphetError> {
//! let fitter = Fitter::new();
//! let timestamps_ms: Vec<i64> = (0..1000).map(|i| i * 120_000).collect();
//! let load: Vec<f64> = (0..1000).map(|i| 100.0 + (i as f64 / 720.0 * std::f64::consts::TAU).sin()).collect();
//! let fitted = fitter.fit_all(&ProphetConfig::default(), &timestamps_ms, &[("load".into(), load)], &[], 2)?;
//! let json = fitted.to_json(); // prophet.json
//! let forecasts = FittedSet::from_json(&json)?.predict(&[1000 * 120_000, 1001 * 120_000])?;
//! println!("{:?}", forecasts[0].yhat);
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`ProphetConfig`], Prophet's settings with Python's defaults.
//! - [`holidays`]: country holiday calendars (`country_holidays`).
//! - [`fit`]: [`Fitter`], parallel fits, and how the fitted parameters are captured from augurs.
//! - [`posterior`]: Prophet's log posterior and its gradient, [`NativeOptimizer`]; [`lbfgs`]: Stan's L-BFGS.
//! - [`model`]: [`FittedSet`] (the saved form), [`Forecast`], the forecast formula.
//! - [`error`]: [`ProphetError`], and whether a retry can help (never).
//! - [`onnx`]: the point forecast as a standard ONNX graph (MLflow's `onnx` flavor).
//!
//! Fits are deterministic: augurs orders the seasonal columns differently from run to run, so the optimizer
//! puts them in a canonical order first (otherwise the summation order, and with it the stopping point on
//! Prophet's flat posterior, would change); a saved model always forecasts the same, intervals included.
//!
//! [augurs-prophet]: https://docs.rs/augurs-prophet

pub mod config;
pub mod error;
pub mod fit;
pub mod holidays;
mod lbfgs;
pub mod model;
pub mod onnx;
pub mod posterior;

pub use config::{CustomSeasonality, HolidaySpec, ProphetConfig, RegressorSpec, SeasonalityMode, SeasonalitySwitch};
pub use error::ProphetError;
pub use fit::Fitter;
pub use model::{Feature, FeatureColumn, FittedSet, FittedTarget, Forecast, Wave};
pub use posterior::NativeOptimizer;

#[cfg(test)]
mod tests;
