//! The Prophet trainer stage (seed 002's `nonml_prophet`): one Prophet model
//! per target column, fitted in parallel, behind the same trainer plumbing,
//! message contract and evaluation protocol as the GRU/LSTM trainers.
//!
//! Prophet forecasts the whole test period from the end of training
//! (protocol `from_train_end`), while the neural models see actual inputs one
//! step ahead. To compare like with like the run also reports a
//! one-step-ahead equivalent: Prophet's forecast corrected by its error on the
//! previous row (which the one-step models know too). The model card says
//! which protocol each number uses.

use std::ops::ControlFlow;
use std::time::Instant;

use contracts::{EvalProtocol, ModelFormat, ModelType};
use prophet_model::{Fitter, ProphetConfig, SeasonalityMode};
use training::{ModelTrainer, Prepared, Progress, TrainError, Trained, TrainerCli};

/// Prophet's settings (defaults: Prophet's own).
#[derive(Debug, Clone, clap::Args)]
pub struct ProphetArgs {
    /// Potential changepoints of the trend.
    #[arg(long, env = "PROPHET_N_CHANGEPOINTS", default_value_t = 25)]
    pub n_changepoints: u32,
    /// Share of the history in which changepoints may lie.
    #[arg(long, env = "PROPHET_CHANGEPOINT_RANGE", default_value_t = 0.8)]
    pub changepoint_range: f64,
    /// Flexibility of the trend.
    #[arg(long, env = "PROPHET_CHANGEPOINT_PRIOR_SCALE", default_value_t = 0.05)]
    pub changepoint_prior_scale: f64,
    /// Strength of the seasonality.
    #[arg(long, env = "PROPHET_SEASONALITY_PRIOR_SCALE", default_value_t = 10.0)]
    pub seasonality_prior_scale: f64,
    /// Strength of holiday effects.
    #[arg(long, env = "PROPHET_HOLIDAYS_PRIOR_SCALE", default_value_t = 10.0)]
    pub holidays_prior_scale: f64,
    /// additive or multiplicative.
    #[arg(long, env = "PROPHET_SEASONALITY_MODE", default_value = "additive", value_parser = parse_mode)]
    pub seasonality_mode: SeasonalityMode,
    /// Width of the uncertainty interval.
    #[arg(long, env = "PROPHET_INTERVAL_WIDTH", default_value_t = 0.8)]
    pub interval_width: f64,
    /// Full Prophet config as JSON (custom seasonalities, holidays); the flags above override it.
    #[arg(long, env = "PROPHET_CONFIG_FILE")]
    pub config_file: Option<std::path::PathBuf>,
    /// Targets fitted at once.
    #[arg(long, env = "PROPHET_THREADS", default_value_t = 2)]
    pub threads: usize,
}

fn parse_mode(s: &str) -> Result<SeasonalityMode, String> {
    match s {
        "additive" => Ok(SeasonalityMode::Additive),
        "multiplicative" => Ok(SeasonalityMode::Multiplicative),
        other => Err(format!("`{other}`: expected additive or multiplicative")),
    }
}

impl ProphetArgs {
    fn config(&self) -> anyhow::Result<ProphetConfig> {
        let mut cfg = match &self.config_file {
            Some(p) => serde_json::from_str(&std::fs::read_to_string(p)?)?,
            None => ProphetConfig::default(),
        };
        cfg.n_changepoints = self.n_changepoints;
        cfg.changepoint_range = self.changepoint_range;
        cfg.changepoint_prior_scale = self.changepoint_prior_scale;
        cfg.seasonality_prior_scale = self.seasonality_prior_scale;
        cfg.holidays_prior_scale = self.holidays_prior_scale;
        cfg.seasonality_mode = self.seasonality_mode;
        cfg.interval_width = self.interval_width;
        cfg.validate()?;
        Ok(cfg)
    }
}

/// Fits one Prophet model per target.
pub struct ProphetTrainer {
    fitter: Fitter,
    config: ProphetConfig,
    threads: usize,
}

impl ProphetTrainer {
    /// Compiles the Stan optimizer once for the process (1-2 s).
    pub fn new(args: ProphetArgs) -> anyhow::Result<ProphetTrainer> {
        Ok(ProphetTrainer { fitter: Fitter::new()?, config: args.config()?, threads: args.threads.max(1) })
    }
}

impl ModelTrainer for ProphetTrainer {
    fn model_type(&self) -> ModelType {
        ModelType::Prophet
    }

    fn params(&self) -> Vec<(String, String)> {
        let c = &self.config;
        vec![
            ("n_changepoints".into(), c.n_changepoints.to_string()),
            ("changepoint_range".into(), c.changepoint_range.to_string()),
            ("changepoint_prior_scale".into(), c.changepoint_prior_scale.to_string()),
            ("seasonality_prior_scale".into(), c.seasonality_prior_scale.to_string()),
            ("holidays_prior_scale".into(), c.holidays_prior_scale.to_string()),
            ("seasonality_mode".into(), format!("{:?}", c.seasonality_mode).to_lowercase()),
            ("interval_width".into(), c.interval_width.to_string()),
            ("threads".into(), self.threads.to_string()),
        ]
    }

    fn train(
        &self,
        data: &Prepared,
        progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Trained, TrainError> {
        let roles = &data.meta.roles;
        let column = |frame: &series::Frame, name: &str| -> Result<Vec<f64>, TrainError> {
            frame.column(name).map(<[f64]>::to_vec).ok_or_else(|| TrainError::Data(format!("no column `{name}`")))
        };
        let targets = roles
            .targets
            .iter()
            .map(|t| Ok((t.clone(), column(&data.train, t)?)))
            .collect::<Result<Vec<_>, TrainError>>()?;
        let started = Instant::now();
        let fitted = self
            .fitter
            .fit_all(&self.config, &data.train.timestamps, &targets, self.threads)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        let p = Progress {
            step: 1,
            total: 1,
            train_loss: f64::NAN,
            val_loss: f64::NAN,
            seconds: started.elapsed().as_secs_f64(),
        };
        if progress(&p).is_break() {
            return Err(TrainError::Cancelled);
        }
        let forecasts = fitted.predict(&data.test.timestamps).map_err(|e| TrainError::Data(e.to_string()))?;

        // Test predictions in the windows' layout: window i, step s, target j
        // is the forecast for test row first_target_row[i] + s.
        let w = &data.test_windows;
        let actuals = forecasts.iter().map(|f| column(&data.test, &f.name)).collect::<Result<Vec<_>, TrainError>>()?;
        let mut preds = vec![0f32; w.y.len()];
        let mut one_step = vec![0f32; w.y.len()];
        for i in 0..w.n {
            // One-step-ahead equivalent: add the forecast's error on the last
            // row the window has seen.
            let seen = w.first_target_row[i] - 1;
            for s in 0..w.output_len {
                let row = w.first_target_row[i] + s;
                for (j, (f, actual)) in forecasts.iter().zip(&actuals).enumerate() {
                    let k = (i * w.output_len + s) * w.n_targets + j;
                    preds[k] = f.yhat[row] as f32;
                    one_step[k] = (f.yhat[row] + (actual[seen] - f.yhat[seen])) as f32;
                }
            }
        }
        let one =
            series::evaluate(&one_step, w, roles, &data.meta.scaler).map_err(|e| TrainError::Data(e.to_string()))?;
        let band_png = interval_png(data, &forecasts);
        let mut extra_files = vec![];
        if let Ok(png) = band_png {
            extra_files.push(("forecast_interval.png".to_string(), png));
        }
        let card_notes = format!(
            "## Protocols\n\n\
             - The test metrics above are Prophet's forecast of every test row from the end of training\n\
               (`from_train_end`): no actual test value is used.\n\
             - One-step-ahead equivalent (forecast plus its error on the previous row, the information a\n\
               one-step model has): RMSE {:.6}, MAE {:.6}, MSE {:.6} (scaled), logged as `one_step_equiv_*`.\n\
             - The baselines are one-step-ahead (last value, value one season earlier).\n\n\
             Fitted {} targets in {:.2} s on {} threads.",
            one.scaled.rmse,
            one.scaled.mae,
            one.scaled.mse,
            targets.len(),
            p.seconds,
            self.threads
        );
        Ok(Trained {
            format: ModelFormat::ProphetJson,
            model_file: ("prophet.json".into(), fitted.to_json().into_bytes()),
            test_predictions: preds,
            protocol: EvalProtocol::FromTrainEnd,
            history: vec![],
            extra_metrics: vec![
                ("one_step_equiv_rmse".into(), one.scaled.rmse),
                ("one_step_equiv_mae".into(), one.scaled.mae),
                ("one_step_equiv_mse".into(), one.scaled.mse),
                ("fit_seconds".into(), p.seconds),
            ],
            card_notes,
            extra_files,
        })
    }
}

/// Forecast with its uncertainty interval over the test part, original units.
fn interval_png(data: &Prepared, forecasts: &[prophet_model::Forecast]) -> Result<Vec<u8>, String> {
    let scaler = &data.meta.scaler;
    let ts = &data.test.timestamps;
    let mut panels = Vec::new();
    for f in forecasts {
        let inv = |v: f64| scaler.inverse_value(&f.name, v).map_err(|e| e.to_string());
        let actual = data.test.column(&f.name).ok_or("missing test column")?;
        let mut a = Vec::with_capacity(ts.len());
        let mut y = Vec::with_capacity(ts.len());
        let mut band = Vec::with_capacity(ts.len());
        for (r, &t) in ts.iter().enumerate() {
            a.push((t as f64, inv(actual[r])?));
            y.push((t as f64, inv(f.yhat[r])?));
            band.push((t as f64, inv(f.lower[r])?, inv(f.upper[r])?));
        }
        panels.push(plots::Panel {
            title: f.name.clone(),
            y_label: f.name.clone(),
            lines: vec![
                plots::Series { name: "actual".into(), points: a },
                plots::Series { name: "Prophet".into(), points: y },
            ],
            band: Some(plots::Band { name: "uncertainty interval".into(), points: band }),
        });
    }
    let fig = plots::Figure {
        title: "Prophet: forecast from the end of training, with interval".into(),
        x_label: "time (UTC)".into(),
        time_axis: true,
        panels,
    };
    plots::render_png(&fig).map_err(|e| e.to_string())
}

/// The `prophet` binary's command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "prophet", version, about = "Fit Prophet forecasters from training-data claim checks")]
pub struct Cli {
    #[command(flatten)]
    pub model: ProphetArgs,
    #[command(flatten)]
    pub trainer: TrainerCli,
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }
}
