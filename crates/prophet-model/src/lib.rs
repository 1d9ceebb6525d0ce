//! Prophet models for FLTS: fit one per target column, save the fit as JSON, forecast any timestamps from
//! the JSON in another process.
//!
//! Fitting is Prophet's own (via [augurs-prophet]: the Stan model compiled to WebAssembly and run in-process,
//! MAP estimate like Python Prophet's default). Forecasting is done by this crate from the saved parameters
//! with Prophet's formula, because augurs cannot rebuild a model from saved parameters; see [`model`] for the
//! formula and how intervals are simulated. The crate is pure computation: no Kafka, S3 or MLflow.
//!
//! ```no_run
//! use prophet_model::{Fitter, FittedSet, ProphetConfig};
//! # fn main() -> Result<(), prophet_model::ProphetError> {
//! let fitter = Fitter::new()?; // slow (compiles the Stan model): once per process
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
//! - [`model`]: [`FittedSet`] (the saved form), [`Forecast`], the forecast formula.
//! - [`error`]: [`ProphetError`], and whether a retry can help (never).
//!
//! Fits are not bit-reproducible from run to run (augurs orders the seasonal columns differently each time,
//! so the optimizer stops at a slightly different point, ~1e-4 relative); a saved model always forecasts the
//! same, intervals included.
//!
//! [augurs-prophet]: https://docs.rs/augurs-prophet

pub mod config;
pub mod error;
pub mod fit;
pub mod holidays;
pub mod model;

pub use config::{CustomSeasonality, HolidaySpec, ProphetConfig, RegressorSpec, SeasonalityMode, SeasonalitySwitch};
pub use error::ProphetError;
pub use fit::Fitter;
pub use model::{Feature, FeatureColumn, FittedSet, FittedTarget, Forecast, Wave};

#[cfg(test)]
mod tests;
