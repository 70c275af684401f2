"""The shared self-check quiz: questions refuse bad definitions, the widget marks answers and never
crashes on blanks, and it shows choices in a stable shuffled order so the right answer's place gives
nothing away."""
import json, os, subprocess, sys
from collections import Counter
from pathlib import Path

import ipywidgets as widgets
import pytest

from htc_dl.quiz import Question, check_answer, display_order, notebook_questions, quiz

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT/"nbs"/"lessons").glob("*.ipynb"))


def three_questions():
    return [Question("2 + 2?", ["3", "4", "5"], 1, "Two and two make four."),
            Question("Batch axis?", ["first", "last"], 0, "PyTorch puts the batch first."),
            Question("Rank of a stack of images?", ["1", "2", "3"], 2,
                     "Image, row, column: 3 axes.")]


def test_question_with_one_choice_is_refused_with_the_count():
    with pytest.raises(ValueError, match="at least 2 choices, got 1"):
        Question("p", ["only"], 0, "w")


def test_question_whose_answer_index_points_at_no_choice_is_refused_with_the_valid_range():
    with pytest.raises(ValueError, match=r"index 3 is out of range for 3 choices; use 0 to 2"):
        Question("p", ["a", "b", "c"], 3, "w")
    with pytest.raises(ValueError, match="out of range"):
        Question("p", ["a", "b"], -1, "w")


def test_question_whose_answer_is_the_choice_text_not_its_index_is_refused():
    with pytest.raises(ValueError, match="index of the right choice"):
        Question("p", ["a", "b"], "b", "w")


def test_check_answer_right_wrong_and_blank_each_explain_why():
    q = three_questions()[0]
    assert check_answer(q, 1) == (True, "Right! Two and two make four.")
    ok, msg = check_answer(q, 2)
    assert not ok and "you chose “5”" in msg and "the answer is “4”" in msg
    assert msg.endswith("Two and two make four.")
    ok, msg = check_answer(q, None)
    assert not ok and msg.startswith("Not answered") and "Two and two make four." in msg


def test_check_answer_with_an_impossible_choice_names_the_valid_range():
    with pytest.raises(ValueError, match="from 0 to 2, got 7"):
        check_answer(three_questions()[0], 7)


def test_quiz_has_one_radio_group_per_question_and_a_check_button():
    box = quiz(three_questions(), title="Lesson 3")
    assert isinstance(box, widgets.VBox)
    assert len(box.radios) == 3 and all(isinstance(r, widgets.RadioButtons) for r in box.radios)
    assert [len(r.options) for r in box.radios] == [3, 2, 3]
    assert all(r.value is None for r in box.radios)          # nothing pre-selected
    assert box.button.description == "Check answers"
    assert "Lesson 3" in box.children[0].value
    assert box.button in box.children and box.score in box.children


def test_checking_with_nothing_selected_counts_all_unanswered_and_does_not_crash():
    box = quiz(three_questions())
    box.button.click()
    assert box.score.value == "<b>Score: 0/3</b> (3 unanswered)"
    assert all("Not answered" in fb.value for fb in box.feedback)


def test_score_counts_right_answers_and_each_question_shows_its_explanation():
    box = quiz(three_questions())
    box.radios[0].value = 1   # right
    box.radios[1].value = 1   # wrong
    box.button.click()        # third left blank
    assert box.score.value == "<b>Score: 1/3</b> (1 unanswered)"
    assert "Right!" in box.feedback[0].value and "Two and two make four." in box.feedback[0].value
    assert "Wrong" in box.feedback[1].value
    assert "PyTorch puts the batch first." in box.feedback[1].value
    assert "Not answered" in box.feedback[2].value


def test_changing_an_answer_clears_its_feedback_and_rechecking_updates_the_score():
    box = quiz(three_questions())
    box.radios[0].value, box.radios[1].value, box.radios[2].value = 0, 0, 2
    box.button.click()
    assert box.score.value == "<b>Score: 2/3</b>"
    box.radios[0].value = 1
    assert box.feedback[0].value == "" and box.feedback[1].value != ""
    box.button.click()
    assert box.score.value == "<b>Score: 3/3</b>"


def test_choice_text_with_html_is_shown_as_text_not_markup():
    box = quiz([Question("Is <b>this</b> bold?", ["<i>no</i>", "yes"], 0, "It is <escaped>.")])
    box.radios[0].value = 0
    box.button.click()
    assert "&lt;b&gt;this&lt;/b&gt;" in box.children[1].children[0].value
    assert "&lt;escaped&gt;" in box.feedback[0].value


def test_quiz_refuses_no_questions_and_things_that_are_not_questions():
    with pytest.raises(ValueError, match="at least one Question"):
        quiz([])
    with pytest.raises(ValueError, match=r"items \[1\] are not \(got dict\)"):
        quiz([three_questions()[0], {"prompt": "p"}])


def test_quiz_shows_each_question_s_choices_in_its_display_order_and_values_stay_stored_indices():
    qs = three_questions()
    box = quiz(qs)
    for q, radio in zip(qs, box.radios):
        assert [label for label, _ in radio.options] == [q.choices[i] for i in display_order(q)]
        assert [value for _, value in radio.options] == display_order(q)
        assert sorted(display_order(q)) == list(range(len(q.choices)))


def test_picking_the_displayed_right_choice_scores_it_right_wherever_it_is_shown():
    qs = [Question(f"Which is {c}?", list("abcd"), n, "It is.") for n, c in enumerate("abcd")]
    box = quiz(qs)
    for q, radio in zip(qs, box.radios):
        shown = [label for label, _ in radio.options]
        radio.index = shown.index(q.right_choice)          # what a learner's click does
    box.button.click()
    assert box.score.value == "<b>Score: 4/4</b>"
    assert len({display_order(q).index(q.answer) for q in qs}) > 1   # shown in different places


def test_display_order_is_the_same_in_another_process_with_another_hash_seed():
    q = Question("Why shuffle the choices?", list("wxyzv"), 2, "So position says nothing.")
    code = ("from htc_dl.quiz import Question, display_order; "
            f"print(display_order(Question({q.prompt!r}, {q.choices!r}, 2, 'w')))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
            for seed in ("1", "2")}
    assert runs == {str(display_order(q))}


def test_different_prompts_get_different_orders():
    orders = {tuple(display_order(Question(f"question {n}", "abcd", 0, "w"))) for n in range(40)}
    assert len(orders) >= 10, orders


def test_notebook_questions_reads_literal_questions_and_refuses_computed_ones(tmp_path):
    nb = tmp_path/"lesson.ipynb"
    code = ["quiz([Question('a?', ['x', 'y'], 1, 'w'),\n",
            "      Question('b?', ['p', 'q', 'r'], answer=2, why='v')])"]
    cells = [{"cell_type": "markdown", "source": ["Question(in prose)"]},
             {"cell_type": "code", "source": code}]
    nb.write_text(json.dumps({"cells": cells}))
    found = [(q.prompt, q.right_choice, q.why) for q in notebook_questions(nb)]
    assert found == [("a?", "y", "w"), ("b?", "r", "v")]
    cells[1]["source"] = ["Question(PROMPT, ['a', 'b'], 0, 'w')"]
    nb.write_text(json.dumps({"cells": cells}))
    with pytest.raises(ValueError, match="lesson.ipynb, cell 1, line 1: write Question's"):
        notebook_questions(nb)


def test_across_the_course_no_displayed_position_holds_the_right_answer_in_over_40_percent():
    course = [q for nb in LESSONS for q in notebook_questions(nb)]
    assert len(LESSONS) >= 13 and len(course) >= 60, (len(LESSONS), len(course))
    shown_at = Counter(display_order(q).index(q.answer) for q in course)
    assert max(shown_at.values()) <= 0.4 * len(course), sorted(shown_at.items())

