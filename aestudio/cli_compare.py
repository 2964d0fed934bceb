"""`aestudio compare RUN RUN ... [--json]`: the studio's runs table on the command line.

    aestudio compare runs/ae16 runs/vae16            # a table, the best value of each row marked *
    aestudio compare runs/ --json                    # a folder of runs counts as each run inside it
    aestudio compare runs/a runs/b --evaluate        # measure runs that have no stored evaluation yet

Reads config.json and history.json (never the weights, unless --evaluate). A run folder that cannot
be read is a usage error (one line, exit 2), like every other bad input of the command line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_compare_parser(sub) -> argparse.ArgumentParser:
    c = sub.add_parser("compare", help="compare runs side by side: settings, final losses and evaluate metrics",
                       description="Compare run folders side by side: key settings, final losses, evaluate "
                                   "metrics (the best of each row marked) and the settings that differ. "
                                   "A folder holding run folders stands for every run inside it.")
    c.add_argument("runs", nargs="+", metavar="RUN", help="run folders (at least two runs in all)")
    c.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    c.add_argument("--evaluate", action="store_true",
                   help="evaluate runs that have no stored evaluation.json (on their own validation split) "
                        "and store the result beside each run")
    c.add_argument("--trust-data", action="store_true",
                   help="with --evaluate: read a run's data even when it points outside the run folder")
    return c


def _expand(paths: list[str]) -> list[Path]:
    from aestudio.core.checkpoint import CONFIG_NAME, holds_run
    from aestudio.core.runs import scan_folder

    out: list[Path] = []
    for text in paths:
        p = Path(text)
        if p.is_file() and p.name == CONFIG_NAME:
            p = p.parent
        found = [p] if holds_run(p) else scan_folder(p) if p.is_dir() else []
        if not found:
            from aestudio.cli import UsageError

            if not p.exists():
                raise UsageError(f"no run folder at {text}")
            raise UsageError(f"{text} is not a run folder (it needs config.json and weights.safetensors) "
                             "and holds no run folders")
        out += [f for f in found if f.resolve() not in {o.resolve() for o in out}]
    return out


def cmd_compare(args: argparse.Namespace) -> int:
    from aestudio.cli import UsageError, _err
    from aestudio.core.runs import compare, evaluate_folder, format_table, read_run_info

    paths = _expand(args.runs)
    if len(paths) < 2:
        raise UsageError(f"compare needs at least two runs, got {len(paths)} ({', '.join(map(str, paths))})")
    infos = [read_run_info(p) for p in paths]
    for info in infos:
        if info.status == "broken":
            raise UsageError(info.error or f"{info.path} cannot be read")
    if args.evaluate:
        for info in infos:
            if info.evaluation is not None:
                continue
            if info.status == "writing":
                _err(f"note: {info.name} is still being written; not evaluated")
                continue
            _err(f"evaluating {info.name} ...")
            info.evaluation = evaluate_folder(info.path, trust_data=args.trust_data,
                                              progress=lambda m: _err(f"  {m} ..."))
    table = compare(infos)
    if args.json:
        print(json.dumps(table.to_dict()), flush=True)
    else:
        print(format_table(table), flush=True)
    sys.stdout.flush()
    return 0
