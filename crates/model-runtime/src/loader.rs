//! Loading models: artifact bytes from the MLflow artifact store (S3, read
//! through the claim-check store), the forward pass built on a blocking
//! thread, and the promotion pointers (`current.json`) at start-up.

use std::sync::Arc;

use bytes::Bytes;
use claim_check::{ClaimCheckStore, StoreError};
use contracts::ensemble::{EnsembleManifest, EnsembleMember};
use contracts::error::{Classified, Code};
use contracts::promotion::{self, ModelLimits};
use contracts::{ModelFormat, ModelSelected};
use series::Scaler;
use tracing::{error, info, warn};

use crate::metrics;
use crate::model::{Member, MemberInfo, Model, ModelInfo, ModelSpec};
use crate::net::{Net, OnnxNet};
use crate::prophet::ProphetNet;

/// Loading a model failed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The artifacts cannot make a model (bad URI, file, scaler or shapes).
    #[error("{0}")]
    Invalid(String),
    /// A size the promotion states is outside the limits ([`ModelLimits`]).
    #[error("{0}")]
    BadData(String),
    /// The model file is not the one recorded at training (or none was recorded).
    #[error("{0}")]
    Digest(String),
}

impl Classified for LoadError {
    fn code(&self) -> Code {
        match self {
            LoadError::Store(e) => Classified::code(e),
            LoadError::Invalid(_) => Code::InvalidModel,
            LoadError::BadData(_) => Code::BadData,
            LoadError::Digest(_) => Code::DigestMismatch,
        }
    }
    fn is_retryable(&self) -> bool {
        matches!(self, LoadError::Store(e) if Classified::is_retryable(e))
    }
}

/// Where `mlflow-artifacts:/` URIs live: the tracking server's
/// `--artifacts-destination` (`s3://bucket[/prefix]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactDestination {
    pub bucket: String,
    pub prefix: String,
}

impl std::str::FromStr for ArtifactDestination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rest = s.strip_prefix("s3://").ok_or_else(|| format!("`{s}` is not an s3://bucket[/prefix] URI"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("`{s}` has no bucket"));
        }
        Ok(ArtifactDestination { bucket: bucket.to_string(), prefix: prefix.trim_matches('/').to_string() })
    }
}

/// The S3 bucket and key of artifact `path` under a run's `artifact_uri`:
/// `s3://bucket/root` directly, `mlflow-artifacts:/root` (or
/// `mlflow-artifacts://host/root`) under the proxy's destination.
pub fn locate(artifact_uri: &str, path: &str, dest: &ArtifactDestination) -> Result<(String, String), LoadError> {
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        return Err(LoadError::Invalid(format!("empty artifact path under {artifact_uri}")));
    }
    let join = |a: &str, b: &str| {
        let (a, b) = (a.trim_matches('/'), b.trim_matches('/'));
        match (a.is_empty(), b.is_empty()) {
            (true, _) => b.to_string(),
            (_, true) => a.to_string(),
            _ => format!("{a}/{b}"),
        }
    };
    if let Some(rest) = artifact_uri.strip_prefix("s3://") {
        let (bucket, root) = rest.split_once('/').unwrap_or((rest, ""));
        return Ok((bucket.to_string(), join(root, path)));
    }
    if let Some(rest) = artifact_uri.strip_prefix("mlflow-artifacts:") {
        // `mlflow-artifacts://host:port/root` names the server; `mlflow-artifacts:/root` does not.
        let root = match rest.strip_prefix("//") {
            Some(with_host) => with_host.split_once('/').map(|(_, r)| r).unwrap_or(""),
            None => rest,
        };
        return Ok((dest.bucket.clone(), join(&join(&dest.prefix, root), path)));
    }
    Err(LoadError::Invalid(format!(
        "artifact URI `{artifact_uri}` is neither s3:// nor mlflow-artifacts:/ (cannot read it from S3)"
    )))
}

/// Fetches artifacts and builds models.
#[derive(Clone)]
pub struct Loader {
    store: ClaimCheckStore,
    dest: ArtifactDestination,
    promotion_bucket: String,
}

impl Loader {
    pub fn new(store: ClaimCheckStore, dest: ArtifactDestination, promotion_bucket: String) -> Self {
        Loader { store, dest, promotion_bucket }
    }

    pub fn store(&self) -> &ClaimCheckStore {
        &self.store
    }

    async fn artifact(&self, spec: &ModelSpec, path: &str) -> Result<Bytes, LoadError> {
        let (bucket, key) = locate(&spec.artifact_uri, path, &self.dest)?;
        Ok(self.store.get_object(&bucket, &key).await?)
    }

    /// Download the model and scaler artifacts and build the model.
    pub async fn load(&self, spec: &ModelSpec) -> Result<Arc<Model>, LoadError> {
        let result = self.load_inner(spec).await;
        let outcome = if result.is_ok() { "ok" } else { "error" };
        metrics::MODEL_LOADS.with_label_values(&[spec.model_type.as_str(), spec.source.as_str(), outcome]).inc();
        if let Err(e) = &result {
            metrics::ERRORS.with_label_values(&["load"]).inc();
            warn!(identifier = %spec.identifier, version = %spec.version(), error = %e, "model load failed");
        }
        result
    }

    async fn load_inner(&self, spec: &ModelSpec) -> Result<Arc<Model>, LoadError> {
        match spec.artifact.format {
            ModelFormat::Ensemble => self.load_ensemble(spec).await,
            ModelFormat::Onnx | ModelFormat::ProphetJson => self.load_single(spec).await,
        }
    }

    /// The model file (digest verified) and the scaler of `spec`, after its sizes are checked.
    async fn fetch(&self, spec: &ModelSpec) -> Result<(Bytes, Scaler), LoadError> {
        check_limits(spec)?;
        let (model_bytes, scaler_bytes) = tokio::try_join!(
            self.artifact(spec, &spec.artifact.path),
            self.artifact(spec, &spec.artifact.scaler_path)
        )?;
        verify_digest(spec, &model_bytes)?;
        let scaler = parse_scaler(&scaler_bytes, &spec.artifact.scaler_path)?;
        Ok((model_bytes, scaler))
    }

    /// One ONNX or Prophet model.
    async fn load_single(&self, spec: &ModelSpec) -> Result<Arc<Model>, LoadError> {
        let (model_bytes, scaler) = self.fetch(spec).await?;
        let spec = spec.clone();
        // Parsing and optimising a network takes tens of milliseconds of CPU.
        tokio::task::spawn_blocking(move || build(&spec, &model_bytes, scaler))
            .await
            .map_err(|e| LoadError::Invalid(format!("model build task failed: {e}")))?
    }

    /// An ensemble: its manifest (the digest the promotion records is the
    /// manifest's), checked; each member's files from under the ensemble run,
    /// each verified against the SHA-256 the manifest records and built like a
    /// single model; the ensemble's own scaler is the dataset's.
    async fn load_ensemble(&self, spec: &ModelSpec) -> Result<Arc<Model>, LoadError> {
        let (manifest_bytes, scaler) = self.fetch(spec).await?;
        let manifest = parse_manifest(spec, &manifest_bytes)?;
        let member_specs: Vec<ModelSpec> = manifest.members.iter().map(|m| member_spec(spec, m)).collect();
        let models = futures::future::try_join_all(member_specs.iter().map(|m| self.load_single(m))).await?;
        let mut info = ModelInfo::new(spec);
        info.members = manifest
            .members
            .iter()
            .map(|m| MemberInfo {
                model_type: m.model_type,
                run_id: m.run_id.clone(),
                weight: m.weight,
                model_sha256: Some(m.sha256.clone()),
            })
            .collect();
        let members = manifest
            .members
            .iter()
            .zip(models)
            .map(|(m, model)| Member::new(m.weight, model, &info.features, info.input_len))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| LoadError::Invalid(format!("{}: {e}", spec.artifact.path)))?;
        Model::ensemble(info, scaler, members)
            .map(Arc::new)
            .map_err(|e| LoadError::Invalid(format!("{}: {e}", spec.artifact.path)))
    }

    /// The promotion recorded in `<identifier>/current.json`, if any.
    pub async fn current(&self, identifier: &str) -> Result<Option<ModelSelected>, LoadError> {
        let key = promotion::current_key(identifier);
        match self.store.get_object(&self.promotion_bucket, &key).await {
            Ok(bytes) => contracts::decode(&bytes).map(Some).map_err(|e| {
                LoadError::Invalid(format!("s3://{}/{key} is not a model-selected record: {e}", self.promotion_bucket))
            }),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Every identifier with a `<identifier>/current.json` in the promotion bucket.
    pub async fn promoted_identifiers(&self) -> Result<Vec<String>, LoadError> {
        let keys = self.store.list(&self.promotion_bucket, "").await?;
        let mut ids: Vec<String> =
            keys.iter().filter_map(|(k, _)| promotion::identifier_of_current_key(k)).map(str::to_string).collect();
        ids.dedup();
        info!(count = ids.len(), "promoted identifiers found");
        Ok(ids)
    }
}

/// Load a model from a local directory as `train-gru --once --output DIR`
/// (or `train-lstm`, `prophet`) writes it: `event.json` (the SUCCESS event,
/// with the artifact's shapes and the model file's SHA-256) beside the model
/// file and `scaler.json`. Files are looked up at their artifact path under
/// `dir` (`model/model.onnx`, as in an MLflow run) and then by file name.
/// Blocking.
pub fn load_dir(dir: &std::path::Path) -> Result<Arc<Model>, LoadError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| LoadError::Invalid(format!("read {}: {e}", path.display())))
    };
    let event: contracts::ModelTraining = serde_json::from_slice(&read(&dir.join("event.json"))?)
        .map_err(|e| LoadError::Invalid(format!("{}/event.json is not a model-training event: {e}", dir.display())))?;
    let spec = ModelSpec::from_training(&event).ok_or_else(|| {
        LoadError::Invalid(format!("{}/event.json is not a SUCCESS event: no model to load", dir.display()))
    })?;
    if spec.artifact.format == ModelFormat::Ensemble {
        return Err(LoadError::Invalid("an ensemble directory cannot be loaded from local files".into()));
    }
    check_limits(&spec)?;
    let find = |artifact_path: &str| {
        let nested = dir.join(artifact_path);
        let name = std::path::Path::new(artifact_path).file_name().map(|n| dir.join(n));
        match name {
            Some(flat) if !nested.exists() => flat,
            _ => nested,
        }
    };
    let model_bytes = read(&find(&spec.artifact.path))?;
    verify_digest(&spec, &model_bytes)?;
    let scaler = parse_scaler(&read(&find(&spec.artifact.scaler_path))?, &spec.artifact.scaler_path)?;
    build(&spec, &model_bytes, scaler)
}

/// Check every size `spec` states against [`ModelLimits`] before anything is
/// downloaded or allocated from it.
pub fn check_limits(spec: &ModelSpec) -> Result<(), LoadError> {
    ModelLimits::default().check(&spec.artifact).map_err(|e| {
        metrics::ERRORS.with_label_values(&["bad_data"]).inc();
        LoadError::BadData(format!("{} {}: {e}", spec.identifier, spec.version()))
    })
}

/// The model file must be the one whose digest was recorded at training.
pub fn verify_digest(spec: &ModelSpec, model_bytes: &[u8]) -> Result<(), LoadError> {
    let actual = claim_check::sha256_hex(model_bytes);
    let problem = match &spec.model_sha256 {
        Some(expected) if *expected == actual => return Ok(()),
        Some(expected) => format!("has SHA-256 {actual}, but {expected} was recorded at training"),
        None => "has no SHA-256 recorded at training, so it cannot be checked".to_string(),
    };
    metrics::DIGEST_FAILURES.inc();
    let message = format!(
        "refusing to serve {} {}: model file {} {problem} (the file was replaced or the promotion is forged)",
        spec.identifier,
        spec.version(),
        spec.artifact.path
    );
    error!(identifier = %spec.identifier, version = %spec.version(), "{message}");
    Err(LoadError::Digest(message))
}

/// A scaler artifact's bytes as a checked [`Scaler`].
pub fn parse_scaler(bytes: &[u8], path: &str) -> Result<Scaler, LoadError> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| LoadError::Invalid(format!("scaler {path} is not UTF-8: {e}")))?;
    Scaler::from_json(text).map_err(|e| LoadError::Invalid(format!("scaler {path}: {e}")))
}

/// An ensemble manifest, checked, forecasting what the promotion says it does.
pub fn parse_manifest(spec: &ModelSpec, bytes: &[u8]) -> Result<EnsembleManifest, LoadError> {
    let path = &spec.artifact.path;
    let manifest: EnsembleManifest = serde_json::from_slice(bytes)
        .map_err(|e| LoadError::Invalid(format!("{path} is not an ensemble manifest: {e}")))?;
    manifest.check().map_err(|e| LoadError::Invalid(format!("{path}: {e}")))?;
    let first = &manifest.members[0].artifact;
    if first.targets != spec.artifact.targets || first.output_len != spec.artifact.output_len {
        return Err(LoadError::Invalid(format!(
            "{path}: members forecast {:?} x {} but the promotion says {:?} x {}",
            first.targets, first.output_len, spec.artifact.targets, spec.artifact.output_len
        )));
    }
    Ok(manifest)
}

/// What to load for one ensemble member: its files under the ensemble run,
/// its digest from the manifest.
pub fn member_spec(ensemble: &ModelSpec, member: &EnsembleMember) -> ModelSpec {
    ModelSpec {
        model_type: member.model_type,
        run_id: member.run_id.clone(),
        artifact: member.artifact.clone(),
        model_sha256: Some(member.sha256.clone()),
        ..ensemble.clone()
    }
}

/// Build a model from its bytes (blocking: parses and optimises ONNX).
pub fn build(spec: &ModelSpec, model_bytes: &[u8], scaler: Scaler) -> Result<Arc<Model>, LoadError> {
    let a = &spec.artifact;
    let (input_len, output_len) = (a.input_len as usize, a.output_len as usize);
    let net: Box<dyn Net> = match a.format {
        ModelFormat::Onnx => Box::new(
            OnnxNet::load(model_bytes, input_len, a.features.len(), output_len, a.targets.len())
                .map_err(|e| LoadError::Invalid(format!("{}: {e}", a.path)))?,
        ),
        ModelFormat::ProphetJson => Box::new(
            ProphetNet::load(model_bytes, &a.targets, output_len)
                .map_err(|e| LoadError::Invalid(format!("{}: {e}", a.path)))?,
        ),
        // Members are single models; an ensemble is put together by [`Loader::load`].
        ModelFormat::Ensemble => {
            return Err(LoadError::Invalid(format!("{}: an ensemble cannot be an ensemble member", a.path)));
        }
    };
    Model::new(ModelInfo::new(spec), scaler, net).map(Arc::new).map_err(|e| LoadError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_uris_map_to_s3_keys() {
        let dest: ArtifactDestination = "s3://mlflow".parse().unwrap();
        let loc = |uri: &str, path: &str| locate(uri, path, &dest).map_err(|e| e.to_string());
        assert_eq!(
            loc("mlflow-artifacts:/3/abc/artifacts", "model/model.onnx").unwrap(),
            ("mlflow".into(), "3/abc/artifacts/model/model.onnx".into())
        );
        assert_eq!(
            loc("mlflow-artifacts://127.0.0.1:15000/3/abc/artifacts", "model/scaler.json").unwrap(),
            ("mlflow".into(), "3/abc/artifacts/model/scaler.json".into())
        );
        assert_eq!(
            loc("s3://other/x/1/abc/artifacts/", "/model/model.onnx").unwrap(),
            ("other".into(), "x/1/abc/artifacts/model/model.onnx".into())
        );
        let prefixed: ArtifactDestination = "s3://mlflow/artifacts/".parse().unwrap();
        assert_eq!(
            locate("mlflow-artifacts:/3/abc/artifacts", "m.onnx", &prefixed).unwrap(),
            ("mlflow".into(), "artifacts/3/abc/artifacts/m.onnx".into())
        );
        assert!(loc("file:///tmp/mlruns/1/abc", "model/model.onnx").unwrap_err().contains("neither s3://"));
        assert!("mlflow".parse::<ArtifactDestination>().is_err());
    }

    #[test]
    fn a_baseline_promotion_builds_and_forecasts_like_an_onnx_one() {
        use crate::synthetic::{Cell, NetSpec, SyntheticNet};
        use contracts::ModelType;
        use series::{ScalerColumn, ScalerKind};

        let net = SyntheticNet::random(
            NetSpec { cell: Cell::Gru, n_features: 1, hidden: vec![4], input_len: 3, output_len: 2, n_targets: 1 },
            7,
        );
        let onnx = net.to_onnx();
        let scaler = Scaler { kind: ScalerKind::MinMax, columns: vec![ScalerColumn::new("a".into(), 1.0, 2.0)] };
        let mut gru = crate::model::tests::spec(&["a"], &["a"], 3, 2);
        gru.model_sha256 = Some(claim_check::sha256_hex(&onnx));
        let baseline = ModelSpec { model_type: ModelType::Baseline, ..gru.clone() };
        check_limits(&baseline).unwrap();
        verify_digest(&baseline, &onnx).unwrap();
        let rows = [3.0, 5.0, 4.0];
        let want = build(&gru, &onnx, scaler.clone()).unwrap().predict_raw(&rows, 1, None).unwrap();
        let model = build(&baseline, &onnx, scaler).unwrap();
        assert_eq!(model.info.version, format!("BASELINE/{}", baseline.run_id));
        assert_eq!(model.net_kind(), "onnx");
        assert_eq!(model.predict_raw(&rows, 1, None).unwrap(), want);
    }
}
