//! Scoring and promotion rules, pure: no I/O, unit-tested.
//!
//! - The composite score is `w_rmse*rmse + w_mae*mae + w_mse*mse` in scaled
//!   units (lower is better; seed 002 weights 0.5/0.3/0.2), on the
//!   **validation** windows each trainer reports (`TrainingSuccess.validation`).
//!   Test metrics are only reported: they never change a choice. An event
//!   without validation (a trainer older than issue 18) is scored on test, and
//!   its candidate says so (`scored_on = test`).
//! - A candidate must beat the best naive baseline on the same windows (the
//!   gate; can be switched off): the validation baselines when it is scored on
//!   validation. The gate compares **RMSE**, the measure forecasts of load are
//!   judged by (the study's NRMSE): on bursty series MAE favours the last
//!   value, a median-like forecast, and a composite gate would hand a site
//!   the naive forecast where the models forecast better by RMSE.
//! - The winner is the lowest score among candidates that pass; a tie goes to
//!   the newer training end time. What eval composes (an ensemble, a naive
//!   baseline) is decided in [`crate::compose`] on the same scores.

use std::collections::BTreeMap;

use contracts::promotion::ScoredOn;
use contracts::{Baselines, Metrics, ModelTraining, ModelType, TrainingStatus, TrainingSuccess};

pub use contracts::promotion::{Candidate, Outcome, Weights};

/// What a SUCCESS is scored on: its validation metrics and baselines when it
/// reports them, else its test metrics and baselines.
pub fn basis(s: &TrainingSuccess) -> (ScoredOn, Metrics, &Baselines) {
    match &s.validation {
        Some(v) => (ScoredOn::Validation, v.metrics, &v.baselines),
        None => (ScoredOn::Test, test_metrics(s), &s.baselines),
    }
}

/// The test metrics of a SUCCESS (reported only).
pub fn test_metrics(s: &TrainingSuccess) -> Metrics {
    Metrics { mse: s.test_mse, rmse: s.test_rmse, mae: s.test_mae }
}

/// The best naive baseline of `baselines`: (name, composite score).
pub fn best_baseline(baselines: &Baselines, weights: &Weights) -> (String, f64) {
    let mut best = ("last_value".to_string(), weights.score(&baselines.last_value));
    if let Some(sn) = &baselines.seasonal_naive {
        let s = weights.score(sn);
        if s < best.1 {
            best = ("seasonal_naive".to_string(), s);
        }
    }
    best
}

/// The best naive baseline of `baselines` by RMSE, the gate's measure: (name, RMSE).
pub fn best_baseline_rmse(baselines: &Baselines) -> (String, f64) {
    match &baselines.seasonal_naive {
        Some(sn) if sn.rmse < baselines.last_value.rmse => ("seasonal_naive".to_string(), sn.rmse),
        _ => ("last_value".to_string(), baselines.last_value.rmse),
    }
}

/// Apply the rules to the final report of each model type.
pub fn decide(reports: &BTreeMap<ModelType, ModelTraining>, weights: &Weights, gate: bool) -> Outcome {
    let mut candidates = Vec::new();
    let mut ends = Vec::new();
    for (model_type, ev) in reports {
        match &ev.status {
            TrainingStatus::Success(s) => {
                let (scored_on, scored, baselines) = basis(s);
                let score = weights.score(&scored);
                let (name, b) = best_baseline(baselines, weights);
                let (gate_name, gate_rmse) = best_baseline_rmse(baselines);
                let passed = !gate || scored.rmse < gate_rmse;
                let on = match scored_on {
                    ScoredOn::Validation => "validation",
                    ScoredOn::Test => "test (the trainer reported no validation)",
                };
                let verdict = if passed { "beats" } else { "does not beat" };
                let note =
                    format!("{on} score {score:.6}; RMSE {:.6} {verdict} {gate_name}'s {gate_rmse:.6}", scored.rmse);
                candidates.push(Candidate {
                    model_type: *model_type,
                    run_id: ev.run_id.clone(),
                    status: "SUCCESS".into(),
                    metrics: Some(test_metrics(s)),
                    score: Some(score),
                    baseline: Some((name, b)),
                    passed_gate: Some(passed),
                    note,
                    scored_on,
                    validation: s.validation.as_ref().map(|v| v.metrics),
                    choice: s.validation.as_ref().map(|v| v.choice.clone()).unwrap_or_default(),
                    test_nrmse: BTreeMap::new(),
                });
                ends.push(Some(s.train_end));
            }
            TrainingStatus::Failed { reason, error_kind, .. } => {
                candidates.push(Candidate {
                    model_type: *model_type,
                    run_id: ev.run_id.clone(),
                    status: "FAILED".into(),
                    metrics: None,
                    score: None,
                    baseline: None,
                    passed_gate: None,
                    note: format!("training failed ({error_kind}): {reason}"),
                    scored_on: ScoredOn::Validation,
                    validation: None,
                    choice: BTreeMap::new(),
                    test_nrmse: BTreeMap::new(),
                });
                ends.push(None);
            }
            TrainingStatus::Running { .. } => {}
        }
    }
    let winner = (0..candidates.len()).filter(|&i| candidates[i].passed_gate == Some(true)).min_by(|&a, &b| {
        let (sa, sb) = (candidates[a].score.unwrap_or(f64::INFINITY), candidates[b].score.unwrap_or(f64::INFINITY));
        // Lower score first; on a tie the newer train_end first.
        sa.total_cmp(&sb).then_with(|| ends[b].cmp(&ends[a]))
    });
    let succeeded = candidates.iter().filter(|c| c.status == "SUCCESS").count();
    let on_test: Vec<String> = candidates
        .iter()
        .filter(|c| c.status == "SUCCESS" && c.scored_on == ScoredOn::Test)
        .map(|c| c.model_type.to_string())
        .collect();
    let basis_note = if on_test.is_empty() {
        "on validation".to_string()
    } else {
        format!("on validation ({} reported none and are scored on test)", on_test.join(", "))
    };
    let reason = match winner {
        Some(i) => format!(
            "{} has the lowest composite score {:.6} {basis_note} among {} candidate(s) that beat their naive baselines",
            candidates[i].model_type,
            candidates[i].score.unwrap_or_default(),
            candidates.iter().filter(|c| c.passed_gate == Some(true)).count()
        ),
        None if succeeded == 0 => "no trainer reported SUCCESS".to_string(),
        None => format!(
            "no candidate beat its naive baseline {basis_note}: {}",
            candidates
                .iter()
                .filter(|c| c.status == "SUCCESS")
                .map(|c| format!("{}: {}", c.model_type, c.note))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    Outcome { candidates, winner, reason }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use contracts::*;

    pub fn success(model_type: ModelType, rmse: f64, baseline_rmse: f64, end_hour: u32) -> ModelTraining {
        let m = |r: f64| Metrics { mse: r * r, rmse: r, mae: r * 0.8 };
        let at = |h| Utc.with_ymd_and_hms(2026, 11, 22, h, 0, 0).single().expect("valid");
        ModelTraining {
            v: V1,
            identifier: "site-1".into(),
            model_type,
            config_hash: "h".into(),
            run_id: format!("run-{model_type}"),
            status: TrainingStatus::Success(Box::new(TrainingSuccess {
                test_rmse: rmse,
                test_mae: rmse * 0.8,
                test_mse: rmse * rmse,
                train_start: at(0),
                train_end: at(end_hour),
                artifact_uri: format!("mlflow-artifacts:/1/run-{model_type}/artifacts"),
                model_sha256: Some("a".repeat(64)),
                model: ModelArtifact {
                    format: ModelFormat::Onnx,
                    path: "model/model.onnx".into(),
                    scaler_path: "model/scaler.json".into(),
                    input_len: 10,
                    output_len: 1,
                    features: vec!["x".into()],
                    targets: vec!["x".into()],
                },
                protocol: EvalProtocol::OneStepAhead,
                baselines: Baselines { last_value: m(baseline_rmse), seasonal_naive: Some(m(baseline_rmse * 2.0)) },
                validation: Some(Validation {
                    metrics: m(rmse),
                    baselines: Baselines { last_value: m(baseline_rmse), seasonal_naive: Some(m(baseline_rmse * 2.0)) },
                    windows: 10,
                    candidates: 1,
                    choice: BTreeMap::from([("seed".to_string(), "1".to_string())]),
                }),
            })),
        }
    }

    pub fn failed(model_type: ModelType) -> ModelTraining {
        ModelTraining {
            status: TrainingStatus::Failed {
                reason: "loss became NaN".into(),
                error_kind: "nan_loss".into(),
                failed_at: Utc::now(),
            },
            ..success(model_type, 1.0, 1.0, 1)
        }
    }

    fn reports(evs: Vec<ModelTraining>) -> BTreeMap<ModelType, ModelTraining> {
        evs.into_iter().map(|e| (e.model_type, e)).collect()
    }

    #[test]
    fn composite_score_uses_the_reference_formula() {
        let m = Metrics { mse: 0.04, rmse: 0.2, mae: 0.1 };
        assert!((Weights::default().score(&m) - (0.5 * 0.2 + 0.3 * 0.1 + 0.2 * 0.04)).abs() < 1e-15);
    }

    #[test]
    fn lowest_score_wins() {
        let r = reports(vec![
            success(ModelType::Gru, 0.3, 1.0, 1),
            success(ModelType::Lstm, 0.2, 1.0, 1),
            success(ModelType::Prophet, 0.5, 1.0, 1),
        ]);
        let out = decide(&r, &Weights::default(), true);
        let w = &out.candidates[out.winner.expect("a winner")];
        assert_eq!(w.model_type, ModelType::Lstm);
        assert!(out.reason.contains("LSTM"), "{}", out.reason);
    }

    #[test]
    fn tie_goes_to_the_newer_training_end() {
        let r = reports(vec![success(ModelType::Gru, 0.2, 1.0, 1), success(ModelType::Lstm, 0.2, 1.0, 5)]);
        let out = decide(&r, &Weights::default(), true);
        assert_eq!(out.candidates[out.winner.expect("winner")].model_type, ModelType::Lstm);
        let r = reports(vec![success(ModelType::Gru, 0.2, 1.0, 7), success(ModelType::Lstm, 0.2, 1.0, 5)]);
        let out = decide(&r, &Weights::default(), true);
        assert_eq!(out.candidates[out.winner.expect("winner")].model_type, ModelType::Gru);
    }

    #[test]
    fn a_model_worse_than_naive_cannot_win() {
        // LSTM has the best score but loses to its own last-value baseline.
        let r = reports(vec![success(ModelType::Gru, 0.3, 0.4, 1), success(ModelType::Lstm, 0.2, 0.1, 1)]);
        let out = decide(&r, &Weights::default(), true);
        assert_eq!(out.candidates[out.winner.expect("winner")].model_type, ModelType::Gru);
        // With the gate off the best score wins.
        let out = decide(&r, &Weights::default(), false);
        assert_eq!(out.candidates[out.winner.expect("winner")].model_type, ModelType::Lstm);
    }

    #[test]
    fn nothing_is_promoted_when_every_model_is_worse_than_naive() {
        let r = reports(vec![success(ModelType::Gru, 0.3, 0.1, 1), success(ModelType::Lstm, 0.2, 0.1, 1)]);
        let out = decide(&r, &Weights::default(), true);
        assert_eq!(out.winner, None);
        assert!(out.reason.starts_with("no candidate beat its naive baseline on validation"), "{}", out.reason);
        assert!(out.reason.contains("last_value"), "{}", out.reason);
    }

    #[test]
    fn failed_trainers_are_recorded_but_never_win() {
        let r = reports(vec![failed(ModelType::Gru), success(ModelType::Prophet, 0.4, 1.0, 1)]);
        let out = decide(&r, &Weights::default(), true);
        assert_eq!(out.candidates[out.winner.expect("winner")].model_type, ModelType::Prophet);
        let gru = out.candidates.iter().find(|c| c.model_type == ModelType::Gru).expect("GRU recorded");
        assert_eq!(gru.status, "FAILED");
        assert!(gru.note.contains("nan_loss"));
        let out = decide(&reports(vec![failed(ModelType::Gru)]), &Weights::default(), true);
        assert_eq!(out.winner, None);
        assert_eq!(out.reason, "no trainer reported SUCCESS");
    }

    /// `ev` with its test metrics (and test baselines) set to `rmse`.
    fn with_test(mut ev: ModelTraining, rmse: f64) -> ModelTraining {
        if let TrainingStatus::Success(s) = &mut ev.status {
            (s.test_rmse, s.test_mae, s.test_mse) = (rmse, rmse * 0.8, rmse * rmse);
            s.baselines.last_value = Metrics { mse: 1e6, rmse: 1e3, mae: 1e3 };
        }
        ev
    }

    #[test]
    fn the_choice_is_made_on_validation_and_test_metrics_cannot_change_it() {
        let evs = || vec![success(ModelType::Gru, 0.3, 1.0, 1), success(ModelType::Lstm, 0.2, 1.0, 1)];
        let base = decide(&reports(evs()), &Weights::default(), true);
        assert_eq!(base.candidates[base.winner.expect("winner")].model_type, ModelType::Lstm);
        assert!(base.reason.contains("on validation"), "{}", base.reason);
        // Whatever the test rows say (LSTM's test far worse, GRU's perfect, the
        // test baselines unbeatable), the choice and the scores stay.
        for (gru_test, lstm_test) in [(0.0, 9.0), (9.0, 0.0), (0.25, 0.25)] {
            let [gru, lstm]: [ModelTraining; 2] = evs().try_into().expect("two");
            let out =
                decide(&reports(vec![with_test(gru, gru_test), with_test(lstm, lstm_test)]), &Weights::default(), true);
            assert_eq!(out.winner, base.winner);
            let scores = |o: &Outcome| o.candidates.iter().map(|c| c.score).collect::<Vec<_>>();
            assert_eq!(scores(&out), scores(&base));
            assert!(out.candidates.iter().all(|c| c.scored_on == ScoredOn::Validation && c.passed_gate == Some(true)));
            let gru = out.candidates.iter().find(|c| c.model_type == ModelType::Gru).expect("GRU");
            assert_eq!(gru.metrics.expect("test metrics reported").rmse, gru_test, "test metrics are reported");
        }
    }

    #[test]
    fn the_gate_is_rmse_so_a_median_like_naive_forecast_cannot_shut_out_a_better_model() {
        // Bursty series: the model's validation RMSE beats last value, its MAE does not
        // (last value is right on every quiet step), so the composite score loses.
        let mut ev = success(ModelType::Gru, 0.0090, 0.0092, 1);
        if let TrainingStatus::Success(s) = &mut ev.status {
            let v = s.validation.as_mut().unwrap();
            v.metrics.mae = 0.0060;
            v.baselines.last_value.mae = 0.0030;
        }
        let w = Weights::default();
        let TrainingStatus::Success(s) = &ev.status else { unreachable!() };
        let v = s.validation.as_ref().unwrap();
        assert!(w.score(&v.metrics) > w.score(&v.baselines.last_value), "the composite favours last value");
        let out = decide(&reports(vec![ev]), &w, true);
        assert_eq!(out.winner, Some(0), "{:?}", out.candidates[0].note);
        assert!(
            out.candidates[0].note.contains("RMSE 0.009000 beats last_value's 0.009200"),
            "{}",
            out.candidates[0].note
        );
    }

    #[test]
    fn the_gate_compares_against_the_validation_baselines() {
        // Test baselines say LSTM loses to naive; validation says it wins.
        let mut lstm = success(ModelType::Lstm, 0.2, 1.0, 1);
        if let TrainingStatus::Success(s) = &mut lstm.status {
            s.baselines.last_value = Metrics { mse: 0.0001, rmse: 0.01, mae: 0.01 };
        }
        let out = decide(&reports(vec![lstm.clone()]), &Weights::default(), true);
        assert_eq!(out.winner, Some(0));
        // And the other way round: a validation baseline it cannot beat.
        if let TrainingStatus::Success(s) = &mut lstm.status {
            s.validation.as_mut().expect("validation").baselines.last_value =
                Metrics { mse: 0.0001, rmse: 0.01, mae: 0.01 };
        }
        let out = decide(&reports(vec![lstm]), &Weights::default(), true);
        assert_eq!(out.winner, None);
    }

    #[test]
    fn an_event_without_validation_is_scored_on_test_and_says_so() {
        let mut gru = success(ModelType::Gru, 0.3, 1.0, 1);
        if let TrainingStatus::Success(s) = &mut gru.status {
            s.validation = None;
        }
        let out = decide(&reports(vec![gru, success(ModelType::Lstm, 0.4, 1.0, 1)]), &Weights::default(), true);
        let c = &out.candidates[out.winner.expect("winner")];
        assert_eq!((c.model_type, c.scored_on), (ModelType::Gru, ScoredOn::Test));
        assert!(c.note.contains("no validation"), "{}", c.note);
        assert!(out.reason.contains("GRU reported none and are scored on test"), "{}", out.reason);
    }
}
