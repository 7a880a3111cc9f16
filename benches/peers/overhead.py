"""Per-trial overhead of random search in Optuna and rustuna, measured as
`hpo bench overhead --json` measures hpo's: random search over the same three parameters
(x uniform in [0, 1], n integer in [1, 100], act one of relu/tanh) and an objective that
returns x at once; microseconds per trial of `study.optimize`, in memory and with the
journal file, the median of `--repeats` runs.

    pip install optuna rustuna
    python3 benches/peers/overhead.py [--trials 20000] [--journal-trials 2000] [--json]
"""
import argparse
import os
import statistics
import tempfile
import time

import peers


def objective(trial):
    trial.suggest_int("n", 1, 100)
    trial.suggest_categorical("act", ["relu", "tanh"])
    return trial.suggest_float("x", 0.0, 1.0)


def journal_storage(name, module, path):
    if name == "optuna":
        return module.storages.JournalStorage(module.storages.journal.JournalFileBackend(path))
    return module.storages.JournalFileStorage(path)


def us_per_trial(name, module, trials, journal):
    with tempfile.TemporaryDirectory() as folder:
        storage = journal_storage(name, module, os.path.join(folder, "journal.log")) if journal else None
        study = module.create_study(sampler=module.samplers.RandomSampler(seed=0), storage=storage)
        start = time.perf_counter()
        study.optimize(objective, n_trials=trials)
        return (time.perf_counter() - start) * 1e6 / trials


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20000)
    parser.add_argument("--journal-trials", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name, module, version in peers.installed():
        plain = statistics.median(us_per_trial(name, module, args.trials, False) for _ in range(args.repeats))
        journal = statistics.median(
            us_per_trial(name, module, args.journal_trials, True) for _ in range(args.repeats))
        line = {"bench": "overhead", "peer": name, "version": version, "trials": args.trials,
                "trials_journal": args.journal_trials, "repeats": args.repeats,
                "us_per_trial": plain, "us_per_trial_journal": journal}
        text = f"{name}: {plain:.2f} us per trial in memory, {journal:.1f} us with its journal file"
        peers.emit(line, text, args.json)


if __name__ == "__main__":
    main()
