//! The Prophet trainer stage (seed 002's `nonml_prophet`): one Prophet model
//! per target column, fitted in parallel, behind the same trainer plumbing,
//! message contract and evaluation protocol as the GRU/LSTM trainers.
//!
//! Each target is fitted in its original units (the processed data's scaler
//! undone), as Python Prophet on the raw columns, and the saved model has the
//! scaler folded back in, so it forecasts in scaled units like the others.
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
use prophet_model::{FittedSet, Fitter, ProphetConfig, RegressorSpec, SeasonalityMode, SeasonalitySwitch};
use training::{ModelTrainer, Prepared, Progress, TrainError, Trained, TrainerCli};

/// Prophet's settings. Each one left unset takes the config file's value, else Prophet's default (given in
/// brackets).
#[derive(Debug, Clone, clap::Args)]
pub struct ProphetArgs {
    /// Potential changepoints of the trend [25].
    #[arg(long, env = "PROPHET_N_CHANGEPOINTS")]
    pub n_changepoints: Option<u32>,
    /// Share of the history in which changepoints may lie [0.8].
    #[arg(long, env = "PROPHET_CHANGEPOINT_RANGE")]
    pub changepoint_range: Option<f64>,
    /// Flexibility of the trend: scale of the Laplace prior on trend changes [0.05].
    #[arg(long, env = "PROPHET_CHANGEPOINT_PRIOR_SCALE")]
    pub changepoint_prior_scale: Option<f64>,
    /// Strength of the seasonality: scale of the prior on its coefficients [10].
    #[arg(long, env = "PROPHET_SEASONALITY_PRIOR_SCALE")]
    pub seasonality_prior_scale: Option<f64>,
    /// Strength of holiday effects (and the default for regressors) [10].
    #[arg(long, env = "PROPHET_HOLIDAYS_PRIOR_SCALE")]
    pub holidays_prior_scale: Option<f64>,
    /// additive or multiplicative seasonality, holidays and regressors [additive].
    #[arg(long, env = "PROPHET_SEASONALITY_MODE", value_parser = parse_mode)]
    pub seasonality_mode: Option<SeasonalityMode>,
    /// Daily seasonality: auto, on, off or a Fourier order [auto].
    #[arg(long, env = "PROPHET_DAILY_SEASONALITY", value_parser = parse_switch)]
    pub daily_seasonality: Option<SeasonalitySwitch>,
    /// Weekly seasonality: auto, on, off or a Fourier order [auto].
    #[arg(long, env = "PROPHET_WEEKLY_SEASONALITY", value_parser = parse_switch)]
    pub weekly_seasonality: Option<SeasonalitySwitch>,
    /// Yearly seasonality: auto, on, off or a Fourier order [auto].
    #[arg(long, env = "PROPHET_YEARLY_SEASONALITY", value_parser = parse_switch)]
    pub yearly_seasonality: Option<SeasonalitySwitch>,
    /// Country whose public holidays are modelled (built in: US); empty for none [none].
    #[arg(long, env = "PROPHET_COUNTRY_HOLIDAYS")]
    pub country_holidays: Option<String>,
    /// Feature columns used as extra regressors, comma-separated; empty for none [none]. The test
    /// forecast then uses their actual test values.
    #[arg(long, env = "PROPHET_REGRESSORS")]
    pub regressors: Option<String>,
    /// Width of the uncertainty interval [0.8].
    #[arg(long, env = "PROPHET_INTERVAL_WIDTH")]
    pub interval_width: Option<f64>,
    /// Simulated draws behind the interval; 0 for none [1000].
    #[arg(long, env = "PROPHET_UNCERTAINTY_SAMPLES")]
    pub uncertainty_samples: Option<u32>,
    /// Full Prophet config as JSON (`prophet_model::ProphetConfig`: custom seasonalities, holidays with
    /// dates, regressor options); the settings above override it.
    #[arg(long, env = "PROPHET_CONFIG_FILE")]
    pub config_file: Option<std::path::PathBuf>,
    /// Targets fitted at once (one model per target, each on one core).
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

fn parse_switch(s: &str) -> Result<SeasonalitySwitch, String> {
    match s {
        "auto" => Ok(SeasonalitySwitch::Auto),
        "on" | "true" => Ok(SeasonalitySwitch::On),
        "off" | "false" => Ok(SeasonalitySwitch::Off),
        order => match order.parse::<u32>() {
            Ok(n) if n > 0 => Ok(SeasonalitySwitch::Order(n)),
            _ => Err(format!("`{order}`: expected auto, on, off or a Fourier order of at least 1")),
        },
    }
}

impl ProphetArgs {
    /// The config file (or Prophet's defaults) with every set flag applied, validated.
    pub fn config(&self) -> anyhow::Result<ProphetConfig> {
        let mut cfg: ProphetConfig = match &self.config_file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| anyhow::anyhow!("read {}: {e}", p.display()))?;
                serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?
            }
            None => ProphetConfig::default(),
        };
        fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *field = v.clone();
            }
        }
        set(&mut cfg.n_changepoints, &self.n_changepoints);
        set(&mut cfg.changepoint_range, &self.changepoint_range);
        set(&mut cfg.changepoint_prior_scale, &self.changepoint_prior_scale);
        set(&mut cfg.seasonality_prior_scale, &self.seasonality_prior_scale);
        set(&mut cfg.holidays_prior_scale, &self.holidays_prior_scale);
        set(&mut cfg.seasonality_mode, &self.seasonality_mode);
        set(&mut cfg.daily_seasonality, &self.daily_seasonality);
        set(&mut cfg.weekly_seasonality, &self.weekly_seasonality);
        set(&mut cfg.yearly_seasonality, &self.yearly_seasonality);
        set(&mut cfg.interval_width, &self.interval_width);
        set(&mut cfg.uncertainty_samples, &self.uncertainty_samples);
        if let Some(country) = &self.country_holidays {
            cfg.country_holidays = (!country.trim().is_empty()).then(|| country.trim().to_string());
        }
        if let Some(list) = &self.regressors {
            let names: Vec<&str> = list.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
            // Keep the file's options for a listed regressor; drop the ones not listed.
            cfg.regressors = names
                .iter()
                .map(|n| {
                    cfg.regressors.iter().find(|r| r.name == *n).cloned().unwrap_or_else(|| RegressorSpec::new(*n))
                })
                .collect();
        }
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
    /// The trainer for these settings.
    pub fn new(args: ProphetArgs) -> anyhow::Result<ProphetTrainer> {
        Ok(ProphetTrainer { fitter: Fitter::new(), config: args.config()?, threads: args.threads.max(1) })
    }
}

impl ProphetTrainer {
    /// Forecasts of the validation windows' targets (scaled, the windows'
    /// layout) by a fit on the training rows that are not validation targets
    /// (Prophet fits irregular series), predicting the validation rows.
    fn validation_predictions(&self, data: &Prepared) -> Result<Vec<f32>, TrainError> {
        let w = &data.val_windows;
        if w.n == 0 {
            return Ok(Vec::new());
        }
        let pick = |keep: bool| -> Vec<usize> {
            (0..data.train.len()).filter(|&r| data.val_rows.get(r).copied().unwrap_or(false) != keep).collect()
        };
        let (fit_rows, val_rows) = (pick(true), pick(false));
        let (head, tail) = (data.train.take(&fit_rows), data.train.take(&val_rows));
        let fitted = self.fit_scaled(data, &head).map_err(|e| TrainError::Data(format!("validation fit: {e}")))?;
        let forecasts = self.forecast(&fitted, data, &tail)?;
        let mut preds = vec![0f32; w.y.len()];
        for i in 0..w.n {
            for s in 0..w.output_len {
                let row = val_rows
                    .binary_search(&(w.first_target_row[i] + s))
                    .map_err(|_| TrainError::Data("a validation target row is not among the validation rows".into()))?;
                for (j, f) in forecasts.iter().enumerate() {
                    preds[(i * w.output_len + s) * w.n_targets + j] = f.yhat[row] as f32;
                }
            }
        }
        Ok(preds)
    }

    /// Prophet fitted on `frame`'s rows. It fits the columns in their original
    /// units, as Python Prophet on the raw data: its priors and multiplicative
    /// terms are relative to the data's own scale and zero. The fitted model
    /// then forecasts in the scaler's units, like every other model type: the
    /// scaler's affine map is folded into its parameters (exactly).
    fn fit_scaled(&self, data: &Prepared, frame: &series::Frame) -> Result<FittedSet, TrainError> {
        let roles = &data.meta.roles;
        let targets = roles
            .targets
            .iter()
            .map(|t| Ok((t.clone(), original_column(data, frame, t)?)))
            .collect::<Result<Vec<_>, TrainError>>()?;
        let mut fitted = self
            .fitter
            .fit_all(&self.config, &frame.timestamps, &targets, &self.regressors(data, frame)?, self.threads)
            .map_err(|e| TrainError::Data(e.to_string()))?;
        for t in &roles.targets {
            let c = data
                .meta
                .scaler
                .columns
                .iter()
                .find(|c| &c.name == t)
                .ok_or_else(|| TrainError::Data(format!("the scaler has no entry for target `{t}`")))?;
            fitted.rescale(t, c.offset, c.scale).map_err(|e| TrainError::Data(e.to_string()))?;
        }
        Ok(fitted)
    }

    /// `fitted`'s forecasts (scaled) at `frame`'s timestamps.
    fn forecast(
        &self,
        fitted: &FittedSet,
        data: &Prepared,
        frame: &series::Frame,
    ) -> Result<Vec<prophet_model::Forecast>, TrainError> {
        fitted
            .predict_with_regressors(&frame.timestamps, &self.regressors(data, frame)?)
            .map_err(|e| TrainError::Data(e.to_string()))
    }

    /// The extra regressors' columns of `frame`, original units.
    fn regressors(&self, data: &Prepared, frame: &series::Frame) -> Result<Vec<(String, Vec<f64>)>, TrainError> {
        self.config.regressors.iter().map(|r| Ok((r.name.clone(), original_column(data, frame, &r.name)?))).collect()
    }
}

/// `name`'s column of `frame` back in original units.
fn original_column(data: &Prepared, frame: &series::Frame, name: &str) -> Result<Vec<f64>, TrainError> {
    let values = frame.column(name).ok_or_else(|| TrainError::Data(format!("no column `{name}`")))?;
    let scaler = &data.meta.scaler;
    values.iter().map(|v| scaler.inverse_value(name, *v).map_err(|e| TrainError::Data(e.to_string()))).collect()
}

impl ModelTrainer for ProphetTrainer {
    fn model_type(&self) -> ModelType {
        ModelType::Prophet
    }

    fn params(&self) -> Vec<(String, String)> {
        let c = &self.config;
        let switch = |s: SeasonalitySwitch| match s {
            SeasonalitySwitch::Auto => "auto".to_string(),
            SeasonalitySwitch::On => "on".to_string(),
            SeasonalitySwitch::Off => "off".to_string(),
            SeasonalitySwitch::Order(n) => n.to_string(),
        };
        let names = |v: Vec<&str>| if v.is_empty() { "none".to_string() } else { v.join(",") };
        vec![
            ("n_changepoints".into(), c.n_changepoints.to_string()),
            ("changepoint_range".into(), c.changepoint_range.to_string()),
            ("changepoint_prior_scale".into(), c.changepoint_prior_scale.to_string()),
            ("seasonality_prior_scale".into(), c.seasonality_prior_scale.to_string()),
            ("holidays_prior_scale".into(), c.holidays_prior_scale.to_string()),
            ("seasonality_mode".into(), format!("{:?}", c.seasonality_mode).to_lowercase()),
            ("daily_seasonality".into(), switch(c.daily_seasonality)),
            ("weekly_seasonality".into(), switch(c.weekly_seasonality)),
            ("yearly_seasonality".into(), switch(c.yearly_seasonality)),
            ("custom_seasonalities".into(), names(c.custom_seasonalities.iter().map(|s| s.name.as_str()).collect())),
            ("holidays".into(), names(c.holidays.iter().map(|h| h.name.as_str()).collect())),
            ("country_holidays".into(), c.country_holidays.clone().unwrap_or_else(|| "none".into())),
            ("regressors".into(), names(c.regressors.iter().map(|r| r.name.as_str()).collect())),
            ("interval_width".into(), c.interval_width.to_string()),
            ("uncertainty_samples".into(), c.uncertainty_samples.to_string()),
            ("threads".into(), self.threads.to_string()),
        ]
    }

    fn train(
        &self,
        data: &Prepared,
        _seed: Option<u64>,
        progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<Trained, TrainError> {
        let roles = &data.meta.roles;
        let val_predictions = self.validation_predictions(data)?;
        let started = Instant::now();
        let fitted = self.fit_scaled(data, &data.train)?;
        let p = Progress {
            step: 1,
            total: 1,
            train_loss: f64::NAN,
            val_loss: f64::NAN,
            seconds: started.elapsed().as_secs_f64(),
            val_predictions: None,
        };
        if progress(&p).is_break() {
            return Err(TrainError::Cancelled);
        }
        let forecasts = self.forecast(&fitted, data, &data.test)?;

        // Test predictions in the windows' layout: window i, step s, target j
        // is the forecast for test row first_target_row[i] + s.
        let w = &data.test_windows;
        let actuals = forecasts
            .iter()
            .map(|f| data.test.column(&f.name).ok_or_else(|| TrainError::Data(format!("no test column `{}`", f.name))))
            .collect::<Result<Vec<_>, TrainError>>()?;
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
        let mut extra_files = vec![];
        match interval_png(data, &forecasts) {
            Ok(png) => extra_files.push(("forecast_interval.png".to_string(), png)),
            Err(e) => tracing::warn!(error = %e, "could not render the interval plot"),
        }
        // The point forecast as standard ONNX: MLflow's onnx flavor loads it without this project.
        if let Some(onnx) = prophet_model::onnx::export_onnx(&fitted) {
            extra_files.push((training::mlmodel::PROPHET_ONNX.to_string(), onnx));
        }
        let regressor_note = if self.config.regressors.is_empty() {
            String::new()
        } else {
            format!(
                " The extra regressors ({}) take their actual test values: the forecast knows them.",
                self.config.regressors.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
            )
        };
        let mut per_target = String::new();
        for (t, m) in &one.per_target {
            per_target.push_str(&format!("| {t} | {:.6} | {:.6} |\n", m.rmse, m.mae));
        }
        let card_notes = format!(
            "## Protocols\n\n\
             - **Test metrics above: `from_train_end`.** Prophet forecasts every test row from the end of\n\
               training; no actual test value is used.{regressor_note}\n\
             - **Baselines: one step ahead** (last value; value one season earlier), from actual values.\n\
             - **One-step-ahead equivalent** (Prophet's forecast plus its error on the row before, the\n\
               information a one-step model has): RMSE {:.6}, MAE {:.6}, MSE {:.6} (scaled), logged as\n\
               `one_step_equiv_*`. Per target, original units:\n\n\
             | target | RMSE | MAE |\n|---|---|---|\n{per_target}\n\
             ## Fit\n\n\
             Prophet's model (piecewise-linear trend, Fourier seasonalities, holidays, regressors), MAP fit\n\
             (Stan's L-BFGS, run natively, as Python Prophet's default), one model per target, fitted on the original units\n\
             of each column. `prophet.json` forecasts in the dataset's scaled units (the scaler is folded in).\n\
             Fitted {} targets in {:.2} s on {} threads.",
            one.scaled.rmse,
            one.scaled.mae,
            one.scaled.mse,
            roles.targets.len(),
            p.seconds,
            self.threads
        );
        let mut extra_metrics = vec![
            ("one_step_equiv_rmse".into(), one.scaled.rmse),
            ("one_step_equiv_mae".into(), one.scaled.mae),
            ("one_step_equiv_mse".into(), one.scaled.mse),
            ("fit_seconds".into(), p.seconds),
        ];
        for (t, m) in &one.per_target {
            extra_metrics.push((format!("one_step_equiv_rmse_{t}"), m.rmse));
            extra_metrics.push((format!("one_step_equiv_mae_{t}"), m.mae));
        }
        Ok(Trained {
            format: ModelFormat::ProphetJson,
            model_file: ("prophet.json".into(), fitted.to_json().into_bytes()),
            val_predictions,
            test_predictions: preds,
            protocol: EvalProtocol::FromTrainEnd,
            history: vec![],
            extra_metrics,
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
    use clap::Parser;

    use super::*;

    #[test]
    fn cli_is_well_formed() {
        <super::Cli as clap::CommandFactory>::command().debug_assert();
    }

    fn parse(args: &[&str]) -> ProphetConfig {
        let cli = Cli::try_parse_from(std::iter::once("prophet").chain(args.iter().copied())).expect("valid flags");
        cli.model.config().expect("valid config")
    }

    #[test]
    fn unset_flags_give_prophets_defaults() {
        assert_eq!(parse(&[]), ProphetConfig::default());
    }

    #[test]
    fn flags_override_the_config_file_and_only_when_set() {
        let dir = std::env::temp_dir().join(format!("prophet-args-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("prophet.json");
        let json = r#"{"n_changepoints": 50, "changepoint_prior_scale": 0.1,
            "custom_seasonalities": [{"name": "hourly", "period_days": 0.0416667, "fourier_order": 2}],
            "regressors": [{"name": "mcs_down", "prior_scale": 3.0}]}"#;
        std::fs::write(&file, json).expect("write config");
        let path = file.to_str().expect("utf-8 path");
        let cfg = parse(&["--config-file", path, "--changepoint-prior-scale", "0.2", "--country-holidays", "US"]);
        assert_eq!(cfg.n_changepoints, 50, "kept from the file");
        assert_eq!(cfg.changepoint_prior_scale, 0.2, "the flag wins");
        assert_eq!(cfg.custom_seasonalities[0].name, "hourly");
        assert_eq!(cfg.country_holidays.as_deref(), Some("US"));
        assert_eq!(cfg.regressors[0].prior_scale, Some(3.0));
        let cfg = parse(&[
            "--config-file",
            path,
            "--regressors",
            "mcs_down, mcs_up",
            "--daily-seasonality",
            "6",
            "--weekly-seasonality",
            "off",
            "--seasonality-mode",
            "multiplicative",
        ]);
        let names: Vec<&str> = cfg.regressors.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["mcs_down", "mcs_up"]);
        assert_eq!(cfg.regressors[0].prior_scale, Some(3.0), "the file's options for a listed regressor stay");
        assert_eq!(cfg.daily_seasonality, SeasonalitySwitch::Order(6));
        assert_eq!(cfg.weekly_seasonality, SeasonalitySwitch::Off);
        assert_eq!(cfg.seasonality_mode, SeasonalityMode::Multiplicative);
        assert!(parse(&["--config-file", path, "--regressors", ""]).regressors.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Cli::try_parse_from(["prophet", "--daily-seasonality", "0"]).is_err());
        assert!(Cli::try_parse_from(["prophet", "--seasonality-mode", "additiv"]).is_err());
        let cli = Cli::try_parse_from(["prophet", "--country-holidays", "FR"]).expect("parses");
        let err = cli.model.config().expect_err("no FR calendar").to_string();
        assert!(err.contains("FR"), "{err}");
    }
}
