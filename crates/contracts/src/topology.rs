//! The shape of the system as data: every stage, the consumer groups it
//! reads in, the topics it consumes and produces, and the buckets.
//!
//! This table is the one place these names are written. Stage defaults,
//! `flts topics` and `flts status`, the scripts (through `flts topology`), the
//! tests and the docs read it, and `tests/topology.rs` checks
//! docker-compose.yaml, the Kubernetes manifests and the Prometheus config
//! against it. A new model type is its model crate, its stage binary, and one
//! row in [`STAGES`].
//!
//! Dead letters follow the convention Kafka Connect and Spring Kafka users
//! know: a record that cannot be processed goes to `DLQ-<the topic it was
//! consumed from>` ([`dlq_topic`]), so a replay sends each record back where
//! it came from.

use crate::ModelType;
use crate::topics::{
    INFERENCE_DATA, MODEL_DRIFT, MODEL_SELECTED, MODEL_TRAINING, PERFORMANCE_EVAL, PREPROCESS_REQUESTS, TRAINING_DATA,
    dlq_topic,
};

/// Buckets (S3): where the claim checks point.
pub mod buckets {
    /// Raw CSV/Parquet files submitted by the operator (`flts submit`).
    pub const RAW_DATA: &str = "raw-data";
    /// Processed train/test Parquet parts (preprocess).
    pub const PROCESSED_DATA: &str = "processed-data";
    /// MLflow's artifact store (models, scalers, reports), written through the MLflow server.
    pub const MLFLOW: &str = "mlflow";
    /// Promotion decisions and pointers (eval).
    pub const MODEL_PROMOTION: &str = "model-promotion";
    /// Batch forecasts (JSONL) and plots (inference).
    pub const INFERENCE_LOGS: &str = "inference-logs";
}

/// How the replicas of a stage share a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// One group for all replicas: each record is processed once.
    Shared,
    /// Every replica follows the topic without a consumer group (model events:
    /// each replica serves every model): nothing is committed and no group is
    /// left on the broker when a replica goes away; a replica restores its
    /// state from S3 at start and follows from the end.
    Follow,
}

/// A topic a stage consumes, and the consumer group it reads it in (empty for [`Delivery::Follow`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub topic: &'static str,
    pub group: &'static str,
    pub delivery: Delivery,
}

/// One stage of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage {
    /// Binary name, also the service name in compose, k8s and Prometheus.
    pub name: &'static str,
    /// Topics it consumes; a failed record goes to `DLQ-<topic>`.
    pub consumes: &'static [Subscription],
    /// Topics it produces.
    pub produces: &'static [&'static str],
    /// Buckets it reads.
    pub reads: &'static [&'static str],
    /// Buckets it writes.
    pub writes: &'static [&'static str],
    /// For a trainer: the model type it trains (it consumes training-data and
    /// reports to model-training, and eval waits for one report of each).
    pub model_type: Option<ModelType>,
}

const fn shared(topic: &'static str, group: &'static str) -> Subscription {
    Subscription { topic, group, delivery: Delivery::Shared }
}

/// A trainer row: every trainer has the same shape. Its binary name is also
/// its consumer group on training-data (one group per model type).
macro_rules! trainer {
    ($name:literal, $model:expr) => {
        Stage {
            name: $name,
            consumes: &[shared(TRAINING_DATA, $name)],
            produces: &[MODEL_TRAINING],
            reads: &[buckets::PROCESSED_DATA],
            writes: &[buckets::MLFLOW],
            model_type: Some($model),
        }
    };
}

/// Every stage, in pipeline order.
pub const STAGES: &[Stage] = &[
    Stage {
        name: "preprocess",
        consumes: &[shared(PREPROCESS_REQUESTS, "preprocess")],
        produces: &[TRAINING_DATA, INFERENCE_DATA],
        reads: &[buckets::RAW_DATA],
        writes: &[buckets::PROCESSED_DATA],
        model_type: None,
    },
    trainer!("train-gru", ModelType::Gru),
    trainer!("train-lstm", ModelType::Lstm),
    trainer!("prophet", ModelType::Prophet),
    Stage {
        name: "eval",
        consumes: &[shared(MODEL_TRAINING, "eval-promoter")],
        produces: &[MODEL_SELECTED],
        // The dataset scaler and training part (ensemble scores, naive forecasts),
        // the trainers' runs, and the ensemble and baseline runs it composes.
        reads: &[buckets::PROCESSED_DATA, buckets::MLFLOW, buckets::MODEL_PROMOTION],
        writes: &[buckets::MLFLOW, buckets::MODEL_PROMOTION],
        model_type: None,
    },
    Stage {
        name: "inference",
        consumes: &[
            shared(INFERENCE_DATA, "batch-forecasting-v2"),
            Subscription { topic: MODEL_SELECTED, group: "", delivery: Delivery::Follow },
        ],
        produces: &[PERFORMANCE_EVAL],
        reads: &[buckets::PROCESSED_DATA, buckets::MLFLOW, buckets::MODEL_PROMOTION],
        writes: &[buckets::INFERENCE_LOGS],
        model_type: None,
    },
    // preprocess-requests only with MONITOR_RETRAIN_ON_DRIFT (the latest request again, forced).
    Stage {
        name: "monitor",
        consumes: &[shared(PERFORMANCE_EVAL, "monitor")],
        produces: &[MODEL_DRIFT, PREPROCESS_REQUESTS],
        reads: &[],
        writes: &[],
        model_type: None,
    },
];

/// Every bucket, with the stages that write it (`flts` writes raw-data).
pub const BUCKETS: &[(&str, &[&str])] = &[
    (buckets::RAW_DATA, &["flts"]),
    (buckets::PROCESSED_DATA, &["preprocess"]),
    (buckets::MLFLOW, &["train-gru", "train-lstm", "prophet", "eval"]),
    (buckets::MODEL_PROMOTION, &["eval"]),
    (buckets::INFERENCE_LOGS, &["inference"]),
];

/// The stage named `name`.
pub fn stage(name: &str) -> Option<&'static Stage> {
    STAGES.iter().find(|s| s.name == name)
}

/// The stage named `name`; panics on a name that is not in [`STAGES`] (for
/// stage binaries asking for their own row: a typo there is a bug).
pub fn own(name: &str) -> &'static Stage {
    stage(name).unwrap_or_else(|| panic!("stage {name:?} is not in contracts::topology::STAGES"))
}

impl Stage {
    /// The consumer group this stage reads `topic` in.
    pub fn group_for(&self, topic: &str) -> Option<&'static str> {
        self.consumes.iter().find(|s| s.topic == topic).map(|s| s.group)
    }

    /// The group of the stage's first (for most stages: only) subscription.
    pub fn group(&self) -> &'static str {
        self.consumes.first().map(|s| s.group).unwrap_or(self.name)
    }
}

/// The trainers (one per model type).
pub fn trainers() -> impl Iterator<Item = &'static Stage> {
    STAGES.iter().filter(|s| s.model_type.is_some())
}

/// The model types eval waits for by default: one per trainer, comma-separated
/// (a clap default must be a `&'static str`; a test keeps it equal to the trainers).
pub const EXPECTED_MODEL_TYPES: &str = "GRU,LSTM,PROPHET";

/// Every topic a stage consumes, once each, in pipeline order.
pub fn consumed_topics() -> Vec<&'static str> {
    dedup(STAGES.iter().flat_map(|s| s.consumes.iter().map(|c| c.topic)))
}

/// Whether records of `topic` are consumed by some stage (so a DLQ replay may send records there).
pub fn is_consumed(topic: &str) -> bool {
    STAGES.iter().any(|s| s.consumes.iter().any(|c| c.topic == topic))
}

/// Every pipeline topic (consumed or produced), once each, in pipeline order.
pub fn pipeline_topics() -> Vec<&'static str> {
    dedup(STAGES.iter().flat_map(|s| s.consumes.iter().map(|c| c.topic).chain(s.produces.iter().copied())))
}

/// The dead-letter topics: one per pipeline topic (`DLQ-<topic>`).
pub fn dlq_topics() -> Vec<String> {
    pipeline_topics().into_iter().map(dlq_topic).collect()
}

/// Every topic to create: the pipeline topics and their DLQs.
pub fn all_topics() -> Vec<String> {
    let mut all: Vec<String> = pipeline_topics().into_iter().map(str::to_string).collect();
    all.extend(dlq_topics());
    all
}

/// Every consumer group a stage reads in.
pub fn consumer_groups() -> Vec<&'static str> {
    dedup(STAGES.iter().flat_map(|s| s.consumes.iter().filter(|c| c.delivery == Delivery::Shared).map(|c| c.group)))
}

/// Every bucket name.
pub fn bucket_names() -> Vec<&'static str> {
    BUCKETS.iter().map(|(b, _)| *b).collect()
}

fn dedup(items: impl Iterator<Item = &'static str>) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_consumed_topic_is_produced_by_some_stage_or_the_operator() {
        // preprocess-requests comes from `flts submit`; every other consumed topic has a producer stage.
        for t in consumed_topics() {
            let produced = STAGES.iter().any(|s| s.produces.contains(&t));
            assert!(produced || t == PREPROCESS_REQUESTS, "{t} is consumed but nothing produces it");
        }
    }

    #[test]
    fn names_are_unique_and_groups_are_not_shared_between_stages() {
        let names: Vec<_> = STAGES.iter().map(|s| s.name).collect();
        assert_eq!(dedup(names.iter().copied()).len(), names.len());
        let shared: Vec<_> =
            STAGES.iter().flat_map(|s| s.consumes).filter(|c| c.delivery == Delivery::Shared).collect();
        let groups = consumer_groups();
        assert!(groups.iter().all(|g| !g.is_empty()));
        assert_eq!(groups.len(), shared.len(), "a group read by two stages: {groups:?}");
        let follow = STAGES.iter().flat_map(|s| s.consumes).filter(|c| c.delivery == Delivery::Follow);
        assert!(follow.into_iter().all(|c| c.group.is_empty()), "a followed topic has no group");
    }

    #[test]
    fn dlqs_follow_the_consumed_topic() {
        assert!(dlq_topics().contains(&"DLQ-training-data".to_string()));
        assert!(all_topics().iter().all(|t| !t.starts_with("DLQ-DLQ-")));
        for t in consumed_topics() {
            assert!(all_topics().contains(&dlq_topic(t)), "no DLQ for {t}");
        }
    }

    #[test]
    fn every_bucket_a_stage_touches_is_listed() {
        for s in STAGES {
            for b in s.reads.iter().chain(s.writes) {
                assert!(bucket_names().contains(b), "{} uses unknown bucket {b}", s.name);
            }
        }
    }

    #[test]
    fn eval_waits_for_every_trainer() {
        let types: Vec<&str> = trainers().filter_map(|s| s.model_type).map(ModelType::as_str).collect();
        assert_eq!(EXPECTED_MODEL_TYPES, types.join(","));
    }
}
