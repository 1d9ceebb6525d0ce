//! Every metric the eval stage exports.

use std::sync::LazyLock;

use prometheus::{
    IntCounter, IntCounterVec, IntGauge, register_int_counter, register_int_counter_vec, register_int_gauge,
};

/// model-training events taken in, by status.
pub static EVENTS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_eval_events_total", "model-training events taken in", &["status"])
        .expect("metric registered once")
});

/// Decisions by outcome (promoted, not_promoted) and trigger (complete, timeout).
pub static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!("flts_eval_decisions_total", "Promotion decisions", &["outcome", "trigger"])
        .expect("metric registered once")
});

/// Sets waiting for more models.
pub static PENDING: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!("flts_eval_pending_sets", "Sets waiting for more model reports")
        .expect("metric registered once")
});

/// model-training events refused (dead-lettered) because MLflow does not back them, by code.
pub static REFUSED: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "flts_eval_refused_events_total",
        "model-training events refused because their MLflow run does not confirm them",
        &["code"]
    )
    .expect("metric registered once")
});

/// Naive baselines eval promoted because no model beat them (never without forecasts).
pub static BASELINE_PROMOTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "flts_eval_baseline_promotions_total",
        "BASELINE models promoted because no trained model beat the naive forecasts on validation"
    )
    .expect("metric registered once")
});

/// Ensembles eval promoted (they beat every member on validation).
pub static ENSEMBLE_PROMOTIONS: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!("flts_eval_ensemble_promotions_total", "ENSEMBLE models promoted")
        .expect("metric registered once")
});

/// Register every family with the label sets known in advance, at zero, so a
/// fresh eval's /metrics lists them before the first event. Call once at start
/// (a new family here belongs in this list too).
pub fn init() {
    for status in ["RUNNING", "SUCCESS", "FAILED"] {
        EVENTS.with_label_values(&[status]);
    }
    for outcome in ["promoted", "not_promoted"] {
        for trigger in ["complete", "timeout"] {
            DECISIONS.with_label_values(&[outcome, trigger]);
        }
    }
    PENDING.set(0);
    LazyLock::force(&BASELINE_PROMOTIONS);
    LazyLock::force(&ENSEMBLE_PROMOTIONS);
    // Its codes come from the refusal reasons; the family shows with the first.
    LazyLock::force(&REFUSED);
}

#[cfg(test)]
mod tests {
    #[test]
    fn init_lists_every_family_before_first_use() {
        super::init();
        let missing = kafka_utils::metrics::missing_families(&[
            "flts_eval_events_total",
            "flts_eval_decisions_total",
            "flts_eval_pending_sets",
            "flts_eval_baseline_promotions_total",
            "flts_eval_ensemble_promotions_total",
        ]);
        assert!(missing.is_empty(), "missing after init: {missing:?}");
    }
}
