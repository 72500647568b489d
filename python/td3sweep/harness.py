"""What `td3-sweep sweep` hands a trainer: the TD3SWEEP_* environment variables, and SIGTERM.

A sweep with a `trainer:` block starts the user's program once per run with these variables set
(docs/python.md lists them). This module reads them into a `RunEnv`, and says which are missing
when a program meant to run under the harness is started by hand.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from typing import Mapping, Optional

# The variables every run gets, in the order the harness documents them.
REQUIRED_VARS = (
    "TD3SWEEP_CONFIG",
    "TD3SWEEP_RUN_DIR",
    "TD3SWEEP_SEED",
    "TD3SWEEP_STEPS",
    "TD3SWEEP_RUN_ID",
    "TD3SWEEP_METRICS",
)
# Set only in ladders whose trainer has `resume: true`: the previous stage's run directory.
RESUME_VAR = "TD3SWEEP_RESUME_FROM"

# 128 + SIGTERM, what a shell reports for a process that SIGTERM ended.
SIGTERM_EXIT_CODE = 128 + int(signal.SIGTERM)


class HarnessError(RuntimeError):
    """The program is not running under td3-sweep (or a TD3SWEEP_* variable is malformed)."""


@dataclass(frozen=True)
class RunEnv:
    """One run's TD3SWEEP_* values; a field is None when its variable is not set."""

    config: Optional[str] = None
    """TD3SWEEP_CONFIG: the run's resolved copy of the sweep's base config (= `{config}`)."""
    run_dir: Optional[str] = None
    """TD3SWEEP_RUN_DIR: the run's own directory (checkpoints, logs); it exists."""
    seed: Optional[int] = None
    """TD3SWEEP_SEED: the run's seed."""
    steps: Optional[int] = None
    """TD3SWEEP_STEPS: environment steps to train for."""
    run_id: Optional[str] = None
    """TD3SWEEP_RUN_ID: the run's id (the name of its folder under results/<sweep>/runs/)."""
    metrics: Optional[str] = None
    """TD3SWEEP_METRICS: the CSV the harness reads as it grows."""
    resume_from: Optional[str] = None
    """TD3SWEEP_RESUME_FROM: the previous stage's run directory (ladders with resume only)."""

    @classmethod
    def from_environ(
        cls, environ: Optional[Mapping[str, str]] = None, *, required: bool = True
    ) -> "RunEnv":
        """Reads the variables from `environ` (default: os.environ).

        With `required`, every variable a run always gets must be set, or the HarnessError names
        each one that is missing. An empty TD3SWEEP_RESUME_FROM counts as unset.
        """
        env = os.environ if environ is None else environ
        if required:
            missing = [v for v in REQUIRED_VARS if not env.get(v)]
            if missing:
                raise HarnessError(
                    f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set: this "
                    "program is not running under `td3-sweep sweep`. Run it through a sweep file "
                    "with a `trainer:` block, or pass Monitor(path=...) to write the metrics "
                    "elsewhere (docs/python.md)."
                )
        return cls(
            config=env.get("TD3SWEEP_CONFIG") or None,
            run_dir=env.get("TD3SWEEP_RUN_DIR") or None,
            seed=_int(env, "TD3SWEEP_SEED"),
            steps=_int(env, "TD3SWEEP_STEPS"),
            run_id=env.get("TD3SWEEP_RUN_ID") or None,
            metrics=env.get("TD3SWEEP_METRICS") or None,
            resume_from=env.get(RESUME_VAR) or None,
        )


def _int(env: Mapping[str, str], name: str) -> Optional[int]:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise HarnessError(f"{name}={raw!r} is not a whole number") from None


def in_sweep(environ: Optional[Mapping[str, str]] = None) -> bool:
    """Whether this process was started by `td3-sweep sweep` (TD3SWEEP_METRICS is set)."""
    env = os.environ if environ is None else environ
    return bool(env.get("TD3SWEEP_METRICS"))


def exit_on_sigterm(code: int = SIGTERM_EXIT_CODE) -> None:
    """Makes SIGTERM raise SystemExit(code) in the main thread.

    The harness sends SIGTERM to mean "stop now" (timeout, fail-fast, Ctrl-C), then SIGKILL after
    a grace period. Python's default action already ends the process at once, but skips `finally`
    blocks and `with` exits; as SystemExit they run (environments close, a Monitor closes its
    file), and a long C call (one libtorch op) delays the exit by that call only. Keep the
    cleanup short: the grace period is short too. Call it from the main thread.
    """

    def _stop(signum, frame):  # noqa: ARG001 (signal handler signature)
        raise SystemExit(code)

    signal.signal(signal.SIGTERM, _stop)
