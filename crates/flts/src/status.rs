//! `flts status`: consumer lag per stage and the current promotion per dataset.
//!
//! A group's lag on a partition is `end - committed`; a group that has not
//! committed on a partition it reads (a new stage, a stage that crashed before
//! its first commit) starts from the low watermark (`auto.offset.reset =
//! earliest`), so its lag there is `end - low`, the whole backlog, and the
//! COMMITTED column shows `-`.
//!
//! The groups shown by default are every stage's group in
//! `contracts::topology`, plus the groups the broker lists (ListGroups, which
//! tansu 0.6.0 answers with every group that ever joined or committed) named
//! after one of them (`<stage group>-<suffix>`: per-replica or per-instance
//! groups, such as inference's `batch-forecasting-v2-models-<instance>` of
//! releases before it followed its model events without a group). Such a
//! group's topics are the ones it committed on (or `--topic`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::Context;
use claim_check::ClaimCheckStore;
use contracts::ModelSelected;
use contracts::topology::{Delivery, STAGES};
use kafka_utils::KafkaArgs;
use kafka_utils::config::SecurityProtocol;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

/// The consumer groups of the stages (`contracts::topology`), with the topics
/// each reads. Followed topics (inference's model events) have no group.
pub fn stage_groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for sub in STAGES.iter().flat_map(|s| s.consumes).filter(|c| c.delivery == Delivery::Shared) {
        match out.iter_mut().find(|(g, _)| *g == sub.group) {
            Some((_, topics)) => topics.push(sub.topic),
            None => out.push((sub.group, vec![sub.topic])),
        }
    }
    out
}

/// The topics `group` reads when it is a stage's group.
pub fn topics_of(group: &str) -> Vec<&'static str> {
    stage_groups().into_iter().find(|(g, _)| *g == group).map(|(_, t)| t).unwrap_or_default()
}

/// Whether `group` is named after the stage group `stage` (`<stage>-<suffix>`):
/// a per-replica or per-instance group of that stage, such as inference's
/// `batch-forecasting-v2-models-<instance>` of releases before it followed
/// its model events without a group.
fn named_after(group: &str, stage: &str) -> bool {
    group.strip_prefix(stage).and_then(|rest| rest.strip_prefix('-')).is_some_and(|suffix| !suffix.is_empty())
}

/// One row of the lag table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: i32,
    /// The committed offset; `None` when the group never committed on the partition.
    pub committed: Option<i64>,
    /// Low watermark: where a group without a commit starts.
    pub low: i64,
    pub end: i64,
}

impl Lag {
    /// Records the group has still to read.
    pub fn lag(&self) -> i64 {
        (self.end - self.committed.unwrap_or(self.low).max(self.low)).max(0)
    }
}

fn consumer(kafka: &KafkaArgs, group: &str) -> anyhow::Result<BaseConsumer> {
    let mut cfg = kafka.client_config("flts-cli")?;
    cfg.set("group.id", group).set("enable.auto.commit", "false");
    cfg.create().context("create consumer")
}

/// Lag of `group` on every partition of `expected` (committed or not) and on
/// every partition of `scan` it has committed on.
pub fn group_lag(kafka: &KafkaArgs, group: &str, expected: &[String], scan: &[String]) -> anyhow::Result<Vec<Lag>> {
    let timeout = Duration::from_secs(10);
    let consumer = consumer(kafka, group)?;
    let meta = consumer.fetch_metadata(None, timeout).context("fetch metadata")?;
    let wanted = |name: &str| expected.iter().chain(scan).any(|n| n == name);
    let mut tpl = TopicPartitionList::new();
    for t in meta.topics().iter().filter(|t| wanted(t.name())) {
        for p in t.partitions() {
            tpl.add_partition(t.name(), p.id());
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout).context("fetch committed offsets")?;
    let mut out = Vec::new();
    for e in committed.elements() {
        let committed = match e.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        if committed.is_none() && !expected.iter().any(|t| t == e.topic()) {
            continue;
        }
        let (low, end) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout).context("fetch watermarks")?;
        out.push(Lag { group: group.into(), topic: e.topic().into(), partition: e.partition(), committed, low, end });
    }
    out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(out)
}

/// Every consumer group the brokers list. librdkafka's listing sends
/// DescribeGroups after ListGroups, which tansu 0.6.0 (sqlite) fails on as soon
/// as a group has members (it cannot decode its own stored group state, and
/// drops the connection), so on a plaintext listener a bare ListGroups goes to
/// each bootstrap broker; librdkafka's listing is the fallback and the way
/// over TLS or SASL.
pub fn list_groups(kafka: &KafkaArgs) -> anyhow::Result<Vec<String>> {
    let timeout = Duration::from_secs(10);
    let mut names = BTreeSet::new();
    let mut bare_failed = None;
    if kafka.security_protocol == SecurityProtocol::Plaintext {
        for broker in kafka.bootstrap()?.split(',').map(str::trim).filter(|b| !b.is_empty()) {
            match list_groups_plaintext(broker, timeout) {
                Ok(listed) => names.extend(listed),
                Err(e) => bare_failed = Some(format!("ListGroups on {broker}: {e:#}")),
            }
        }
        if bare_failed.is_none() {
            return Ok(names.into_iter().collect());
        }
    }
    let list = consumer(kafka, "flts-cli-status")?.fetch_group_list(None, timeout).with_context(|| {
        format!("list consumer groups{}", bare_failed.map(|b| format!(" (after {b})")).unwrap_or_default())
    })?;
    names.extend(list.groups().iter().map(|g| g.name().to_string()));
    Ok(names.into_iter().collect())
}

/// Kafka API key of ListGroups, and the version asked for (v1: throttle time, error, groups).
const LIST_GROUPS: i16 = 16;
const LIST_GROUPS_VERSION: i16 = 1;

/// One ListGroups v1 request to `broker` over plaintext.
fn list_groups_plaintext(broker: &str, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let addr = broker.to_socket_addrs()?.next().with_context(|| format!("{broker} resolves to nothing"))?;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let client_id = b"flts-cli";
    let mut request = Vec::new();
    request.extend(LIST_GROUPS.to_be_bytes());
    request.extend(LIST_GROUPS_VERSION.to_be_bytes());
    request.extend(1i32.to_be_bytes()); // correlation id
    request.extend((client_id.len() as i16).to_be_bytes());
    request.extend(client_id);
    stream.write_all(&(request.len() as i32).to_be_bytes())?;
    stream.write_all(&request)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = usize::try_from(i32::from_be_bytes(size)).ok().filter(|n| *n <= 16 << 20);
    let mut response = vec![0u8; size.context("ListGroups response size out of range")?];
    stream.read_exact(&mut response)?;
    parse_list_groups(&response, 1)
}

/// Big-endian reads from a Kafka response.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> anyhow::Result<&'a [u8]> {
        anyhow::ensure!(self.0.len() >= n, "ListGroups response ends early");
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn int16(&mut self) -> anyhow::Result<i16> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into()?))
    }
    fn int32(&mut self) -> anyhow::Result<i32> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into()?))
    }
    fn string(&mut self) -> anyhow::Result<&'a [u8]> {
        let len = usize::try_from(self.int16()?).unwrap_or(0);
        self.take(len)
    }
}

/// The group ids of a ListGroups v1 response (after its size prefix).
pub fn parse_list_groups(response: &[u8], correlation_id: i32) -> anyhow::Result<Vec<String>> {
    let mut r = Cursor(response);
    anyhow::ensure!(r.int32()? == correlation_id, "ListGroups response for another request");
    let _throttle_ms = r.int32()?;
    let error = r.int16()?;
    anyhow::ensure!(error == 0, "ListGroups answered error code {error}");
    let mut groups = Vec::new();
    for _ in 0..r.int32()?.max(0) {
        groups.push(String::from_utf8_lossy(r.string()?).into_owned());
        let _protocol_type = r.string()?;
    }
    Ok(groups)
}

/// The groups `flts status` shows by default: every stage's group, and of
/// `listed` (the broker's groups) those named after one of them.
pub fn default_groups(listed: &[String]) -> Vec<String> {
    let stages = stage_groups();
    let mut out: Vec<String> = stages.iter().map(|(g, _)| g.to_string()).collect();
    for g in listed {
        if stages.iter().any(|(s, _)| named_after(g, s)) && !out.contains(g) {
            out.push(g.clone());
        }
    }
    out
}

/// The lag table, one line per row, columns sized to fit.
pub fn render(rows: &[Lag]) -> String {
    let gw = rows.iter().map(|r| r.group.len()).max().unwrap_or(0).max(16);
    let tw = rows.iter().map(|r| r.topic.len()).max().unwrap_or(0).max(22);
    let mut out =
        format!("{:<gw$} {:<tw$} {:>4} {:>10} {:>10} {:>8}\n", "GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG");
    for r in rows {
        let committed = r.committed.map_or_else(|| "-".to_string(), |c| c.to_string());
        out.push_str(&format!(
            "{:<gw$} {:<tw$} {:>4} {:>10} {:>10} {:>8}\n",
            r.group,
            r.topic,
            r.partition,
            committed,
            r.end,
            r.lag()
        ));
    }
    out
}

/// `flts status`: lag of `groups` (default: [`default_groups`]) on `topics`
/// (default: each group's own topics, plus any pipeline topic it committed on).
pub async fn run(
    kafka: &KafkaArgs,
    store: &ClaimCheckStore,
    groups: &[String],
    topics: &[String],
    bucket: &str,
) -> anyhow::Result<()> {
    let all: Vec<String> = contracts::topology::all_topics();
    let groups: Vec<String> = if groups.is_empty() {
        let listed = list_groups(kafka).unwrap_or_else(|e| {
            eprintln!("warning: the broker did not list its groups ({e:#}); per-replica groups not shown");
            Vec::new()
        });
        default_groups(&listed)
    } else {
        groups.to_vec()
    };
    let mut rows = Vec::new();
    let mut silent = Vec::new();
    for g in &groups {
        let expected: Vec<String> =
            if topics.is_empty() { topics_of(g).into_iter().map(String::from).collect() } else { topics.to_vec() };
        let scan: &[String] = if topics.is_empty() { &all } else { &[] };
        let lag = group_lag(kafka, g, &expected, scan).with_context(|| format!("lag of group {g}"))?;
        if lag.is_empty() {
            silent.push(g.clone());
        }
        rows.extend(lag);
    }
    print!("{}", render(&rows));
    for g in silent {
        println!("{g}: nothing committed on the pipeline topics");
    }
    println!("\nCurrent promotions (s3://{bucket}/<identifier>/current.json):");
    let mut found = 0;
    for (key, _) in store.list(bucket, "").await.context("list promotions")? {
        if !key.ends_with("/current.json") {
            continue;
        }
        let bytes = store.get_object(bucket, &key).await.with_context(|| format!("read {key}"))?;
        match serde_json::from_slice::<ModelSelected>(&bytes) {
            Ok(p) => {
                found += 1;
                println!(
                    "  {:<20} {:<8} run {} score {:.6} rmse {:.6} at {}",
                    p.identifier,
                    p.model_type,
                    p.run_id,
                    p.composite_score,
                    p.test_rmse,
                    p.promotion_time.format("%Y-%m-%d %H:%M:%S")
                );
            }
            Err(e) => println!("  {key}: unreadable ({e})"),
        }
    }
    if found == 0 {
        println!("  none yet");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use contracts::topics::INFERENCE_DATA;

    use super::*;

    fn row(committed: Option<i64>, low: i64, end: i64) -> Lag {
        Lag { group: "g".into(), topic: "t".into(), partition: 0, committed, low, end }
    }

    #[test]
    fn a_group_that_never_committed_has_the_whole_backlog_as_lag() {
        assert_eq!(row(None, 0, 7).lag(), 7);
        assert_eq!(row(None, 4, 7).lag(), 3, "retention removed the first four: they cannot be read");
        assert_eq!(row(Some(5), 0, 7).lag(), 2);
        assert_eq!(row(Some(2), 4, 7).lag(), 3, "a commit below the low watermark resets to it");
        assert_eq!(row(Some(9), 0, 7).lag(), 0);
    }

    #[test]
    fn the_table_marks_missing_commits() {
        let text = render(&[row(None, 0, 7), row(Some(5), 0, 7)]);
        let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split_whitespace().collect()).collect();
        assert_eq!(lines[0], ["GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG"]);
        assert_eq!(lines[1], ["g", "t", "0", "-", "7", "7"]);
        assert_eq!(lines[2], ["g", "t", "0", "5", "7", "2"]);
    }

    #[test]
    fn list_groups_responses_are_parsed() {
        let mut r = Vec::new();
        r.extend(7i32.to_be_bytes());
        r.extend(0i32.to_be_bytes());
        r.extend(0i16.to_be_bytes());
        r.extend(2i32.to_be_bytes());
        for (g, p) in [("batch-forecasting-v2-models-a", "consumer"), ("eval-promoter", "")] {
            r.extend((g.len() as i16).to_be_bytes());
            r.extend(g.as_bytes());
            r.extend((p.len() as i16).to_be_bytes());
            r.extend(p.as_bytes());
        }
        assert_eq!(parse_list_groups(&r, 7).expect("parse"), ["batch-forecasting-v2-models-a", "eval-promoter"]);
        assert!(parse_list_groups(&r, 8).is_err(), "another correlation id");
        assert!(parse_list_groups(&r[..r.len() - 3], 7).is_err(), "truncated");
        let mut failed = r[..8].to_vec();
        failed.extend(15i16.to_be_bytes());
        failed.extend(0i32.to_be_bytes());
        assert!(parse_list_groups(&failed, 7).is_err(), "an error code");
    }

    #[test]
    fn groups_named_after_a_stage_group_are_shown() {
        let listed: Vec<String> = [
            "batch-forecasting-v2-models-pod-a",
            "someone-else",
            "batch-forecasting-v2-models-pod-b",
            "eval-promoter",
            "eval-promoter-",
        ]
        .map(String::from)
        .to_vec();
        let groups = default_groups(&listed);
        assert!(groups.contains(&"batch-forecasting-v2-models-pod-a".to_string()));
        assert!(groups.contains(&"batch-forecasting-v2-models-pod-b".to_string()));
        assert!(!groups.contains(&"someone-else".to_string()));
        assert!(!groups.contains(&"eval-promoter-".to_string()), "no suffix");
        assert_eq!(groups.iter().filter(|g| *g == "eval-promoter").count(), 1);
        for (g, _) in stage_groups() {
            assert!(groups.contains(&g.to_string()), "stage group {g} missing");
        }
        assert_eq!(topics_of("batch-forecasting-v2"), [INFERENCE_DATA]);
        assert_eq!(topics_of("batch-forecasting-v2-models-pod-a"), Vec::<&str>::new());
        assert_eq!(topics_of("unknown"), Vec::<&str>::new());
    }
}
