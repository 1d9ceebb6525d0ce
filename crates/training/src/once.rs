//! `--once`: one fit from local files with no broker, S3 or MLflow. Writes
//! the same artifacts a service run uploads to an output folder. The
//! benchmarks use it, and it is the quickest way to debug a trainer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::Utc;
use tokio_util::sync::CancellationToken;

use crate::{InputArgs, ModelTrainer, WindowArgs, report};

/// Flags of the one-shot mode.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OnceArgs {
    /// Train once from local files and exit (no broker, S3 or MLflow needed).
    #[arg(long)]
    pub once: bool,
    /// Processed train Parquet (as written by `preprocess --once --output DIR`).
    #[arg(long, env = "ONCE_TRAIN", requires = "once")]
    pub train: Option<PathBuf>,
    /// Processed test Parquet of the same config_hash.
    #[arg(long, env = "ONCE_TEST", requires = "once")]
    pub test: Option<PathBuf>,
    /// Folder for the model, scaler, model card, predictions and plots.
    #[arg(long, env = "ONCE_OUTPUT", default_value = "train-output")]
    pub output: PathBuf,
}

/// Summary of a one-shot fit, also written as `metrics.json`.
#[derive(Debug, serde::Serialize)]
pub struct OnceSummary {
    pub model_type: String,
    pub seconds: f64,
    pub epochs: usize,
    pub seconds_per_epoch: Option<f64>,
    pub test: contracts::Metrics,
    pub per_target: std::collections::BTreeMap<String, contracts::Metrics>,
    pub baselines: contracts::Baselines,
    /// The chosen candidate's validation scores and choice.
    pub validation: contracts::Validation,
    /// Test NRMSE per target (RMSE / mean of the actuals), the model's.
    pub test_nrmse: std::collections::BTreeMap<String, f64>,
}

pub async fn run<T: ModelTrainer>(
    trainer: Arc<T>,
    args: &OnceArgs,
    window: &WindowArgs,
    input: &InputArgs,
    cancel: CancellationToken,
) -> anyhow::Result<()> {
    let (Some(train), Some(test)) = (&args.train, &args.test) else {
        bail!("--once needs --train FILE and --test FILE (processed Parquet from `preprocess --once`)");
    };
    let summary = fit_files(trainer, train, test, &args.output, window, input, cancel).await?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

/// Fit on two processed Parquet files and write every artifact to `output`.
pub async fn fit_files<T: ModelTrainer>(
    trainer: Arc<T>,
    train: &Path,
    test: &Path,
    output: &Path,
    window: &WindowArgs,
    input: &InputArgs,
    cancel: CancellationToken,
) -> anyhow::Result<OnceSummary> {
    let read = |p: &Path| -> anyhow::Result<Vec<u8>> {
        let size = std::fs::metadata(p).with_context(|| format!("read {}", p.display()))?.len();
        if size > input.max_object_bytes {
            bail!("{}: {size} bytes is over the limit MAX_OBJECT_BYTES = {}", p.display(), input.max_object_bytes);
        }
        std::fs::read(p).with_context(|| format!("read {}", p.display()))
    };
    let (train_bytes, test_bytes) = (read(train)?, read(test)?);
    let data = input
        .prepare(&train_bytes, &test_bytes, None, window)
        .map_err(|e| anyhow::anyhow!("{}: {}", e.code, e.message()))?;
    let model_type = trainer.model_type();
    let params = trainer.params();
    let started = std::time::Instant::now();
    let train_start = Utc::now();
    let crate::service::Fitted { base: data, chosen, scored: trained } =
        crate::service::fit(trainer, data, cancel).await.map_err(|e| anyhow::anyhow!(e.message()))?;
    let seconds = started.elapsed().as_secs_f64();
    let eval = report::evaluate(&data, &trained).map_err(anyhow::Error::msg)?;

    std::fs::create_dir_all(output).with_context(|| format!("create {}", output.display()))?;
    let write = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        let path = output.join(name);
        std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))
    };
    write(&trained.model_file.0, &trained.model_file.1)?;
    write("scaler.json", chosen.data.meta.scaler.to_json().as_bytes())?;
    let card = report::CardInput {
        model_type,
        identifier: "local",
        run_id: "(--once, no MLflow run)",
        params: &params,
        train_start,
        train_end: Utc::now(),
    };
    write("model_card.md", &chosen.model_card(report::model_card(&card, &data, &trained, &eval), &data))?;
    write("validation_predictions.parquet", &report::validation_parquet(&data, &trained).map_err(anyhow::Error::msg)?)?;
    write("test_predictions.csv", report::predictions_csv(&data, &trained).map_err(anyhow::Error::msg)?.as_bytes())?;
    write("test_predictions.parquet", &report::predictions_parquet(&data, &trained).map_err(anyhow::Error::msg)?)?;
    if let Some(png) = report::loss_curve_png(model_type, &trained) {
        write("loss_curve.png", &png.map_err(anyhow::Error::msg)?)?;
    }
    write("forecast.png", &report::forecast_png(model_type, &data, &trained).map_err(anyhow::Error::msg)?)?;
    for (name, bytes) in &trained.extra_files {
        write(name, bytes)?;
    }
    // The folder is an MLflow Model too: `mlflow.pyfunc.load_model(<output>)` loads a network.
    let description = crate::mlmodel::ModelDescription {
        run_id: None,
        model_type,
        data: &chosen.data,
        trained: &chosen.trained,
        created: Utc::now(),
    };
    for (name, bytes) in crate::mlmodel::model_files(&description) {
        write(name.trim_start_matches("model/"), &bytes)?;
    }
    let epochs = trained.history.len();
    let summary = OnceSummary {
        model_type: model_type.to_string(),
        seconds,
        epochs,
        seconds_per_epoch: (epochs > 0).then(|| trained.history.iter().map(|p| p.seconds).sum::<f64>() / epochs as f64),
        test: eval.scaled,
        per_target: eval.per_target.clone(),
        baselines: data.baselines.clone(),
        validation: chosen.validation_summary(&data),
        test_nrmse: report::nrmse(&data, &trained.test_predictions)
            .map_err(anyhow::Error::msg)?
            .into_iter()
            .filter_map(|r| r.model.map(|v| (r.target, v)))
            .collect(),
    };
    write("metrics.json", serde_json::to_string_pretty(&summary)?.as_bytes())?;
    // The SUCCESS event the service would publish, for `eval --once --events`.
    let model_sha256 = claim_check::sha256_hex(&trained.model_file.1);
    let event = contracts::ModelTraining {
        v: contracts::V1,
        identifier: "local".into(),
        model_type,
        config_hash: data.meta.config_hash.clone(),
        run_id: format!("once-{}", model_type.as_str().to_lowercase()),
        status: contracts::TrainingStatus::Success(Box::new(crate::service::success_payload(
            &data,
            &chosen,
            &trained,
            &eval,
            (train_start, Utc::now()),
            &format!("file://{}", output.display()),
            &model_sha256,
        ))),
    };
    write("event.json", &serde_json::to_vec_pretty(&event)?)?;
    Ok(summary)
}
