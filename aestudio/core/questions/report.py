"""Write a question's answer to disk (no Qt): answer.md, figure.png, numbers.json, and an HTML page.

    paths = write_answer(question, answer, "out/q7", html=True)

Every file is written to a temporary name in the same folder and renamed into place, so a
failed write never leaves half a file. `markdown(...)` and `html_page(...)` return the texts.
"""
from __future__ import annotations

import base64
import html as _html
import json
import os
import tempfile
from pathlib import Path

from .base import Answer, fmt_num
from .figures import to_png_bytes

ANSWER_MD, FIGURE_PNG, NUMBERS_JSON, ANSWER_HTML = "answer.md", "figure.png", "numbers.json", "answer.html"


class ReportError(OSError):
    """The answer folder cannot be created or written. The message is meant for users."""


def label(key: str) -> str:
    """How a number's key reads in a table: "gap_to_pca_pct" -> "gap to pca (%)"."""
    if key.endswith("_pct"):
        key = key[:-4] + " (%)"
    return key.replace("_", " ")


def _what_was_run(answer: Answer) -> list[str]:
    lines = list(answer.runs) or ["no model was trained (PCA and measurements only)"]
    return lines + [f"budget {answer.budget!r}; the whole experiment took {answer.seconds:.1f} s"]


def markdown(question, answer: Answer, figure_name: str = FIGURE_PNG) -> str:
    out = [f"# Question {question.number}: {question.title}", "", f"> {question.question}", "",
           f"*Topic: {question.topic}.*", "", "## What was run", ""]
    out += [f"- {line}" for line in _what_was_run(answer)]
    out += ["", "## Measured numbers", "", "| measure | value |", "|---|---|"]
    out += [f"| {label(k)} | {fmt_num(v)} |" for k, v in answer.numbers.items()]
    out += ["", "## Answer", "", answer.conclusion, ""]
    out += [n + "\n" for n in answer.notes]
    out += [f"**Try next:** {answer.next_step}", "", f"![Figure for question {question.number}]({figure_name})", ""]
    return "\n".join(out)


def html_page(question, answer: Answer) -> str:
    """One self-contained page: the figure is inlined as a base64 PNG."""
    e = _html.escape
    png = base64.b64encode(to_png_bytes(answer.figure)).decode("ascii")
    rows = "".join(f"<tr><td>{e(label(k))}</td><td>{e(fmt_num(v))}</td></tr>" for k, v in answer.numbers.items())
    runs = "".join(f"<li>{e(line)}</li>" for line in _what_was_run(answer))
    notes = "".join(f"<p class=note>{e(n)}</p>" for n in answer.notes)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Question {question.number}: {e(question.title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 860px; margin: 2em auto; padding: 0 1em; color: #222; }}
blockquote {{ border-left: 4px solid #0072b2; margin: 0; padding: .2em 1em; background: #f4f8fb; }}
table {{ border-collapse: collapse; }} td {{ border-bottom: 1px solid #ddd; padding: 2px 12px 2px 0; }}
td:last-child {{ text-align: right; font-variant-numeric: tabular-nums; }}
.note {{ color: #8a5a00; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>Question {question.number}: {e(question.title)}</h1>
<blockquote>{e(question.question)}</blockquote>
<p><em>Topic: {e(question.topic)}.</em></p>
<h2>What was run</h2><ul>{runs}</ul>
<h2>Measured numbers</h2><table>{rows}</table>
<h2>Answer</h2><p>{e(answer.conclusion)}</p>{notes}
<p><strong>Try next:</strong> {e(answer.next_step)}</p>
<p><img alt="Figure for question {question.number}" src="data:image/png;base64,{png}"></p>
</body></html>
"""


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def prepare_folder(out: str | os.PathLike) -> Path:
    """Create the answer folder (and its parents); ReportError with one sentence when that fails."""
    p = Path(out).expanduser()
    try:
        if p.exists() and not p.is_dir():
            raise ReportError(f"{p} exists and is not a folder")
        p.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=p, prefix=".aestudio-probe-", delete=True)
        probe.close()
    except ReportError:
        raise
    except OSError as e:
        raise ReportError(f"cannot write answers to {p}: {e.strerror or e}") from None
    return p


def write_answer(question, answer: Answer, out: str | os.PathLike, html: bool = False) -> dict[str, Path]:
    """Write answer.md, figure.png and numbers.json (and answer.html) into `out`; returns their paths."""
    folder = prepare_folder(out)
    paths = {"markdown": folder / ANSWER_MD, "figure": folder / FIGURE_PNG, "numbers": folder / NUMBERS_JSON}
    numbers = {"question": question.number, "title": question.title, "budget": answer.budget,
               "seconds": round(answer.seconds, 2), "numbers": answer.numbers}
    try:
        _atomic_write(paths["figure"], to_png_bytes(answer.figure))
        _atomic_write(paths["numbers"], (json.dumps(numbers, indent=2, allow_nan=True) + "\n").encode("utf-8"))
        _atomic_write(paths["markdown"], markdown(question, answer).encode("utf-8"))
        if html:
            paths["html"] = folder / ANSWER_HTML
            _atomic_write(paths["html"], html_page(question, answer).encode("utf-8"))
    except OSError as e:
        raise ReportError(f"cannot write answers to {folder}: {e.strerror or e}") from None
    return paths


__all__ = ["ANSWER_HTML", "ANSWER_MD", "FIGURE_PNG", "NUMBERS_JSON", "ReportError", "html_page", "markdown",
           "prepare_folder", "write_answer"]
