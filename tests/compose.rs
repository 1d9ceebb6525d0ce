//! docker-compose.yaml stays true to the binaries: every env var a service
//! sets is one its binary reads (no typos that silently fall back to a
//! default), every setting a stage needs to reach Kafka, S3 and MLflow is
//! set, and every service it names (depends_on, Prometheus targets) exists.
//! (`docker-compose config` itself runs in scripts/test.)

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use flts_tests::{bin_path, repo_root};
use serde::Deserialize;
use serde_yaml::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(repo_root().join("docker-compose.yaml")).expect("read docker-compose.yaml");
    let mut doc: Value = serde_yaml::from_str(&text).expect("docker-compose.yaml is YAML");
    doc.apply_merge().expect("merge keys resolve");
    // Merge keys nested inside merged mappings (environment: <<: *flts-env).
    if let Some(services) = doc.get_mut("services").and_then(Value::as_mapping_mut) {
        for (_, svc) in services.iter_mut() {
            svc.apply_merge().expect("merge keys resolve");
            if let Some(env) = svc.get_mut("environment") {
                env.apply_merge().expect("merge keys resolve");
            }
        }
    }
    doc
}

/// Env vars a binary (and subcommand) reads, from `--help` (clap prints `[env: NAME=...]`).
fn env_vars_of(binary: &str, args: &[&str]) -> BTreeSet<String> {
    let mut vars = help_env_vars(binary, &[]);
    if !args.is_empty() {
        vars.extend(help_env_vars(binary, args));
    }
    vars
}

fn help_env_vars(binary: &str, args: &[&str]) -> BTreeSet<String> {
    let out = Command::new(bin_path(binary)).args(args).arg("--help").output().expect("run --help");
    assert!(out.status.success(), "{binary} --help failed");
    let text = String::from_utf8_lossy(&out.stdout);
    text.split("[env: ").skip(1).filter_map(|s| s.split(['=', ']']).next()).map(|s| s.trim().to_string()).collect()
}

/// Binaries whose own settings come from the environment at process start
/// (logging) rather than from clap.
const PROCESS_ENV: [&str; 2] = ["RUST_LOG", "LOG_FORMAT"];

#[test]
fn every_service_env_var_is_read_by_its_binary_and_required_ones_are_set() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let stages: BTreeMap<&str, (&str, Vec<&str>)> = [
        ("preprocess", ("preprocess", vec![])),
        ("train-gru", ("train-gru", vec![])),
        ("train-lstm", ("train-lstm", vec![])),
        ("prophet", ("prophet", vec![])),
        ("eval", ("eval", vec![])),
        ("inference", ("inference", vec![])),
        ("monitor", ("monitor", vec![])),
        ("kafka-init", ("flts", vec!["topics", "create"])),
    ]
    .into_iter()
    .collect();
    for (service, (binary, sub)) in &stages {
        let svc = services.get(*service).unwrap_or_else(|| panic!("service {service} missing"));
        let env: BTreeSet<String> = svc["environment"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{service} has no environment"))
            .keys()
            .filter_map(|k| k.as_str().map(String::from))
            .collect();
        let reads = env_vars_of(binary, sub);
        for var in &env {
            assert!(
                reads.contains(var) || PROCESS_ENV.contains(&var.as_str()),
                "{service} sets {var}, which `{binary}` does not read (reads: {reads:?})"
            );
        }
        let mut required = vec!["KAFKA_BOOTSTRAP_SERVERS"];
        if let Some(stage) = contracts::topology::stage(binary) {
            required.push("METRICS_ADDR");
            // A stage that touches a bucket (the topology says which) needs S3.
            if !stage.reads.is_empty() || !stage.writes.is_empty() {
                required.extend(["S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]);
            }
        }
        if ["train-gru", "train-lstm", "prophet", "eval", "monitor"].contains(service) {
            required.push("MLFLOW_TRACKING_URI");
        }
        for var in required {
            assert!(env.contains(var), "{service} must set {var}");
            assert!(reads.contains(var), "`{binary}` should read {var}");
        }
    }
}

#[test]
fn every_service_named_exists() {
    let doc = compose();
    let services = doc["services"].as_mapping().expect("services");
    let names: BTreeSet<&str> = services.keys().filter_map(Value::as_str).collect();
    for (name, svc) in services {
        let deps: Vec<&str> = match &svc["depends_on"] {
            Value::Mapping(m) => m.keys().filter_map(Value::as_str).collect(),
            Value::Sequence(s) => s.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        for d in deps {
            assert!(names.contains(d), "{name:?} depends on unknown service {d}");
        }
    }
    let prom = std::fs::read_to_string(repo_root().join("deploy/prometheus/prometheus.yml")).expect("prometheus.yml");
    let prom: Value = serde_yaml::from_str(&prom).expect("prometheus.yml is YAML");
    let mut scraped = 0;
    for job in prom["scrape_configs"].as_sequence().expect("scrape_configs") {
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            for t in sc["targets"].as_sequence().expect("targets") {
                let host = t.as_str().and_then(|t| t.split(':').next()).expect("host:port");
                assert!(names.contains(host), "Prometheus scrapes unknown service {host}");
                scraped += 1;
            }
        }
        // DNS discovery: every replica of a scaled service.
        for sd in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
            for n in sd["names"].as_sequence().expect("names") {
                let host = n.as_str().expect("name");
                assert!(names.contains(host), "Prometheus discovers unknown service {host}");
                scraped += 1;
            }
        }
    }
    assert_eq!(scraped, contracts::topology::STAGES.len(), "Prometheus scrapes every stage");
}

/// Every document of every YAML file under deploy/k8s (recursively).
fn k8s_objects() -> Vec<(String, Value)> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).expect("read deploy/k8s").flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo_root().join("deploy/k8s"), &mut files);
    files.sort();
    let mut objects = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read manifest");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).expect("manifest is YAML");
            if !v.is_null() {
                objects.push((f.display().to_string(), v));
            }
        }
    }
    objects
}

/// The autoscalers (HPA, KEDA ScaledObjects) scale Deployments that exist, on
/// the consumer groups and topics those stages really read (the topology),
/// and never beyond the partitions a shared group can spread over.
/// (scripts/k8s-validate checks the schemas; KEDA's allow unknown fields.)
#[test]
fn k8s_autoscalers_target_real_deployments_groups_and_topics() {
    use contracts::topology::{Delivery, STAGES};
    let objects = k8s_objects();
    let deployments: BTreeSet<&str> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "Deployment")
        .filter_map(|(_, o)| o["metadata"]["name"].as_str())
        .collect();
    let partitions: u64 = objects
        .iter()
        .find(|(_, o)| o["kind"] == "ConfigMap" && o["metadata"]["name"] == "flts-config")
        .and_then(|(_, o)| o["data"]["TOPIC_PARTITIONS"].as_str())
        .and_then(|p| p.parse().ok())
        .expect("flts-config sets TOPIC_PARTITIONS");
    let mut scaled = BTreeMap::new();
    for (file, o) in &objects {
        let (target, max) = match o["kind"].as_str() {
            Some("HorizontalPodAutoscaler") => (&o["spec"]["scaleTargetRef"]["name"], &o["spec"]["maxReplicas"]),
            Some("ScaledObject") => (&o["spec"]["scaleTargetRef"]["name"], &o["spec"]["maxReplicaCount"]),
            _ => continue,
        };
        let target = target.as_str().unwrap_or_else(|| panic!("{file}: autoscaler without a target"));
        assert!(deployments.contains(target), "{file}: scales {target}, which is no Deployment");
        let max = max.as_u64().unwrap_or_else(|| panic!("{file}: {target} has no maximum"));
        assert!(max <= partitions, "{file}: {target} scales to {max} > TOPIC_PARTITIONS {partitions}");
        let stage = STAGES.iter().find(|s| s.name == target).expect("a stage");
        for t in o["spec"]["triggers"].as_sequence().into_iter().flatten() {
            if t["type"] != "kafka" {
                continue;
            }
            let (group, topic) = (t["metadata"]["consumerGroup"].as_str(), t["metadata"]["topic"].as_str());
            assert!(
                stage
                    .consumes
                    .iter()
                    .any(|s| Some(s.group) == group && Some(s.topic) == topic && s.delivery == Delivery::Shared),
                "{file}: {target}'s lag trigger reads {group:?} on {topic:?}, not a shared group the stage consumes"
            );
        }
        scaled
            .entry(o["kind"].as_str().unwrap_or_default().to_string())
            .or_insert_with(BTreeSet::new)
            .insert(target.to_string());
    }
    assert_eq!(scaled["HorizontalPodAutoscaler"], ["inference".to_string()].into());
    let keda: BTreeSet<String> = ["train-gru", "train-lstm", "prophet", "inference"].map(String::from).into();
    assert_eq!(scaled["ScaledObject"], keda, "KEDA scales the trainers and inference");
}

/// One ACL of a KafkaUser: (resource type, name, pattern type, operations).
type Acl = (String, String, String, BTreeSet<String>);

fn acl(rtype: &str, name: &str, pattern: &str, ops: &[&str]) -> Acl {
    (rtype.into(), name.into(), pattern.into(), ops.iter().map(|o| o.to_string()).collect())
}

/// Issue 17 (authorization where the broker has it): every stage has its own
/// Kafka user whose ACLs are exactly what the topology says it consumes and
/// produces, so only the trainers can write model-training and only eval can
/// write model-selected; each Deployment authenticates as its own user.
#[test]
fn k8s_kafka_users_grant_each_stage_exactly_its_topology() {
    use contracts::topology::{Delivery, STAGES};
    let objects = k8s_objects();
    let users: BTreeMap<String, BTreeSet<Acl>> = objects
        .iter()
        .filter(|(_, o)| o["kind"] == "KafkaUser")
        .map(|(_, o)| {
            assert_eq!(o["spec"]["authentication"]["type"], "scram-sha-512", "{:?}", o["metadata"]["name"]);
            let acls = o["spec"]["authorization"]["acls"]
                .as_sequence()
                .expect("acls")
                .iter()
                .map(|a| {
                    let r = &a["resource"];
                    let ops: Vec<&str> =
                        a["operations"].as_sequence().expect("ops").iter().filter_map(Value::as_str).collect();
                    acl(
                        r["type"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default(),
                        r["patternType"].as_str().unwrap_or("literal"),
                        &ops,
                    )
                })
                .collect();
            (o["metadata"]["name"].as_str().expect("name").to_string(), acls)
        })
        .collect();
    for stage in STAGES {
        let mut expected = BTreeSet::new();
        for sub in stage.consumes {
            expected.insert(acl("topic", sub.topic, "literal", &["Read", "Describe"]));
            // A followed topic (every replica, no group) needs no group ACL.
            if sub.delivery == Delivery::Shared {
                expected.insert(acl("group", sub.group, "literal", &["Read"]));
            }
            expected.insert(acl("topic", &contracts::topics::dlq_topic(sub.topic), "literal", &["Write", "Describe"]));
        }
        for topic in stage.produces {
            expected.insert(acl("topic", topic, "literal", &["Write", "Describe"]));
        }
        let user = format!("flts-{}", stage.name);
        assert_eq!(users.get(&user), Some(&expected), "{user}: ACLs differ from the topology");
    }
    let writers = |topic: &str| -> BTreeSet<&str> {
        STAGES
            .iter()
            .filter(|s| users[&format!("flts-{}", s.name)].iter().any(|a| a.1 == topic && a.3.contains("Write")))
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(writers(contracts::topics::MODEL_TRAINING), ["prophet", "train-gru", "train-lstm"].into());
    assert_eq!(writers(contracts::topics::MODEL_SELECTED), ["eval"].into());
    // Each Deployment logs in as its own user, with the password of that user's Secret.
    for (file, o) in objects.iter().filter(|(_, o)| o["kind"] == "Deployment") {
        let name = o["metadata"]["name"].as_str().expect("name");
        let env = &o["spec"]["template"]["spec"]["containers"][0]["env"];
        let var = |n: &str| env.as_sequence().into_iter().flatten().find(|e| e["name"] == n).cloned();
        let user = format!("flts-{name}");
        assert_eq!(
            var("KAFKA_SASL_USERNAME").map(|e| e["value"].clone()),
            Some(Value::from(user.clone())),
            "{file}: {name}"
        );
        let secret = var("KAFKA_SASL_PASSWORD").map(|e| e["valueFrom"]["secretKeyRef"]["name"].clone());
        assert_eq!(secret, Some(Value::from(user.clone())), "{file}: {name} reads its own user's password");
        assert!(users.contains_key(&user), "{file}: {name} has no KafkaUser");
    }
}
