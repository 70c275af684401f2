"The shared self-check quiz: questions refuse bad definitions, the widget marks answers and never crashes on blanks."
import ipywidgets as widgets
import pytest

from htc_dl.quiz import Question, check_answer, quiz


def three_questions():
    return [Question("2 + 2?", ["3", "4", "5"], 1, "Two and two make four."),
            Question("Batch axis?", ["first", "last"], 0, "PyTorch puts the batch first."),
            Question("Rank of a stack of images?", ["1", "2", "3"], 2, "Image, row, column: 3 axes.")]


def test_question_with_one_choice_is_refused_with_the_count():
    with pytest.raises(ValueError, match="at least 2 choices, got 1"):
        Question("p", ["only"], 0, "w")


def test_question_whose_answer_index_points_at_no_choice_is_refused_with_the_valid_range():
    with pytest.raises(ValueError, match=r"answer index 3 is out of range for 3 choices; use 0 to 2"):
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
    assert not ok and "you chose “5”" in msg and "the answer is “4”" in msg and msg.endswith("Two and two make four.")
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
    assert "Wrong" in box.feedback[1].value and "PyTorch puts the batch first." in box.feedback[1].value
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
