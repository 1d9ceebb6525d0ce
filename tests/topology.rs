//! The deploy files agree with the topology (`contracts::topology`): every
//! stage runs in docker-compose.yaml and as a Kubernetes Deployment under its
//! own name, Prometheus scrapes each of them, compose creates every bucket,
//! and no deploy file runs a stage the topology does not know. Adding a model
//! type is a row in the topology; this test then names each file that still
//! lacks it.

use std::collections::BTreeSet;

use contracts::topology::{self, STAGES};
use flts_tests::repo_root;
use serde::Deserialize as _;
use serde_yaml::Value;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn stage_names() -> BTreeSet<String> {
    STAGES.iter().map(|s| s.name.to_string()).collect()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

/// Compose services of the FLTS image: service name -> binary (first word of `command`).
fn compose_flts_services(doc: &Value) -> Vec<(String, String)> {
    let services = doc["services"].as_mapping().expect("services");
    let mut out = Vec::new();
    for (name, svc) in services {
        let flts_image = svc["image"].as_str().is_some_and(|i| i.starts_with("flts:"));
        let command = strings(&svc["command"]);
        if let (true, Some(bin)) = (flts_image, command.first()) {
            out.push((name.as_str().expect("service name").to_string(), bin.clone()));
        }
    }
    out
}

#[test]
fn compose_runs_every_stage_under_its_own_name_and_creates_every_bucket() {
    let mut doc: Value = serde_yaml::from_str(&read("docker-compose.yaml")).expect("docker-compose.yaml is YAML");
    doc.apply_merge().expect("merge keys resolve");
    for (_, svc) in doc["services"].as_mapping_mut().expect("services").iter_mut() {
        svc.apply_merge().expect("merge keys resolve");
    }
    let running = compose_flts_services(&doc);
    for s in STAGES {
        assert!(
            running.iter().any(|(n, b)| n == s.name && b == s.name),
            "docker-compose.yaml has no service `{0}` running `{0}` (topology stage)",
            s.name
        );
    }
    // Every other service of the FLTS image runs the operator CLI (topic bootstrap).
    let unknown: Vec<_> = running.iter().filter(|(_, b)| b != "flts" && topology::stage(b).is_none()).collect();
    assert!(unknown.is_empty(), "compose runs binaries the topology does not know: {unknown:?}");

    // The bucket bootstrap (`for b in ...; do mc mb ...`) creates exactly the topology's buckets.
    let init = serde_yaml::to_string(&doc["services"]["minio-init"]["command"]).expect("minio-init command");
    let words: Vec<&str> = init
        .split("for b in")
        .nth(1)
        .expect("a `for b in ...` bucket loop")
        .split(';')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let created: BTreeSet<&str> = words.into_iter().collect();
    let expected: BTreeSet<&str> = topology::bucket_names().into_iter().collect();
    assert_eq!(created, expected, "minio-init creates other buckets than the topology lists");
}

#[test]
fn every_stage_is_a_kubernetes_deployment_running_its_binary() {
    let mut deployments = BTreeSet::new();
    for entry in std::fs::read_dir(repo_root().join("deploy/k8s")).expect("deploy/k8s") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("read manifest");
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if v["kind"].as_str() != Some("Deployment") {
                continue;
            }
            let name = v["metadata"]["name"].as_str().expect("metadata.name").to_string();
            let containers = v["spec"]["template"]["spec"]["containers"].as_sequence().expect("containers");
            let args = strings(&containers[0]["args"]);
            if topology::stage(&name).is_some() {
                assert_eq!(args.first(), Some(&name), "Deployment {name} runs {args:?}, not its own binary");
            }
            deployments.insert(name);
        }
    }
    let missing: Vec<_> = stage_names().difference(&deployments).cloned().collect();
    assert!(missing.is_empty(), "deploy/k8s has no Deployment for {missing:?}");
}

#[test]
fn prometheus_scrapes_every_stage() {
    let doc: Value = serde_yaml::from_str(&read("deploy/prometheus/prometheus.yml")).expect("prometheus.yml is YAML");
    let mut hosts = BTreeSet::new();
    for job in doc["scrape_configs"].as_sequence().expect("scrape_configs") {
        for sc in job["static_configs"].as_sequence().into_iter().flatten() {
            for t in strings(&sc["targets"]) {
                hosts.insert(t.split(':').next().unwrap_or_default().to_string());
            }
        }
        // DNS discovery: every replica of a scaled service.
        for sd in job["dns_sd_configs"].as_sequence().into_iter().flatten() {
            hosts.extend(strings(&sd["names"]));
        }
    }
    let missing: Vec<_> = stage_names().difference(&hosts).cloned().collect();
    assert!(missing.is_empty(), "Prometheus does not scrape {missing:?}");
}
