//! The promotion contract: what eval writes to the model-promotion bucket and
//! what inference and the operator CLI read from it.
//!
//! Objects, under the promotion bucket:
//! - `<identifier>/<config_hash>/decision.json`: the latest [`Decision`] for a
//!   set (earlier ones of the same set are kept as
//!   `<identifier>/<config_hash>/decision-<n>.json`).
//! - `<identifier>/current.json`: the [`ModelSelected`] inference serves for
//!   the dataset (the *pointer*); `current.json`: the latest over all datasets.
//! - `<identifier>/sequence.json`: the [`Sequence`] counter of the dataset.
//!
//! **Ordering.** Every promotion carries eval's own sequence number, per
//! identifier, strictly increasing on every promotion (a re-promotion of an
//! older run, e.g. a rollback, gets a new, higher number too). Inference
//! orders promotions by it and never by a wall-clock field. A model-selected
//! record is only a notification: inference acts on the pointer, and a record
//! the pointer does not confirm is refused ([`confirm`]).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::{Metrics, ModelArtifact, ModelSelected, ModelType};

/// `<identifier>/<config_hash>/decision.json`
pub fn decision_key(identifier: &str, config_hash: &str) -> String {
    format!("{identifier}/{config_hash}/decision.json")
}

/// `<identifier>/<config_hash>/decision-<n>.json`: the `n`-th earlier decision of a set.
pub fn archived_decision_key(identifier: &str, config_hash: &str, n: u32) -> String {
    format!("{identifier}/{config_hash}/decision-{n}.json")
}

/// `<identifier>/current.json`: the promotion inference serves for a dataset.
pub fn current_key(identifier: &str) -> String {
    format!("{identifier}/current.json")
}

/// `current.json`: the latest promotion over all datasets.
pub const GLOBAL_CURRENT_KEY: &str = "current.json";

/// `<identifier>/sequence.json`: the dataset's promotion counter.
pub fn sequence_key(identifier: &str) -> String {
    format!("{identifier}/sequence.json")
}

/// What the trainers record on every MLflow run, and eval and inference trust:
/// a run belongs to the set its tags name.
pub mod run_tags {
    pub const IDENTIFIER: &str = "flts.identifier";
    pub const CONFIG_HASH: &str = "flts.config_hash";
    pub const MODEL_TYPE: &str = "flts.model_type";
    /// Lower-case hex SHA-256 of the model file.
    pub const MODEL_SHA256: &str = "flts.model_sha256";
    /// Set by eval on the promoted run.
    pub const PROMOTED_AT: &str = "flts.promoted_at";
    /// Run artifact holding the SUCCESS payload the trainer published.
    pub const SUCCESS_ARTIFACT: &str = "success.json";
}

/// The identifier of a `<identifier>/current.json` key, if it is one.
pub fn identifier_of_current_key(key: &str) -> Option<&str> {
    key.strip_suffix("/current.json").filter(|id| !id.contains('/') && crate::topics::validate_identifier(id).is_ok())
}

/// The promotion counter of one identifier, kept in `<identifier>/sequence.json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sequence {
    /// The last sequence number handed out (0: none yet).
    pub last: u64,
}

impl Sequence {
    /// The next number, strictly above `last` and above every number already
    /// seen elsewhere (`floor`, e.g. the pointer's), so a lost counter object
    /// never makes a promotion look older than the served one.
    pub fn next(&mut self, floor: u64) -> u64 {
        self.last = self.last.max(floor).saturating_add(1);
        self.last
    }
}

/// What inference makes of a model-selected record, given the pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmation {
    /// The record is the pointer: serve it.
    Current,
    /// An earlier promotion (a replay, or a newer one was written since):
    /// serve the pointer instead; the record changes nothing.
    Superseded { record: u64, pointer: u64 },
    /// The pointer does not back the record: a forged or corrupt promotion.
    Unconfirmed(String),
}

/// Check a model-selected `record` against the `pointer` eval wrote
/// (`None`: no pointer for its identifier).
pub fn confirm(record: &ModelSelected, pointer: Option<&ModelSelected>) -> Confirmation {
    let Some(p) = pointer else {
        return Confirmation::Unconfirmed(format!(
            "no promotion is recorded for `{}`: the record claims sequence {}",
            record.identifier, record.sequence
        ));
    };
    if record.identifier != p.identifier {
        return Confirmation::Unconfirmed(format!(
            "the pointer is for `{}`, the record for `{}`",
            p.identifier, record.identifier
        ));
    }
    if record.sequence < p.sequence {
        return Confirmation::Superseded { record: record.sequence, pointer: p.sequence };
    }
    if record.sequence > p.sequence {
        return Confirmation::Unconfirmed(format!(
            "the record claims sequence {} but eval's latest promotion of `{}` is {}",
            record.sequence, record.identifier, p.sequence
        ));
    }
    let differs = [
        ("run_id", record.run_id != p.run_id),
        ("config_hash", record.config_hash != p.config_hash),
        ("model_type", record.model_type != p.model_type),
        ("artifact_uri", record.artifact_uri != p.artifact_uri),
        ("model", record.model != p.model),
        ("model_sha256", record.model_sha256 != p.model_sha256),
    ];
    match differs.iter().find(|(_, d)| *d) {
        Some((field, _)) => Confirmation::Unconfirmed(format!(
            "the record's `{field}` differs from eval's promotion {} of `{}`",
            p.sequence, p.identifier
        )),
        None => Confirmation::Current,
    }
}

/// Upper bounds on every size a model artifact states, checked before anything
/// is allocated from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelLimits {
    pub max_input_len: u32,
    pub max_output_len: u32,
    pub max_features: usize,
    pub max_targets: usize,
    /// Bound on `input_len * features` and `output_len * targets` (values per window).
    pub max_window_values: u64,
    /// Bound on the length of one column name.
    pub max_name_len: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        ModelLimits {
            max_input_len: 10_000,
            max_output_len: 10_000,
            max_features: 1_024,
            max_targets: 1_024,
            max_window_values: 1_000_000,
            max_name_len: 256,
        }
    }
}

impl ModelLimits {
    /// Check every size of `artifact`; the error names the field and the limit.
    pub fn check(&self, artifact: &ModelArtifact) -> Result<(), String> {
        let a = artifact;
        let positive = [
            ("input_len", a.input_len as u64),
            ("output_len", a.output_len as u64),
            ("features", a.features.len() as u64),
            ("targets", a.targets.len() as u64),
        ];
        if let Some((field, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("model `{field}` must be positive"));
        }
        let bounded = [
            ("input_len", a.input_len as u64, self.max_input_len as u64),
            ("output_len", a.output_len as u64, self.max_output_len as u64),
            ("features", a.features.len() as u64, self.max_features as u64),
            ("targets", a.targets.len() as u64, self.max_targets as u64),
        ];
        for (field, value, max) in bounded {
            if value > max {
                return Err(format!("model `{field}` is {value}, above the limit of {max}"));
            }
        }
        let window = [
            ("input_len * features", (a.input_len as u64).checked_mul(a.features.len() as u64)),
            ("output_len * targets", (a.output_len as u64).checked_mul(a.targets.len() as u64)),
        ];
        for (what, value) in window {
            match value {
                Some(v) if v <= self.max_window_values => {}
                Some(v) => {
                    return Err(format!("model `{what}` is {v}, above the limit of {}", self.max_window_values));
                }
                None => return Err(format!("model `{what}` overflows")),
            }
        }
        if let Some(name) = a.features.iter().chain(&a.targets).find(|n| n.is_empty() || n.len() > self.max_name_len) {
            return Err(format!(
                "model column name of {} bytes is outside 1..={} bytes",
                name.len(),
                self.max_name_len
            ));
        }
        Ok(())
    }
}

/// Whether `s` is a lower-case hex SHA-256 (64 characters).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Weights of the composite score.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    pub rmse: f64,
    pub mae: f64,
    pub mse: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Weights { rmse: 0.5, mae: 0.3, mse: 0.2 }
    }
}

impl Weights {
    pub fn score(&self, m: &Metrics) -> f64 {
        self.rmse * m.rmse + self.mae * m.mae + self.mse * m.mse
    }
}

/// Which windows a candidate's `score` and gate were computed on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoredOn {
    /// The validation windows (the last part of training): how eval chooses.
    Validation,
    /// The test windows: only for events of trainers that report no
    /// validation (older than issue 18), and decisions recorded before it.
    #[default]
    Test,
}

/// One reported (or composed) model in a decision record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub model_type: ModelType,
    pub run_id: String,
    /// SUCCESS or FAILED for a trainer's report; COMPOSED for a model eval
    /// built itself (an ensemble or a naive baseline).
    pub status: String,
    /// Test metrics (scaled units): reported, never chosen by.
    pub metrics: Option<Metrics>,
    /// Composite score on the windows `scored_on` names: what the choice is made by.
    pub score: Option<f64>,
    /// The best naive baseline on the same windows: (name, score).
    pub baseline: Option<(String, f64)>,
    /// Whether it beat that baseline (always true when the gate is off).
    pub passed_gate: Option<bool>,
    pub note: String,
    #[serde(default)]
    pub scored_on: ScoredOn,
    /// Validation metrics (scaled units), when the trainer reported them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Metrics>,
    /// What the trainer chose on validation (preprocessing, seed, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub choice: BTreeMap<String, String>,
    /// Test NRMSE per target (RMSE / mean of the actuals, original units),
    /// when the run's test predictions could be read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub test_nrmse: BTreeMap<String, f64>,
}

/// One member of an ensemble eval built.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightedMember {
    pub model_type: ModelType,
    pub run_id: String,
    pub weight: f64,
    /// The member's composite score on the joined validation rows.
    pub validation_score: f64,
}

/// The ensemble eval tried for a set, and why it was or was not promoted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleReport {
    pub members: Vec<WeightedMember>,
    /// Validation rows (timestamps) every member forecast.
    pub rows: usize,
    /// The ensemble's validation metrics and composite score (scaled units).
    pub validation: Metrics,
    pub validation_score: f64,
    /// Its test metrics (scaled units), reported only.
    pub test: Option<Metrics>,
    /// Its test NRMSE per target (RMSE / mean of the actuals), reported only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub test_nrmse: BTreeMap<String, f64>,
    /// Whether it beat every member on validation.
    pub beats_members: bool,
    /// The MLflow run eval composed (when it beat its members).
    pub run_id: Option<String>,
    pub note: String,
}

/// The naive forecasts' test NRMSE of one target (RMSE / mean of the
/// actuals, original units), beside the models'.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NaiveNrmse {
    /// The previous row's actual.
    pub last_value: Option<f64>,
    /// The actual one season (a day) earlier, on the rows that have one.
    pub seasonal_naive: Option<f64>,
}

/// The result of applying the rules to a set of reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub candidates: Vec<Candidate>,
    /// Index into `candidates`.
    pub winner: Option<usize>,
    /// Why this winner, or why none.
    pub reason: String,
}

/// Why a decision was taken now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Every expected model type reported.
    Complete,
    /// The timeout ran out; the rest are listed in `missing`.
    Timeout,
    /// A set already decided got a new SUCCESS and was decided again.
    Update,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Complete => "complete",
            Trigger::Timeout => "timeout",
            Trigger::Update => "update",
        }
    }
}

/// One promotion decision of a set, kept in the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub identifier: String,
    pub config_hash: String,
    pub decided_at: DateTime<Utc>,
    pub trigger: Trigger,
    pub expected: Vec<ModelType>,
    pub missing: Vec<ModelType>,
    pub weights: Weights,
    pub baseline_gate: bool,
    pub outcome: Outcome,
    /// The promotion event, when a model was promoted (it carries the sequence).
    pub promotion: Option<ModelSelected>,
    /// Set once model-selected was acknowledged (or when there was nothing to publish).
    pub published: bool,
    /// How many decisions of this set came before this one (archived as `decision-<n>.json`).
    #[serde(default)]
    pub revision: u32,
    /// The ensemble eval tried, when at least two trained models succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<EnsembleReport>,
    /// Set when no model beat the naive baselines and eval promoted the best
    /// naive forecast instead (a BASELINE run): why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// The naive forecasts' test NRMSE per target, beside the candidates' `test_nrmse`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub naive_test_nrmse: BTreeMap<String, NaiveNrmse>,
    /// The model-selected topic of the eval that took the decision: only an
    /// eval publishing there finishes it if it was interrupted, so two evals
    /// sharing a bucket never publish each other's promotions. None for
    /// `eval --once` and for records written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_to: Option<String>,
}

/// Whether a record eval keeps in the bucket (a decision, a set's state)
/// belongs to the eval publishing to `topic`: it names that topic, or none
/// (`eval --once`, and records from before the field existed).
pub fn is_owned_by(published_to: Option<&str>, topic: &str) -> bool {
    published_to.is_none_or(|t| t == topic)
}

impl Decision {
    /// What a decision of the same set taken again keeps of this one: its
    /// promotion when the new winner is the run it promoted, with whether
    /// that promotion was published. An unpublished one must be published
    /// by the new decision: this one stopped part-way (eval's timeout
    /// sweeper decides again at its next tick after a failed publish), and
    /// its model-selected event may never have been sent.
    pub fn kept_promotion(&self, winner_run: &str) -> Option<(ModelSelected, bool)> {
        self.promotion.clone().filter(|p| p.run_id == winner_run).map(|p| (p, self.published))
    }

    /// Whether an eval publishing to `topic` finishes this decision on start:
    /// it was not published, and it is that eval's (or names no topic).
    pub fn is_unfinished_for(&self, topic: &str) -> bool {
        !self.published && is_owned_by(self.published_to.as_deref(), topic)
    }

    /// The decision for people: per candidate what it was scored on, its
    /// score, its validation choice and its test NRMSE per target beside the
    /// naive forecasts', then the ensemble, the fallback and the winner.
    /// `eval --once` and `flts report` print it.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let targets: Vec<&String> = self.naive_test_nrmse.keys().collect();
        let f = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
        let _ = write!(out, "{:<9} {:<9} {:<10} {:>9} {:>9}", "model", "status", "scored on", "score", "test RMSE");
        for t in &targets {
            let _ = write!(out, " {:>12}", format!("NRMSE {t}"));
        }
        out.push_str("  choice / note\n");
        for c in &self.outcome.candidates {
            let on = match c.scored_on {
                ScoredOn::Validation => "validation",
                ScoredOn::Test => "test",
            };
            let _ = write!(
                out,
                "{:<9} {:<9} {:<10} {:>9} {:>9}",
                c.model_type.to_string(),
                c.status,
                if c.score.is_some() { on } else { "-" },
                f(c.score),
                f(c.metrics.map(|m| m.rmse))
            );
            for t in &targets {
                let _ = write!(out, " {:>12}", f(c.test_nrmse.get(*t).copied()));
            }
            let choice: Vec<String> = c.choice.iter().map(|(k, v)| format!("{k} = {v}")).collect();
            let _ = writeln!(out, "  {}{}{}", choice.join(", "), if choice.is_empty() { "" } else { "; " }, c.note);
        }
        for (name, pick) in [("last value", 0), ("seasonal naive", 1)] {
            let _ = write!(
                out,
                "{:<9} {:<9} {:<10} {:>9} {:>9}",
                "naive",
                name.split(' ').next().unwrap_or(name),
                "-",
                "-",
                "-"
            );
            for t in &targets {
                let n = self.naive_test_nrmse[*t];
                let _ = write!(out, " {:>12}", f(if pick == 0 { n.last_value } else { n.seasonal_naive }));
            }
            let _ = writeln!(out, "  {name} on the test actuals");
        }
        if let Some(e) = &self.ensemble {
            let weights: Vec<String> = e.members.iter().map(|m| format!("{} {:.4}", m.model_type, m.weight)).collect();
            let _ = writeln!(
                out,
                "ensemble: weights {} (inverse validation MSE, {} rows); validation score {:.6}; {}",
                weights.join(", "),
                e.rows,
                e.validation_score,
                if e.beats_members { "promoted" } else { "not promoted" }
            );
        }
        if let Some(why) = &self.fallback {
            let _ = writeln!(out, "fallback: {why}");
        }
        match self.outcome.winner.map(|i| &self.outcome.candidates[i]) {
            Some(w) => {
                let _ = writeln!(out, "winner: {} (run {}): {}", w.model_type, w.run_id, self.outcome.reason);
            }
            None => {
                let _ = writeln!(out, "no promotion: {}", self.outcome.reason);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::ModelFormat;
    use crate::version::V1;

    fn artifact() -> ModelArtifact {
        ModelArtifact {
            format: ModelFormat::Onnx,
            path: "model/model.onnx".into(),
            scaler_path: "model/scaler.json".into(),
            input_len: 24,
            output_len: 1,
            features: vec!["a".into(), "b".into()],
            targets: vec!["a".into()],
        }
    }

    fn selected(sequence: u64, run: &str) -> ModelSelected {
        ModelSelected {
            v: V1,
            identifier: "site-1".into(),
            model_uri: format!("runs:/{run}/model/model.onnx"),
            model_type: ModelType::Gru,
            run_id: run.into(),
            config_hash: "c".repeat(64),
            composite_score: 0.1,
            test_rmse: 0.1,
            test_mae: 0.1,
            test_mse: 0.01,
            promotion_time: Utc::now(),
            artifact_uri: format!("mlflow-artifacts:/1/{run}/artifacts"),
            model: artifact(),
            model_sha256: Some("a".repeat(64)),
            missing: vec![],
            decision_object: decision_key("site-1", &"c".repeat(64)),
            sequence,
        }
    }

    #[test]
    fn sequences_only_grow_even_when_the_counter_was_lost() {
        let mut s = Sequence::default();
        assert_eq!(s.next(0), 1);
        assert_eq!(s.next(0), 2);
        let mut lost = Sequence::default();
        assert_eq!(lost.next(7), 8, "the pointer's number is a floor");
        assert_eq!(Sequence { last: u64::MAX }.next(0), u64::MAX, "saturates instead of wrapping");
    }

    #[test]
    fn only_the_pointer_confirms_a_record_and_wall_clock_fields_do_not_matter() {
        let pointer = selected(5, "r5");
        assert_eq!(confirm(&pointer, Some(&pointer)), Confirmation::Current);
        let mut far_future = pointer.clone();
        far_future.promotion_time = "9999-12-31T00:00:00Z".parse().expect("time");
        assert_eq!(confirm(&far_future, Some(&pointer)), Confirmation::Current, "times are not compared");
        assert_eq!(confirm(&selected(3, "r3"), Some(&pointer)), Confirmation::Superseded { record: 3, pointer: 5 });
        assert!(matches!(confirm(&selected(u64::MAX, "rx"), Some(&pointer)), Confirmation::Unconfirmed(_)));
        assert!(matches!(confirm(&selected(1, "r1"), None), Confirmation::Unconfirmed(_)));
        let mut other_bucket = pointer.clone();
        other_bucket.artifact_uri = "s3://elsewhere/1/r5/artifacts".into();
        match confirm(&other_bucket, Some(&pointer)) {
            Confirmation::Unconfirmed(why) => assert!(why.contains("artifact_uri"), "{why}"),
            other => panic!("{other:?}"),
        }
        let mut bigger = pointer.clone();
        bigger.model.input_len = u32::MAX;
        assert!(matches!(confirm(&bigger, Some(&pointer)), Confirmation::Unconfirmed(_)));
    }

    #[test]
    fn sizes_are_bounded_and_overflow_is_an_error() {
        let limits = ModelLimits::default();
        assert!(limits.check(&artifact()).is_ok());
        let mut a = artifact();
        a.input_len = u32::MAX;
        assert!(limits.check(&a).unwrap_err().contains("input_len"));
        let mut a = artifact();
        a.output_len = 0;
        assert!(limits.check(&a).unwrap_err().contains("output_len"));
        let mut a = artifact();
        a.features = vec!["f".into(); 1_000];
        a.input_len = 5_000;
        assert!(limits.check(&a).unwrap_err().contains("input_len * features"));
        let wide = ModelLimits { max_input_len: u32::MAX, max_features: usize::MAX, ..limits };
        let mut a = artifact();
        a.input_len = u32::MAX;
        a.features = vec!["f".into(); 3];
        assert!(wide.check(&a).unwrap_err().contains("above the limit"));
        let mut a = artifact();
        a.targets = vec!["x".repeat(300)];
        assert!(limits.check(&a).unwrap_err().contains("column name"));
    }

    #[test]
    fn a_decision_taken_again_keeps_the_promotion_of_the_same_run_and_publishes_it_if_unpublished() {
        let mut d = decision();
        assert_eq!(d.kept_promotion("run-a"), None, "nothing promoted, nothing kept");
        let promoted = selected(4, "run-a");
        d.promotion = Some(promoted.clone());
        assert_eq!(d.kept_promotion("run-b"), None, "another winner gets a promotion of its own");
        assert_eq!(d.kept_promotion("run-a"), Some((promoted.clone(), false)), "unpublished: publish it");
        d.published = true;
        assert_eq!(d.kept_promotion("run-a"), Some((promoted, true)), "published: done");
    }

    #[test]
    fn an_interrupted_decision_is_finished_only_by_an_eval_publishing_where_it_would_have() {
        let mut d = decision();
        assert!(d.is_unfinished_for("model-selected"), "a record without a topic: any eval finishes it");
        d.published_to = Some("model-selected".into());
        assert!(d.is_unfinished_for("model-selected"));
        assert!(!d.is_unfinished_for("staging-model-selected"), "another eval's decision");
        d.published = true;
        assert!(!d.is_unfinished_for("model-selected"), "published: nothing to finish");
        let old: Decision = serde_json::from_value(serde_json::json!({
            "identifier": "site-1", "config_hash": "c", "decided_at": "2026-12-01T00:00:00Z",
            "trigger": "complete", "expected": ["GRU"], "missing": [],
            "weights": {"rmse": 0.5, "mae": 0.3, "mse": 0.2}, "baseline_gate": true,
            "outcome": {"candidates": [], "winner": null, "reason": "r"},
            "promotion": null, "published": false
        }))
        .expect("a record from before published_to");
        assert_eq!(old.published_to, None);
    }

    #[test]
    fn a_rendered_decision_shows_the_choice_the_nrmse_and_the_fallback() {
        let mut d = decision();
        d.naive_test_nrmse =
            BTreeMap::from([("down".to_string(), NaiveNrmse { last_value: Some(1.026), seasonal_naive: Some(1.2) })]);
        let text = d.render();
        for want in
            ["NRMSE down", "0.8123", "outliers = percentile", "1.2000", "fallback: no model", "winner: BASELINE"]
        {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
    }

    /// A decision of a GRU and a BASELINE candidate, won by the baseline, not promoted.
    fn decision() -> Decision {
        let candidate = |model_type, status: &str, nrmse: f64| Candidate {
            model_type,
            run_id: "r".into(),
            status: status.into(),
            metrics: Some(Metrics { mse: 0.04, rmse: 0.2, mae: 0.1 }),
            score: Some(0.15),
            baseline: None,
            passed_gate: Some(false),
            note: "note".into(),
            scored_on: ScoredOn::Validation,
            validation: None,
            choice: BTreeMap::from([("outliers".to_string(), "percentile".to_string())]),
            test_nrmse: BTreeMap::from([("down".to_string(), nrmse)]),
        };
        Decision {
            identifier: "site-1".into(),
            config_hash: "c".repeat(64),
            decided_at: Utc::now(),
            trigger: Trigger::Complete,
            expected: vec![ModelType::Gru],
            missing: vec![],
            weights: Weights::default(),
            baseline_gate: true,
            outcome: Outcome {
                candidates: vec![
                    candidate(ModelType::Gru, "SUCCESS", 0.8123),
                    candidate(ModelType::Baseline, "COMPOSED", 1.026),
                ],
                winner: Some(1),
                reason: "because".into(),
            },
            promotion: None,
            published: false,
            revision: 0,
            ensemble: None,
            fallback: Some("no model beat the naive baselines".into()),
            naive_test_nrmse: BTreeMap::new(),
            published_to: None,
        }
    }

    #[test]
    fn sha256_hex_is_64_lower_case_hex_digits() {
        assert!(is_sha256_hex(&"0123456789abcdef".repeat(4)));
        assert!(!is_sha256_hex(&"A".repeat(64)));
        assert!(!is_sha256_hex(&"a".repeat(63)));
        assert!(!is_sha256_hex(&format!("{}'", "a".repeat(63))));
    }
}
