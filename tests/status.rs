//! `flts status` against the real broker: a group that never committed shows
//! its whole backlog as lag (it starts at the low watermark), a commit shrinks
//! it, and groups named after a stage's group (per-replica groups such as
//! inference's `batch-forecasting-v2-models-<instance>`) are found through the
//! broker's ListGroups (tansu 0.6.0 drops the connection on the DescribeGroups
//! librdkafka sends after it; `flts` then asks ListGroups alone).

use std::process::Command;
use std::time::{Duration, Instant};

use flts_tests::{StageProcess, create_topic_with_dlq, stack, unique};
use kafka_utils::Producer;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

async fn topic_with_records(prefix: &str, n: usize) -> String {
    let topic = unique(prefix);
    create_topic_with_dlq(&topic, 1).await;
    let producer = Producer::new(&stack().kafka, "test").expect("producer");
    for i in 0..n {
        producer.send_json(&topic, Some("k"), &serde_json::json!({ "i": i })).await.expect("produce");
    }
    topic
}

/// `flts status ARGS`: the rows of the lag table, split on whitespace.
fn status(args: &[&str]) -> Vec<Vec<String>> {
    let mut cmd: Command = StageProcess::command("flts");
    let out = cmd.arg("status").args(args).output().expect("run flts status");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "flts status {args:?} failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect()
}

fn row_of(rows: &[Vec<String>], group: &str, topic: &str) -> Option<Vec<String>> {
    rows.iter().find(|r| r.len() == 6 && r[0] == group && r[1] == topic).cloned()
}

fn consumer(group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", stack().kafka.bootstrap().expect("bootstrap"))
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_group_that_never_committed_shows_its_whole_backlog() {
    let topic = topic_with_records("status-never", 5).await;
    let group = unique("never-committed");

    let rows = status(&["--group", &group, "--topic", &topic]);
    let row = row_of(&rows, &group, &topic).unwrap_or_else(|| panic!("no row for {group} on {topic}: {rows:?}"));
    assert_eq!(row[2..], ["0", "-", "5", "5"], "partition, committed, end, lag");

    // Commit offset 2: the lag is what is left after it.
    let c = consumer(&group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(2)).expect("offset");
    c.commit(&tpl, CommitMode::Sync).expect("commit");
    let rows = status(&["--group", &group, "--topic", &topic]);
    let row = row_of(&rows, &group, &topic).unwrap_or_else(|| panic!("no row for {group} on {topic}: {rows:?}"));
    assert_eq!(row[2..], ["0", "2", "5", "3"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_named_after_a_stage_group_are_found_on_the_broker_with_their_lag() {
    let topic = topic_with_records("status-replica", 3).await;
    // A per-replica group of inference's (as releases before followed their
    // model events) that joined but never committed.
    let group = format!("batch-forecasting-v2-models-{}", unique("replica"));
    let member = consumer(&group);
    member.subscribe(&[&topic]).expect("subscribe");
    let deadline = Instant::now() + Duration::from_secs(60);
    while member.assignment().map(|a| a.count()).unwrap_or(0) == 0 {
        assert!(Instant::now() < deadline, "{group} got no assignment within 60 s");
        let _ = member.poll(Duration::from_millis(200));
    }

    // No --group: the default groups, among them the replica groups the broker lists.
    let rows = status(&["--topic", &topic]);
    let row = row_of(&rows, &group, &topic).unwrap_or_else(|| panic!("replica group {group} not shown: {rows:?}"));
    assert_eq!(row[2..], ["0", "-", "3", "3"], "partition, committed, end, lag");
    assert!(row_of(&rows, "eval-promoter", &topic).is_some(), "stage groups are shown too: {rows:?}");
}
