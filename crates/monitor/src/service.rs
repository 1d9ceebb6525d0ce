//! The performance-eval handler: one [`Tracker`] per identifier for the model
//! it is served by, the model's test error from its MLflow run, drift events
//! to `model-drift`, and (optionally) a retraining request to preprocess.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use contracts::error::Code;
use contracts::{ModelDrift, ModelType, PerformanceEval, V1};
use kafka_utils::{HandlerError, KafkaArgs, Producer, Record};
use mlflow_client::MlflowClient;
use tokio::sync::Mutex;
use tracing::{info, warn};

use crate::drift::{Observation, Rule, Step, Tracker};
use crate::{metrics, retrain};

/// The monitor's own settings (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct MonitorArgs {
    /// Forecasts are degraded while their rolling RMSE exceeds this multiple of the model's test RMSE.
    #[arg(long, env = "MONITOR_DRIFT_RATIO", default_value_t = 1.5)]
    pub drift_ratio: f64,
    /// Seconds (record time) the forecasts must stay degraded before a drift event.
    #[arg(long, env = "MONITOR_DRIFT_FOR_SECS", default_value_t = 3600)]
    pub drift_for_secs: u64,
    /// performance-eval records in the rolling window of each served model.
    #[arg(long, env = "MONITOR_WINDOW_RECORDS", default_value_t = 5)]
    pub window_records: usize,
    /// Forecast windows the rolling window must hold before it is judged.
    #[arg(long, env = "MONITOR_MIN_WINDOWS", default_value_t = 1)]
    pub min_windows: u64,
    /// On drift, ask preprocess to run the identifier's latest preprocess request again (forced).
    #[arg(long, env = "MONITOR_RETRAIN_ON_DRIFT", default_value_t = false, action = clap::ArgAction::Set)]
    pub retrain_on_drift: bool,
}

impl MonitorArgs {
    pub fn rule(&self) -> Rule {
        Rule {
            ratio: self.drift_ratio,
            for_secs: self.drift_for_secs,
            window: self.window_records,
            min_windows: self.min_windows,
        }
    }
}

/// Topics the monitor writes (and, for retraining, reads).
#[derive(Debug, Clone)]
pub struct Topics {
    pub model_drift: String,
    pub preprocess_requests: String,
}

/// The model an identifier is served by, and its rolling error.
#[derive(Debug, Clone)]
struct Served {
    run_id: String,
    model_type: ModelType,
    tracker: Tracker,
}

/// The monitor's state and clients.
pub struct Monitor {
    args: MonitorArgs,
    kafka: KafkaArgs,
    mlflow: MlflowClient,
    producer: Producer,
    topics: Topics,
    served: Mutex<HashMap<String, Served>>,
    /// Test RMSE per MLflow run (a run's metrics do not change).
    test_rmse: Mutex<HashMap<String, f64>>,
}

fn set_gauges(identifier: &str, model_type: ModelType, tracker: &Tracker) {
    let labels = [identifier, model_type.as_str()];
    metrics::ERROR_RATIO.with_label_values(&labels).set(tracker.ratio());
    metrics::ROLLING_RMSE.with_label_values(&labels).set(tracker.rolling_rmse());
    metrics::DRIFT_ACTIVE.with_label_values(&labels).set(i64::from(tracker.drifting()));
}

impl Monitor {
    pub fn new(args: MonitorArgs, kafka: KafkaArgs, mlflow: MlflowClient, producer: Producer, topics: Topics) -> Self {
        Monitor {
            args,
            kafka,
            mlflow,
            producer,
            topics,
            served: Mutex::new(HashMap::new()),
            test_rmse: Mutex::new(HashMap::new()),
        }
    }

    /// The test RMSE the model's trainer logged on its MLflow run.
    async fn test_rmse(&self, run_id: &str) -> Result<f64, HandlerError> {
        if let Some(v) = self.test_rmse.lock().await.get(run_id) {
            return Ok(*v);
        }
        let run = self.mlflow.get_run(run_id).await.map_err(HandlerError::from)?;
        let v = run.metric("test_rmse").filter(|v| v.is_finite() && *v >= 0.0).ok_or_else(|| {
            HandlerError::permanent(Code::MetricsMissing, format!("run {run_id} has no usable test_rmse in MLflow"))
        })?;
        self.test_rmse.lock().await.insert(run_id.to_string(), v);
        Ok(v)
    }

    /// Judge one performance-eval record.
    pub async fn absorb(&self, ev: PerformanceEval) -> Result<Step, HandlerError> {
        if !(ev.metrics.rmse.is_finite() && ev.metrics.rmse >= 0.0) {
            return Err(HandlerError::permanent(
                Code::BadMetrics,
                format!("rmse {} is not a finite error", ev.metrics.rmse),
            ));
        }
        let test_rmse = self.test_rmse(&ev.run_id).await?;
        let mut served = self.served.lock().await;
        let mut next = match served.get(&ev.identifier) {
            Some(s) if s.run_id == ev.run_id => s.clone(),
            previous => {
                if let Some(old) = previous {
                    info!(identifier = %ev.identifier, from = %old.run_id, to = %ev.run_id, "served model changed; new rolling window");
                    metrics::DRIFT_ACTIVE.with_label_values(&[ev.identifier.as_str(), old.model_type.as_str()]).set(0);
                }
                Served { run_id: ev.run_id.clone(), model_type: ev.model_type, tracker: Tracker::new(test_rmse) }
            }
        };
        let obs = Observation {
            at: ev.created_at,
            rmse: ev.metrics.rmse,
            windows: ev.windows,
            key: format!("{}#{}", ev.results.uri(), ev.results.sha256),
        };
        let step = next.tracker.observe(obs, &self.args.rule());
        // The new state is kept only once the event is out: a failed publish
        // is retried with the record, and the retry raises the event again.
        if let Step::Drift { since } = step {
            self.raise(&ev, &next, since).await?;
        }
        if let Step::Healthy { recovered: true } = step {
            info!(identifier = %ev.identifier, run_id = %ev.run_id, ratio = next.tracker.ratio(), "served model recovered");
        }
        set_gauges(&ev.identifier, next.model_type, &next.tracker);
        served.insert(ev.identifier.clone(), next);
        Ok(step)
    }

    /// Publish the drift event (after the retraining request, when that is on).
    async fn raise(&self, ev: &PerformanceEval, served: &Served, since: DateTime<Utc>) -> Result<(), HandlerError> {
        let t = &served.tracker;
        let retrain_requested = self.args.retrain_on_drift && self.request_retrain(&ev.identifier).await?;
        let drift = ModelDrift {
            v: V1,
            identifier: ev.identifier.clone(),
            model_type: served.model_type,
            run_id: served.run_id.clone(),
            test_rmse: t.test_rmse,
            rolling_rmse: t.rolling_rmse(),
            ratio: t.ratio(),
            threshold: self.args.drift_ratio,
            for_secs: self.args.drift_for_secs,
            observations: t.observations() as u32,
            windows: t.windows(),
            degraded_since: since,
            config_hash: ev.config_hash.clone(),
            source: ev.source.clone(),
            retrain_requested,
            detected_at: Utc::now(),
        };
        self.producer
            .send_json(&self.topics.model_drift, Some(&drift.identifier), &drift)
            .await
            .map_err(HandlerError::from)?;
        metrics::DRIFT_EVENTS.with_label_values(&[drift.identifier.as_str(), drift.model_type.as_str()]).inc();
        warn!(identifier = %drift.identifier, model_type = %drift.model_type, run_id = %drift.run_id,
            ratio = drift.ratio, rolling_rmse = drift.rolling_rmse, test_rmse = drift.test_rmse,
            since = %since, retrain_requested, "model drift");
        Ok(())
    }

    /// Send the identifier's latest preprocess request again, forced; false
    /// when none is left on the topic.
    async fn request_retrain(&self, identifier: &str) -> Result<bool, HandlerError> {
        let (kafka, topic, id) = (self.kafka.clone(), self.topics.preprocess_requests.clone(), identifier.to_string());
        let latest = tokio::task::spawn_blocking(move || retrain::latest_request(&kafka, &topic, &id))
            .await
            .map_err(|e| HandlerError::retryable(Code::RetrainScan, e.to_string()))?
            .map_err(|e| HandlerError::retryable(Code::RetrainScan, e))?;
        let Some(mut request) = latest else {
            warn!(identifier, topic = %self.topics.preprocess_requests, "drift, but no preprocess request of this identifier is left to retrain from");
            metrics::RETRAINS.with_label_values(&["no_request_known"]).inc();
            return Ok(false);
        };
        request.force = true;
        request.requested_at = Utc::now();
        self.producer
            .send_json(&self.topics.preprocess_requests, Some(identifier), &request)
            .await
            .map_err(HandlerError::from)?;
        metrics::RETRAINS.with_label_values(&["sent"]).inc();
        info!(identifier, input = %request.input, "asked preprocess to retrain");
        Ok(true)
    }
}

impl kafka_utils::Handler for Monitor {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        let ev: PerformanceEval = record.decode()?;
        for field in [&ev.identifier, &ev.config_hash] {
            contracts::topics::validate_identifier(field)
                .map_err(|e| HandlerError::permanent(Code::InvalidIdentifier, e))?;
        }
        let step = self.absorb(ev).await?;
        let outcome = match step {
            Step::Duplicate => "duplicate",
            Step::Warming => "warming",
            Step::Healthy { .. } => "healthy",
            Step::Degraded { .. } => "degraded",
            Step::Drift { .. } => "drift",
        };
        metrics::RECORDS.with_label_values(&[outcome]).inc();
        Ok(())
    }
}
