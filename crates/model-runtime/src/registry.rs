//! The served models, one per dataset identifier, swapped atomically.
//!
//! Readers take an `Arc` snapshot and keep it for the whole request, so a
//! request in flight finishes on the model it started with while a new one is
//! installed. Installation follows the precedence rules of [`supersedes`].

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use service_kit::admin::Readiness;
use tracing::info;

use crate::metrics;
use crate::model::{Model, ModelInfo, ModelSource, ModelSpec};

/// Why a candidate is not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

/// Whether `candidate` should replace `current` (`Ok`) or not (`Err` with why).
///
/// - A **promotion** replaces anything, except a promotion with the same or a
///   higher sequence number (eval's own counter, per identifier): a replayed
///   or stale promotion changes nothing. Wall-clock fields are never compared,
///   so a promotion claiming a far-future time cannot pin a model. A rollback
///   is a new promotion with a higher number, so it replaces too.
/// - A **fast-path** model (training SUCCESS) never replaces the promotion
///   of its own config hash: promotions always win. It replaces an older
///   fast-path model, nothing, or a promotion of another config hash (a new
///   dataset version was trained and eval has not decided on it yet; the
///   fast path follows only events that arrive while the service runs).
pub fn supersedes(current: Option<&ModelInfo>, candidate: &ModelSpec) -> Result<(), Skip> {
    let Some(cur) = current else { return Ok(()) };
    let same_model = cur.run_id == candidate.run_id && cur.source == candidate.source;
    match candidate.source {
        ModelSource::Promotion => {
            if cur.source == ModelSource::Promotion && candidate.sequence <= cur.sequence {
                let why = if candidate.sequence == cur.sequence && same_model {
                    format!("promotion {} of {} is already served", cur.sequence, cur.version)
                } else {
                    format!(
                        "promotion {} of {} is not newer than the served promotion {} of {}",
                        candidate.sequence,
                        candidate.version(),
                        cur.sequence,
                        cur.version
                    )
                };
                return Err(Skip(why));
            }
            Ok(())
        }
        ModelSource::Training => match cur.source {
            ModelSource::Training if same_model => Err(Skip(format!("{} is already served", cur.version))),
            ModelSource::Training => Ok(()),
            ModelSource::Promotion if cur.config_hash == candidate.config_hash => Err(Skip(format!(
                "the promotion {} of config {} is served; promotions win over the fast path",
                cur.version, cur.config_hash
            ))),
            ModelSource::Promotion => Ok(()),
        },
    }
}

/// Looking a model up failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Lookup {
    #[error("no model is loaded yet")]
    NoModel,
    #[error("no model is served for identifier `{identifier}` (served: {served:?})")]
    Unknown { identifier: String, served: Vec<String> },
    #[error("several models are served ({0:?}): give `identifier`")]
    Ambiguous(Vec<String>),
}

/// Served models by identifier.
pub struct Registry {
    models: ArcSwap<BTreeMap<String, Arc<Model>>>,
    ready: Readiness,
}

impl Registry {
    /// An empty registry; `ready` turns true with the first model.
    pub fn new(ready: Readiness) -> Self {
        ready.set(false);
        Registry { models: ArcSwap::from_pointee(BTreeMap::new()), ready }
    }

    /// The served models right now.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<Model>>> {
        self.models.load_full()
    }

    /// The model for `identifier`, or the only one when none is given.
    pub fn get(&self, identifier: Option<&str>) -> Result<Arc<Model>, Lookup> {
        let models = self.models.load();
        match identifier {
            Some(id) => models.get(id).cloned().ok_or_else(|| {
                if models.is_empty() {
                    Lookup::NoModel
                } else {
                    Lookup::Unknown { identifier: id.to_string(), served: models.keys().cloned().collect() }
                }
            }),
            None => match models.len() {
                0 => Err(Lookup::NoModel),
                1 => Ok(models.values().next().cloned().expect("one model")),
                _ => Err(Lookup::Ambiguous(models.keys().cloned().collect())),
            },
        }
    }

    /// Whether `spec` would be installed now (checked again at install time).
    pub fn admits(&self, spec: &ModelSpec) -> Result<(), Skip> {
        let models = self.models.load();
        supersedes(models.get(&spec.identifier).map(|m| &m.info), spec)
    }

    /// Install `model` if the precedence rules allow it; returns the model it replaced.
    pub fn install(&self, model: Arc<Model>) -> Result<Option<Arc<Model>>, Skip> {
        let id = model.info.identifier.clone();
        let spec = spec_of(&model.info);
        let mut outcome: Result<Option<Arc<Model>>, Skip> = Ok(None);
        self.models.rcu(|current| {
            let mut next = BTreeMap::clone(current);
            outcome =
                supersedes(current.get(&id).map(|m| &m.info), &spec).map(|()| next.insert(id.clone(), model.clone()));
            next
        });
        let models = self.models.load();
        metrics::MODELS_LOADED.set(models.len() as i64);
        self.ready.set(!models.is_empty());
        if let Ok(previous) = &outcome {
            info!(identifier = %id, version = %model.info.version, source = model.info.source.as_str(),
                previous = previous.as_ref().map(|p| p.info.version.as_str()).unwrap_or("none"), "model installed");
        }
        outcome
    }
}

/// The precedence-relevant part of a served model, as a spec.
fn spec_of(info: &ModelInfo) -> ModelSpec {
    ModelSpec {
        identifier: info.identifier.clone(),
        model_type: info.model_type,
        run_id: info.run_id.clone(),
        config_hash: info.config_hash.clone(),
        artifact_uri: info.artifact_uri.clone(),
        artifact: contracts::ModelArtifact {
            format: info.format,
            path: String::new(),
            scaler_path: String::new(),
            input_len: info.input_len,
            output_len: info.output_len,
            features: info.features.clone(),
            targets: info.targets.clone(),
        },
        source: info.source,
        promotion_time: info.promotion_time,
        sequence: info.sequence,
        model_sha256: info.model_sha256.clone(),
        trained_at: info.trained_at,
        test_rmse: info.test_rmse,
        test_mae: info.test_mae,
        test_mse: info.test_mse,
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::model::tests::spec;

    fn info(source: ModelSource, run: &str, hash: &str, sequence: u64) -> ModelInfo {
        let mut s = spec(&["a"], &["a"], 3, 1);
        s.source = source;
        s.run_id = run.into();
        s.config_hash = hash.into();
        match source {
            ModelSource::Promotion => s.sequence = sequence,
            ModelSource::Training => {
                s.promotion_time = None;
                s.sequence = 0;
                s.trained_at = Some(Utc::now())
            }
        }
        ModelInfo::new(&s)
    }

    #[test]
    fn promotions_are_ordered_by_sequence_never_by_time() {
        let promoted = info(ModelSource::Promotion, "r1", "h1", 5);
        assert!(supersedes(Some(&promoted), &spec_of(&info(ModelSource::Promotion, "r2", "h2", 6))).is_ok());
        assert!(supersedes(Some(&promoted), &spec_of(&info(ModelSource::Promotion, "r0", "h0", 4))).is_err());
        assert!(supersedes(Some(&promoted), &spec_of(&promoted)).is_err());
        // A far-future promotion time does not win, and does not block a later number.
        let mut far = info(ModelSource::Promotion, "rf", "hf", 3);
        far.promotion_time = Some("9999-12-31T00:00:00Z".parse().expect("time"));
        assert!(supersedes(Some(&promoted), &spec_of(&far)).is_err());
        assert!(supersedes(Some(&far), &spec_of(&promoted)).is_ok());
        // A rollback re-promotes an older run under a new, higher number.
        let rollback = info(ModelSource::Promotion, "r0", "h0", 7);
        assert!(supersedes(Some(&promoted), &spec_of(&rollback)).is_ok());
        // A promotion replaces a fast-path model.
        let fast = info(ModelSource::Training, "r3", "h3", 0);
        assert!(supersedes(Some(&fast), &spec_of(&promoted)).is_ok());
    }

    #[test]
    fn the_fast_path_never_replaces_its_own_promotion() {
        let promoted = info(ModelSource::Promotion, "r1", "h1", 1);
        let same_hash = info(ModelSource::Training, "r2", "h1", 0);
        let e = supersedes(Some(&promoted), &spec_of(&same_hash)).unwrap_err();
        assert!(e.0.contains("promotions win over the fast path"), "{e:?}");
        let new_hash = info(ModelSource::Training, "r2", "h2", 0);
        assert!(supersedes(Some(&promoted), &spec_of(&new_hash)).is_ok());
        assert!(supersedes(None, &spec_of(&new_hash)).is_ok());
        assert!(supersedes(Some(&new_hash), &spec_of(&new_hash)).is_err(), "same fast-path model");
    }
}
