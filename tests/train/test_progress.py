"""The terminal bar: one live bar with ETA and a smoothed tokens/s on a TTY, nothing from it elsewhere."""

import io
from types import SimpleNamespace

from paw.train.callbacks import ProgressDisplay


class _Tty(io.StringIO):
    def isatty(self):
        return True


def _state(step, tokens):
    return SimpleNamespace(
        is_world_process_zero=True, max_steps=4, global_step=step, num_input_tokens_seen=tokens
    )


def test_tty_bar_shows_eta_and_smoothed_tokens_per_second():
    clock = iter(float(t) for t in range(100))
    stream = _Tty()
    bar = ProgressDisplay(stream, clock=lambda: next(clock))
    bar.on_train_begin(None, _state(0, 0), None)  # t = 0
    rates, tokens = [], 0
    for step, new_tokens in enumerate([1000, 1000, 2000, 1000], start=1):  # one second per step
        tokens += new_tokens
        bar.on_log(None, _state(step, tokens), None, logs={"loss": 1.0 / step, "learning_rate": 1e-4})
        bar.on_step_end(None, _state(step, tokens), None)
        rates.append(round(bar.tokens_per_s))
    bar.close()
    assert rates == [1000, 1000, 1100, 1090]  # a long batch moves the figure a tenth of the way, not to 2000
    shown = stream.getvalue()
    assert "tok/s" in shown and "4/4" in shown and "loss 0.2500" in shown


def test_no_bar_when_not_a_terminal():
    stream = io.StringIO()
    bar = ProgressDisplay(stream)
    bar.on_train_begin(None, _state(0, 0), None)
    bar.on_step_end(None, _state(1, 100), None)
    bar.close()
    assert stream.getvalue() == ""
