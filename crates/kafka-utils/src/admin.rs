//! Topic bootstrap: create the pipeline's topics and their DLQs, idempotently.

use std::time::Duration;

use contracts::error::{Classified, Code};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use tracing::info;

use crate::config::{ConfigError, KafkaArgs};

/// How a topic is created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub replication: i32,
    /// `retention.ms`; `None` leaves the broker default.
    pub retention_ms: Option<i64>,
}

/// Partition/replication/retention settings for bootstrap (`#[command(flatten)]`).
#[derive(Debug, Clone, clap::Args)]
pub struct TopicArgs {
    /// Partitions per pipeline topic (size for the largest consumer group).
    #[arg(long, env = "TOPIC_PARTITIONS", default_value_t = 3)]
    pub partitions: i32,
    /// Replication factor (1 for a single broker).
    #[arg(long, env = "TOPIC_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// Retention of pipeline topics in milliseconds (default 7 days).
    #[arg(long, env = "TOPIC_RETENTION_MS", default_value_t = 7 * 24 * 3600 * 1000)]
    pub retention_ms: i64,
    /// Retention of DLQ topics in milliseconds (default 30 days: time to replay).
    #[arg(long, env = "DLQ_RETENTION_MS", default_value_t = 30 * 24 * 3600 * 1000)]
    pub dlq_retention_ms: i64,
}

impl TopicArgs {
    /// Specs for every topic the pipeline needs.
    pub fn pipeline_specs(&self) -> Vec<TopicSpec> {
        contracts::topology::all_topics()
            .into_iter()
            .map(|name| {
                let retention =
                    if contracts::topics::is_dlq(&name) { self.dlq_retention_ms } else { self.retention_ms };
                TopicSpec {
                    name,
                    partitions: self.partitions,
                    replication: self.replication,
                    retention_ms: Some(retention),
                }
            })
            .collect()
    }
}

/// Topic bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot reach Kafka: {0}")]
    Client(#[source] KafkaError),
    #[error("cannot create topic {topic}: {code:?}")]
    Create { topic: String, code: RDKafkaErrorCode },
}

/// Unreachable brokers may come up (retryable); a refused topic or bad settings stay so.
impl Classified for AdminError {
    fn code(&self) -> Code {
        match self {
            AdminError::Config(_) => Code::BadConfig,
            AdminError::Client(_) => Code::KafkaUnavailable,
            AdminError::Create { .. } => Code::TopicCreateFailed,
        }
    }
}

/// What bootstrap did per topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created(String),
    AlreadyExisted(String),
}

/// Create every topic in `specs` that does not exist yet. Existing topics are
/// left as they are (their partition count is not changed).
pub async fn ensure_topics(args: &KafkaArgs, specs: &[TopicSpec]) -> Result<Vec<Created>, AdminError> {
    let admin: AdminClient<DefaultClientContext> =
        args.client_config("flts-admin")?.create().map_err(AdminError::Client)?;
    let retention: Vec<String> =
        specs.iter().map(|s| s.retention_ms.map(|r| r.to_string()).unwrap_or_default()).collect();
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .zip(&retention)
        .map(|(s, r)| {
            let t = NewTopic::new(&s.name, s.partitions, TopicReplication::Fixed(s.replication));
            if s.retention_ms.is_some() { t.set("retention.ms", r) } else { t }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin.create_topics(&new_topics, &opts).await.map_err(AdminError::Client)?;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(name) => {
                info!(topic = %name, "topic created");
                out.push(Created::Created(name));
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => out.push(Created::AlreadyExisted(name)),
            Err((topic, code)) => return Err(AdminError::Create { topic, code }),
        }
    }
    Ok(out)
}

/// Partition counts of every topic on the broker (name, partitions), sorted.
pub fn list_topics(args: &KafkaArgs, timeout: Duration) -> Result<Vec<(String, usize)>, AdminError> {
    let consumer: BaseConsumer = args.client_config("flts-admin")?.create().map_err(AdminError::Client)?;
    let md = consumer.fetch_metadata(None, timeout).map_err(AdminError::Client)?;
    let mut topics: Vec<(String, usize)> = md
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect();
    topics.sort();
    Ok(topics)
}
