//! README.md's `--once` chain, run as written (issue 19: all six stages run
//! alone, with no broker, S3 or MLflow). The fenced block after the
//! `<!-- once-chain` marker is extracted from README.md and run with bash from
//! the repository root, its `/tmp/` paths moved to a private folder and its
//! `target/debug/` to the built binaries; then every stage's output is checked:
//! the processed Parquet, each trainer's model file and SUCCESS event, eval's
//! decision with a winner, and inference's forecasts (one finite forecast per
//! window, of the model eval chose) and PNG plot. README and test cannot drift.

use std::path::{Path, PathBuf};
use std::process::Command;

use contracts::promotion::Decision;
use contracts::{ModelTraining, ModelType, TrainingStatus};
use flts_tests::bin_path;

const MARKER: &str = "<!-- once-chain";
const STAGES: [&str; 6] = ["preprocess", "train-gru", "train-lstm", "prophet", "eval", "inference"];
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repository root").to_path_buf()
}

/// The body of the first fenced block after the marker line.
fn once_block(readme: &str) -> String {
    let mut lines = readme.lines().skip_while(|l| !l.trim_start().starts_with(MARKER));
    assert!(lines.next().is_some(), "README.md has no `{MARKER}` marker");
    let mut lines = lines.skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert!(fence.starts_with("```"), "the `{MARKER}` marker is not right before a fenced block: `{fence}`");
    let body: Vec<&str> = lines.by_ref().take_while(|l| !l.starts_with("```")).collect();
    body.join("\n") + "\n"
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn processed_rows(path: &Path) -> (usize, String) {
    let (frame, meta) = dataset::read_processed(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!frame.is_empty(), "{} has no rows", path.display());
    (frame.len(), meta.config_hash)
}

/// The trainer folder's SUCCESS event, checked against its model type.
fn success_event(dir: &Path, model_type: ModelType) -> ModelTraining {
    let path = dir.join("event.json");
    let ev: ModelTraining = contracts::decode(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(ev.model_type, model_type, "{}", path.display());
    assert!(matches!(ev.status, TrainingStatus::Success(_)), "{}: {:?}", path.display(), ev.status);
    ev
}

/// The folder inference must have used: the winner's, or for an ENSEMBLE or
/// BASELINE (not built in --once) the best single model's on validation.
fn chosen_type(d: &Decision) -> ModelType {
    let winner = &d.outcome.candidates[d.outcome.winner.expect("eval chose no winner")];
    match winner.model_type {
        ModelType::Ensemble | ModelType::Baseline => {
            d.outcome
                .candidates
                .iter()
                .filter(|c| c.status == "SUCCESS")
                .filter_map(|c| c.score.map(|s| (s, c.model_type)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .expect("a scored single model")
                .1
        }
        t => t,
    }
}

#[test]
fn readme_once_chain_runs_all_six_stages_alone() {
    let root = repo_root();
    let block = once_block(&std::fs::read_to_string(root.join("README.md")).expect("README.md"));
    for stage in STAGES {
        assert!(
            block.contains(&format!("target/debug/{stage} --once")),
            "the README chain does not run `{stage} --once`"
        );
    }
    let bin_dir = bin_path("flts").parent().expect("bin dir").to_path_buf();
    for stage in STAGES {
        bin_path(stage);
    }
    let dir = std::env::temp_dir().join(format!("flts-once-chain-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let script = block
        .replace("/tmp/", &format!("{}/", dir.display()))
        .replace("target/debug/", &format!("{}/", bin_dir.display()));

    let started = std::time::Instant::now();
    let out =
        Command::new("bash").args(["-euo", "pipefail", "-c", &script]).current_dir(&root).output().expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("README --once chain: {:.1} s\n{stdout}", started.elapsed().as_secs_f64());
    assert!(out.status.success(), "the README --once chain failed ({}):\n{script}\nstderr:\n{stderr}", out.status);

    // preprocess: both parts, of one config.
    let (train_rows, hash) = processed_rows(&dir.join("processed/train.parquet"));
    let (test_rows, test_hash) = processed_rows(&dir.join("processed/test.parquet"));
    assert_eq!(hash, test_hash, "train and test parts of different configs");
    assert!(train_rows > test_rows, "train {train_rows} rows, test {test_rows}");
    assert!(dir.join("processed/scaler.json").is_file());

    // The trainers: a model file and the SUCCESS each would have published, of the processed config.
    for (folder, model_type, model_file) in [
        ("gru", ModelType::Gru, "model.onnx"),
        ("lstm", ModelType::Lstm, "model.onnx"),
        ("prophet", ModelType::Prophet, "prophet.json"),
    ] {
        let folder = dir.join(folder);
        assert!(!read(&folder.join(model_file)).is_empty(), "{}: empty {model_file}", folder.display());
        let ev = success_event(&folder, model_type);
        assert_eq!(ev.config_hash, hash, "{model_type} trained on another config");
    }

    // eval: a decision on all three with a winner.
    let decision: Decision = serde_json::from_slice(&read(&dir.join("decision.json"))).expect("decision JSON");
    assert!(decision.missing.is_empty(), "missing {:?}", decision.missing);
    for t in [ModelType::Gru, ModelType::Lstm, ModelType::Prophet] {
        assert!(
            decision.outcome.candidates.iter().any(|c| c.model_type == t && c.status == "SUCCESS"),
            "{t} is not a successful candidate: {}",
            decision.render()
        );
    }
    let chosen = chosen_type(&decision);
    assert!(stdout.contains("winner: "), "eval printed no winner");

    // inference: the chosen model's forecasts of every window of the test part.
    let summary: serde_json::Value =
        serde_json::from_slice(&read(&dir.join("forecast/summary.json"))).expect("summary");
    let version = summary["model_version"].as_str().expect("model_version");
    assert!(version.starts_with(&format!("{chosen}/")), "inference served {version}, eval chose {chosen}");
    assert_eq!(summary["rows"].as_u64(), Some(test_rows as u64), "{summary}");
    let windows = summary["windows"].as_u64().expect("windows") as usize;
    assert!(windows > 0 && windows < test_rows, "{windows} windows of {test_rows} rows");
    let jsonl = String::from_utf8(read(&dir.join("forecast/forecasts.jsonl"))).expect("UTF-8");
    let lines: Vec<&str> = jsonl.lines().collect();
    assert_eq!(lines.len(), windows, "one forecast line per window");
    for (i, line) in lines.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
        assert_eq!(v["window"].as_u64(), Some(i as u64), "{line}");
        let steps = v["steps"].as_array().filter(|s| !s.is_empty()).unwrap_or_else(|| panic!("no steps: {line}"));
        for step in steps {
            let forecast = step["forecast"].as_object().filter(|f| !f.is_empty());
            let forecast = forecast.unwrap_or_else(|| panic!("no forecast: {line}"));
            assert!(forecast.values().all(|x| x.as_f64().is_some_and(f64::is_finite)), "{line}");
        }
    }
    let png = read(&dir.join("forecast/forecast.png"));
    assert!(png.starts_with(PNG_SIGNATURE), "forecast.png is not a PNG");
    std::fs::remove_dir_all(&dir).expect("clean up");
}
