//! What MLflow's own tools expect of a run: an `MLmodel` file in the model
//! folder, so that `mlflow.pyfunc.load_model("runs:/<id>/model")`,
//! `mlflow.models.get_model_info` and the Model Registry can use the model,
//! and the `mlflow.source.*` / `mlflow.user` tags the UI shows as Source and
//! User.
//!
//! - Networks (ONNX): the `onnx` flavor plus `python_function` (loader
//!   `mlflow.onnx`), a tensor signature (`input` `[input_len, -1, n_features]`
//!   float32, time-major as the exporter writes it, and `output`
//!   `[-1, output_len * n_targets]`), and an input example: the first test
//!   windows, scaled, in that layout. A Python user needs only `mlflow`,
//!   `onnx` and `onnxruntime` (listed in `requirements.txt`).
//! - Prophet: our `prophet.json` is not Prophet's own serialization and
//!   cannot be made into it faithfully (Prophet's format needs the training
//!   history frame and has no place for our per-target set or the constant
//!   shift of a rescale). Instead the trainer exports the point forecast as
//!   ONNX (`prophet.onnx`, `prophet_model::onnx`: `timestamp` int64 ms in,
//!   `yhat` float64 `[n, n_targets]` out, the dataset's scaled units), which
//!   gets the same `onnx` + `python_function` flavors, so
//!   `mlflow.pyfunc.load_model` forecasts with onnxruntime alone; intervals
//!   stay in `prophet.json`. A model with extra regressors (not a function of
//!   time) has no export; its `MLmodel` then has only the `flts_prophet`
//!   flavor naming the file, for `get_model_info` and the registry.

use chrono::{DateTime, Utc};
use contracts::{ModelFormat, ModelType};
use mlflow_client::KeyValue;
use serde_json::{Value, json};

use crate::{Prepared, Trained};

/// The MLflow version whose `MLmodel` layout this follows (the local stack's).
pub const MLFLOW_VERSION: &str = "3.17.2";
/// What a Python user installs to load a network (pinned as in `scripts/stack`'s interop venv).
pub const ONNX_REQUIREMENTS: [&str; 3] = ["mlflow==3.17.2", "onnx==1.23.2", "onnxruntime==1.31.1"];
/// Test windows in a network's input example.
const EXAMPLE_WINDOWS: usize = 2;
/// Test timestamps in a Prophet model's input example.
const EXAMPLE_TIMES: usize = 5;

/// Everything `MLmodel` describes.
pub struct ModelDescription<'a> {
    /// The MLflow run (none for `--once`).
    pub run_id: Option<&'a str>,
    pub model_type: ModelType,
    pub data: &'a Prepared,
    pub trained: &'a Trained,
    pub created: DateTime<Utc>,
}

/// The Prophet trainer's ONNX export of its point forecast, among `Trained::extra_files`.
pub const PROPHET_ONNX: &str = "prophet.onnx";

/// The `onnx` and `python_function` flavors for the ONNX file `file`.
fn onnx_flavors(file: &str) -> Vec<String> {
    vec![
        "  onnx:".to_string(),
        "    code: null".to_string(),
        format!("    data: {}", quote(file)),
        "    onnx_session_options: null".to_string(),
        format!("    onnx_version: {}", quote(version_of(ONNX_REQUIREMENTS[1]))),
        "    providers:".to_string(),
        "    - CPUExecutionProvider".to_string(),
        "  python_function:".to_string(),
        format!("    data: {}", quote(file)),
        "    env:".to_string(),
        "      conda: conda.yaml".to_string(),
        "      virtualenv: python_env.yaml".to_string(),
        "    loader_module: mlflow.onnx".to_string(),
        "    python_version: \"3.11\"".to_string(),
    ]
}

/// The input example and the Python environment of an ONNX model.
fn onnx_files(example: &Value) -> Vec<(String, Vec<u8>)> {
    let pip: String = ONNX_REQUIREMENTS.iter().map(|r| format!("  - {r}\n")).collect();
    vec![
        ("model/input_example.json".to_string(), example.to_string().into_bytes()),
        ("model/serving_input_example.json".to_string(), json!({ "inputs": example }).to_string().into_bytes()),
        ("model/requirements.txt".to_string(), (ONNX_REQUIREMENTS.join("\n") + "\n").into_bytes()),
        (
            "model/python_env.yaml".to_string(),
            "python: \"3.11\"\nbuild_dependencies:\n- pip\n- setuptools\n- wheel\ndependencies:\n- -r requirements.txt\n"
                .as_bytes()
                .to_vec(),
        ),
        (
            "model/conda.yaml".to_string(),
            format!("channels:\n- conda-forge\ndependencies:\n- python=3.11\n- pip\n- pip:\n{pip}name: mlflow-env\n")
                .into_bytes(),
        ),
    ]
}

/// The files to upload under `model/` next to the model file: `MLmodel`,
/// and for ONNX models the input example and the Python environment.
pub fn model_files(d: &ModelDescription<'_>) -> Vec<(String, Vec<u8>)> {
    let (file, bytes) = (&d.trained.model_file.0, &d.trained.model_file.1);
    let roles = &d.data.meta.roles;
    let (t_len, h) = (d.data.spec.input_len, d.data.spec.output_len);
    let (f, k) = (roles.features.len(), roles.targets.len());
    let digest = claim_check::sha256_hex(bytes);
    let mut lines = vec!["artifact_path: model".to_string(), "flavors:".to_string()];
    let mut files = Vec::new();
    let (inputs, outputs) = match d.trained.format {
        ModelFormat::Onnx => {
            lines.extend(onnx_flavors(file));
            files.extend(onnx_files(&input_example(d.data)));
            (
                json!([{ "name": "input", "type": "tensor",
                         "tensor-spec": { "dtype": "float32", "shape": [t_len, -1, f] } }]),
                json!([{ "name": "output", "type": "tensor",
                         "tensor-spec": { "dtype": "float32", "shape": [-1, h * k] } }]),
            )
        }
        ModelFormat::ProphetJson => {
            // The point forecast as ONNX when the trainer could export it (no extra regressors).
            if d.trained.extra_files.iter().any(|(name, _)| name == PROPHET_ONNX) {
                lines.extend(onnx_flavors(PROPHET_ONNX));
                let times = &d.data.test.timestamps;
                files.extend(onnx_files(&Value::from(times[..times.len().min(EXAMPLE_TIMES)].to_vec())));
            }
            lines.extend([
                "  flts_prophet:".to_string(),
                format!("    data: {}", quote(file)),
                "    format: flts prophet.json (crate prophet-model, FittedSet)".to_string(),
                format!("    targets: {}", Value::from(roles.targets.clone())),
                format!("    model_type: {}", quote(d.model_type.as_str())),
            ]);
            (
                json!([{ "name": "timestamp", "type": "tensor",
                         "tensor-spec": { "dtype": "int64", "shape": [-1] } }]),
                json!([{ "name": "yhat", "type": "tensor",
                         "tensor-spec": { "dtype": "float64", "shape": [-1, k] } }]),
            )
        }
        // Trainers never write ensembles (eval composes them).
        ModelFormat::Ensemble => (json!([]), json!([])),
    };
    lines.extend([
        format!("mlflow_version: {}", quote(MLFLOW_VERSION)),
        format!("model_size_bytes: {}", bytes.len()),
        format!("model_uuid: {}", quote(&digest[..32])),
        format!("run_id: {}", d.run_id.map_or_else(|| "null".to_string(), quote)),
    ]);
    if files.iter().any(|(name, _)| name == "model/input_example.json") {
        lines.extend([
            "saved_input_example_info:".to_string(),
            "  artifact_path: input_example.json".to_string(),
            "  serving_input_path: serving_input_example.json".to_string(),
            "  type: ndarray".to_string(),
        ]);
    }
    lines.extend([
        "signature:".to_string(),
        format!("  inputs: {}", quote(&inputs.to_string())),
        format!("  outputs: {}", quote(&outputs.to_string())),
        "  params: null".to_string(),
        format!("utc_time_created: {}", quote(&d.created.format("%Y-%m-%d %H:%M:%S%.6f").to_string())),
    ]);
    files.insert(0, ("model/MLmodel".to_string(), (lines.join("\n") + "\n").into_bytes()));
    files
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quote(s: &str) -> String {
    Value::from(s).to_string()
}

/// `1.2.3` of `name==1.2.3`.
fn version_of(requirement: &str) -> &str {
    requirement.split("==").nth(1).unwrap_or(requirement)
}

/// The first test windows, scaled, as the network reads them: `[input_len][window][feature]`.
pub fn input_example(data: &Prepared) -> Value {
    let w = &data.test_windows;
    let n = w.n.min(EXAMPLE_WINDOWS);
    let (t_len, f) = (w.input_len, w.n_features);
    let steps: Vec<Value> = (0..t_len)
        .map(|t| {
            let windows: Vec<Value> = (0..n)
                .map(|i| {
                    let at = (i * t_len + t) * f;
                    Value::from(w.x[at..at + f].iter().map(|v| f64::from(*v)).collect::<Vec<f64>>())
                })
                .collect();
            Value::from(windows)
        })
        .collect();
    Value::from(steps)
}

/// The MLflow system tags of a run: Source (this binary, a job), User, and
/// the git commit the binary was built from.
pub fn source_tags(model_type: ModelType) -> Vec<KeyValue> {
    let source = std::env::args()
        .next()
        .and_then(|p| std::path::Path::new(&p).file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| format!("flts-{}", model_type.as_str().to_lowercase()));
    let user = ["MLFLOW_TRACKING_USERNAME", "USER", "LOGNAME"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "flts".to_string());
    vec![
        KeyValue::new("mlflow.source.name", &source),
        KeyValue::new("mlflow.source.type", "JOB"),
        KeyValue::new("mlflow.user", &user),
        KeyValue::new("mlflow.source.git.commit", git_commit()),
    ]
}

/// The commit this binary was built from: `FLTS_GIT_COMMIT` at build time
/// (the Docker build passes it), else the HEAD of the source tree it was
/// built in when that tree is still there (local builds), else `unknown`.
pub fn git_commit() -> String {
    if let Some(c) = option_env!("FLTS_GIT_COMMIT").filter(|c| !c.is_empty()) {
        return c.to_string();
    }
    let git = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.git");
    head_commit(&git).unwrap_or_else(|| "unknown".to_string())
}

/// The commit `HEAD` of the git directory `git` names (a branch ref, packed or loose, or a detached hash).
fn head_commit(git: &std::path::Path) -> Option<String> {
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let is_hash = |s: &str| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(name) = head.strip_prefix("ref: ") else {
        return is_hash(head).then(|| head.to_string());
    };
    if let Ok(loose) = std::fs::read_to_string(git.join(name)) {
        return is_hash(loose.trim()).then(|| loose.trim().to_string());
    }
    let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
    packed.lines().find_map(|l| {
        let (hash, r) = l.split_once(' ')?;
        (r == name && is_hash(hash)).then(|| hash.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_is_read_from_a_branch_a_packed_ref_or_a_detached_head() {
        let dir = std::env::temp_dir().join(format!("flts-git-{}", std::process::id()));
        let hash = "0123456789abcdef0123456789abcdef01234567";
        std::fs::create_dir_all(dir.join("refs/heads")).unwrap();
        std::fs::write(dir.join("HEAD"), "ref: refs/heads/main\n").unwrap();
        std::fs::write(dir.join("refs/heads/main"), format!("{hash}\n")).unwrap();
        assert_eq!(head_commit(&dir).as_deref(), Some(hash));
        std::fs::remove_file(dir.join("refs/heads/main")).unwrap();
        std::fs::write(dir.join("packed-refs"), format!("# pack-refs\n{hash} refs/heads/main\n")).unwrap();
        assert_eq!(head_commit(&dir).as_deref(), Some(hash));
        std::fs::write(dir.join("HEAD"), format!("{hash}\n")).unwrap();
        assert_eq!(head_commit(&dir).as_deref(), Some(hash));
        std::fs::write(dir.join("HEAD"), "garbage\n").unwrap();
        assert_eq!(head_commit(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
        // This crate is built from a git tree here.
        assert_eq!(git_commit().len(), 40, "{}", git_commit());
    }

    #[test]
    fn a_source_tag_set_names_source_user_and_commit() {
        let tags = source_tags(ModelType::Gru);
        let keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
        assert_eq!(keys, ["mlflow.source.name", "mlflow.source.type", "mlflow.user", "mlflow.source.git.commit"]);
        assert!(tags.iter().all(|t| !t.value.is_empty()));
    }
}
