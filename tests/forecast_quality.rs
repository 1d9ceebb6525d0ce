//! Forecast quality through the real stages on the local stack (issue 18):
//! preprocess, train-gru, train-lstm, prophet, eval and inference as
//! separate processes, with the trainers' defaults for candidates (outlier
//! handling auto, two seeds per network: nothing pinned), small networks and
//! few epochs so that it fits CI.
//!
//! - A generated series with training-period spikes and two targets: every
//!   trainer reports candidates chosen on validation, eval promotes the
//!   validation-best model (or an ensemble that beats every member on
//!   validation), inference serves exactly that run, over HTTP with finite,
//!   non-negative forecasts of the non-negative targets, and in batch.
//! - A sticky random walk, where the last value is the best forecast: no
//!   trained model beats it on validation, eval promotes a BASELINE, and
//!   inference serves it: its forecast is the window's last value.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use contracts::promotion::{Decision, Weights};
use contracts::*;
use flts_tests::pipeline::*;
use flts_tests::*;
use inference::http::{ModelsResponse, PredictResponse};
use serde_json::json;

/// Epochs of the networks: enough for the rung (after 5) to thin the
/// candidates and for the networks to beat the naive forecasts of the
/// generated traffic with a margin, few enough for CI.
const EPOCHS: &str = "15";

/// One submission run through every stage, and what it left.
struct Submission {
    w: World,
    /// The stages, stopped when dropped.
    _stages: Vec<StageProcess>,
    /// The HTTP port of the inference process.
    port: u16,
    promotion: ModelSelected,
    decision: Decision,
    /// The trainers' final SUCCESS events for the dataset.
    successes: Vec<(ModelType, String, TrainingSuccess)>,
    started: Instant,
}

/// Start every stage on a world of its own (its small networks, [`EPOCHS`];
/// the trainers' own defaults for candidates, SEEDS and outliers,
/// left alone), submit `csv` with `config`, and wait for the promotion and
/// its decision record.
async fn submit(name: &str, csv: &std::path::Path, config: &str) -> Submission {
    let w = World::new().await;
    let [port] = free_ports();
    let http = format!("127.0.0.1:{port}");
    let _stages: Vec<StageProcess> = stages()
        .map(|b| match b {
            "inference" => w.stage_with(b, &[("HTTP_ADDR", &http)]),
            _ => w.stage_with(b, &[("EPOCHS", EPOCHS)]),
        })
        .collect();
    let started = Instant::now();
    w.submit(csv, config);
    let selected = w.wait_for(&w.model_selected, Duration::from_secs(300), "model-selected", |m| {
        decoded::<ModelSelected>(m).iter().any(|s| s.identifier == w.id)
    });
    let promotion = decoded::<ModelSelected>(&selected).into_iter().find(|s| s.identifier == w.id).expect("promotion");
    eprintln!(
        "{name}: {} promoted {:.1} s after the submission",
        promotion.model_type,
        started.elapsed().as_secs_f64()
    );
    let store = claim_check::ClaimCheckStore::new(&w.stack.s3);
    let bytes = store.get_object("model-promotion", &promotion.decision_object).await.expect("decision record");
    let decision: Decision = serde_json::from_slice(&bytes).expect("decision JSON");
    let events = decoded::<ModelTraining>(&w.read(&w.model_training, Duration::from_secs(3)));
    let successes = events
        .into_iter()
        .filter(|e| e.identifier == w.id)
        .filter_map(|e| match e.status {
            TrainingStatus::Success(s) => Some((e.model_type, e.run_id, *s)),
            _ => None,
        })
        .collect();
    Submission { w, _stages, port, promotion, decision, successes, started }
}

impl Submission {
    /// Every trainer reported SUCCESS with candidates chosen on validation,
    /// and its MLflow run records the same validation score and candidates.
    async fn assert_candidates_were_trained(&self) {
        let mlflow = mlflow_client::MlflowClient::new(&stack().mlflow).expect("mlflow client");
        let mut types: Vec<ModelType> = self.successes.iter().map(|(m, _, _)| *m).collect();
        types.sort_unstable();
        assert_eq!(types, [ModelType::Gru, ModelType::Lstm, ModelType::Prophet], "one SUCCESS per trainer");
        for (model_type, run_id, s) in &self.successes {
            let v = s.validation.as_ref().unwrap_or_else(|| panic!("{model_type}'s SUCCESS has no validation"));
            assert!(v.candidates > 1, "{model_type} trained {} candidate(s): {v:?}", v.candidates);
            assert!(v.windows > 0 && v.metrics.rmse.is_finite(), "{model_type}: {v:?}");
            assert!(v.choice.contains_key("outliers"), "{model_type} names its preprocessing choice: {v:?}");
            if *model_type != ModelType::Prophet {
                assert!(v.choice.contains_key("seed"), "{model_type} names its seed: {v:?}");
            }
            let run = mlflow.get_run(run_id).await.expect("trainer run");
            assert_eq!(run.metric("candidates"), Some(v.candidates as f64), "{model_type} run {run_id}");
            assert_eq!(run.metric("val_rmse"), Some(v.metrics.rmse), "{model_type} run {run_id}");
            eprintln!(
                "{model_type}: {} candidates, chose {:?}, validation score {:.6} vs naive {:.6}",
                v.candidates,
                v.choice,
                self.decision.weights.score(&v.metrics),
                best_naive(&v.baselines, &self.decision.weights)
            );
        }
    }

    /// The trained models that beat their naive baselines on validation,
    /// best (lowest validation composite score) first: (type, run, score).
    fn passing(&self) -> Vec<(ModelType, String, f64)> {
        let weights = &self.decision.weights;
        let mut passing: Vec<(ModelType, String, f64)> = self
            .successes
            .iter()
            .filter_map(|(m, run, s)| {
                let v = s.validation.as_ref()?;
                let score = weights.score(&v.metrics);
                (score < best_naive(&v.baselines, weights)).then(|| (*m, run.clone(), score))
            })
            .collect();
        passing.sort_by(|a, b| a.2.total_cmp(&b.2));
        passing
    }

    /// What `GET /model?identifier=` answers once inference serves the
    /// promoted run (waits for it).
    async fn served_model(&self) -> model_runtime::model::ModelInfo {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}/model?identifier={}", self.port, self.w.id);
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = String::new();
        loop {
            if let Ok(resp) = client.get(&url).send().await {
                let status = resp.status();
                let body = resp.text().await.unwrap_or_default();
                let served =
                    serde_json::from_str::<ModelsResponse>(&body).ok().and_then(|r| r.models.into_iter().next());
                if let Some(info) = served.filter(|m| status.is_success() && m.run_id == self.promotion.run_id) {
                    return info;
                }
                last = format!("{status} {body}");
            }
            assert!(
                Instant::now() < deadline,
                "inference does not serve run {} within 120 s; GET /model: {last}",
                self.promotion.run_id
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    /// `POST /predict` of `windows` (rows as feature-name objects, and the
    /// rows' times, which models with a Prophet part forecast by).
    async fn predict(&self, windows: &[Window]) -> PredictResponse {
        let (rows, times): (Vec<_>, Vec<_>) = windows.iter().cloned().unzip();
        let body = json!({"identifier": self.w.id, "windows": rows, "timestamps": times});
        let url = format!("http://127.0.0.1:{}/predict", self.port);
        let resp = reqwest::Client::new().post(url).json(&body).send().await.expect("POST /predict");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert!(status.is_success(), "POST /predict answered {status}: {text}");
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("POST /predict body {text}: {e}"))
    }

    /// The batch forecast of the dataset's test part by the promoted run,
    /// with its JSONL results checked against their claim check.
    async fn assert_batch_written(&self) {
        let run_id = &self.promotion.run_id;
        let perf = self.w.wait_for(&self.w.performance_eval, Duration::from_secs(300), "performance-eval", |m| {
            decoded::<PerformanceEval>(m).iter().any(|p| p.identifier == self.w.id && &p.run_id == run_id)
        });
        let summary = decoded::<PerformanceEval>(&perf)
            .into_iter()
            .find(|p| p.identifier == self.w.id && &p.run_id == run_id)
            .expect("summary");
        assert_eq!(summary.model_type, self.promotion.model_type);
        assert!(summary.windows > 0 && summary.metrics.rmse.is_finite(), "{summary:?}");
        self.w.check_results(&summary).await;
        eprintln!(
            "batch inference by {} ({} windows) {:.1} s after the submission",
            summary.model_type,
            summary.windows,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// `flts report` names the promoted run as the winner.
    fn assert_report_names_the_winner(&self) {
        let text = self.w.flts(&["report", "--identifier", &self.w.id, "--wait-secs", "30"]);
        let want = format!("winner: {} (run {})", self.promotion.model_type, self.promotion.run_id);
        assert!(text.contains(&want), "the report lacks {want:?}:\n{text}");
    }
}

/// The best naive baseline's composite score.
fn best_naive(b: &Baselines, weights: &Weights) -> f64 {
    let seasonal = b.seasonal_naive.as_ref().map_or(f64::INFINITY, |m| weights.score(m));
    weights.score(&b.last_value).min(seasonal)
}

/// One `/predict` window: its rows and their times (ms).
type Window = (Vec<serde_json::Value>, Vec<i64>);

/// Rows `range` of `frame` as a `/predict` window: objects keyed by feature name.
fn window(frame: &series::Frame, features: &[String], range: std::ops::Range<usize>) -> Window {
    let times = frame.timestamps[range.clone()].to_vec();
    let rows = range
        .map(|r| {
            let row: serde_json::Map<String, serde_json::Value> = features
                .iter()
                .map(|f| (f.clone(), json!(frame.column(f).unwrap_or_else(|| panic!("column {f}"))[r])))
                .collect();
            serde_json::Value::Object(row)
        })
        .collect();
    (rows, times)
}

/// Whether rows `range` of `frame` have a value in every column.
fn complete(frame: &series::Frame, range: std::ops::Range<usize>) -> bool {
    frame.columns.iter().all(|c| c.values[range.clone()].iter().all(|v| v.is_finite()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_chosen_on_validation_and_inference_serves_the_validation_best() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(unique("forecast-quality"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = dataset::generate::Spec { rows: 2400, seed: 11, spikes: 8, ..Default::default() };
    let frame = dataset::generate::traffic(&spec);
    let csv = dir.join("spiky.csv");
    std::fs::write(&csv, dataset::write_raw_csv(&frame, "timestamp")).expect("write csv");
    let s = submit("spiky", &csv, r#"{"targets": ["down", "up"]}"#).await;
    s.assert_candidates_were_trained().await;

    // The promotion is the validation-best trained model, or an ensemble
    // that beats every member (and the naive baselines) on validation.
    let (d, p) = (&s.decision, &s.promotion);
    let passing = s.passing();
    let tried = d.ensemble.as_ref().map(|e| e.note.as_str());
    eprintln!("passing on validation, best first: {passing:?}\ndecision: {}\nensemble: {tried:?}", d.outcome.reason);
    assert!(!passing.is_empty(), "no trained model beat the naive baselines on validation: {}", d.outcome.reason);
    assert_eq!(d.fallback, None, "a trained model passed, so no fallback");
    let winner = &d.outcome.candidates[d.outcome.winner.expect("the decision has a winner")];
    assert_eq!((winner.model_type, &winner.run_id), (p.model_type, &p.run_id), "the decision's winner is promoted");
    // An ensemble is promoted exactly when it beats every member and the
    // naive baselines on validation.
    let naive = s
        .successes
        .iter()
        .filter_map(|(_, _, x)| x.validation.as_ref().map(|v| best_naive(&v.baselines, &d.weights)))
        .fold(f64::INFINITY, f64::min);
    let ensemble_wins = d.ensemble.as_ref().is_some_and(|e| {
        e.validation_score < naive && e.members.iter().all(|m| e.validation_score < m.validation_score)
    });
    assert_eq!(p.model_type == ModelType::Ensemble, ensemble_wins, "ensemble tried: {:?}", d.ensemble);
    match p.model_type {
        ModelType::Ensemble => {
            let e = d.ensemble.as_ref().expect("the decision records the ensemble");
            assert!(e.beats_members && e.run_id.as_deref() == Some(p.run_id.as_str()), "{e:?}");
            let mut members: Vec<&str> = e.members.iter().map(|m| m.run_id.as_str()).collect();
            let mut trained: Vec<&str> = s.successes.iter().map(|(_, r, _)| r.as_str()).collect();
            members.sort_unstable();
            trained.sort_unstable();
            assert_eq!(members, trained, "the ensemble's members are the trainers' runs");
            let best = passing[0].2;
            assert!(e.validation_score < best, "the ensemble beats the best single model's validation score {best}");
            let weights: f64 = e.members.iter().map(|m| m.weight).sum();
            assert!((weights - 1.0).abs() < 1e-9 && e.members.iter().all(|m| m.weight > 0.0), "{e:?}");
        }
        other => {
            let (best_type, best_run, _) = &passing[0];
            assert_eq!((other, &p.run_id), (*best_type, best_run), "the validation-best model is promoted");
        }
    }
    let mlflow = mlflow_client::MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let run = mlflow.get_run(&p.run_id).await.expect("promoted run");
    assert_eq!(run.tag("flts.model_type"), Some(p.model_type.to_string().as_str()));
    assert_eq!(run.tag("flts.identifier"), Some(s.w.id.as_str()));
    assert!(run.tag("flts.promoted_at").is_some(), "eval tags the promoted run");
    s.assert_report_names_the_winner();

    // Inference serves exactly that run; its forecasts of the non-negative
    // targets are finite and non-negative, also from a window of zeros
    // (below anything in training: where an unfloored network goes negative).
    let info = s.served_model().await;
    assert_eq!((info.model_type, &info.run_id), (p.model_type, &p.run_id), "/model names the promoted run");
    assert_eq!(info.targets, ["down", "up"]);
    if let Some(e) = d.ensemble.as_ref().filter(|_| p.model_type == ModelType::Ensemble) {
        let served: Vec<(&str, f64)> = info.members.iter().map(|m| (m.run_id.as_str(), m.weight)).collect();
        let decided: Vec<(&str, f64)> = e.members.iter().map(|m| (m.run_id.as_str(), m.weight)).collect();
        assert_eq!(served, decided, "/model lists the ensemble's members and weights");
    }
    let n = info.input_len as usize;
    let test_start = frame.len() * 4 / 5;
    let mut windows: Vec<Window> = (test_start..frame.len() - n)
        .step_by(37)
        .filter(|&i| complete(&frame, i..i + n))
        .map(|i| window(&frame, &info.features, i..i + n))
        .collect();
    assert!(windows.len() >= 5, "complete test windows: {}", windows.len());
    let zeros: serde_json::Map<String, serde_json::Value> =
        info.features.iter().map(|f| (f.clone(), json!(0.0))).collect();
    let times = windows[0].1.clone();
    windows.push((vec![serde_json::Value::Object(zeros); n], times));
    let answer = s.predict(&windows).await;
    assert_eq!((answer.model.model_type, &answer.model.run_id), (p.model_type, &p.run_id));
    assert_eq!(answer.forecasts.len(), windows.len());
    let values: Vec<f64> = answer.forecasts.iter().flatten().flatten().copied().collect();
    assert!(values.iter().all(|v| v.is_finite() && *v >= 0.0), "forecasts of down/up: {:?}", answer.forecasts);
    s.assert_batch_written().await;
    eprintln!("spiky: whole test {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}

/// A sticky random walk of `rows` 2-minute rows in column `y`: most steps
/// are 0, the others ±1..3 (hashed from the row, so the same every run). The
/// last value is the best forecast of such a series, and exact on most rows.
fn sticky_random_walk(rows: usize) -> series::Frame {
    let start = 1_700_000_000_000i64;
    let mut level = 100.0f64;
    let values = (0..rows)
        .map(|i| {
            let mut h = DefaultHasher::new();
            ("forecast-quality", i).hash(&mut h);
            let r = h.finish();
            if r % 100 >= 85 {
                let step = 1.0 + ((r >> 8) % 3) as f64;
                level += if (r >> 16).is_multiple_of(2) || level < 30.0 { step } else { -step };
            }
            level
        })
        .collect();
    let timestamps = (0..rows as i64).map(|i| start + i * 120_000).collect();
    series::Frame::new(timestamps, vec![series::Column::new("y", values)]).expect("frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_series_no_model_beats_gets_a_promoted_baseline_that_inference_serves() {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(unique("forecast-quality"));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let frame = sticky_random_walk(2000);
    let csv = dir.join("walk.csv");
    std::fs::write(&csv, dataset::write_raw_csv(&frame, "timestamp")).expect("write csv");
    // No config: the target is the default (`y`).
    let s = submit("walk", &csv, "{}").await;
    s.assert_candidates_were_trained().await;

    let (d, p) = (&s.decision, &s.promotion);
    assert!(s.passing().is_empty(), "a trained model beat the last value on a random walk: {:?}", s.passing());
    assert_eq!(p.model_type, ModelType::Baseline, "{}", d.outcome.reason);
    let fallback = d.fallback.as_deref().expect("the decision says it fell back");
    assert!(fallback.contains("last_value"), "{fallback}");
    let winner = &d.outcome.candidates[d.outcome.winner.expect("the decision has a winner")];
    assert_eq!((winner.model_type, &winner.run_id), (ModelType::Baseline, &p.run_id));
    assert!(d.outcome.candidates.iter().filter(|c| c.status == "SUCCESS").all(|c| c.passed_gate == Some(false)));
    if let Some(e) = &d.ensemble {
        assert!(!e.beats_members || e.run_id.is_none(), "no ensemble is promoted: {e:?}");
    }
    let mlflow = mlflow_client::MlflowClient::new(&stack().mlflow).expect("mlflow client");
    let run = mlflow.get_run(&p.run_id).await.expect("baseline run");
    assert_eq!(run.tag("flts.model_type"), Some("BASELINE"));
    assert!(run.tag("flts.promoted_at").is_some(), "eval tags the promoted run");
    s.assert_report_names_the_winner();

    // Inference serves the baseline: each forecast is its window's last value.
    let info = s.served_model().await;
    assert_eq!((info.model_type, &info.run_id), (ModelType::Baseline, &p.run_id));
    assert_eq!((info.features.as_slice(), info.targets.as_slice()), (&["y".to_string()][..], &["y".to_string()][..]));
    let n = info.input_len as usize;
    let starts: Vec<usize> = (0..frame.len() - n).step_by(97).collect();
    let windows: Vec<Window> = starts.iter().map(|&i| window(&frame, &info.features, i..i + n)).collect();
    let answer = s.predict(&windows).await;
    assert_eq!((answer.model.model_type, &answer.model.run_id), (ModelType::Baseline, &p.run_id));
    let y = frame.column("y").expect("y");
    for (&i, forecast) in starts.iter().zip(&answer.forecasts) {
        let last = y[i + n - 1];
        for step in forecast {
            assert!((step[0] - last).abs() <= 1e-4 * last.abs().max(1.0), "window at row {i}: {step:?} vs last {last}");
        }
    }
    s.assert_batch_written().await;
    eprintln!("walk: whole test {:.1} s", started.elapsed().as_secs_f64());
    let _ = std::fs::remove_dir_all(&dir);
}
