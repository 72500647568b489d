//! `summary.csv`: one row per planned run, rewritten atomically each time a run ends.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::metrics::{read_metrics, write_atomic, MetricRow, RunRecord};

/// One planned run's identity, for rows of runs that have not produced a record yet.
pub struct PlannedRun<'a> {
    pub run_id: &'a str,
    pub variant: &'a str,
    pub seed: u64,
    pub swept: &'a std::collections::BTreeMap<String, String>,
    pub steps: u64,
    pub run_dir: &'a Path,
}

fn max_of(rows: &[MetricRow], col: &str) -> String {
    let mut best: Option<f64> = None;
    for r in rows {
        if let Some(v) = r.get(col) {
            best = Some(match best {
                // A NaN is the most important value to surface.
                Some(b) if b.is_nan() => b,
                Some(_) if v.is_nan() => v,
                Some(b) => b.max(v),
                None => v,
            });
        }
    }
    best.map(|v| format!("{v}")).unwrap_or_default()
}

fn last_of(rows: &[MetricRow], col: &str) -> String {
    rows.iter()
        .rev()
        .find_map(|r| r.get(col))
        .map(|v| format!("{v}"))
        .unwrap_or_default()
}

/// The ladder stage a run that has trained `steps_done` steps was last in: the first stage that
/// ends at or after that step (the last stage beyond it). `stages` are `(name, cumulative steps)`
/// in order.
fn stage_of(stages: &[(&str, u64)], steps_done: u64) -> String {
    stages
        .iter()
        .find(|(_, steps)| *steps >= steps_done)
        .or(stages.last())
        .map(|(name, _)| name.to_string())
        .unwrap_or_default()
}

/// The metric cells of a summary row (max |grad|, max |Q|, last returns) depend only on the run's
/// `metrics.csv`; a sweep rewrites the summary each time a run ends, so each file is parsed again
/// only when it changed (by length or modification time). Without this, a sweep of N runs of R
/// rows parses N·N·R rows over its life.
type Stamp = (u64, Option<std::time::SystemTime>);
type CellCache = HashMap<PathBuf, (Stamp, [String; 5])>;
static METRIC_CELLS: Mutex<Option<CellCache>> = Mutex::new(None);

fn metric_cells(csv: &Path) -> [String; 5] {
    let stamp: Option<Stamp> = std::fs::metadata(csv)
        .ok()
        .map(|m| (m.len(), m.modified().ok()));
    let mut cache = METRIC_CELLS.lock().unwrap_or_else(|e| e.into_inner());
    let cache = cache.get_or_insert_with(HashMap::new);
    if let (Some(s), Some((old, cells))) = (stamp, cache.get(csv)) {
        if *old == s {
            return cells.clone();
        }
    }
    let rows = read_metrics(csv).unwrap_or_default();
    let cells = [
        max_of(&rows, "actor_cnn_grad_norm"),
        max_of(&rows, "critic_cnn_grad_norm"),
        max_of(&rows, "q_abs_max"),
        last_of(&rows, "episode_return"),
        last_of(&rows, "eval_return"),
    ];
    match stamp {
        Some(s) => {
            cache.insert(csv.to_path_buf(), (s, cells.clone()));
        }
        None => {
            cache.remove(csv);
        }
    }
    cells
}

/// Writes `summary.csv` for `runs`, reading each run's `run.json` and `metrics.csv` from its folder.
/// Runs without a record yet get outcome `pending`. A ladder sweep passes its `stages`
/// (`(name, cumulative steps)`), which adds a `stage` column: the stage each run was last in (empty
/// while it has no record).
pub fn write_summary(
    path: &Path,
    runs: &[PlannedRun<'_>],
    stages: &[(&str, u64)],
) -> std::io::Result<()> {
    let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.swept.keys()).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header: Vec<String> = vec!["run_id".into(), "variant".into(), "seed".into()];
    if !stages.is_empty() {
        header.push("stage".into());
    }
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend(
        [
            "outcome",
            "steps_done",
            "steps_planned",
            "wall_s",
            "max_actor_cnn_grad_norm",
            "max_critic_cnn_grad_norm",
            "max_q_abs",
            "last_episode_return",
            "last_eval_return",
            "reason",
        ]
        .map(String::from),
    );
    w.write_record(&header)?;
    for r in runs {
        let rec: Option<RunRecord> = std::fs::read_to_string(r.run_dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        let cells = metric_cells(&r.run_dir.join("metrics.csv"));
        let mut line: Vec<String> = vec![r.run_id.into(), r.variant.into(), r.seed.to_string()];
        if !stages.is_empty() {
            line.push(
                rec.as_ref()
                    .map(|r| stage_of(stages, r.steps_done))
                    .unwrap_or_default(),
            );
        }
        line.extend(
            keys.iter()
                .map(|k| r.swept.get(*k).cloned().unwrap_or_default()),
        );
        match &rec {
            Some(rec) => line.extend([
                rec.outcome.to_string(),
                rec.steps_done.to_string(),
                rec.steps_planned.to_string(),
                format!("{:.1}", rec.wall_s),
            ]),
            None => line.extend([
                "pending".into(),
                "0".into(),
                r.steps.to_string(),
                String::new(),
            ]),
        }
        line.extend(cells);
        line.push(rec.and_then(|r| r.reason).unwrap_or_default());
        w.write_record(&line)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    write_atomic(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_cells_follow_the_file() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("metrics.csv");
        let header = crate::metrics::COLUMNS.join(",") + "\n";
        let row =
            |step: u64, grad: f64| format!("{step},{step},1.0,{grad},1,1,1,1,1,1,1,1,-5,1,0,\n");
        std::fs::write(&csv, header.clone() + &row(100, 2.0)).unwrap();
        assert_eq!(metric_cells(&csv)[0], "2");
        assert_eq!(metric_cells(&csv)[0], "2", "unchanged: from the cache");
        // A row appended, as the trainer does: the next summary sees it.
        let mut f = std::fs::OpenOptions::new().append(true).open(&csv).unwrap();
        std::io::Write::write_all(&mut f, row(200, 7.5).as_bytes()).unwrap();
        drop(f);
        assert_eq!(metric_cells(&csv)[0], "7.5");
        std::fs::remove_file(&csv).unwrap();
        assert_eq!(metric_cells(&csv)[0], "", "gone: no stale cells");
    }

    #[test]
    fn stage_is_the_one_a_run_was_last_in() {
        let st = [("1k", 1000), ("3k", 3000), ("5k", 5000)];
        assert_eq!(stage_of(&st, 0), "1k");
        assert_eq!(stage_of(&st, 999), "1k");
        assert_eq!(stage_of(&st, 1000), "1k");
        assert_eq!(stage_of(&st, 1001), "3k");
        assert_eq!(stage_of(&st, 5000), "5k");
        assert_eq!(stage_of(&st, 6000), "5k");
        assert_eq!(stage_of(&[], 10), "");
    }
}
