//! Issue 9, scenario 1: every stage is killed with SIGKILL in turn while it
//! has work in hand, and restarted; the pipeline still completes with exactly
//! one promotion for the dataset and one set of inference results.
//!
//! "In hand" is observed from outside, never arranged inside the stage:
//! preprocess as soon as its first output object exists, the GRU trainer right
//! after its RUNNING event (its fit is made long enough), eval after the first
//! model finished but before the others, inference right after the promotion
//! it must act on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use claim_check::ClaimCheckStore;
use contracts::*;
use flts_tests::pipeline::*;
use flts_tests::*;

#[test]
fn every_stage_killed_mid_work_and_restarted_still_promotes_once_without_duplicates() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let w = rt.block_on(World::new());
    let store = ClaimCheckStore::new(&w.stack.s3);
    // A GRU fit of some seconds, so that the kill lands inside it.
    let gru_env = [("EPOCHS", "60"), ("HIDDEN_SIZE", "48"), ("PATIENCE", "1000"), ("SEEDS", "1")];
    let start = |bin: &str| if bin == "train-gru" { w.stage_with(bin, &gru_env) } else { w.stage(bin) };
    let mut stages: BTreeMap<&str, StageProcess> = stages().map(|b| (b, start(b))).collect();
    let mut restart = |bin: &'static str| {
        let status = stages.remove(bin).expect("running stage").crash();
        eprintln!("stage_crash: killed {bin} ({status})");
        stages.insert(bin, start(bin));
    };
    let training = w.watch(&w.model_training);
    let selected = w.watch(&w.model_selected);
    let mine = |e: &ModelTraining| e.identifier == w.id;

    let csv = generated_csv(2400);
    w.submit(&csv, r#"{"targets": ["down", "up"]}"#);

    // preprocess: killed once its first output object exists.
    let deadline = Instant::now() + Duration::from_secs(120);
    while rt.block_on(store.list("processed-data", &format!("{}/", w.id))).map_or(true, |o| o.is_empty()) {
        assert!(Instant::now() < deadline, "preprocess wrote nothing within 120 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    restart("preprocess");

    // train-gru: killed while training, right after its RUNNING event.
    training.next_where("GRU RUNNING", Duration::from_secs(180), |e: &ModelTraining| {
        mine(e) && e.model_type == ModelType::Gru && matches!(e.status, TrainingStatus::Running { .. })
    });
    restart("train-gru");

    // eval: killed between events, after the first model finished.
    let first = training.next_where("a first SUCCESS", Duration::from_secs(300), |e: &ModelTraining| {
        mine(e) && matches!(e.status, TrainingStatus::Success(_))
    });
    assert_ne!(first.model_type, ModelType::Gru, "the killed GRU cannot have finished first");
    restart("eval");

    // inference: killed as soon as the promotion it must act on is out.
    let promotion =
        selected.next_where("model-selected", Duration::from_secs(600), |s: &ModelSelected| s.identifier == w.id);
    restart("inference");

    let perf = w.watch(&w.performance_eval);
    let summary =
        perf.next_where("performance-eval", Duration::from_secs(300), |p: &PerformanceEval| p.identifier == w.id);
    // Redelivered work that is still coming would arrive within this.
    std::thread::sleep(Duration::from_secs(10));

    let promotions: Vec<ModelSelected> = decoded::<ModelSelected>(&w.read(&w.model_selected, Duration::from_secs(3)))
        .into_iter()
        .filter(|s| s.identifier == w.id)
        .collect();
    assert_eq!(promotions, std::slice::from_ref(&promotion), "exactly one promotion");

    // Inference results: one object per (dataset, config, run); a re-sent
    // summary (a crash after publishing, before committing) names the same one.
    let summaries: Vec<PerformanceEval> =
        decoded::<PerformanceEval>(&w.read(&w.performance_eval, Duration::from_secs(3)))
            .into_iter()
            .filter(|p| p.identifier == w.id)
            .collect();
    assert!(summaries.iter().all(|p| p.results == summary.results), "{summaries:?}");
    assert_eq!(summary.run_id, promotion.run_id);
    let logs = rt.block_on(store.list("inference-logs", &format!("{}/", w.id))).expect("list inference logs");
    let jsonl: Vec<&String> = logs.iter().map(|(k, _)| k).filter(|k| k.ends_with(".jsonl")).collect();
    assert_eq!(jsonl, [&summary.results.object], "one results file, no duplicates");
    rt.block_on(w.check_results(&summary));

    // Every model type has one successful run for this config, the killed GRU included.
    let events: Vec<ModelTraining> = decoded::<ModelTraining>(&w.read(&w.model_training, Duration::from_secs(3)));
    for model_type in [ModelType::Gru, ModelType::Lstm, ModelType::Prophet] {
        let runs: BTreeSet<&str> = events
            .iter()
            .filter(|e| mine(e) && e.model_type == model_type && matches!(e.status, TrainingStatus::Success(_)))
            .map(|e| e.run_id.as_str())
            .collect();
        assert_eq!(runs.len(), 1, "{model_type}: one successful run, got {runs:?}");
    }
    let _ = std::fs::remove_dir_all(csv.parent().expect("temp dir"));
}
