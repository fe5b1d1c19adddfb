"""`doit reproduce RUN_ID`: rebuild a recorded run in an isolated folder and say whether it
gives the same outputs (run/reproduce.py does the work)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from doit.cmd_base import Command

from mlops_tasks.base import console
from mlops_tasks.base.errors import MlopsError
from mlops_tasks.project.config import Config, load_config


class Reproduce(Command):
    name = "reproduce"
    doc_purpose = "rebuild a recorded run in an isolated folder and compare its outputs"
    doc_usage = "[--json] [--keep] [--into DIR] [--chain] RUN_ID | STAGE"
    doc_description = (
        "Checks out the run's commit (plus its recorded diff) in .mlops/reproduce/RUN_ID, "
        "finds its inputs by content hash, builds its environment from the recorded freeze, "
        "executes the notebook with the recorded parameters, logs a run tagged "
        "mlops.reproduces, and compares every declared output and metric. A stage name means "
        "its last logged run; a run id the local records lack is read from the tracking "
        "store (a run made on another machine), and so are inputs the workspace no longer "
        "holds. Without a reachable store, metrics are compared with the local record. "
        "Exit 0: identical; 1: same metrics but different bytes, or "
        "different; 3: could not reproduce (the reason is said). The workspace is not touched. "
        "--chain reproduces the runs that made its inputs first, in graph order, and feeds "
        "their new outputs to it (the exit code is the worst of the chain)."
    )
    cmd_options = (
        {"name": "into", "long": "into", "type": str, "default": "",
         "help": "build in this (new or empty) folder instead of .mlops/reproduce/RUN_ID"},
        {"name": "keep", "long": "keep", "type": bool, "default": False,
         "help": "keep the isolated folder (tree, venv, executed notebook) afterwards"},
        {"name": "json", "long": "json", "type": bool, "default": False,
         "help": "print the outcome as JSON"},
        {"name": "chain", "long": "chain", "type": bool, "default": False,
         "help": "reproduce the upstream runs first and run on what they write"},
    )

    def execute(self, params: Any, args: list[str]) -> int:
        from mlops_tasks.run.reproduce import reproduce

        console.safe_streams()
        if len(args) != 1:
            late = [a for a in args[1:] if a.startswith("-")]
            console.error("name one run: doit reproduce [OPTIONS] RUN_ID (a folder name under "
                          ".mlops/runs/<stage>/, or a run of the tracking store) or STAGE "
                          "(its last run)" + (
                              f"; options go before it: doit reproduce {' '.join(late)} "
                              f"{args[0]}" if late else ""))
            return 3
        try:
            config = load_config(Path.cwd().resolve())
        except MlopsError as err:
            console.error(str(err))
            return 3
        into = Path(params["into"]).absolute() if params["into"] else None
        if params["chain"]:
            if into is not None:
                console.error("--into names one folder; --chain makes one per run under "
                              ".mlops/reproduce/: drop one of them")
                return 3
            return self._chain(config, args[0], params)
        outcome = reproduce(config, args[0], into, params["keep"])
        if params["json"]:
            console.say(json.dumps(outcome.to_json(), indent=2))
        else:
            console.say("\n".join(outcome.lines()))
        return outcome.exit_code

    def _chain(self, config: Config, ref: str, params: Any) -> int:
        from mlops_tasks.run.reproduce import reproduce_chain

        outcomes = reproduce_chain(config, ref, params["keep"])
        if params["json"]:
            console.say(json.dumps({"chain": [o.to_json() for o in outcomes]}, indent=2))
        else:
            console.say("\n".join(line for o in outcomes for line in o.lines()))
        return max(o.exit_code for o in outcomes)
