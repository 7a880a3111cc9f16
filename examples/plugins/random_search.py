"""A scheduler plugin in Python: random search with a median stopping rule, speaking hpo's
scheduler protocol (docs/protocol.md) on stdin/stdout. Standard library only. It keeps to
conditional spaces: a parameter with `when` only when its condition holds, and no config a
`forbid` clause rules out.

    [scheduler]
    type = "process"
    command = ["python3", "examples/plugins/random_search.py"]
    config = { grace = 2 }     # epochs before a trial can be stopped

Check it with:  hpo plugin check -- python3 examples/plugins/random_search.py
"""

import ast
import json
import math
import operator
import random
import sys


def sample(domain, rng):
    """One value from a domain in the search-space syntax."""
    if not isinstance(domain, dict):
        return domain  # a constant
    (kind, args), = ((k, v) for k, v in domain.items() if k != "when")
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


OPERATORS = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
             ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
             ast.NotIn: lambda a, b: a not in b}


def literal(node):
    """A value of a condition: a number, 'text', true, false, or a list of them."""
    if isinstance(node, ast.List):
        return [literal(item) for item in node.elts]
    if isinstance(node, ast.Name):
        return {"true": True, "false": False}[node.id]
    return ast.literal_eval(node)


def holds(node, config):
    """Whether a condition (`when`, `forbid`; parsed by `ast`, since its syntax is Python's)
    holds for a config; a comparison on a parameter the config lacks does not."""
    if isinstance(node, ast.Expression):
        return holds(node.body, config)
    if isinstance(node, ast.BoolOp):
        parts = (holds(value, config) for value in node.values)
        return all(parts) if isinstance(node.op, ast.And) else any(parts)
    (op,), (right,) = node.ops, node.comparators
    name = node.left.id
    return name in config and OPERATORS[type(op)](config[name], literal(right))


def names(node):
    """The parameters a condition compares."""
    return {n.left.id for n in ast.walk(node) if isinstance(n, ast.Compare)}


def sample_config(space, rng):
    """A config: each parameter whose `when` holds, drawn after those it depends on; drawn
    again while a `forbid` clause holds."""
    params = {k: d for k, d in space.items() if k != "forbid"}
    when = {k: ast.parse(d["when"], mode="eval") for k, d in params.items() if isinstance(d, dict) and "when" in d}
    forbid = [ast.parse(c, mode="eval") for c in space.get("forbid", [])]
    while True:
        config, decided = {}, set()

        def decide(name):
            if name in decided:
                return
            decided.add(name)
            if name in when:
                for parent in sorted(names(when[name])):
                    decide(parent)
                if not holds(when[name], config):
                    return
            config[name] = sample(params[name], rng)

        for name in sorted(params):
            decide(name)
        if not any(holds(clause, config) for clause in forbid):
            return config


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
        return {"op": "start", "config": sample_config(self.space, self.rng)}

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
