//! A real consumer process for the crash tests: it runs the kafka-utils loop
//! and appends `start <offset>` / `done <offset>` to a log file (fsynced), so a
//! test can kill it with SIGKILL at a known point.
//!
//! Env: KAFKA_BOOTSTRAP_SERVERS, TEST_TOPIC, TEST_GROUP, TEST_LOG, TEST_HOLD_MS.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use contracts::error::Code;
use kafka_utils::consumer::{self, ConsumerArgs, ConsumerSettings};
use kafka_utils::{Handler, HandlerError, KafkaArgs, Producer, Record};

struct Logger {
    path: String,
    hold: Duration,
}

impl Logger {
    fn append(&self, line: &str) -> Result<(), HandlerError> {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| HandlerError::permanent(Code::OutputUnwritable, e))?;
        writeln!(f, "{line}").and_then(|_| f.sync_all()).map_err(|e| HandlerError::permanent(Code::OutputUnwritable, e))
    }
}

impl Handler for Logger {
    async fn handle(&self, record: &Record) -> Result<(), HandlerError> {
        self.append(&format!("start {}", record.offset))?;
        tokio::time::sleep(self.hold).await;
        self.append(&format!("done {}", record.offset))
    }
}

fn var(name: &str) -> anyhow::Result<String> {
    std::env::var(name).map_err(|_| anyhow::anyhow!("{name} is not set"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let kafka = KafkaArgs::plaintext(var("KAFKA_BOOTSTRAP_SERVERS")?);
    let hold = Duration::from_millis(var("TEST_HOLD_MS").unwrap_or_default().parse().unwrap_or(0));
    let settings = ConsumerSettings {
        service: "test-consumer".into(),
        group_id: var("TEST_GROUP")?,
        topics: vec![var("TEST_TOPIC")?],
        args: ConsumerArgs { commit_interval_ms: 200, session_timeout_ms: 6_000, ..Default::default() },
    };
    let producer = Producer::new(&kafka, "test-consumer")?;
    let handler = Arc::new(Logger { path: var("TEST_LOG")?, hold });
    let cancel = tokio_util::sync::CancellationToken::new();
    consumer::run(&kafka, settings, producer, handler, cancel).await?;
    Ok(())
}
