//! Per-(identifier, config_hash) tracking state and the decision record, both
//! kept as JSON objects in the model-promotion bucket. The state is written
//! before an event's offset is committed, so a restart loses no SUCCESS; the
//! decision record is written before model-selected is published and marked
//! `published` after, so a replay never promotes twice.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use contracts::{ModelTraining, ModelType, TrainingStatus};
use serde::{Deserialize, Serialize};

/// What eval knows about one set of trainings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetState {
    pub identifier: String,
    pub config_hash: String,
    /// When eval first heard of the set: the timeout counts from here.
    pub first_seen: DateTime<Utc>,
    /// The latest final (SUCCESS or FAILED) event per model type.
    pub reports: BTreeMap<ModelType, ModelTraining>,
    /// The model-selected topic of the eval tracking the set: only an eval
    /// publishing there takes the set up again on start (and times it out),
    /// so two evals sharing a bucket never decide each other's sets. None for
    /// `eval --once` and for records written before the field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published_to: Option<String>,
}

impl SetState {
    pub fn new(identifier: &str, config_hash: &str) -> Self {
        SetState {
            identifier: identifier.into(),
            config_hash: config_hash.into(),
            first_seen: Utc::now(),
            reports: BTreeMap::new(),
            published_to: None,
        }
    }

    /// This set, tracked by the eval publishing to `topic`.
    pub fn tracked_by(self, topic: &str) -> Self {
        SetState { published_to: Some(topic.to_string()), ..self }
    }

    /// Whether the eval publishing to `topic` takes this set up on start.
    pub fn is_tracked_by(&self, topic: &str) -> bool {
        contracts::promotion::is_owned_by(self.published_to.as_deref(), topic)
    }

    /// Take in a verified event; returns whether the state changed. RUNNING
    /// events only start the clock; a replayed duplicate changes nothing; a
    /// FAILED never replaces a SUCCESS of the same model type (a success
    /// stays a success, whatever arrives later).
    pub fn absorb(&mut self, ev: &ModelTraining) -> bool {
        if matches!(ev.status, TrainingStatus::Running { .. }) {
            return false;
        }
        match self.reports.get(&ev.model_type) {
            Some(known) if known == ev => return false,
            Some(known)
                if matches!(known.status, TrainingStatus::Success(_))
                    && matches!(ev.status, TrainingStatus::Failed { .. }) =>
            {
                return false;
            }
            _ => {}
        }
        self.reports.insert(ev.model_type, ev.clone());
        true
    }

    /// Whether `ev` is a SUCCESS this state does not hold yet: a reason to
    /// decide a set again after it was decided.
    pub fn is_new_success(&self, ev: &ModelTraining) -> bool {
        matches!(ev.status, TrainingStatus::Success(_)) && self.reports.get(&ev.model_type) != Some(ev)
    }

    /// Expected model types that have not reported SUCCESS or FAILED.
    pub fn missing(&self, expected: &[ModelType]) -> Vec<ModelType> {
        expected.iter().copied().filter(|m| !self.reports.contains_key(m)).collect()
    }

    pub fn state_key(&self) -> String {
        state_key(&self.identifier, &self.config_hash)
    }
}

/// `<identifier>/<config_hash>/state.json`
pub fn state_key(identifier: &str, config_hash: &str) -> String {
    format!("{identifier}/{config_hash}/state.json")
}

pub use contracts::promotion::{Decision, GLOBAL_CURRENT_KEY, Trigger, current_key, decision_key};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::score::tests::{failed, success};

    #[test]
    fn a_failure_never_replaces_a_success_and_replays_change_nothing() {
        let mut s = SetState::new("site-1", "h");
        let ok = success(ModelType::Gru, 0.2, 1.0, 1);
        assert!(s.absorb(&ok));
        assert!(!s.absorb(&ok), "a replay changes nothing");
        assert!(!s.absorb(&failed(ModelType::Gru)), "a later FAILED does not erase the SUCCESS");
        assert!(matches!(s.reports[&ModelType::Gru].status, TrainingStatus::Success(_)));
        assert!(s.absorb(&failed(ModelType::Lstm)));
        let mut lstm = success(ModelType::Lstm, 0.1, 1.0, 2);
        assert!(s.is_new_success(&lstm), "a SUCCESS after a FAILED is new");
        assert!(s.absorb(&lstm), "and replaces it");
        assert!(!s.is_new_success(&lstm));
        lstm.run_id = "another-run".into();
        assert!(s.is_new_success(&lstm), "a SUCCESS of another run is new");
    }

    #[test]
    fn a_set_is_taken_up_only_by_the_eval_that_tracks_it() {
        let untracked = SetState::new("site-1", "h");
        assert!(untracked.is_tracked_by("model-selected"), "a record without a topic: any eval takes it up");
        let s = untracked.tracked_by("model-selected");
        assert!(s.is_tracked_by("model-selected"));
        assert!(!s.is_tracked_by("staging-model-selected"), "another eval's set");
        let json = serde_json::to_value(&s).expect("json");
        assert_eq!(json["published_to"], "model-selected");
        let mut old = json;
        old.as_object_mut().expect("object").remove("published_to");
        let old: SetState = serde_json::from_value(old).expect("a record from before published_to");
        assert_eq!(old.published_to, None);
    }
}
