//! `--once`: forecast one local file with one local model directory, with no
//! broker, S3 or MLflow. The model directory is what `train-gru --once
//! --output DIR` (or `train-lstm`, `prophet`) writes; the input is a raw CSV
//! or Parquet file, or a processed Parquet from `preprocess --once`. Every
//! window of the model's input length is forecast as batch inference does
//! (inputs clipped and forecasts floored by the model's scaler, actuals as
//! they are in the file), and `forecasts.jsonl`, `forecast.png` and
//! `summary.json` are written to the output folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use series::{Column, Frame, Roles, Scaler};

use crate::batch::{self, BatchArgs};

/// Flags of the one-shot mode.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OnceArgs {
    /// Forecast one local file with a local model directory and exit (no broker, S3 or MLflow).
    #[arg(long)]
    pub once: bool,
    /// Model directory as `train-gru --once --output DIR` writes it (event.json, the model file, scaler.json).
    #[arg(long = "model", env = "ONCE_MODEL", requires = "once")]
    pub model_dir: Option<PathBuf>,
    /// File to forecast: raw CSV or Parquet, or processed Parquet (`preprocess --once`).
    #[arg(long, env = "ONCE_INPUT", requires = "once")]
    pub input: Option<PathBuf>,
    /// Folder for forecasts.jsonl, forecast.png and summary.json.
    #[arg(long, env = "ONCE_OUTPUT", default_value = "inference-output")]
    pub output: PathBuf,
    /// Timestamp column of a raw file; found by name or values when not given.
    #[arg(long, env = "ONCE_TIMESTAMP_COLUMN")]
    pub timestamp_column: Option<String>,
}

/// What `--once` printed and wrote as `summary.json`.
#[derive(Debug, serde::Serialize)]
pub struct OnceSummary {
    pub model_version: String,
    pub input: String,
    /// `processed` or `raw`.
    pub input_kind: &'static str,
    pub rows: usize,
    pub windows: usize,
    /// Scaled units (the model scaler's), as performance-eval reports.
    pub metrics: contracts::Metrics,
    /// Original units, per target.
    pub per_target: BTreeMap<String, contracts::Metrics>,
    pub forecasts: PathBuf,
    pub plot: Option<PathBuf>,
}

/// Run `--once` with `args`; prints the summary.
pub fn run(args: &OnceArgs, batch_args: &BatchArgs) -> anyhow::Result<OnceSummary> {
    let (Some(model_dir), Some(input)) = (&args.model_dir, &args.input) else {
        bail!("--once needs --model DIR (from `train-gru --once --output DIR`) and --input FILE (CSV or Parquet)");
    };
    let summary = forecast_file(model_dir, input, &args.output, args.timestamp_column.as_deref(), batch_args)?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(summary)
}

/// Forecast `input` with the model in `model_dir`; write the results to `output`.
pub fn forecast_file(
    model_dir: &Path,
    input: &Path,
    output: &Path,
    timestamp_column: Option<&str>,
    batch_args: &BatchArgs,
) -> anyhow::Result<OnceSummary> {
    let model = model_runtime::loader::load_dir(model_dir)
        .with_context(|| format!("load the model in {}", model_dir.display()))?;
    let name = input.display().to_string();
    let bytes = std::fs::read(input).with_context(|| format!("read {name}"))?;
    let (frame, data_scaler, roles, input_kind) = match dataset::read_processed(&bytes) {
        Ok((frame, meta)) => (frame, meta.scaler, meta.roles, "processed"),
        Err(processed) => match read_raw(&name, &bytes, timestamp_column, &model.scaler, &model.info) {
            Ok((frame, roles)) => (frame, model.scaler.clone(), roles, "raw"),
            Err(raw) => bail!("{name} is neither processed Parquet ({processed}) nor a raw file we can read: {raw:#}"),
        },
    };
    let title = format!("{name}: {} {} forecast vs actual", model.info.model_type, model.info.run_id);
    let plot = batch_args.plot.then_some(title.as_str());
    let computed = batch::compute_frame(&frame, &data_scaler, &roles, &model, batch_args.chunk_windows, plot, &name)?;

    std::fs::create_dir_all(output).with_context(|| format!("create {}", output.display()))?;
    let write = |file: &str, bytes: &[u8]| -> anyhow::Result<PathBuf> {
        let path = output.join(file);
        std::fs::write(&path, bytes).with_context(|| format!("write {}", path.display()))?;
        Ok(path)
    };
    let forecasts = write("forecasts.jsonl", &computed.jsonl)?;
    let plot = computed.png.as_deref().map(|png| write("forecast.png", png)).transpose()?;
    let summary = OnceSummary {
        model_version: model.info.version.clone(),
        input: name,
        input_kind,
        rows: computed.rows,
        windows: computed.windows,
        metrics: computed.evaluation.scaled,
        per_target: computed.evaluation.per_target,
        forecasts,
        plot,
    };
    write("summary.json", serde_json::to_string_pretty(&summary)?.as_bytes())?;
    Ok(summary)
}

/// A raw file's model columns (features, then targets) scaled by the model's
/// scaler, and their roles (the sampling interval is the median step).
fn read_raw(
    name: &str,
    bytes: &[u8],
    timestamp_column: Option<&str>,
    scaler: &Scaler,
    info: &model_runtime::ModelInfo,
) -> anyhow::Result<(Frame, Roles)> {
    let mut opts = dataset::RawOptions::default();
    opts.timestamp_column = match timestamp_column {
        Some(c) => c.to_string(),
        None => dataset::raw::find_timestamp_column(name, bytes, &opts)?,
    };
    let raw = dataset::read_raw(name, bytes, &opts)?;
    let names: Vec<&String> =
        info.features.iter().chain(info.targets.iter().filter(|t| !info.features.contains(t))).collect();
    let mut columns = Vec::with_capacity(names.len());
    for n in names {
        let values = raw.column(n).with_context(|| {
            format!(
                "{name} has no column `{n}`, which the model reads (a model with calendar features needs the processed Parquet of `preprocess --once`)"
            )
        })?;
        let scaled = values.iter().map(|v| scaler.scale_value(n, *v)).collect::<Result<Vec<_>, _>>()?;
        columns.push(Column::new(n.as_str(), scaled));
    }
    let mut steps: Vec<i64> = raw.timestamps.windows(2).map(|p| p[1] - p[0]).collect();
    steps.sort_unstable();
    let interval_ms = steps.get(steps.len() / 2).copied().filter(|s| *s > 0).context("fewer than two rows")?;
    let frame = Frame::new(raw.timestamps.clone(), columns)?;
    let roles = Roles {
        timestamp: opts.timestamp_column.clone(),
        features: info.features.clone(),
        targets: info.targets.clone(),
        interval_ms,
    };
    Ok((frame, roles))
}
