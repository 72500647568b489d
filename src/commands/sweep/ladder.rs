//! A sweep with `stages:`: run a stage, classify, promote, continue the promoted runs from their
//! checkpoints, and record each stage in `ladder.json`. Each stage's runs go to the local slots or,
//! with `--backend slurm`, to one Slurm array per stage (`slurm/<stage>/`), waited for before the
//! next stage is decided.

use std::collections::BTreeSet;

use anyhow::Context;

use super::{finish, job_for, kill_grace, needs_run, start_summary, summary_context, Prepared};
use crate::cli::{Rerun, SweepArgs};
use crate::results::ladder::{
    GroupAtStage, LadderState, RunAtStage, StagePlan, StoredGroupVerdict,
};
use crate::results::summary::Summary;
use crate::results::{write_atomic, GroupId, Outcome, PlannedRun, ResultsDir, RunRecord};
use crate::schedule::ladder::{promote, stored_group_verdict, stored_verdict, Standing};
use crate::schedule::process::ProcessExecutor;
use crate::schedule::progress::Display;
use crate::schedule::slurm::{self, SlurmEnd, SlurmSweep};
use crate::schedule::{run_jobs, Control, Event, Slot};
use crate::spec::{Devices, Promote, RunConfig, RunPlan, SlurmOptions, Stage, SweepPlan};
use crate::verdict::{judge, Criteria, RunResult, Verdict};

/// Runs every unfinished stage in order, locally or (`slurm` set) as one Slurm array per stage;
/// the exit code is the report's (130 when interrupted).
pub(super) fn run(
    args: &SweepArgs,
    p: Prepared,
    criteria: Criteria,
    slurm: Option<SlurmOptions>,
) -> anyhow::Result<i32> {
    let summary = start_summary(&p)?;
    let Prepared {
        plan,
        slots,
        results,
        lock,
        ..
    } = p;
    let mut state = initial_state(args, &plan.spec.stages, &results);
    let mut ladder = Ladder {
        args,
        plan: &plan,
        results: &results,
        criteria,
        ctl: super::interrupt_control(slurm.is_some()),
        exec: ProcessExecutor {
            program: std::env::current_exe().context("locating the td3-sweep binary")?,
            grace: kill_grace(),
        },
        slots,
        slurm,
        summary,
    };
    let stages = &plan.spec.stages;
    let mut entered: BTreeSet<GroupId> = plan.runs.iter().map(group).collect();
    for (k, stage) in stages.iter().enumerate() {
        if state.stages[k].done {
            entered = promoted(&state.stages[k].groups);
            crate::say!(
                "stage {} ({} steps): already done; {} variant(s) climb",
                stage.name,
                stage.steps,
                entered.len()
            );
            continue;
        }
        if entered.is_empty() {
            crate::say!(
                "stage {}: no variant was promoted; the ladder ends",
                stage.name
            );
            break;
        }
        let runs = ladder.stage_runs(k, &entered);
        let jobs = ladder.stage_jobs(k, &runs)?;
        crate::say!(
            "stage {} ({} steps, {}): {} run(s) of {} variant(s), {} to train",
            stage.name,
            stage.steps,
            stage.promote,
            runs.len(),
            entered.len(),
            jobs.len()
        );
        ladder.train(k, jobs)?;
        if ladder.ctl.level() > 0 {
            state.write(&results)?;
            return finish(args, &results, lock, true);
        }
        ladder.judge(k, &runs, &entered, &mut state);
        entered = promoted(&state.stages[k].groups);
        state.write(&results)?;
    }
    let last_done = state.stages.last().map(|s| s.done).unwrap_or(false);
    if !last_done {
        state.approved.clear();
        state.write(&results)?;
    }
    if state.approve {
        crate::say!(
            "approved for deployment: {}",
            if state.approved.is_empty() {
                "none".to_string()
            } else {
                let names: Vec<String> = state.approved.iter().map(GroupId::to_string).collect();
                names.join(", ")
            }
        );
    }
    ladder
        .summary
        .write()
        .with_context(|| summary_context(&results))?;
    finish(args, &results, lock, false)
}

/// The saved state when it belongs to these stages (not with `--rerun all`), else a fresh one.
/// `--rerun failed` reopens the first finished stage with a run that crashed, timed out or
/// diverged (a cancelled or preempted Slurm task, say): those runs continue from their
/// checkpoints, the others are only classified again, and the later stages follow from the new
/// promotions.
fn initial_state(args: &SweepArgs, stages: &[Stage], results: &ResultsDir) -> LadderState {
    let plans: Vec<StagePlan> = stages
        .iter()
        .map(|s| StagePlan {
            name: s.name.clone(),
            steps: s.steps,
            promote: s.promote.to_string(),
        })
        .collect();
    let mut state = match LadderState::read(results) {
        Some(s) if s.matches(&plans) && args.rerun != Some(Rerun::All) => s,
        _ => LadderState::new(&plans, stages.last().map(|s| s.approve).unwrap_or(false)),
    };
    if args.rerun == Some(Rerun::Failed) {
        if let Some(k) = state
            .stages
            .iter()
            .position(|s| s.done && s.runs.iter().any(|r| r.outcome.is_failure()))
        {
            crate::say!(
                "--rerun failed: stage {} has runs that did not finish; it and the stages after it run again",
                state.stages[k].name
            );
            for s in &mut state.stages[k..] {
                s.done = false;
            }
            state.approved.clear();
        }
    }
    state
}

/// The groups that climbed out of a finished stage.
fn promoted(groups: &[GroupAtStage]) -> BTreeSet<GroupId> {
    groups
        .iter()
        .filter(|v| v.promoted)
        .map(|v| v.group.clone())
        .collect()
}

/// Everything the stages share.
struct Ladder<'a> {
    args: &'a SweepArgs,
    plan: &'a SweepPlan,
    results: &'a ResultsDir,
    criteria: Criteria,
    ctl: Control,
    exec: ProcessExecutor,
    slots: Vec<Slot>,
    /// The Slurm options, when the stages run as Slurm arrays.
    slurm: Option<SlurmOptions>,
    summary: Summary,
}

impl<'a> Ladder<'a> {
    /// The runs of the `entered` groups, each with its config trained to stage `k`'s end.
    fn stage_runs(&self, k: usize, entered: &BTreeSet<GroupId>) -> Vec<(&'a RunPlan, RunConfig)> {
        let steps = self.plan.spec.stages[k].steps;
        self.plan
            .runs
            .iter()
            .filter(|r| entered.contains(&group(r)))
            .map(|r| (r, r.config.with_steps(steps)))
            .collect()
    }

    /// The jobs of stage `k`'s runs that need training, each with its fresh `config.yaml`: the
    /// first stage starts them, a later one continues each from its own checkpoint (an external
    /// trainer only with `trainer.resume`; otherwise it trains from scratch to the stage's end).
    fn stage_jobs(
        &self,
        k: usize,
        runs: &[(&RunPlan, RunConfig)],
    ) -> anyhow::Result<Vec<PlannedRun>> {
        let args = self.args;
        let mut jobs = Vec::new();
        for (run, cfg) in runs {
            let hash = cfg.hash();
            let dir = self.results.run(&run.run_id);
            // `--rerun all` restarts the ladder at its first stage; `--rerun failed` retrains the
            // failed runs of whichever stage it reopened (later stages' runs continue).
            let rerun = match args.rerun {
                Some(Rerun::Failed) => Some(Rerun::Failed),
                r if k == 0 => r,
                _ => None,
            };
            if !needs_run(&dir, &hash, rerun) {
                continue;
            }
            std::fs::create_dir_all(dir.path())
                .with_context(|| format!("creating {}", dir.path().display()))?;
            write_atomic(&dir.config_yaml(), cfg.to_yaml().as_bytes())?;
            let mut staged = (*run).clone();
            staged.config = cfg.clone();
            staged.config_hash = hash;
            if let Some(t) = &self.plan.spec.trainer {
                let resume = (k > 0 && t.resume).then(|| dir.path());
                let steps = cfg.steps();
                super::external::invocation(t, &staged, &dir, steps, resume)
                    .write(&dir.trainer_json())?;
                jobs.push(super::external::job(
                    &self.plan.spec,
                    t,
                    &staged,
                    self.results,
                    resume,
                ));
                continue;
            }
            let mut job = job_for(&self.plan.spec, &staged, self.results);
            job.args.push("--checkpoint-at-end".into());
            if k > 0 {
                // A promoted run must continue from its own checkpoint; a missing or broken one
                // is that run's error (crashed, with the reason), not the sweep's.
                job.args.push("--resume".into());
                job.args.push(dir.checkpoint().display().to_string());
            } else if args.rerun == Some(Rerun::All) {
                job.args.push("--fresh".into());
            }
            jobs.push(job);
        }
        Ok(jobs)
    }

    /// Trains stage `k`'s jobs on the local slots or as one Slurm array, updating `summary.csv`
    /// as each run ends. Returns early on Ctrl-C (see [`Control::level`]).
    fn train(&mut self, k: usize, jobs: Vec<PlannedRun>) -> anyhow::Result<()> {
        let spec = &self.plan.spec;
        let summary = &mut self.summary;
        let mut summary_err = None;
        let mut ended = |index: usize, record: &RunRecord| {
            summary.ended(index, record);
            if let Err(e) = summary.write() {
                summary_err = Some(e);
            }
        };
        match &self.slurm {
            None => {
                let mut display = Display::new(&jobs);
                run_jobs(jobs, &self.slots, &self.exec, &self.ctl, |ev| {
                    display.on_event(ev);
                    if let Event::Finished { index, record } = ev {
                        ended(*index, record);
                    }
                });
                display.finish();
            }
            Some(options) if !jobs.is_empty() => {
                let sweep = SlurmSweep {
                    name: &spec.name,
                    results: self.results,
                    all: &jobs,
                    to_run: jobs.iter().map(|j| j.index).collect(),
                    program: self.exec.program.clone(),
                    options: options.clone(),
                    threads: spec.resources.threads_per_run,
                    cpu_only: spec.resources.devices == Devices::Cpu,
                    submit: true,
                    stage: Some(&spec.stages[k].name),
                };
                let end =
                    slurm::run_sweep(sweep, &self.ctl, |job, record| ended(job.index, record))?;
                if let SlurmEnd::Interrupted { jobs } = end {
                    crate::say!(
                        "slurm jobs {} keep running; run the same command again to wait for them and go on with the ladder (nothing is submitted twice), or `scancel {}`",
                        jobs.join(","),
                        jobs.join(" ")
                    );
                }
            }
            Some(_) => {}
        }
        match summary_err {
            Some(e) => Err(anyhow::Error::new(e).context(summary_context(self.results))),
            None => Ok(()),
        }
    }

    /// Classifies stage `k`'s runs, records the stage in `state` (who entered, each run's and
    /// group's verdict, who climbs; the approved groups after an approving last stage) and says
    /// how each group did.
    fn judge(
        &self,
        k: usize,
        runs: &[(&RunPlan, RunConfig)],
        entered: &BTreeSet<GroupId>,
        state: &mut LadderState,
    ) {
        let stages = &self.plan.spec.stages;
        let prev_steps = if k == 0 { 0 } else { stages[k - 1].steps };
        let next_rule = stages.get(k + 1).map(|s| &s.promote);
        let (runs, groups) =
            classify_stage(runs, self.results, &self.criteria, prev_steps, next_rule);
        for v in &groups {
            crate::say!(
                "  {:<24} {:<12} {}",
                v.group.to_string(),
                v.verdict.to_string(),
                if next_rule.is_some() {
                    format!("{}: {}", if v.promoted { "climbs" } else { "stops" }, v.why)
                } else {
                    String::new()
                }
            );
        }
        if k + 1 == stages.len() && stages[k].approve {
            state.approved = groups
                .iter()
                .filter(|v| v.verdict == StoredGroupVerdict::Pass)
                .map(|v| v.group.clone())
                .collect();
        }
        let s = &mut state.stages[k];
        s.entered = entered.iter().cloned().collect();
        s.runs = runs;
        s.groups = groups;
        s.done = true;
    }
}

type Classified = (Vec<RunAtStage>, Vec<GroupAtStage>);

/// A run's variant group (variant + swept values): the unit that climbs or stops.
fn group(run: &RunPlan) -> GroupId {
    GroupId::new(&run.variant, &run.swept)
}

/// Judges the stage's runs at its end with the one judge ([`crate::verdict::judge`]: a file
/// that cannot be read FAILs its run, as in the report), then applies the next stage's rule
/// (`None` for the last stage: nobody climbs further).
fn classify_stage(
    runs: &[(&RunPlan, RunConfig)],
    results: &ResultsDir,
    criteria: &Criteria,
    prev_steps: u64,
    next_rule: Option<&Promote>,
) -> Classified {
    let loaded = runs
        .iter()
        .map(|(run, _)| crate::results::load_run(results, &run.run_id))
        .collect();
    let judgement = judge(loaded, criteria);
    let out_runs = runs
        .iter()
        .zip(&judgement.runs)
        .map(|((run, _), r)| {
            let (outcome, env_step, train_step) = match &r.record {
                Some(rec) => (rec.outcome, rec.steps_done, rec.train_steps_done),
                None => (Outcome::Crashed, 0, 0),
            };
            let v = &r.verdict;
            let mut evidence: Vec<String> = match &r.record {
                Some(rec) => rec.reason.iter().cloned().collect(),
                None if r.load_errors.is_empty() => vec!["no run.json".into()],
                None => Vec::new(),
            };
            evidence.extend(
                v.findings
                    .iter()
                    .filter(|f| f.verdict == v.verdict && v.verdict != Verdict::Pass)
                    .map(|f| f.evidence.clone()),
            );
            RunAtStage {
                run_id: run.run_id.clone(),
                group: group(run),
                seed: run.seed,
                outcome,
                verdict: stored_verdict(v.verdict),
                env_step,
                train_step,
                evidence,
            }
        })
        .collect();
    let standings: Vec<Standing> = judgement
        .groups
        .iter()
        .map(|g| Standing {
            group: GroupId::new(&g.variant, &g.swept),
            verdict: g.verdict,
            score: next_rule
                .and_then(|rule| stage_score(rule, &judgement.runs, &g.runs, prev_steps)),
        })
        .collect();
    let decisions = next_rule
        .map(|r| promote(r, &standings))
        .unwrap_or_default();
    let groups = standings
        .iter()
        .map(|s| {
            let (promoted, why) = decisions
                .get(&s.group)
                .cloned()
                .unwrap_or((false, "last stage".into()));
            GroupAtStage {
                group: s.group.clone(),
                verdict: stored_group_verdict(s.verdict),
                score: s.score,
                promoted,
                why,
            }
        })
        .collect();
    (out_runs, groups)
}

/// A `best` rule's ranking value for one group: the mean over its seeds of the metric, each
/// seed's rows of this stage (past `prev_steps`) reduced with the rule's aggregate; `None` when
/// a seed has no value (or the rule does not rank).
fn stage_score(rule: &Promote, runs: &[RunResult], idx: &[usize], prev_steps: u64) -> Option<f64> {
    let Promote::Best {
        metric, aggregate, ..
    } = rule
    else {
        return None;
    };
    let scores: Vec<f64> = idx
        .iter()
        .filter_map(|i| {
            let xs: Vec<f64> = runs[*i]
                .rows
                .iter()
                .filter(|r| r.env_step > prev_steps)
                .filter_map(|r| r.get(metric))
                .collect();
            aggregate.reduce(&xs)
        })
        .collect();
    (!scores.is_empty() && scores.len() == idx.len())
        .then(|| scores.iter().sum::<f64>() / scores.len() as f64)
}
