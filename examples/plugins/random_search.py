"""A scheduler plugin in Python: random search with a median stopping rule, speaking hpo's
scheduler protocol (docs/protocol.md) on stdin/stdout. Standard library only.

    [scheduler]
    type = "process"
    command = ["python3", "examples/plugins/random_search.py"]
    config = { grace = 2 }     # epochs before a trial can be stopped

Check it with:  hpo plugin check -- python3 examples/plugins/random_search.py
"""

import json
import math
import random
import sys


def sample(domain, rng):
    """One value from a domain in the search-space syntax."""
    if not isinstance(domain, dict):
        return domain  # a constant
    (kind, args), = domain.items()
    if kind == "uniform":
        return rng.uniform(args[0], args[1])
    if kind == "loguniform":
        return math.exp(rng.uniform(math.log(args[0]), math.log(args[1])))
    if kind in ("randint", "lograndint"):
        return rng.randint(args[0], args[1])
    if kind in ("choice", "ordinal"):
        return rng.choice(args)
    if kind in ("finrange", "logfinrange"):
        low, high, size = args
        i = rng.randrange(size)
        if kind == "finrange":
            return low + (high - low) * i / (size - 1)
        return math.exp(math.log(low) + (math.log(high) - math.log(low)) * i / (size - 1))
    raise ValueError(f"unknown domain {kind}")


class Scheduler:
    def __init__(self, init):
        self.space = init["space"]
        self.metric = init["metric"]
        self.sign = -1.0 if init.get("mode", "min") == "max" else 1.0
        self.resource = init.get("resource_attr") or "epoch"
        self.grace = init["scheduler"].get("grace", 2)
        self.rng = random.Random(init.get("seed", 0))
        self.values = {}  # epoch -> values reported at that epoch

    def suggest(self, trial_id):
        return {"op": "start", "config": {k: sample(d, self.rng) for k, d in sorted(self.space.items())}}

    def report(self, trial_id, metrics):
        value = metrics.get(self.metric)
        if value is None:
            return {"decision": "stop"}
        value *= self.sign
        epoch = int(metrics.get(self.resource, 0))
        seen = self.values.setdefault(epoch, [])
        decision = "continue"
        if epoch >= self.grace and seen:
            ordered = sorted(seen)
            median = ordered[len(ordered) // 2]
            if value > median:
                decision = "stop"
        seen.append(value)
        return {"decision": decision}


def main():
    scheduler = None
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            op = request.get("op")
            if op == "init":
                scheduler = Scheduler(request)
                answer = {"ok": True, "name": "python-random-median"}
            elif op == "close":
                print(json.dumps({"ok": True}), flush=True)
                return
            elif scheduler is None:
                answer = {"error": "send init first"}
            elif op == "suggest":
                answer = scheduler.suggest(request["trial_id"])
            elif op == "report":
                answer = scheduler.report(request["trial_id"], request["metrics"])
            elif op in ("complete", "fail"):
                answer = {"ok": True}
            else:
                answer = {"error": f"unknown op {op!r}"}
        except Exception as e:  # a bad request gets an error answer; keep serving
            answer = {"error": str(e)}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()
