"""The README's benchmark table: each workload timed for hpo and for its peers in one run,
`--runs` times over, printed as Markdown rows of ranges (lowest-highest of the runs), with
the date, the machine's cores and the ratio hpo / rustuna of each run.

    cargo build --release -p hpo-cli
    python3 -m venv /tmp/peers && /tmp/peers/bin/pip install optuna rustuna numpy
    /tmp/peers/bin/python benches/peers/table.py [--hpo target/release/hpo] [--runs 3]

hpo's side is its own benchmark commands (`hpo bench searcher`, `hpo bench overhead`); the
peers' side is `tpe_speed.py` and `overhead.py`, which time the same workloads.
"""
import argparse
import datetime
import json
import os
import subprocess

import overhead
import peers
import tpe_speed

SUGGESTIONS = 50
PEER_TRIALS = 20000
PEER_JOURNAL_TRIALS = 2000


def hpo_json(binary, args):
    out = subprocess.run([binary, "bench", *args, "--json"], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def rows(binary):
    """(workload, command, unit, hpo's figure, {peer: figure}) of one run of every workload."""
    installed = list(peers.installed())
    for n in [200, 1000]:
        args = ["searcher", "--searcher", "tpe", "--dims", "6", "--observations", str(n),
                "--suggestions", str(SUGGESTIONS)]
        ours = hpo_json(binary, args)["ms_per_suggest"]
        theirs = {name: tpe_speed.time_sampler(module, n, SUGGESTIONS)[0] for name, module, _ in installed}
        yield f"TPE, one suggestion after {n:,} results (6 dims)", "hpo bench " + " ".join(args), "ms", ours, theirs
    plain = {name: overhead.us_per_trial(name, module, PEER_TRIALS, False) for name, module, _ in installed}
    journal = {name: overhead.us_per_trial(name, module, PEER_JOURNAL_TRIALS, True) for name, module, _ in installed}
    for workers in [1, 2]:
        args = ["overhead", "--trials", "100000", "--workers", str(workers), "--repeats", "1"]
        line = hpo_json(binary, args)
        command = "hpo bench " + " ".join(args)
        yield f"random search in memory, per trial ({workers} worker{'s' * (workers > 1)})", command, "us", \
            line["us_per_trial"], plain
        yield f"random search with a journal file, per trial ({workers} worker{'s' * (workers > 1)})", command, \
            "us", line["us_per_trial_journal"], journal


def spread(values):
    """`low-high` of the runs, to two significant digits (three from 100 up)."""
    def text(x):
        return f"{x:,.0f}" if x >= 100 else f"{x:.2g}"
    low, high = text(min(values)), text(max(values))
    return low if low == high else f"{low}-{high}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hpo", default="target/release/hpo")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    versions = {name: version for name, _, version in peers.installed()}
    runs = [list(rows(args.hpo)) for _ in range(args.runs)]
    names = sorted(versions, key=lambda n: n != "rustuna")
    date = datetime.date.today().isoformat()
    print(f"Measured {date}, {os.cpu_count()} cores, {args.runs} runs each, every row in one run of "
          f"`benches/peers/table.py`; lowest-highest of the runs.\n")
    header = ["workload", "hpo"] + [f"{n} {versions[n]}" for n in names] + ["hpo / rustuna", "hpo's command"]
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for i, (workload, command, unit, _, _) in enumerate(runs[0]):
        ours = [run[i][3] for run in runs]
        theirs = {n: [run[i][4][n] for run in runs] for n in names}
        cells = [f"{spread(ours)} {unit}"] + [f"{spread(theirs[n])} {unit}" for n in names]
        ratios = [o / t for o, t in zip(ours, theirs["rustuna"])] if "rustuna" in theirs else []
        cells.append(spread(ratios) if ratios else "-")
        print(f"| {workload} | " + " | ".join(cells) + f" | `{command}` |")


if __name__ == "__main__":
    main()
