//! `--once`: decide on a set of model-training events from files, with no
//! broker, S3 or MLflow. Prints the decision and writes it as JSON (the
//! decision record's format, without a promotion: nothing is built or
//! published).
//!
//! Events are JSON files, one event per file or one per line (JSONL), all of
//! one (identifier, config_hash). For the ensemble and the test NRMSE, give
//! each model type's prediction files with `--run TYPE=DIR`: DIR as
//! `train-gru --once --output DIR` writes it (`validation_predictions.parquet`,
//! `test_predictions.parquet`, and `event.json`, the SUCCESS it would have
//! published, which counts as that type's event when `--events` has none), or
//! a downloaded run (`DIR/predictions/...`); and the dataset scaler with
//! `--scaler` (`preprocess --once`'s `scaler.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;
use contracts::promotion::{Decision, Trigger};
use contracts::{ModelTraining, ModelType};

use crate::compose::{self, COMPOSED, Files};
use crate::predictions::{self, Predictions};
use crate::score;
use crate::service::EvalArgs;
use crate::state::SetState;

/// Flags of the one-shot mode.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OnceArgs {
    /// Decide once on event files and exit (no broker, S3 or MLflow needed).
    #[arg(long)]
    pub once: bool,
    /// model-training event files (JSON or JSONL), all of one set (a `--run`
    /// folder's `event.json` is read too).
    #[arg(long = "events", requires = "once", num_args = 1.., value_delimiter = ',')]
    pub events: Vec<PathBuf>,
    /// A model type's prediction files: `GRU=train-output/gru` (repeatable).
    #[arg(long = "run", requires = "once", value_parser = parse_run)]
    pub runs: Vec<(ModelType, PathBuf)>,
    /// The dataset scaler JSON (scaled units of the ensemble's score).
    #[arg(long, requires = "once")]
    pub scaler: Option<PathBuf>,
    /// The processed training part (`preprocess --once`'s `train.parquet`):
    /// the history the naive forecasts' test NRMSE looks back into.
    #[arg(long, requires = "once")]
    pub train: Option<PathBuf>,
    /// Where to write the decision JSON.
    #[arg(long, requires = "once", default_value = "decision.json")]
    pub output: PathBuf,
}

fn parse_run(s: &str) -> Result<(ModelType, PathBuf), String> {
    let (t, dir) = s.split_once('=').ok_or_else(|| format!("`{s}`: expected TYPE=DIR, e.g. GRU=train-output"))?;
    Ok((t.parse()?, PathBuf::from(dir)))
}

/// Every event in `bytes`: one JSON document, or one per non-empty line.
pub fn parse_events(bytes: &[u8]) -> Result<Vec<ModelTraining>, String> {
    if let Ok(one) = contracts::decode::<ModelTraining>(bytes) {
        return Ok(vec![one]);
    }
    let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| contracts::decode::<ModelTraining>(l.as_bytes()).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// A run folder's prediction file `name`, flat or under `predictions/`.
fn prediction_file(dir: &Path, name: &str, targets: &[String]) -> anyhow::Result<Option<Predictions>> {
    for path in [dir.join(name), dir.join("predictions").join(name)] {
        if path.is_file() {
            let size = std::fs::metadata(&path)?.len();
            if size > predictions::MAX_FILE_BYTES {
                bail!("{}: {size} bytes is over the {} byte limit", path.display(), predictions::MAX_FILE_BYTES);
            }
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            return Predictions::read(&bytes, targets)
                .map(Some)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()));
        }
    }
    Ok(None)
}

/// Decide on the files `once` names, as the service would (without building
/// or promoting anything).
pub fn decide(args: &EvalArgs, once: &OnceArgs) -> anyhow::Result<Decision> {
    let mut events = Vec::new();
    for path in &once.events {
        let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
        events.extend(parse_events(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    }
    // A trainer's --once folder holds the SUCCESS it would have published.
    for (model_type, dir) in &once.runs {
        let path = dir.join("event.json");
        if path.is_file() && !events.iter().any(|e| e.model_type == *model_type) {
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            events.extend(parse_events(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
        }
    }
    if events.is_empty() {
        bail!("--once needs --events FILE... or --run TYPE=DIR folders with an event.json");
    }
    let first = events.first().context("the event files hold no event")?;
    let mut set = SetState::new(&first.identifier, &first.config_hash);
    for ev in &events {
        if (ev.identifier.as_str(), ev.config_hash.as_str()) != (set.identifier.as_str(), set.config_hash.as_str()) {
            bail!(
                "the events are of more than one set ({}/{} and {}/{}): give one set's",
                set.identifier,
                set.config_hash,
                ev.identifier,
                ev.config_hash
            );
        }
        set.absorb(ev);
    }
    let mut files = BTreeMap::new();
    for (model_type, dir) in &once.runs {
        let Some(ev) = set.reports.get(model_type) else {
            bail!("--run {model_type}={}: no {model_type} event among the files", dir.display());
        };
        let contracts::TrainingStatus::Success(s) = &ev.status else { continue };
        let validation = prediction_file(dir, "validation_predictions.parquet", &s.model.targets)?;
        let test = prediction_file(dir, "test_predictions.parquet", &s.model.targets)?;
        files.insert(*model_type, Files { validation, test });
    }
    let scales = match &once.scaler {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
            let scaler = series::Scaler::from_json(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(scaler.columns.iter().map(|c| (c.name.clone(), c.scale)).collect::<BTreeMap<String, f64>>())
        }
        None => None,
    };
    let targets = set.reports.values().find_map(|ev| match &ev.status {
        contracts::TrainingStatus::Success(s) => Some(s.model.targets.clone()),
        _ => None,
    });
    let history = match (&once.train, targets) {
        (Some(path), Some(targets)) => {
            let bytes = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
            predictions::history_of_processed(&bytes, &targets)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        _ => Default::default(),
    };
    let weights = args.weights();
    let missing = set.missing(&args.expected_model_types);
    let mut outcome = score::decide(&set.reports, &weights, args.baseline_gate);
    let inputs = compose::Inputs {
        reports: &set.reports,
        weights: &weights,
        gate: args.baseline_gate,
        complete: missing.is_empty(),
        files: &files,
        scales: scales.as_ref(),
        history: &history,
    };
    let plan = compose::plan(&inputs, &mut outcome);
    for c in outcome.candidates.iter_mut().filter(|c| c.status == COMPOSED) {
        c.run_id = "(not built: --once)".into();
    }
    Ok(Decision {
        identifier: set.identifier.clone(),
        config_hash: set.config_hash.clone(),
        decided_at: Utc::now(),
        trigger: if missing.is_empty() { Trigger::Complete } else { Trigger::Timeout },
        expected: args.expected_model_types.clone(),
        missing,
        weights,
        baseline_gate: args.baseline_gate,
        outcome,
        promotion: None,
        published: false,
        revision: 0,
        ensemble: plan.ensemble,
        fallback: plan.fallback,
        naive_test_nrmse: plan.naive_test_nrmse,
        published_to: None,
    })
}

/// `eval --once`: decide, print, write `--output`.
pub fn run(args: &EvalArgs, once: &OnceArgs) -> anyhow::Result<()> {
    let decision = decide(args, once)?;
    print!("{}", decision.render());
    let json = serde_json::to_vec_pretty(&decision)?;
    std::fs::write(&once.output, json).with_context(|| format!("write {}", once.output.display()))?;
    println!("decision written to {}", once.output.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::tests::success;

    fn args(expected: &[ModelType]) -> EvalArgs {
        let mut a = <crate::Cli as clap::Parser>::parse_from(["eval"]).eval;
        a.expected_model_types = expected.to_vec();
        a
    }

    fn write_parquet(dir: &Path, name: &str, start_h: i64, errors: &[f64]) {
        let n = errors.len() as i64;
        let actual: Vec<f64> = (0..n).map(|i| 100.0 + (i % 5) as f64).collect();
        let predicted: Vec<f64> = actual.iter().zip(errors).map(|(a, e)| a + e).collect();
        let frame = series::Frame::new(
            (start_h..start_h + n).map(|h| 1_700_000_000_000 + h * 3_600_000).collect(),
            vec![series::Column::new("x_predicted", predicted), series::Column::new("x_actual", actual)],
        )
        .expect("frame");
        std::fs::write(dir.join(name), dataset::write_raw_parquet(&frame, "timestamp").expect("parquet"))
            .expect("write");
    }

    #[test]
    fn once_decides_from_event_files_and_run_folders_and_writes_the_decision() {
        let dir = std::env::temp_dir().join(format!("flts-eval-once-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        // GRU as one JSON file, LSTM in a JSONL file (with a blank line).
        let (gru, lstm) = (success(ModelType::Gru, 0.1, 1.0, 1), success(ModelType::Lstm, 0.1, 1.0, 1));
        std::fs::write(dir.join("gru.json"), serde_json::to_vec_pretty(&gru).expect("json")).expect("write");
        let jsonl = format!("{}\n\n{}\n", serde_json::to_string(&lstm).expect("json"), "");
        std::fs::write(dir.join("more.jsonl"), jsonl).expect("write");
        // Opposite errors: the ensemble wins on validation.
        for (m, sign) in [("gru", 1.0), ("lstm", -1.0)] {
            let run = dir.join(m);
            std::fs::create_dir_all(run.join("predictions")).expect("dir");
            let errors: Vec<f64> = (0..30).map(|i| sign * if i % 2 == 0 { 1.0 } else { 0.5 }).collect();
            write_parquet(&run, "validation_predictions.parquet", 0, &errors);
            write_parquet(&run.join("predictions"), "test_predictions.parquet", 30, &errors);
        }
        let scaler = series::Scaler {
            kind: series::ScalerKind::MinMax,
            columns: vec![series::ScalerColumn::new("x".into(), 0.0, 10.0)],
        };
        std::fs::write(dir.join("scaler.json"), scaler.to_json()).expect("write");
        let once = OnceArgs {
            once: true,
            events: vec![dir.join("gru.json"), dir.join("more.jsonl")],
            runs: vec![(ModelType::Gru, dir.join("gru")), (ModelType::Lstm, dir.join("lstm"))],
            scaler: Some(dir.join("scaler.json")),
            train: None,
            output: dir.join("decision.json"),
        };
        run(&args(&[ModelType::Gru, ModelType::Lstm]), &once).expect("decided");
        let d: Decision = serde_json::from_slice(&std::fs::read(&once.output).expect("written")).expect("decision");
        let w = &d.outcome.candidates[d.outcome.winner.expect("winner")];
        assert_eq!(w.model_type, ModelType::Ensemble, "{}", d.outcome.reason);
        assert!(d.ensemble.as_ref().is_some_and(|e| e.beats_members));
        assert!(d.outcome.candidates.iter().filter(|c| c.status == "SUCCESS").all(|c| c.test_nrmse.contains_key("x")));
        assert!(d.render().contains("NRMSE x"), "{}", d.render());
        // Without the scaler no ensemble is scored, and the reason says so.
        let d = decide(&args(&[ModelType::Gru, ModelType::Lstm]), &OnceArgs { scaler: None, ..once.clone() })
            .expect("decided");
        assert!(d.outcome.reason.contains("dataset scaler is unavailable"), "{}", d.outcome.reason);
        // A trainer's --once folder brings its own event.json.
        std::fs::write(dir.join("lstm/event.json"), serde_json::to_vec(&lstm).expect("json")).expect("write");
        let folders = OnceArgs { events: vec![dir.join("gru.json")], ..once.clone() };
        let d = decide(&args(&[ModelType::Gru, ModelType::Lstm]), &folders).expect("decided");
        assert!(d.missing.is_empty() && d.ensemble.is_some(), "{d:?}");
        // Events of two sets are refused.
        let mut other = lstm.clone();
        other.identifier = "site-2".into();
        std::fs::write(dir.join("other.json"), serde_json::to_vec(&other).expect("json")).expect("write");
        let two = OnceArgs { events: vec![dir.join("gru.json"), dir.join("other.json")], runs: vec![], ..once };
        assert!(decide(&args(&[ModelType::Gru]), &two).unwrap_err().to_string().contains("more than one set"));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
