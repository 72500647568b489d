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

/// The columns after a row's identity and swept values, filled from the run's folder.
const RUN_COLUMNS: [&str; 10] = [
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
];

/// A run's [`RUN_COLUMNS`] cells: from its record when it has one (else `pending`, nothing done,
/// `steps` planned), and from its `metrics.csv`.
fn run_cells(rec: Option<&RunRecord>, metrics_csv: &Path, steps: u64) -> [String; 10] {
    let [a, c, q, ret, eval] = metric_cells(metrics_csv);
    let (outcome, done, planned, wall, reason) = match rec {
        Some(r) => (
            r.outcome.to_string(),
            r.steps_done.to_string(),
            r.steps_planned.to_string(),
            format!("{:.1}", r.wall_s),
            r.reason.clone().unwrap_or_default(),
        ),
        None => (
            "pending".into(),
            "0".into(),
            steps.to_string(),
            String::new(),
            String::new(),
        ),
    };
    [outcome, done, planned, wall, a, c, q, ret, eval, reason]
}

/// Brings an existing `summary.csv` up to date with its runs' folders, in place: each row whose
/// run has a readable `run.json` gets that record's outcome, steps, wall time and reason, and the
/// metric cells of its `metrics.csv`; every other cell (identity, swept values, a ladder's stage)
/// stays. For a folder no sweep is writing (its sweep was killed, or Slurm tasks ended unwatched),
/// so `summary.csv` agrees with the report. Returns whether anything changed; a file it cannot
/// read is left alone.
pub fn refresh_summary(results: &Path) -> std::io::Result<bool> {
    let path = results.join("summary.csv");
    let Ok(old) = std::fs::read(&path) else {
        return Ok(false);
    };
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(old.as_slice());
    let Ok(header) = rdr.headers().cloned() else {
        return Ok(false);
    };
    let col = |name: &str| header.iter().position(|h| h == name);
    let (Some(id), Some(_)) = (col("run_id"), col("outcome")) else {
        return Ok(false);
    };
    // A ladder's `stage` is where each run was last, from its steps, as `write_summary` says.
    let stage_col = col("stage");
    let ladder = crate::schedule::ladder::LadderState::read(results);
    let stages: Vec<(&str, u64)> = ladder
        .as_ref()
        .map(|l| {
            l.stages
                .iter()
                .map(|s| (s.name.as_str(), s.steps))
                .collect()
        })
        .unwrap_or_default();
    let cols = RUN_COLUMNS.map(col);
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for rec in rdr.records() {
        let Ok(rec) = rec else {
            return Ok(false); // damaged: not ours to guess at
        };
        let mut row: Vec<String> = rec.iter().map(String::from).collect();
        row.resize(header.len(), String::new());
        let dir = results.join("runs").join(&row[id]);
        if let Some(r) = std::fs::read_to_string(dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<RunRecord>(&t).ok())
        {
            if let (Some(c), false) = (stage_col, stages.is_empty()) {
                row[c] = stage_of(&stages, r.steps_done);
            }
            for (c, v) in cols
                .iter()
                .zip(run_cells(Some(&r), &dir.join("metrics.csv"), 0))
            {
                if let Some(c) = c {
                    row[*c] = v;
                }
            }
        }
        w.write_record(&row)?;
    }
    let new = w
        .into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    if new == old {
        return Ok(false);
    }
    write_atomic(&path, &new)?;
    Ok(true)
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
    header.extend(RUN_COLUMNS.map(String::from));
    w.write_record(&header)?;
    for r in runs {
        let rec: Option<RunRecord> = std::fs::read_to_string(r.run_dir.join("run.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
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
        line.extend(run_cells(
            rec.as_ref(),
            &r.run_dir.join("metrics.csv"),
            r.steps,
        ));
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
    fn a_stale_summary_is_refreshed_from_the_run_folders_once() {
        let d = tempfile::tempdir().unwrap();
        let res = d.path();
        let run = res.join("runs/a__s0");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(
            res.join("summary.csv"),
            "run_id,variant,seed,stage,lr,outcome,steps_done,steps_planned,wall_s,max_actor_cnn_grad_norm,max_critic_cnn_grad_norm,max_q_abs,last_episode_return,last_eval_return,reason\n\
             a__s0,a,0,s1,1e-4,pending,0,100,,,,,,,\n\
             b__s0,b,0,s1,1e-5,pending,0,100,,,,,,,\n",
        )
        .unwrap();
        // Run a ended (its sweep died before rewriting the summary); run b never started.
        let job = crate::schedule::Job {
            index: 0,
            run_id: "a__s0".into(),
            variant: "a".into(),
            seed: 0,
            swept: Default::default(),
            steps: 100,
            config_hash: "h".into(),
            run_dir: run.clone(),
            args: Vec::new(),
            command: String::new(),
            timeout: None,
        };
        let mut rec = job.placeholder(crate::metrics::Outcome::Timeout, Some("slow".into()), 3.25);
        rec.steps_done = 40;
        std::fs::write(run.join("run.json"), serde_json::to_string(&rec).unwrap()).unwrap();
        let header = crate::metrics::COLUMNS.join(",") + "\n";
        std::fs::write(
            run.join("metrics.csv"),
            header + "40,40,1.0,2.5,1,1,1,1,1,1,1,1,-5,1,0,\n",
        )
        .unwrap();
        // A ladder of 30 + 30 steps: 40 steps done is stage s2.
        let stage = |name: &str, steps: u64| {
            serde_json::json!({ "name": name, "steps": steps, "promote": "", "done": false,
                "entered": [], "runs": [], "variants": [] })
        };
        let ladder = serde_json::json!({ "stages": [stage("s1", 30), stage("s2", 60)],
            "approved": [], "approve": false });
        std::fs::write(res.join("ladder.json"), ladder.to_string()).unwrap();
        assert!(refresh_summary(res).unwrap());
        let text = std::fs::read_to_string(res.join("summary.csv")).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(
            rows[1], "a__s0,a,0,s2,1e-4,timeout,40,100,3.2,2.5,1,1,-5,,slow",
            "{text}"
        );
        assert!(
            rows[2].starts_with("b__s0,b,0,s1,1e-5,pending,0,100"),
            "{text}"
        );
        assert!(!refresh_summary(res).unwrap(), "nothing left to change");
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
