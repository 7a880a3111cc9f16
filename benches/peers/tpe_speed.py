"""Time per TPE suggestion of Optuna and rustuna after N results, measured as
`hpo bench searcher --searcher tpe --observations N --dims 6 --json` measures hpo's: N
results of random configs on a smooth 6-dimensional function, then suggestions each told its
result before the next; the median time of one suggestion (ask and the six parameters).

    pip install optuna rustuna
    python3 benches/peers/tpe_speed.py [--observations 200] [--suggestions 20] [--json]
"""
import argparse
import random
import statistics
import time

import peers

DIMS = 6


def loss(x, rng):
    d = len(x)
    return sum((v - (i + 1) / (d + 1)) ** 2 for i, v in enumerate(x)) + 0.01 * rng.random()


def time_sampler(module, observations, suggestions, seed=0):
    rng = random.Random(seed)
    dist = module.distributions.FloatDistribution(0.0, 1.0)
    study = module.create_study(sampler=module.samplers.TPESampler(seed=seed))
    for _ in range(observations):
        x = [rng.random() for _ in range(DIMS)]
        params = {f"x{i}": v for i, v in enumerate(x)}
        study.add_trial(module.trial.create_trial(
            params=params, distributions={k: dist for k in params}, value=loss(x, rng)))
    times = []
    for _ in range(suggestions):
        start = time.perf_counter()
        trial = study.ask()
        x = [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(DIMS)]
        times.append((time.perf_counter() - start) * 1e3)
        study.tell(trial.number, loss(x, rng))
    return statistics.median(times), statistics.mean(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--observations", type=int, default=200)
    parser.add_argument("--suggestions", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    for name, module, version in peers.installed():
        median, mean = time_sampler(module, args.observations, args.suggestions)
        line = {"bench": "searcher", "peer": name, "version": version, "searcher": "tpe", "dims": DIMS,
                "observations": args.observations, "suggestions": args.suggestions,
                "ms_per_suggest": median, "ms_per_suggest_mean": mean}
        text = f"{name}: {median:.3f} ms per suggestion (median; mean {mean:.3f}) after {args.observations} results"
        peers.emit(line, text, args.json)


if __name__ == "__main__":
    main()
