"""The baselines that compare answers with an NLI model or a cross-encoder (docs/method.md §3.4-§3.8, §3.10).

Each function takes the questions, their drawn samples and the auxiliary model, builds every
question's text pairs exactly as the reference code builds them (§3.0.7), scores all pairs of the
batch in one go (identical pairs once), and records per question each method's score or the reason
it has none, plus what the score was computed from (`clusters`, `similarity`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import density, entropy, graph, sar
from .auxiliary import CrossEncoder, NLIModel
from .generation import Sample

ENTAILMENT, CONTRADICTION, NEUTRAL = 2, 0, 1  # NLIModel.probabilities' columns; argmax classes as the reference's


def _joined(question: str, text: str) -> str:
    """`q.strip() + " " + x.strip()`: SemSimCalculator's and semantic density's text (§3.0.7)."""
    return f"{question.strip()} {text.strip()}"


def semantic_entropy(questions: Sequence[Any], drawn: Sequence[Sequence[Sample]], nli: NLIModel, results: Sequence[Any],
                     record: Callable[..., None], wanted: Sequence[str]) -> None:
    """S.E. (§3.7): argmax NLI classes both ways between `f"{q} {r}"` texts (no strip), greedy clustering."""
    pairs: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for question, samples in zip(questions, drawn):
        texts = [f"{question.question} {sample.text}" for sample in samples]
        spans.append((len(pairs), len(texts)))
        pairs += [(texts[i], texts[j]) for i in range(len(texts)) for j in range(len(texts)) if i != j]
    classes = nli.probabilities(pairs).argmax(axis=1) if pairs else np.zeros(0, dtype=int)
    for (start, k), samples, result in zip(spans, drawn, results):
        matrix = np.full((k, k), ENTAILMENT, dtype=int)
        off_diagonal = ~np.eye(k, dtype=bool)
        matrix[off_diagonal] = classes[start : start + k * (k - 1)]
        ids = entropy.semantic_cluster_ids(matrix)
        result.clusters["se"] = ids
        result.similarity["se"] = matrix.tolist()
        logprobs = [sample.token_logprobs for sample in samples]
        if "se" in wanted:
            record(result, "se", functools.partial(entropy.semantic_entropy, logprobs, ids, length_normalised=True))
        if "discrete_se" in wanted:
            record(result, "discrete_se", functools.partial(entropy.discrete_semantic_entropy, ids))


def self_consistency_family(questions: Sequence[Any], drawn: Sequence[Sequence[Sample]], nli: NLIModel,
                            results: Sequence[Any], record: Callable[..., None], wanted: Sequence[str]) -> None:
    """Self-Con (§3.4, the greedy answer against each sample, both ways) and Deg/EigV/Ecc (§3.5, sample pairs)."""
    pairs: list[tuple[str, str]] = []
    plans: list[tuple[int, int]] = []
    for question, samples in zip(questions, drawn):
        greedy = _joined(question.question, question.answer)
        texts = [_joined(question.question, sample.text) for sample in samples]
        start, k = len(pairs), len(texts)
        pairs += [(greedy, text) for text in texts] + [(text, greedy) for text in texts]
        pairs += [(texts[i], texts[j]) for i in range(k) for j in range(k) if i != j]
        plans.append((start, k))
    entailed = nli.probabilities(pairs)[:, ENTAILMENT] if pairs else np.zeros(0)
    for (start, k), result in zip(plans, results):
        forward, backward = entailed[start : start + k], entailed[start + k : start + 2 * k]
        if "self_con" in wanted:
            record(result, "self_con", functools.partial(graph.self_consistency, (forward + backward) / 2))
        matrix = np.full((k, k), np.nan)
        matrix[~np.eye(k, dtype=bool)] = entailed[start + 2 * k : start + 2 * k + k * (k - 1)]
        try:
            w = graph.similarity_matrix(matrix)
        except ValueError as error:
            for name in {"deg", "eigv", "ecc"} & set(wanted):
                result.missing[name] = str(error)
            continue
        result.similarity["sc"] = w.astype(float).tolist()
        for name, formula in (("deg", graph.degree_uncertainty), ("eigv", graph.eigenvalue_uncertainty),
                              ("ecc", graph.eccentricity_uncertainty)):
            if name in wanted:
                record(result, name, functools.partial(formula, w))


def sar_family(questions: Sequence[Any], drawn: Sequence[Sequence[Sample]], cross_encoder: CrossEncoder,
               decode: Callable[[list[int]], str], results: Sequence[Any], record: Callable[..., None],
               wanted: Sequence[str]) -> None:
    """SAR, token-SAR, sentence-SAR (§3.10): token relevance by removal, sentence similarity both ways."""
    pairs: list[tuple[str, str]] = []
    plans = []
    for question, samples in zip(questions, drawn):
        token_spans = []
        for sample in samples:
            full, removed = sar.token_removal_texts(sample.token_ids, decode)
            token_spans.append((len(pairs), len(removed)))
            pairs += [(_joined(question.question, full), _joined(question.question, text)) for text in removed]
        texts = [_joined(question.question, sample.text) for sample in samples]
        k = len(texts)
        sentence_start = len(pairs)
        pairs += [(texts[i], texts[j]) for i in range(k) for j in range(k) if i != j]
        plans.append((token_spans, sentence_start, k))
    similarity = cross_encoder.scores(pairs) if pairs else np.zeros(0)
    for (token_spans, sentence_start, k), samples, result in zip(plans, drawn, results):
        importances = [list(1.0 - similarity[start : start + count]) for start, count in token_spans]
        ordered = np.full((k, k), np.nan)
        ordered[~np.eye(k, dtype=bool)] = similarity[sentence_start : sentence_start + k * (k - 1)]
        sentence = (ordered + ordered.T) / 2
        np.fill_diagonal(sentence, 1.0)
        result.similarity["sar"] = sentence.tolist()
        logprobs = [sample.token_logprobs for sample in samples]
        formulas = {"sar": functools.partial(sar.sar, logprobs, importances, sentence),
                    "token_sar": functools.partial(sar.token_sar, logprobs, importances),
                    "sentence_sar": functools.partial(sar.sentence_sar, logprobs, sentence)}
        for name in wanted:
            if name in formulas:
                record(result, name, formulas[name])


def semantic_density(questions: Sequence[Any], beams: Sequence[Sequence[Sample]], rescored: Sequence[list[list[float]]],
                     nli: NLIModel, results: Sequence[Any], record: Callable[..., None]) -> None:
    """S.D. (§3.8): the beams' NLI distances to the greedy answer (both ways), weighted by their tau=0.1 p_k."""
    pairs: list[tuple[str, str]] = []
    spans: list[tuple[int, int]] = []
    for question, question_beams in zip(questions, beams):
        greedy = _joined(question.question, question.answer)
        texts = [_joined(question.question, beam.text) for beam in question_beams]
        spans.append((len(pairs), len(texts)))
        pairs += [(greedy, text) for text in texts] + [(text, greedy) for text in texts]
    distributions = nli.probabilities(pairs)[:, [CONTRADICTION, ENTAILMENT, NEUTRAL]] if pairs else np.zeros((0, 3))
    for (start, k), question_beams, logprobs, result in zip(spans, beams, rescored, results):
        forward, backward = distributions[start : start + k], distributions[start + k : start + 2 * k]
        distances = density.semantic_distances(forward, backward)
        texts = [beam.text for beam in question_beams]
        record(result, "sd", functools.partial(density.semantic_density_score, texts, distances, logprobs))
