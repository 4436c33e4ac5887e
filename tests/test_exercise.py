"""helpers.exercise: the one checker every "Try it yourself" uses, and the solutions behind it."""

import json

import pytest

from helpers import exercise

WHY = {"right": "because physics", "wrong": "look again"}


@pytest.fixture
def solutions(tmp_path, monkeypatch):
    monkeypatch.setenv("EVW_SOLUTIONS_DIR", str(tmp_path))
    monkeypatch.delenv("EVW_CHECK_SOLUTIONS", raising=False)

    def write(stem, entries):
        (tmp_path / f"{stem}.json").write_text(json.dumps(entries))
    return write


def test_no_answer_prints_what_to_do_and_does_not_raise(solutions, capsys):
    result = exercise.check("00.dusk-strength", None, exercise.between(0.4, 0.6), WHY, todo="set my_strength")
    assert result.right is None and not result
    assert capsys.readouterr().out.strip() == "No answer yet: set my_strength"


def test_right_and_wrong_print_the_reason_for_that_outcome(solutions, capsys):
    assert exercise.check("00.dusk-strength", 0.5, exercise.between(0.4, 0.6), WHY).right is True
    assert capsys.readouterr().out.strip() == "Right: because physics"
    assert exercise.check("00.dusk-strength", 0.9, exercise.between(0.4, 0.6), WHY).right is False
    assert capsys.readouterr().out.strip() == "Not quite: look again"


def test_why_may_depend_on_answer_and_measured_truth(solutions, capsys):
    why = lambda answer, truth: f"you said {answer}, measured {truth}"  # noqa: E731
    assert exercise.check("02.pad", 12, 12, why).right
    assert capsys.readouterr().out.strip() == "Right: you said 12, measured 12"


@pytest.mark.parametrize("answer, truth, tolerance, right", [
    (3, 3, None, True), (3.05, 3, 0.1, True), (3.2, 3, 0.1, False),
    ("  Helps ", "helps", None, True), ("hurts", "helps", None, False),
    (True, True, None, True), (False, True, None, False),
    ("int8", {"int8", "fp32"}, None, True), ("fp16", {"int8", "fp32"}, None, False),
    (0.4, exercise.between(0.4, 0.6), None, True), (0.61, exercise.between(0.4, 0.6), None, False),
])
def test_judge(answer, truth, tolerance, right):
    assert exercise.judge(answer, truth, tolerance) is right


def test_an_answer_of_the_wrong_kind_says_what_is_expected():
    with pytest.raises(ValueError, match="expects a number"):
        exercise.judge("0.5", exercise.between(0.4, 0.6))
    with pytest.raises(ValueError, match="True or False"):
        exercise.judge(1, True)
    with pytest.raises(ValueError, match="must look like"):
        exercise.check("dusk", 1, 1, WHY)
    with pytest.raises(ValueError, match="low <= high"):
        exercise.between(2, 1)


def test_solutions_are_checked_against_the_same_truth(solutions, monkeypatch, capsys):
    monkeypatch.setenv("EVW_CHECK_SOLUTIONS", "1")
    solutions("00_environment", {"00.dusk-strength": {"answer": 0.5, "why": "20 dB is about 0.5"}})
    exercise.check("00.dusk-strength", None, exercise.between(0.4, 0.6), WHY)
    assert "passes" in capsys.readouterr().out
    with pytest.raises(AssertionError, match=r"00\.dusk-strength.*0\.5.*fails"):
        exercise.check("00.dusk-strength", None, exercise.between(0.7, 0.9), WHY)
    with pytest.raises(AssertionError, match=r"00\.other.*no solution"):
        exercise.check("00.other", None, 1, WHY)


def test_solutions_are_not_consulted_without_the_flag(solutions):
    # A learner's kernel never reads solutions/: no entry, no error.
    assert exercise.check("00.dusk-strength", 0.5, exercise.between(0.4, 0.6), WHY).right


def test_a_malformed_solution_file_names_the_problem(solutions):
    solutions("00_environment", {"00.dusk-strength": {"answer": 0.5}})
    with pytest.raises(ValueError, match="why"):
        exercise.load_solutions("00_environment")


def test_render_writes_markdown_and_html_with_the_prompt(solutions, tmp_path):
    solutions("00_environment", {"00.dusk-strength": {"answer": 0.5, "why": "about 0.5 <reason>"}})
    out = tmp_path / "out"
    written = exercise.render(out)
    assert {p.name for p in written} == {"00_environment.md", "00_environment.html"}
    text = (out / "00_environment.md").read_text()
    assert "**Answer:** `0.5`" in text and "about 0.5" in text
    assert "&lt;reason&gt;" in (out / "00_environment.html").read_text()
    assert (out / "index.html").is_file()
