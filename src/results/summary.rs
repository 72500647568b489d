//! `summary.csv`: one row per planned run, for people. A sweep keeps the rows in memory and
//! rewrites the file atomically each time a run ends ([`Summary::ended`]); [`refresh_summary`]
//! brings the file of a folder nobody is writing up to date with its run folders.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::{
    read_metrics, write_atomic, Metric, MetricRow, PlannedRun, ResultsDir, RunDir, RunRecord,
};

/// How a summary cell aggregates one metric over a run's rows.
#[derive(Clone, Copy)]
enum Agg {
    /// The largest value; a NaN wins, as the most important value to surface.
    Max,
    /// The last value logged.
    Last,
}

/// The summary's metric columns: each aggregates one column of `metrics.csv` over the run.
const METRIC_CELLS: [(&str, Agg, Metric); 5] = [
    (
        "max_actor_cnn_grad_norm",
        Agg::Max,
        Metric::ActorCnnGradNorm,
    ),
    (
        "max_critic_cnn_grad_norm",
        Agg::Max,
        Metric::CriticCnnGradNorm,
    ),
    ("max_q_abs", Agg::Max, Metric::QAbsMax),
    ("last_episode_return", Agg::Last, Metric::EpisodeReturn),
    ("last_eval_return", Agg::Last, Metric::EvalReturn),
];

type MetricCells = [String; METRIC_CELLS.len()];

/// The columns after a row's identity and swept values, filled from the run's record and metrics.
fn run_columns() -> Vec<&'static str> {
    let mut cols = vec!["outcome", "steps_done", "steps_planned", "wall_s"];
    cols.extend(METRIC_CELLS.map(|(name, _, _)| name));
    cols.push("reason");
    cols
}

fn aggregate(rows: &[MetricRow], agg: Agg, metric: Metric) -> String {
    let mut values = rows.iter().filter_map(|r| r.value(metric));
    let v = match agg {
        Agg::Max => values.reduce(|b, v| {
            if b.is_nan() {
                b
            } else if v.is_nan() {
                v
            } else {
                b.max(v)
            }
        }),
        Agg::Last => values.next_back(),
    };
    v.map(|v| format!("{v}")).unwrap_or_default()
}

/// A run's [`METRIC_CELLS`], from its `metrics.csv` (empty when it has none or it is unreadable).
fn metric_cells(run: &RunDir) -> MetricCells {
    let rows = read_metrics(&run.metrics_csv()).unwrap_or_default();
    METRIC_CELLS.map(|(_, agg, metric)| aggregate(&rows, agg, metric))
}

/// A run's [`run_columns`] cells: from its record when it has one (else `pending`, nothing done,
/// `steps` planned), and its metric cells.
fn run_cells(rec: Option<&RunRecord>, metrics: &MetricCells, steps: u64) -> Vec<String> {
    let mut cells = match rec {
        Some(r) => vec![
            r.outcome.to_string(),
            r.steps_done.to_string(),
            r.steps_planned.to_string(),
            format!("{:.1}", r.wall_s),
        ],
        None => vec![
            "pending".into(),
            "0".into(),
            steps.to_string(),
            String::new(),
        ],
    };
    cells.extend(metrics.iter().cloned());
    cells.push(rec.and_then(|r| r.reason.clone()).unwrap_or_default());
    cells
}

/// The ladder stage a run that has trained `steps_done` steps was last in: the first stage that
/// ends at or after that step (the last stage beyond it). `stages` are `(name, cumulative steps)`
/// in order.
fn stage_of(stages: &[(String, u64)], steps_done: u64) -> String {
    stages
        .iter()
        .find(|(_, steps)| *steps >= steps_done)
        .or(stages.last())
        .map(|(name, _)| name.clone())
        .unwrap_or_default()
}

/// One planned run's row.
struct Row {
    run: PlannedRun,
    record: Option<RunRecord>,
    metrics: MetricCells,
}

/// A sweep's `summary.csv`, kept in memory: read from the run folders once, then updated from
/// each run's end.
pub struct Summary {
    path: PathBuf,
    /// Every swept key of the plan, sorted: one column each.
    keys: Vec<String>,
    /// A ladder's stages, `(name, cumulative steps)`: they add a `stage` column.
    stages: Vec<(String, u64)>,
    rows: Vec<Row>,
    /// Plan index → row.
    by_index: BTreeMap<usize, usize>,
}

impl Summary {
    /// The summary of `runs` (the whole plan, in order) at `results/summary.csv`, from what their
    /// folders hold now: runs without a record yet are `pending`. A ladder passes its `stages`
    /// (`(name, cumulative steps)`), which adds a `stage` column: the stage each run was last in
    /// (empty while it has no record).
    pub fn new(results: &ResultsDir, runs: &[PlannedRun], stages: Vec<(String, u64)>) -> Summary {
        let keys: BTreeSet<&String> = runs.iter().flat_map(|r| r.swept.keys()).collect();
        let rows: Vec<Row> = runs
            .iter()
            .map(|r| Row {
                record: r.dir().read_record(),
                metrics: metric_cells(&r.dir()),
                run: r.clone(),
            })
            .collect();
        Summary {
            path: results.summary_csv(),
            keys: keys.into_iter().cloned().collect(),
            stages,
            by_index: rows
                .iter()
                .enumerate()
                .map(|(i, r)| (r.run.index, i))
                .collect(),
            rows,
        }
    }

    /// Records that the run at plan index `index` ended with `record` (its final `run.json`);
    /// only that run's `metrics.csv` is read again.
    pub fn ended(&mut self, index: usize, record: &RunRecord) {
        if let Some(row) = self.by_index.get(&index).map(|&i| &mut self.rows[i]) {
            row.metrics = metric_cells(&row.run.dir());
            row.record = Some(record.clone());
        }
    }

    /// Writes `summary.csv` atomically.
    pub fn write(&self) -> std::io::Result<()> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> = vec!["run_id".into(), "variant".into(), "seed".into()];
        if !self.stages.is_empty() {
            header.push("stage".into());
        }
        header.extend(self.keys.iter().cloned());
        header.extend(run_columns().into_iter().map(String::from));
        w.write_record(&header)?;
        for row in &self.rows {
            let (r, rec) = (&row.run, row.record.as_ref());
            let mut line: Vec<String> =
                vec![r.run_id.clone(), r.variant.clone(), r.seed.to_string()];
            if !self.stages.is_empty() {
                line.push(
                    rec.map(|x| stage_of(&self.stages, x.steps_done))
                        .unwrap_or_default(),
                );
            }
            line.extend(
                self.keys
                    .iter()
                    .map(|k| r.swept.get(k).cloned().unwrap_or_default()),
            );
            line.extend(run_cells(rec, &row.metrics, r.steps));
            w.write_record(&line)?;
        }
        let bytes = w
            .into_inner()
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        write_atomic(&self.path, &bytes)
    }
}

/// Brings an existing `summary.csv` up to date with its runs' folders, in place: each row whose
/// run has a readable `run.json` gets that record's outcome, steps, wall time and reason, and the
/// metric cells of its `metrics.csv`; every other cell (identity, swept values, a ladder's stage)
/// stays. For a folder no sweep is writing (its sweep was killed, or Slurm tasks ended unwatched),
/// so `summary.csv` agrees with the report. Returns whether anything changed; a file it cannot
/// read is left alone.
pub fn refresh_summary(results: &ResultsDir) -> std::io::Result<bool> {
    let path = results.summary_csv();
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
    // A ladder's `stage` is where each run was last, from its steps, as `Summary::write` says.
    let stage_col = col("stage");
    let stages: Vec<(String, u64)> = super::LadderState::read(results)
        .map(|l| l.stages.iter().map(|s| (s.name.clone(), s.steps)).collect())
        .unwrap_or_default();
    let cols: Vec<Option<usize>> = run_columns().into_iter().map(col).collect();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&header)?;
    for rec in rdr.records() {
        let Ok(rec) = rec else {
            return Ok(false); // damaged: not ours to guess at
        };
        let mut row: Vec<String> = rec.iter().map(String::from).collect();
        row.resize(header.len(), String::new());
        let dir = results.run(&row[id]);
        if let Some(r) = dir.read_record() {
            if let (Some(c), false) = (stage_col, stages.is_empty()) {
                row[c] = stage_of(&stages, r.steps_done);
            }
            for (c, v) in cols.iter().zip(run_cells(Some(&r), &metric_cells(&dir), 0)) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Outcome;

    fn planned(res: &ResultsDir, index: usize, id: &str) -> PlannedRun {
        PlannedRun {
            index,
            run_id: id.into(),
            variant: id.split("__").next().unwrap().into(),
            seed: 0,
            swept: BTreeMap::from([("lr".into(), "1e-4".into())]),
            steps: 100,
            config_hash: "h".into(),
            run_dir: res.run(id).path().to_path_buf(),
            args: Vec::new(),
            command: String::new(),
            timeout: None,
            stall_timeout: None,
        }
    }

    fn metrics(rows: &[&str]) -> String {
        // A header of the leading columns the rows fill: later columns are optional.
        let width = rows[0].split(',').count();
        crate::results::COLUMNS[..width].join(",") + "\n" + &rows.concat()
    }

    #[test]
    fn a_row_changes_when_its_run_ends_and_only_then() {
        let d = tempfile::tempdir().unwrap();
        let res = ResultsDir::new(d.path());
        let runs = [planned(&res, 0, "a__s0"), planned(&res, 1, "b__s0")];
        for r in &runs {
            std::fs::create_dir_all(&r.run_dir).unwrap();
        }
        let mut summary = Summary::new(&res, &runs, Vec::new());
        summary.write().unwrap();
        let text = std::fs::read_to_string(res.summary_csv()).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            "run_id,variant,seed,lr,outcome,steps_done,steps_planned,wall_s,max_actor_cnn_grad_norm,max_critic_cnn_grad_norm,max_q_abs,last_episode_return,last_eval_return,reason"
        );
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "a__s0,a,0,1e-4,pending,0,100,,,,,,,"
        );
        // Run a trains and ends: its row comes from the event's record and its metrics.
        let a = runs[0].dir();
        std::fs::write(
            a.metrics_csv(),
            metrics(&[
                "10,10,1.0,2.0,1,1,1,1,NaN,1,1,1,-5,1,0,\n",
                "20,20,1.0,7.5,1,1,1,1,3,1,1,1,-4,2,0,\n",
            ]),
        )
        .unwrap();
        let mut rec = RunRecord::placeholder(&runs[0], Outcome::Completed, None, 3.25);
        rec.steps_done = 20;
        summary.ended(0, &rec);
        summary.write().unwrap();
        let text = std::fs::read_to_string(res.summary_csv()).unwrap();
        assert_eq!(
            text.lines().nth(1).unwrap(),
            "a__s0,a,0,1e-4,completed,20,100,3.2,7.5,1,NaN,-4,,"
        );
        assert_eq!(
            text.lines().nth(2).unwrap(),
            "b__s0,b,0,1e-4,pending,0,100,,,,,,,"
        );
    }

    #[test]
    fn a_stale_summary_is_refreshed_from_the_run_folders_once() {
        let d = tempfile::tempdir().unwrap();
        let res = ResultsDir::new(d.path());
        std::fs::create_dir_all(res.runs()).unwrap();
        std::fs::write(
            res.summary_csv(),
            "run_id,variant,seed,stage,lr,outcome,steps_done,steps_planned,wall_s,max_actor_cnn_grad_norm,max_critic_cnn_grad_norm,max_q_abs,last_episode_return,last_eval_return,reason\n\
             a__s0,a,0,s1,1e-4,pending,0,100,,,,,,,\n\
             b__s0,b,0,s1,1e-5,pending,0,100,,,,,,,\n",
        )
        .unwrap();
        // Run a ended (its sweep died before rewriting the summary); run b never started.
        let run = planned(&res, 0, "a__s0");
        std::fs::create_dir_all(&run.run_dir).unwrap();
        let mut rec = RunRecord::placeholder(&run, Outcome::Timeout, Some("slow".into()), 3.25);
        rec.steps_done = 40;
        run.dir().write_record(&rec).unwrap();
        std::fs::write(
            run.dir().metrics_csv(),
            metrics(&["40,40,1.0,2.5,1,1,1,1,1,1,1,1,-5,1,0,\n"]),
        )
        .unwrap();
        // A ladder of 30 + 30 steps: 40 steps done is stage s2.
        let stage = |name: &str, steps: u64| {
            serde_json::json!({ "name": name, "steps": steps, "promote": "", "done": false,
                "entered": [], "runs": [], "variants": [] })
        };
        let ladder = serde_json::json!({ "stages": [stage("s1", 30), stage("s2", 60)],
            "approved": [], "approve": false });
        std::fs::write(res.ladder_json(), ladder.to_string()).unwrap();
        assert!(refresh_summary(&res).unwrap());
        let text = std::fs::read_to_string(res.summary_csv()).unwrap();
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(
            rows[1], "a__s0,a,0,s2,1e-4,timeout,40,100,3.2,2.5,1,1,-5,,slow",
            "{text}"
        );
        assert!(
            rows[2].starts_with("b__s0,b,0,s1,1e-5,pending,0,100"),
            "{text}"
        );
        assert!(!refresh_summary(&res).unwrap(), "nothing left to change");
    }

    #[test]
    fn stage_is_the_one_a_run_was_last_in() {
        let st: Vec<(String, u64)> = [("1k", 1000), ("3k", 3000), ("5k", 5000)]
            .map(|(n, s)| (n.to_string(), s))
            .to_vec();
        assert_eq!(stage_of(&st, 0), "1k");
        assert_eq!(stage_of(&st, 999), "1k");
        assert_eq!(stage_of(&st, 1000), "1k");
        assert_eq!(stage_of(&st, 1001), "3k");
        assert_eq!(stage_of(&st, 5000), "5k");
        assert_eq!(stage_of(&st, 6000), "5k");
        assert_eq!(stage_of(&[], 10), "");
    }
}
