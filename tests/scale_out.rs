//! Issue 9, scenario 6: two train-gru replicas in one consumer group with
//! several datasets in flight. Each (identifier, config) is trained exactly
//! once, each identifier's datasets are trained in the order they were
//! submitted (they share a key, so a partition), and when one replica is
//! killed the other takes its partitions over and finishes everything.

use std::collections::BTreeMap;
use std::time::Duration;

use contracts::*;
use flts_tests::pipeline::*;

const DATASETS: usize = 4;

#[test]
fn two_trainer_replicas_train_each_dataset_once_in_order_and_survive_losing_one() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let w = rt.block_on(World::on(StackEnv::shared()));
    let _preprocess = w.stage("preprocess");
    // Fits of a few seconds, so that the kill lands while a replica has one in hand.
    let gru = [("EPOCHS", "15"), ("HIDDEN_SIZE", "32"), ("PATIENCE", "1000"), ("SEEDS", "1")];
    let first = w.stage_with("train-gru", &gru);
    let _second = w.stage_with("train-gru", &gru);
    let events = w.watch(&w.model_training);

    // Two configs per dataset, submitted in order: "a" then "b".
    let csv = generated_csv(1500);
    let ids: Vec<String> = (0..DATASETS).map(|i| format!("{}-{i}", w.id)).collect();
    for id in &ids {
        for salt in ["a", "b"] {
            w.submit_as(id, &csv, &format!(r#"{{"targets": ["down", "up"], "salt": "{salt}"}}"#));
        }
    }

    // A replica is killed as soon as training is under way.
    events.next_where("a first RUNNING", Duration::from_secs(180), |e: &ModelTraining| {
        ids.contains(&e.identifier) && matches!(e.status, TrainingStatus::Running { .. })
    });
    let killed = first.kill();
    eprintln!("scale_out: killed one replica ({killed})");

    // Every (identifier, config) ends with a SUCCESS, with one replica left.
    let mut done: BTreeMap<(String, String), String> = BTreeMap::new();
    while done.len() < 2 * DATASETS {
        let e = events.next_where("all datasets trained", Duration::from_secs(600), |e: &ModelTraining| {
            ids.contains(&e.identifier) && matches!(e.status, TrainingStatus::Success(_))
        });
        done.insert((e.identifier, e.config_hash), e.run_id);
    }

    // Exactly once: one successful run per (identifier, config), even where a
    // fit was cut short by the kill and redone.
    let data: Vec<TrainingData> = decoded(&w.read(&w.training_data, Duration::from_secs(3)));
    let all: Vec<ModelTraining> = decoded(&w.read(&w.model_training, Duration::from_secs(3)));
    for id in &ids {
        let mine: Vec<&TrainingData> = data.iter().filter(|d| &d.identifier == id).collect();
        let hashes: Vec<&str> = mine.iter().map(|d| d.config_hash.as_str()).collect();
        let mut distinct = hashes.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "{id}: two configs published in order: {hashes:?}");
        for hash in &distinct {
            let runs: std::collections::BTreeSet<&str> = all
                .iter()
                .filter(|e| &e.identifier == id && e.config_hash == *hash)
                .filter(|e| matches!(e.status, TrainingStatus::Success(_)))
                .map(|e| e.run_id.as_str())
                .collect();
            assert_eq!(runs.len(), 1, "{id}/{hash}: one successful run, got {runs:?}");
        }
        // Order per identifier: config "a"'s first SUCCESS comes before config "b"'s.
        let first_success = |hash: &str| {
            all.iter()
                .position(|e| {
                    &e.identifier == id && e.config_hash == hash && matches!(e.status, TrainingStatus::Success(_))
                })
                .expect("a success")
        };
        assert!(first_success(distinct[0]) < first_success(distinct[1]), "{id}: trained out of order");
    }
    let _ = std::fs::remove_dir_all(csv.parent().expect("temp dir"));
}
