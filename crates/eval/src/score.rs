//! Scoring and promotion rules, pure: no I/O, unit-tested.
//!
//! - The composite score is `w_rmse*rmse + w_mae*mae + w_mse*mse` on the test
//!   metrics in scaled units (lower is better; seed 002 weights 0.5/0.3/0.2).
//! - A candidate must beat the best naive baseline its own trainer reports
//!   under the same protocol on the same rows (the gate; can be switched off).
//! - The winner is the lowest score among candidates that pass; a tie goes to
//!   the newer training end time.

use std::collections::BTreeMap;

use contracts::{Metrics, ModelTraining, ModelType, TrainingStatus};

pub use contracts::promotion::{Candidate, Outcome, Weights};

/// Apply the rules to the final report of each model type.
pub fn decide(reports: &BTreeMap<ModelType, ModelTraining>, weights: &Weights, gate: bool) -> Outcome {
    let mut candidates = Vec::new();
    let mut ends = Vec::new();
    for (model_type, ev) in reports {
        match &ev.status {
            TrainingStatus::Success(s) => {
                let metrics = Metrics { mse: s.test_mse, rmse: s.test_rmse, mae: s.test_mae };
                let score = weights.score(&metrics);
                let mut baselines = vec![("last_value".to_string(), weights.score(&s.baselines.last_value))];
                if let Some(sn) = &s.baselines.seasonal_naive {
                    baselines.push(("seasonal_naive".to_string(), weights.score(sn)));
                }
                let best = baselines.into_iter().min_by(|a, b| a.1.total_cmp(&b.1));
                let passed = !gate || best.as_ref().is_none_or(|(_, b)| score < *b);
                let note = match (&best, passed) {
                    (Some((name, b)), false) => format!("score {score:.6} does not beat {name} baseline {b:.6}"),
                    (Some((name, b)), true) => format!("score {score:.6} vs {name} baseline {b:.6}"),
                    (None, _) => format!("score {score:.6}"),
                };
                candidates.push(Candidate {
                    model_type: *model_type,
                    run_id: ev.run_id.clone(),
                    status: "SUCCESS".into(),
                    metrics: Some(metrics),
                    score: Some(score),
                    baseline: best,
                    passed_gate: Some(passed),
                    note,
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
    let reason = match winner {
        Some(i) => format!(
            "{} has the lowest composite score {:.6} among {} candidate(s) that beat their naive baselines",
            candidates[i].model_type,
            candidates[i].score.unwrap_or_default(),
            candidates.iter().filter(|c| c.passed_gate == Some(true)).count()
        ),
        None if succeeded == 0 => "no trainer reported SUCCESS".to_string(),
        None => format!(
            "no candidate beat its naive baseline: {}",
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
                validation: None,
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
        assert!(out.reason.starts_with("no candidate beat its naive baseline"), "{}", out.reason);
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
}
