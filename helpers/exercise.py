"""One checker for every "Try it yourself" exercise, and the instructor solutions behind it.

A notebook's exercise is four cells: the prompt (markdown), the learner's answer (``None`` in
the committed notebook), the cell that measures the truth, and ``check``::

    exercise.check("00.dusk-strength", my_strength, exercise.between(lo, hi),
                   why={"right": f"...", "wrong": f"..."})

The truth is measured *after* the learner answers, so nothing printed above the answer cell
gives it away. ``check`` prints one line, right or not with the reason for that outcome, and
returns a ``Result``.

Solutions live outside the learner's notebooks, in ``solutions/<notebook stem>.json``::

    {"00.dusk-strength": {"answer": 0.5, "why": "the reasoning an instructor gives"}}

Under ``EVW_CHECK_SOLUTIONS=1`` (``make test``'s nbval run sets it) every ``check`` also judges
the solution's answer against the same measured truth and raises ``AssertionError`` naming the
exercise when it fails, so the test suite proves each solution passes on the machine it runs on.
``python -m helpers.exercise --out build/solutions`` (``make solutions``) renders the solutions
with their prompts for instructors.
"""

from __future__ import annotations

import argparse
import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .assets import REPO_ROOT

ID_PATTERN = re.compile(r"^(\d\d)\.[a-z0-9][a-z0-9-]*$")
NO_ANSWER = "set your answer in the cell above (it is None now), run it, then run this cell again"


class Range(NamedTuple):
    """An answer is right anywhere from ``low`` to ``high`` (both included)."""

    low: float
    high: float

    def __contains__(self, value) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"between {self.low:g} and {self.high:g}"


def between(low: float, high: float) -> Range:
    """A truth that is a range: e.g. the strengths whose PSNR lands within 20 dB ± 1 dB."""
    if not (_is_number(low) and _is_number(high)) or low > high:
        raise ValueError(f"between(low, high) needs two numbers with low <= high, found {low!r}, {high!r}")
    return Range(float(low), float(high))


@dataclass(frozen=True)
class Result:
    exercise: str
    right: bool | None  # None: not answered yet
    message: str

    def __bool__(self) -> bool:
        return bool(self.right)

    def _ipython_display_(self) -> None:
        # check() has printed the message already; a cell ending in check(...) shows it once.
        pass


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _same_text(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def judge(answer, truth, tolerance: float | None = None) -> bool:
    """Whether ``answer`` matches ``truth``: a number (within ``tolerance``), a ``Range``, a set of
    accepted answers, a string (case and surrounding spaces ignored) or a bool.

    A learner's answer of the wrong kind raises ``ValueError`` saying what kind was expected."""
    if isinstance(truth, Range):
        _expect(_is_number(answer), answer, "a number")
        return answer in truth
    if isinstance(truth, (set, frozenset)):
        return any(judge(answer, option, tolerance) for option in truth
                   if _is_number(option) == _is_number(answer))
    if isinstance(truth, bool):
        _expect(isinstance(answer, bool), answer, "True or False")
        return answer is truth
    if _is_number(truth):
        _expect(_is_number(answer), answer, "a number")
        return abs(answer - truth) <= (tolerance or 0)
    if isinstance(truth, str):
        _expect(isinstance(answer, str), answer, f"a string such as {truth!r}")
        return _same_text(answer, truth)
    raise TypeError(f"exercise truth must be a number, exercise.between(...), a set, a string or a bool; "
                    f"found {type(truth).__name__} {truth!r}")


def _expect(ok: bool, answer, kind: str) -> None:
    if not ok:
        raise ValueError(f"your answer {answer!r} ({type(answer).__name__}) cannot be checked: "
                         f"this exercise expects {kind}. Change the answer cell and run it again.")


def solutions_dir() -> Path:
    return Path(os.environ.get("EVW_SOLUTIONS_DIR") or REPO_ROOT / "solutions")


def notebook_of(exercise_id: str) -> str:
    """The notebook stem an exercise id belongs to: "05.int8-speedup" -> "05_onnx_export"."""
    match = ID_PATTERN.match(exercise_id or "")
    if not match:
        raise ValueError(f"exercise id {exercise_id!r} must look like '05.int8-speedup': the notebook's "
                         "two digits, a dot, then lower-case words joined by '-'")
    notebooks = sorted((REPO_ROOT / "notebooks").glob(f"{match.group(1)}_*.ipynb"))
    if len(notebooks) != 1:
        raise ValueError(f"exercise id {exercise_id!r}: expected one notebook notebooks/{match.group(1)}_*.ipynb, "
                         f"found {len(notebooks)}")
    return notebooks[0].stem


def load_solutions(stem: str) -> dict:
    path = solutions_dir() / f"{stem}.json"
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); fix it or restore it from git") from exc
    for key, entry in data.items():
        if not (isinstance(entry, dict) and "answer" in entry and isinstance(entry.get("why"), str)):
            raise ValueError(f"{path}: {key!r} must be {{\"answer\": <value>, \"why\": \"<reasoning>\"}}, "
                             f"found {entry!r}")
    return data


def _reason(why, answer, truth, right: bool) -> str:
    if callable(why):
        return str(why(answer, truth))
    if isinstance(why, dict) and {"right", "wrong"} <= set(why):
        return str(why["right" if right else "wrong"])
    raise TypeError("why must be {'right': '...', 'wrong': '...'} or a function (answer, truth) -> str; "
                    f"found {why!r}")


def check(exercise_id: str, answer: Any, truth: Any, why: dict | Callable[[Any, Any], str],
          tolerance: float | None = None, todo: str = NO_ANSWER) -> Result:
    """Judge the learner's ``answer`` against the measured ``truth``; print one line and return it.

    ``answer is None`` (not answered yet) prints "No answer yet: <todo>" and does not raise.
    Under ``EVW_CHECK_SOLUTIONS=1`` the instructor solution is judged against the same truth
    too, and a failing or missing solution raises ``AssertionError`` naming the exercise."""
    stem = notebook_of(exercise_id)
    if os.environ.get("EVW_CHECK_SOLUTIONS") == "1":
        _check_solution(exercise_id, stem, truth, why, tolerance)
    if answer is None:
        result = Result(exercise_id, None, f"No answer yet: {todo}")
    else:
        right = judge(answer, truth, tolerance)
        reason = _reason(why, answer, truth, right)
        result = Result(exercise_id, right, f"{'Right' if right else 'Not quite'}: {reason}")
    print(result.message)
    return result


def _check_solution(exercise_id: str, stem: str, truth, why, tolerance) -> None:
    entry = load_solutions(stem).get(exercise_id)
    where = solutions_dir() / f"{stem}.json"
    if entry is None:
        raise AssertionError(f"exercise {exercise_id}: no solution in {where}; add "
                             f'"{exercise_id}": {{"answer": ..., "why": "..."}}')
    if not judge(entry["answer"], truth, tolerance):
        raise AssertionError(f"exercise {exercise_id}: the solution's answer {entry['answer']!r} in {where} fails "
                             f"its checker against the truth measured here ({truth!r}): "
                             f"{_reason(why, entry['answer'], truth, False)}")
    print(f"(solution check: {exercise_id} answer {entry['answer']!r} passes)")


# -------------------------------------------------------------------- rendering


def ids(source: str) -> list[str]:
    """The ids of the ``exercise.check("NN.id", ...)`` calls in a cell's source."""
    return re.findall(r"exercise\.check\(\s*[\"'](\d\d\.[a-z0-9-]+)[\"']", source)


def prompts(notebook: Path) -> dict:
    """Exercise id -> the markdown of the "Try it yourself" section it is checked in."""
    import nbformat

    found, section = {}, []
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown":
            if cell.source.lstrip().startswith("#"):
                section = []
            section.append(cell.source)
        else:
            for exercise_id in ids(cell.source):
                found[exercise_id] = "\n\n".join(section)
    return found


def render(out_dir: Path) -> list[Path]:
    """solutions/*.json with each exercise's prompt, as markdown and HTML in ``out_dir``."""
    import mistune

    to_html = mistune.create_markdown(escape=True)  # solution text is shown, never run as HTML
    out_dir.mkdir(parents=True, exist_ok=True)
    written, index = [], ["# Instructor solutions", ""]
    for path in sorted(solutions_dir().glob("*.json")):
        stem = path.stem
        notebook = REPO_ROOT / "notebooks" / f"{stem}.ipynb"
        asked = prompts(notebook) if notebook.is_file() else {}
        lines = [f"# {stem}: solutions", ""]
        for exercise_id, entry in load_solutions(stem).items():
            lines += [f"## {exercise_id}", "", "**The exercise**", "",
                      "> " + (asked.get(exercise_id) or "(not found in the notebook)").replace("\n", "\n> "), "",
                      f"**Answer:** `{json.dumps(entry['answer'])}`", "", f"**Why:** {entry['why']}", ""]
        text = "\n".join(lines)
        md = out_dir / f"{stem}.md"
        md.write_text(text, encoding="utf-8")
        page = out_dir / f"{stem}.html"
        page.write_text(f"<!doctype html><meta charset='utf-8'><title>{html.escape(stem)}: solutions</title>"
                        f"<body style='font-family:sans-serif;max-width:50em;margin:2em auto'>"
                        f"{to_html(text)}</body>", encoding="utf-8")
        written += [md, page]
        index.append(f"- [{stem}]({stem}.html)")
    (out_dir / "index.md").write_text("\n".join(index) + "\n", encoding="utf-8")
    (out_dir / "index.html").write_text(to_html("\n".join(index)), encoding="utf-8")
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m helpers.exercise", description="render the instructor solutions")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "solutions")
    args = parser.parse_args(argv)
    written = render(args.out)
    print(f"{len(written) // 2} notebooks' solutions rendered to {args.out} (index.html)")


if __name__ == "__main__":
    main()
