"""Median regret (quartiles) of Optuna's and rustuna's TPE on Branin and Hartmann-6 after 60
evaluations, 30 seeds, as `hpo bench run --blackbox NAME --methods tpe --seeds 0..30
--workers 1 --max-trials 60` measures hpo's (same functions, domains and optima as hpo's
`branin` and `hartmann6` at full fidelity).

    pip install optuna rustuna
    python3 benches/peers/tpe_quality.py [--json]

Prints one line per sampler and function; with --json, one JSON object per line.
"""
import math
import statistics
import sys

import numpy as np

import peers

A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
              [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                     [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def branin(t):
    x1, x2 = t.suggest_float("x1", -5.0, 10.0), t.suggest_float("x2", 0.0, 15.0)
    b, c, r, s, tt = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - tt) * math.cos(x1) + s


def hartmann6(t):
    x = np.array([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(1, 7)])
    return float(-np.sum(ALPHA * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


FUNCTIONS = {"branin": (branin, 0.397887), "hartmann6": (hartmann6, -3.32237)}


def regrets(module, objective, optimum, seeds=30, trials=60):
    out = []
    for seed in range(seeds):
        study = module.create_study(sampler=module.samplers.TPESampler(seed=seed))
        study.optimize(objective, n_trials=trials)
        out.append(study.best_trial.value - optimum)
    return out


def main():
    as_json = "--json" in sys.argv
    for name, module, version in peers.installed():
        for function, (objective, optimum) in FUNCTIONS.items():
            q = statistics.quantiles(regrets(module, objective, optimum), n=4)
            line = {"sampler": name, "version": version, "blackbox": function, "evaluations": 60,
                    "seeds": 30, "median_regret": q[1], "q25": q[0], "q75": q[2]}
            text = f"{name} {version} {function}: median regret {q[1]:.4f} ({q[0]:.4f}-{q[2]:.4f})"
            peers.emit(line, text, as_json)


if __name__ == "__main__":
    main()
