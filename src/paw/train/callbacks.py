"""Trainer callbacks: per-step records for the report and the log, checkpoint decisions, progress output.

Progress: on a terminal one live rich bar; anywhere else (a log file, CI, nohup) one plain line every
``logging_steps`` — never a new bar fragment per step.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

from transformers import TrainerCallback

from paw.train.checkpoint import CheckpointPolicy

log = logging.getLogger("paw.train")


def _fmt(value: Any, spec: str) -> str:
    return format(value, spec) if isinstance(value, int | float) and math.isfinite(value) else str(value)


class RunRecorder(TrainerCallback):
    """Collects loss/lr/grad-norm/throughput (and the objective's own metrics, ``reported``: reward accuracy,
    mean reward, KL) per logged step and writes one log line for each."""

    def __init__(self, lr_at_step, reported: tuple[str, ...] = ()):
        self.lr_at_step = lr_at_step
        self.reported = reported
        self.steps: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []
        self._t_last = None
        self._tokens_last = 0
        self.train_seconds = 0.0
        self.tokens_seen = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self._t_last = time.perf_counter()
        self._tokens_last = state.num_input_tokens_seen or 0

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = state.global_step
        if "eval_loss" in logs:
            record = {"step": step, **{k: v for k, v in logs.items() if k.startswith("eval_")}}
            self.evals.append(record)
            keys = ("eval_accuracy", "eval_f1", *(f"eval_{k}" for k in self.reported))
            shown = [f"{k[5:]} {_fmt(logs[k], '.4f')}" for k in keys if k in logs]
            log.info(
                "eval step %d: loss %s%s",
                step,
                _fmt(logs["eval_loss"], ".4f"),
                "".join(f"  {x}" for x in shown),
            )
            return
        if "loss" not in logs:
            return
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen or 0
        elapsed = max(now - self._t_last, 1e-9)
        self.train_seconds += elapsed
        self.tokens_seen = tokens
        record = {
            "step": step,
            "loss": logs["loss"],
            # The LR the update of this step used (transformers logs it before stepping the scheduler).
            "lr": logs.get("learning_rate", self.lr_at_step(step)),
            "grad_norm": logs.get("grad_norm"),
            "tokens_per_s": round((tokens - self._tokens_last) / elapsed, 1),
            "epoch": round(logs.get("epoch", 0.0), 4),
        }
        metrics = {k: logs[k] for k in self.reported if k in logs}
        self._t_last, self._tokens_last = now, tokens
        self.steps.append(record | metrics)
        log.info(
            "step %d/%d  loss %s  lr %s  grad_norm %s  tok/s %s%s",
            step,
            state.max_steps,
            _fmt(record["loss"], ".4f"),
            _fmt(record["lr"], ".3g"),
            _fmt(record["grad_norm"], ".3f"),
            _fmt(record["tokens_per_s"], ".0f"),
            "".join(f"  {k} {_fmt(v, '.4f')}" for k, v in metrics.items()),
        )


class SavePolicyCallback(TrainerCallback):
    """Ask the Trainer to save exactly on the policy's steps (the Trainer's own save strategy is off)."""

    def __init__(self, policy: CheckpointPolicy):
        self.policy = policy

    def on_step_end(self, args, state, control, **kwargs):
        control.should_save = self.policy.should_save(state.global_step)
        return control


class ProgressDisplay(TrainerCallback):
    """One live bar on a TTY; plain lines otherwise (those come from RunRecorder's log records)."""

    def __init__(self, stream=None, clock=time.perf_counter):
        self.stream = stream or sys.stderr
        self.clock = clock
        self.live = bool(getattr(self.stream, "isatty", lambda: False)())
        self._progress = None
        self._task = None
        self._last: dict[str, Any] = {}
        self._clock: tuple[float, int] | None = None  # (time, tokens seen) at the previous step
        self.tokens_per_s: float | None = None  # smoothed (exponential moving average over ~10 steps)

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.live or not state.is_world_process_zero:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[status]}"),
            console=Console(file=self.stream),
            transient=False,
        )
        self._progress.start()
        self._clock = (self.clock(), state.num_input_tokens_seen or 0)
        self._task = self._progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, status=""
        )

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._last = logs

    def on_step_end(self, args, state, control, **kwargs):
        if self._progress is None:
            return
        self._measure(state.num_input_tokens_seen or 0)
        parts = []
        if self._last:
            parts += [
                f"loss {_fmt(self._last.get('loss'), '.4f')}",
                f"lr {_fmt(self._last.get('learning_rate'), '.2e')}",
            ]
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:,.0f} tok/s")
        self._progress.update(self._task, completed=state.global_step, status="  ".join(parts))

    def _measure(self, tokens: int) -> None:
        """Tokens per second, smoothed so the bar does not flicker with every batch's length."""
        now = self.clock()
        if self._clock is not None and now > self._clock[0] and tokens > self._clock[1]:
            rate = (tokens - self._clock[1]) / (now - self._clock[0])
            self.tokens_per_s = rate if self.tokens_per_s is None else 0.9 * self.tokens_per_s + 0.1 * rate
        self._clock = (now, tokens)

    def on_train_end(self, args, state, control, **kwargs):
        self.close()

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
