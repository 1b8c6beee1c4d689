"""The method registry is the one list of methods: every other list is derived from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lm_eval_semgrad import methods
from lm_eval_semgrad.hf.options import METHODS, computed_scores, pop_settings
from lm_eval_semgrad.scoring import SCORE_KEYS


def test_every_method_is_oriented_the_same_way_and_declares_known_needs():
    for name in methods.available():
        method = methods.get(name)
        assert method.direction == "higher = less confident"
        assert method.needs and method.needs <= set(methods.NEEDS), name


def test_the_lists_of_the_scorer_the_options_and_the_report_come_from_the_registry():
    assert SCORE_KEYS == methods.single_pass_methods()
    assert METHODS == methods.available()
    assert methods.ordered(["response_len", "zz_new", "semgrad", "paragrad"]) == ["semgrad", "paragrad", "response_len", "zz_new"]
    assert computed_scores(["paragrad"]) == ("semgrad", "paragrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len")
    with pytest.raises(ValueError, match="choose from " + ", ".join(methods.available())):
        pop_settings({"semgrad_methods": "semgrad:nope"})


def test_unknown_method_and_need_are_refused():
    with pytest.raises(ValueError, match="unknown uncertainty method 'nope'"):
        methods.get("nope")
    with pytest.raises(ValueError, match="unknown needs"):
        methods._method("x", "y", "a_gpu")


def test_the_readme_table_is_the_registry_s():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    table = re.search(r"<!-- methods:begin -->\n(.*?)\n<!-- methods:end -->", readme, re.S)
    assert table, "README.md has no <!-- methods:begin --> ... <!-- methods:end --> block"
    assert table.group(1) == methods.markdown_table(), "regenerate it: python -m lm_eval_semgrad.methods"
