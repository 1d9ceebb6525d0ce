//! `flts topology`: the system's shape from [`contracts::topology`], for
//! people (a Markdown table, the one in README.md) and for scripts (one name
//! per line), so no script keeps its own list of stages, topics or buckets.

use std::fmt::Write as _;

use contracts::topics::dlq_topic;
use contracts::topology::{self, Delivery};

/// What to print.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum View {
    /// The stage table (Markdown), as in README.md.
    Table,
    /// Stage binaries, one per line.
    Stages,
    /// Trainer binaries (one per model type), one per line.
    Trainers,
    /// Pipeline topics and their DLQs, one per line.
    Topics,
    /// Consumer groups of the stages, one per line.
    Groups,
    /// Buckets, one per line.
    Buckets,
}

/// Render `view`.
pub fn render(view: View) -> String {
    let lines: Vec<String> = match view {
        View::Table => return table(),
        View::Stages => topology::STAGES.iter().map(|s| s.name.to_string()).collect(),
        View::Trainers => topology::trainers().map(|s| s.name.to_string()).collect(),
        View::Topics => topology::all_topics(),
        View::Groups => topology::consumer_groups().into_iter().map(str::to_string).collect(),
        View::Buckets => topology::bucket_names().into_iter().map(str::to_string).collect(),
    };
    lines.into_iter().map(|l| l + "\n").collect()
}

/// The stage table: binary, what it consumes (group, DLQ), produces, reads and writes.
pub fn table() -> String {
    let mut out = String::from(
        "| stage | consumes (group) | dead letters to | produces | reads buckets | writes buckets |\n|---|---|---|---|---|---|\n",
    );
    for s in topology::STAGES {
        let consumes: Vec<String> = s
            .consumes
            .iter()
            .map(|c| match c.delivery {
                Delivery::Shared => format!("`{}` ({})", c.topic, c.group),
                Delivery::Follow => format!("`{}` (every replica, no group)", c.topic),
            })
            .collect();
        let dlqs: Vec<String> = s.consumes.iter().map(|c| format!("`{}`", dlq_topic(c.topic))).collect();
        let list = |xs: &[&str]| xs.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            s.name,
            consumes.join(", "),
            dlqs.join(", "),
            list(s.produces),
            list(s.reads),
            list(s.writes),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// README.md shows the table exactly as `flts topology` prints it.
    #[test]
    fn readme_shows_the_topology_table() {
        let readme = include_str!("../../../README.md");
        assert!(
            readme.contains(&table()),
            "README.md's topology table is stale; replace it with the output of `flts topology table`:\n{}",
            table()
        );
    }

    #[test]
    fn script_views_list_one_name_per_line() {
        assert!(render(View::Stages).lines().any(|l| l == "eval"));
        assert!(render(View::Topics).lines().any(|l| l == "DLQ-training-data"));
        assert_eq!(render(View::Trainers).lines().count(), topology::trainers().count());
    }
}
