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
}

impl SetState {
    pub fn new(identifier: &str, config_hash: &str) -> Self {
        SetState {
            identifier: identifier.into(),
            config_hash: config_hash.into(),
            first_seen: Utc::now(),
            reports: BTreeMap::new(),
        }
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
}
