"""`aestudio questions`: the Questions guide on the command line.

    aestudio questions --list                      # one question a line, numbered
    aestudio questions --run 7 --out answers/q7    # answer.md, figure.png, numbers.json
    aestudio questions --run 7 --out answers/q7 --html   # and answer.html, one self-contained page

Each run trains its small models afresh (a couple of minutes at most on 2 CPU cores) and writes
the numbers of that run. A bad question number or an unwritable folder is one line, exit 2.
"""
from __future__ import annotations

import argparse
import sys
import time


def add_questions_parser(sub) -> argparse.ArgumentParser:
    q = sub.add_parser("questions", help="course questions answered by small experiments (list or run one)",
                       description="The Questions guide: each question is answered by an experiment that trains "
                                   "small models, measures, and writes an answer quoting this run's numbers.")
    what = q.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="print the questions, one a line")
    what.add_argument("--run", metavar="N", help="run question N's experiment")
    q.add_argument("--out", metavar="DIR", help="with --run: folder for answer.md, figure.png and numbers.json")
    q.add_argument("--html", action="store_true", help="with --run: also write answer.html, one self-contained page")
    q.add_argument("--budget", choices=("normal", "tiny"), default="normal",
                   help="normal (default), or tiny: a few steps, for a quick check of the pipeline")
    q.add_argument("--seed", type=int, default=0, metavar="N", help="seed for data subsets and training (default 0)")
    q.add_argument("--threads", type=int, metavar="N",
                   help="CPU threads for torch (default 1: the questions' small models train fastest on one)")
    q.add_argument("--quiet", action="store_true", help="no progress line")
    return q


def cmd_questions(args: argparse.Namespace) -> int:
    from aestudio.cli import UsageError, _err
    from aestudio.core.questions import QUESTIONS, get_question, run_question
    from aestudio.core.questions.report import ReportError, prepare_folder, write_answer

    if args.list:
        for q in QUESTIONS:
            extra = "" if q.available else "  (needs a model feature this build lacks)"
            print(f"{q.number:>2}. {q.title}{extra}")
        return 0
    try:
        q = get_question(str(args.run).strip())
    except KeyError as e:
        raise UsageError(str(e.args[0])) from None
    if not q.available:
        raise UsageError(f"question {q.number} needs a model feature this build does not have")
    if not args.out:
        raise UsageError("--run needs --out DIR (where to write answer.md, figure.png and numbers.json)")
    try:
        folder = prepare_folder(args.out)  # fail before training, not after
    except ReportError as e:
        raise UsageError(str(e)) from None
    show = not args.quiet and sys.stderr.isatty()
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if show:
            print(f"\rquestion {q.number}: {100 * done / max(total, 1):5.1f}%  {time.perf_counter() - t0:5.1f} s",
                  end="", file=sys.stderr, flush=True)

    if args.threads is None:  # measured: 6x less CPU time than two threads for these small models
        import torch

        torch.set_num_threads(1)
    _err(f"question {q.number}: {q.question}")
    answer = run_question(q.number, budget=args.budget, progress=progress, seed=args.seed)
    if show:
        print(file=sys.stderr)
    try:
        paths = write_answer(q, answer, folder, html=args.html)
    except ReportError as e:
        raise UsageError(str(e)) from None
    print(answer.text)
    print()
    for p in paths.values():
        print(f"wrote {p}")
    print(f"({answer.seconds:.1f} s)")
    return 0


__all__ = ["add_questions_parser", "cmd_questions"]
