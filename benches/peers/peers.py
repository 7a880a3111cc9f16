"""What the peer scripts share: the peers that are installed, quiet, with their versions,
and one line of output each (JSON with --json)."""
import importlib.metadata
import json
import sys


def installed():
    """(name, module, version) of each of Optuna and rustuna that is installed; a note on
    stderr for each that is not."""
    for name in ["optuna", "rustuna"]:
        try:
            module = __import__(name)
        except ImportError:
            print(f"{name} is not installed: skipped", file=sys.stderr)
            continue
        if hasattr(module, "logging"):
            module.logging.set_verbosity(module.logging.WARNING)
        yield name, module, importlib.metadata.version(name)


def emit(line, text, as_json):
    """Prints `line` as JSON, or `text`, at once."""
    print(json.dumps(line) if as_json else text, flush=True)
