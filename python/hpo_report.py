"""Report metrics to hpo from a training script (standard library only).

    from hpo_report import config, checkpoint_dir, report

    cfg = config()                      # the trial's hyperparameters
    for epoch in range(1, cfg["epochs"] + 1):
        loss = train_one_epoch(cfg)
        report(epoch=epoch, loss=loss)  # prints one `[tune-metric]: {...}` line

hpo passes the config both as command-line flags (`--name value`, as Syne Tune does) and as
JSON in the environment variable HPO_CONFIG; `config()` reads the latter, so the script does
not need an argument parser. Scripts written for Syne Tune (its Reporter prints the same
lines) run unchanged.
"""

import json
import math
import os
import sys

__all__ = ["report", "config", "checkpoint_dir", "trial_id"]

METRIC_PREFIX = "[tune-metric]: "


def report(**metrics):
    """Report metrics (numbers) for the current step, e.g. ``report(epoch=3, loss=0.2)``.

    Non-finite values are sent as null, which hpo records as a failed trial.
    """
    clean = {}
    for name, value in metrics.items():
        value = float(value)
        clean[name] = value if math.isfinite(value) else None
    sys.stdout.write(METRIC_PREFIX + json.dumps(clean) + "\n")
    sys.stdout.flush()


def config():
    """The trial's config as a dict (from HPO_CONFIG, else parsed from ``--name value`` flags)."""
    text = os.environ.get("HPO_CONFIG")
    if text:
        return json.loads(text)
    args = sys.argv[1:]
    parsed = {}
    for i in range(0, len(args) - 1):
        if args[i].startswith("--"):
            parsed[args[i][2:]] = _value(args[i + 1])
    parsed.pop("st_checkpoint_dir", None)
    return parsed


def checkpoint_dir():
    """The trial's own checkpoint folder (kept across pause and resume), or None."""
    path = os.environ.get("HPO_CHECKPOINT_DIR")
    if path is None and "--st_checkpoint_dir" in sys.argv[:-1]:
        path = sys.argv[sys.argv.index("--st_checkpoint_dir") + 1]
    return path


def trial_id():
    """The trial's id, or None outside hpo."""
    value = os.environ.get("HPO_TRIAL_ID")
    return int(value) if value is not None else None


def _value(text):
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text
