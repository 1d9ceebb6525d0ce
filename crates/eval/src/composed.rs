//! The MLflow runs of what eval composes (an ensemble or a naive baseline),
//! made like a trainer's so that `flts`, the registry, the monitor and
//! inference use them like any model: tags `flts.identifier`,
//! `flts.config_hash`, `flts.model_type` (ENSEMBLE or BASELINE) and
//! `flts.model_sha256`, metrics `test_*` and `val_*`, a `success.json`, a
//! model card and an `MLmodel` file, FINISHED.
//!
//! Runs are found again by their members (`flts.composed_from`), so a
//! decision taken again after a restart reuses the run instead of making
//! another.
//!
//! - ENSEMBLE: `model/ensemble.json` ([`contracts::ensemble::EnsembleManifest`]),
//!   each member's model and scaler copied under `model/members/<i>/`
//!   (verified against the member's digest), `model/scaler.json` the dataset's.
//! - BASELINE: `model/model.onnx` ([`nn::export_naive`]) and
//!   `model/scaler.json`, the dataset scaler the naive graph's input is scaled with.

use std::collections::BTreeMap;

use chrono::Utc;
use contracts::ensemble::{EnsembleKind, EnsembleManifest, EnsembleMember, MANIFEST_PATH};
use contracts::promotion::{EnsembleReport, run_tags};
use contracts::{
    Baselines, EvalProtocol, Metrics, ModelArtifact, ModelFormat, ModelTraining, ModelType, TrainingStatus,
    TrainingSuccess, V1, Validation,
};
use mlflow_client::{KeyValue, Metric, MlflowClient, MlflowError, RunStatus};

use crate::compose::Build;

/// Tag naming what a composed run was built from (`GRU:<run>,LSTM:<run>`, `last_value:<run>`).
pub const COMPOSED_FROM: &str = "flts.composed_from";

/// Why a composed run could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// MLflow failed (retryable or not, as the error says).
    #[error(transparent)]
    Mlflow(#[from] MlflowError),
    /// The inputs cannot make this model (a member file differs from its digest, a shape is impossible).
    #[error("{0}")]
    Invalid(String),
}

/// The set a composed run belongs to.
pub struct SetRef<'a> {
    pub identifier: &'a str,
    pub config_hash: &'a str,
    pub reports: &'a BTreeMap<ModelType, ModelTraining>,
}

fn success_of<'a>(set: &'a SetRef<'_>, m: ModelType) -> Result<(&'a ModelTraining, &'a TrainingSuccess), ComposeError> {
    let ev = set.reports.get(&m).ok_or_else(|| ComposeError::Invalid(format!("{m} did not report")))?;
    match &ev.status {
        TrainingStatus::Success(s) => Ok((ev, s)),
        _ => Err(ComposeError::Invalid(format!("{m} did not succeed"))),
    }
}

/// Make (or find again) the run of `build` in `experiment_id`; returns its
/// id and the SUCCESS payload it records (what the promotion is made from).
pub async fn build_run(
    mlflow: &MlflowClient,
    experiment_id: &str,
    set: &SetRef<'_>,
    build: &Build,
    dataset_scaler: &[u8],
) -> Result<(String, TrainingSuccess), ComposeError> {
    let (model_type, from) = match build {
        Build::Ensemble { report } => (
            ModelType::Ensemble,
            report.members.iter().map(|m| format!("{}:{}", m.model_type, m.run_id)).collect::<Vec<_>>().join(","),
        ),
        Build::Baseline { name, reference, .. } => {
            (ModelType::Baseline, format!("{name}:{}", success_of(set, *reference)?.0.run_id))
        }
    };
    let filter = mlflow_client::Filter::new()
        .tag_eq(run_tags::IDENTIFIER, set.identifier)
        .and_then(|f| f.tag_eq(run_tags::CONFIG_HASH, set.config_hash))
        .and_then(|f| f.tag_eq(run_tags::MODEL_TYPE, model_type.as_str()))
        .and_then(|f| f.tag_eq(COMPOSED_FROM, &from))
        .and_then(|f| f.attribute_eq("status", "FINISHED"))?;
    let found =
        mlflow.search_runs(&[experiment_id.to_string()], &filter.as_str(), &["attributes.start_time DESC"], 1).await?;
    if let Some(run) = found.into_iter().next() {
        let bytes = mlflow.download_artifact(&run.info.artifact_uri, run_tags::SUCCESS_ARTIFACT).await?;
        let ev: ModelTraining = contracts::decode(&bytes)
            .map_err(|e| ComposeError::Invalid(format!("composed run {}: {e}", run.info.run_id)))?;
        if let TrainingStatus::Success(s) = ev.status {
            return Ok((run.info.run_id, *s));
        }
    }

    let name = format!(
        "{}-{}-{}",
        model_type.as_str().to_lowercase(),
        set.identifier,
        &set.config_hash[..12.min(set.config_hash.len())]
    );
    let tags = [
        KeyValue::new(run_tags::IDENTIFIER, set.identifier),
        KeyValue::new(run_tags::CONFIG_HASH, set.config_hash),
        KeyValue::new(run_tags::MODEL_TYPE, model_type.as_str()),
        KeyValue::new(COMPOSED_FROM, &from),
        KeyValue::new("mlflow.source.name", "eval"),
        KeyValue::new("mlflow.source.type", "JOB"),
    ];
    let run = mlflow.create_run(experiment_id, &name, &tags).await?;
    let (run_id, uri) = (run.info.run_id.clone(), run.info.artifact_uri.clone());
    let result = fill_run(mlflow, set, build, dataset_scaler, &run_id, &uri).await;
    match result {
        Ok(success) => {
            mlflow.update_run(&run_id, RunStatus::Finished).await?;
            Ok((run_id, success))
        }
        Err(e) => {
            let _ = mlflow.update_run(&run_id, RunStatus::Failed).await;
            Err(e)
        }
    }
}

async fn fill_run(
    mlflow: &MlflowClient,
    set: &SetRef<'_>,
    build: &Build,
    dataset_scaler: &[u8],
    run_id: &str,
    uri: &str,
) -> Result<TrainingSuccess, ComposeError> {
    let mut files: Vec<(String, Vec<u8>)> = vec![("model/scaler.json".into(), dataset_scaler.to_vec())];
    let (model_type, artifact, model_bytes, validation, test, baselines, card) = match build {
        Build::Ensemble { report } => {
            let mut members = Vec::new();
            let mut firsts: Option<&TrainingSuccess> = None;
            let (mut features, mut input_len) = (Vec::<String>::new(), 0);
            for (i, m) in report.members.iter().enumerate() {
                let (_, s) = success_of(set, m.model_type)?;
                let digest = s
                    .model_sha256
                    .clone()
                    .ok_or_else(|| ComposeError::Invalid(format!("{} has no digest", m.model_type)))?;
                let model = member_file(mlflow, &s.artifact_uri, &s.model.path).await?;
                if claim_check::sha256_hex(&model) != digest {
                    return Err(ComposeError::Invalid(format!(
                        "{}'s model file differs from its digest",
                        m.model_type
                    )));
                }
                let scaler = member_file(mlflow, &s.artifact_uri, &s.model.scaler_path).await?;
                let file = s.model.path.rsplit('/').next().unwrap_or("model");
                let dir = format!("model/members/{i}");
                files.push((format!("{dir}/{file}"), model));
                files.push((format!("{dir}/scaler.json"), scaler));
                let artifact = ModelArtifact {
                    path: format!("{dir}/{file}"),
                    scaler_path: format!("{dir}/scaler.json"),
                    ..s.model.clone()
                };
                for f in &s.model.features {
                    if !features.contains(f) {
                        features.push(f.clone());
                    }
                }
                input_len = input_len.max(s.model.input_len);
                members.push(EnsembleMember {
                    model_type: m.model_type,
                    run_id: m.run_id.clone(),
                    weight: m.weight,
                    artifact,
                    sha256: digest,
                });
                firsts.get_or_insert(s);
            }
            let first = firsts.ok_or_else(|| ComposeError::Invalid("an ensemble without members".into()))?;
            let manifest = EnsembleManifest { kind: EnsembleKind::WeightedMean, members };
            manifest.check().map_err(ComposeError::Invalid)?;
            let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| ComposeError::Invalid(e.to_string()))?;
            let artifact = ModelArtifact {
                format: ModelFormat::Ensemble,
                path: MANIFEST_PATH.into(),
                scaler_path: "model/scaler.json".into(),
                input_len,
                output_len: first.model.output_len,
                features,
                targets: first.model.targets.clone(),
            };
            let baselines =
                first.validation.as_ref().map(|v| v.baselines.clone()).unwrap_or_else(|| first.baselines.clone());
            let test = report.test.ok_or_else(|| ComposeError::Invalid("the ensemble has no test score".into()))?;
            let card = ensemble_card(set, report);
            (ModelType::Ensemble, artifact, bytes, report.validation, test, (first.baselines.clone(), baselines), card)
        }
        Build::Baseline { naive, name, reference, validation, test } => {
            let (ev, s) = success_of(set, *reference)?;
            let m = &s.model;
            let target_columns = m
                .targets
                .iter()
                .map(|t| m.features.iter().position(|f| f == t))
                .collect::<Option<Vec<usize>>>()
                .ok_or_else(|| ComposeError::Invalid("a target is not among the features: no naive model".into()))?;
            let input_len = match naive {
                nn::Naive::SeasonalNaive { season } => *season,
                nn::Naive::LastValue => m.input_len as usize,
            };
            let spec = nn::NaiveSpec {
                kind: *naive,
                input_len,
                n_features: m.features.len(),
                target_columns,
                output_len: m.output_len as usize,
            };
            let bytes = nn::export_naive(&spec).map_err(|e| ComposeError::Invalid(e.to_string()))?;
            let artifact = ModelArtifact {
                format: ModelFormat::Onnx,
                path: "model/model.onnx".into(),
                scaler_path: "model/scaler.json".into(),
                input_len: input_len as u32,
                ..m.clone()
            };
            let val_baselines =
                s.validation.as_ref().map(|v| v.baselines.clone()).unwrap_or_else(|| s.baselines.clone());
            let card = baseline_card(set, name, &spec, &ev.run_id, *reference, validation, test);
            (ModelType::Baseline, artifact, bytes, *validation, *test, (s.baselines.clone(), val_baselines), card)
        }
    };
    let digest = claim_check::sha256_hex(&model_bytes);
    files.push((artifact.path.clone(), model_bytes));
    files.push(("model/model_card.md".into(), card.into_bytes()));
    files.push(("model/MLmodel".into(), mlmodel(&artifact, run_id, &digest).into_bytes()));
    let now = Utc::now();
    let (test_baselines, val_baselines): (Baselines, Baselines) = baselines;
    let success = TrainingSuccess {
        test_rmse: test.rmse,
        test_mae: test.mae,
        test_mse: test.mse,
        train_start: now,
        train_end: now,
        artifact_uri: uri.to_string(),
        model: artifact,
        model_sha256: Some(digest.clone()),
        protocol: EvalProtocol::OneStepAhead,
        baselines: test_baselines,
        validation: Some(Validation {
            metrics: validation,
            baselines: val_baselines,
            windows: match build {
                Build::Ensemble { report } => report.rows as u32,
                Build::Baseline { .. } => 0,
            },
            candidates: 1,
            choice: match build {
                Build::Ensemble { report } => report
                    .members
                    .iter()
                    .map(|m| (format!("weight {}", m.model_type), format!("{:.6}", m.weight)))
                    .collect(),
                Build::Baseline { name, .. } => BTreeMap::from([("naive".to_string(), name.clone())]),
            },
        }),
    };
    let event = ModelTraining {
        v: V1,
        identifier: set.identifier.to_string(),
        model_type,
        config_hash: set.config_hash.to_string(),
        run_id: run_id.to_string(),
        status: TrainingStatus::Success(Box::new(success.clone())),
    };
    files.push((run_tags::SUCCESS_ARTIFACT.into(), serde_json::to_vec_pretty(&event).unwrap_or_default()));
    for (path, bytes) in files {
        mlflow.upload_artifact(uri, &path, bytes).await?;
    }
    let metrics = [
        ("test_rmse", test.rmse),
        ("test_mae", test.mae),
        ("test_mse", test.mse),
        ("val_rmse", validation.rmse),
        ("val_mae", validation.mae),
        ("val_mse", validation.mse),
    ]
    .map(|(k, v)| Metric::now(k, v, 0));
    mlflow.log_batch(run_id, &metrics, &[], &[KeyValue::new(run_tags::MODEL_SHA256, &digest)]).await?;
    Ok(success)
}

/// A member's file; a missing one is [`ComposeError::Invalid`] (MLflow's
/// artifact proxy answers a missing object with a 500 that names the S3 404).
async fn member_file(mlflow: &MlflowClient, uri: &str, path: &str) -> Result<Vec<u8>, ComposeError> {
    match mlflow.download_artifact(uri, path).await {
        Ok(b) => Ok(b),
        Err(MlflowError::Api { error_code, message, .. })
            if error_code == "INTERNAL_ERROR" && (message.contains("(404)") || message.contains("Not Found")) =>
        {
            Err(ComposeError::Invalid(format!("the member file {uri}/{path} is missing")))
        }
        Err(e) if e.is_not_found() => {
            Err(ComposeError::Invalid(format!("the member file {uri}/{path} is missing: {e}")))
        }
        Err(e) => Err(e.into()),
    }
}

fn metrics_line(m: &Metrics) -> String {
    format!("RMSE {:.6}, MAE {:.6}, MSE {:.6}", m.rmse, m.mae, m.mse)
}

fn ensemble_card(set: &SetRef<'_>, r: &EnsembleReport) -> String {
    let mut s = format!(
        "# ENSEMBLE for {} (config {})\n\nComposed by eval: the weighted mean of the members' forecasts in original \
         units, each member with its own scaler and forecast floor. Weights are inverse validation MSE, fitted on \
         {} validation rows every member forecast.\n\n| member | run | weight | validation score |\n|---|---|---|---|\n",
        set.identifier, set.config_hash, r.rows
    );
    for m in &r.members {
        s.push_str(&format!("| {} | {} | {:.4} | {:.6} |\n", m.model_type, m.run_id, m.weight, m.validation_score));
    }
    s.push_str(&format!(
        "\nValidation (scaled): {}; composite score {:.6}.\n\nTest (scaled, reported only): {}.\n\n{}\n",
        metrics_line(&r.validation),
        r.validation_score,
        r.test.as_ref().map(metrics_line).unwrap_or_else(|| "-".into()),
        r.note
    ));
    s
}

fn baseline_card(
    set: &SetRef<'_>,
    name: &str,
    spec: &nn::NaiveSpec,
    reference_run: &str,
    reference: ModelType,
    validation: &Metrics,
    test: &Metrics,
) -> String {
    let what = match spec.kind {
        nn::Naive::LastValue => "every step repeats the last observed value".to_string(),
        nn::Naive::SeasonalNaive { season } => {
            format!("each step repeats the value one season ({season} rows, a day) earlier")
        }
    };
    format!(
        "# BASELINE for {} (config {})\n\nNo trained model beat the naive forecasts on validation, so eval promoted \
         the best of them, `{name}`: {what}. It is an ONNX model ({} input rows, {} features, {} step(s) of {} \
         target(s)) shaped like {reference}'s (run {reference_run}), with the dataset scaler.\n\nValidation \
         (scaled): {}.\n\nTest (scaled, reported only): {}.\n",
        set.identifier,
        set.config_hash,
        spec.input_len,
        spec.n_features,
        spec.output_len,
        spec.target_columns.len(),
        metrics_line(validation),
        metrics_line(test)
    )
}

/// A minimal `MLmodel`: ONNX flavors for a baseline, a custom flavor naming
/// the manifest for an ensemble (its members need FLTS inference to combine).
fn mlmodel(a: &ModelArtifact, run_id: &str, digest: &str) -> String {
    let file = a.path.trim_start_matches("model/");
    let flavor = match a.format {
        ModelFormat::Onnx => format!(
            "  onnx:\n    data: {file:?}\n    providers:\n    - CPUExecutionProvider\n  python_function:\n    data: {file:?}\n    loader_module: mlflow.onnx\n"
        ),
        _ => format!("  flts_ensemble:\n    data: {file:?}\n    format: contracts::ensemble::EnsembleManifest\n"),
    };
    format!(
        "artifact_path: model\nflavors:\n{flavor}model_uuid: {:?}\nrun_id: {run_id:?}\nutc_time_created: {:?}\n",
        &digest[..32],
        Utc::now().format("%Y-%m-%d %H:%M:%S%.6f").to_string()
    )
}
