"""The NLI- and cross-encoder-based baselines end to end on tiny random models (real label maps), against
independent computations written here from docs/method.md §3.4, §3.5, §3.7, §3.8 and §3.10.

Random weights make these scores meaningless as uncertainty; they check the plumbing: which texts are
paired in which direction, the label order, the matrices, and that each formula gets what the reference gives it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from tiny_models import build_chat_tokenizer, save_tiny_cross_encoder, save_tiny_nli_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lm_eval_semgrad.hf.response_tokens import answer_cutter
from lm_eval_semgrad.sampling.auxiliary import CrossEncoder, NLIModel
from lm_eval_semgrad.sampling.diverse_beams import diverse_beams
from lm_eval_semgrad.sampling.scorer import Question, SamplingScorer


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("nli")
    return save_tiny_nli_model(root / "nli"), save_tiny_cross_encoder(root / "ce")


def raw_probabilities(folder, pairs):
    """softmax of the classifier in the model's own label order, pair by pair (no batching, no dedup)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for a, b in pairs:
            logits = model(**tokenizer(a, b, truncation=True, return_tensors="pt")).logits[0].double()
            out.append(torch.softmax(logits, -1).numpy())
    return np.array(out), {i: label.lower() for i, label in model.config.id2label.items()}


@pytest.mark.parametrize("labels", [("CONTRADICTION", "NEUTRAL", "ENTAILMENT"), ("entailment", "Contradiction", "neutral")])
def test_nli_probabilities_follow_the_label_map_in_any_order_and_case(tmp_path, labels):
    folder = save_tiny_nli_model(tmp_path / "m", labels=labels)
    pairs = [("what is water ? water", "what is water ? ice"), ("a cell", "an atom"), ("a cell", "an atom")]
    got = NLIModel.load(str(folder), "cpu", batch_size=2).probabilities(pairs)
    raw, names = raw_probabilities(folder, pairs)
    order = [next(i for i, name in names.items() if name == cls) for cls in ("contradiction", "neutral", "entailment")]
    assert np.allclose(got, raw[:, order], atol=1e-6)


def test_an_nli_model_without_nli_labels_is_refused_listing_its_labels(tmp_path):
    folder = save_tiny_nli_model(tmp_path / "m", labels=("LABEL_0", "LABEL_1", "LABEL_2"))
    with pytest.raises(ValueError, match=r"labels \['label_0', 'label_1', 'label_2'\] cannot be matched"):
        NLIModel.load(str(folder), "cpu")


def test_the_cross_encoder_is_the_sigmoid_of_its_one_label_and_two_labels_are_refused(tmp_path, models):
    _, ce = models
    pairs = [("q a", "q b"), ("q b", "q a")]
    tokenizer = AutoTokenizer.from_pretrained(ce)
    model = AutoModelForSequenceClassification.from_pretrained(ce).eval()
    with torch.no_grad():
        expected = [torch.sigmoid(model(**tokenizer(a, b, return_tensors="pt")).logits[0, 0]).item() for a, b in pairs]
    assert np.allclose(CrossEncoder.load(str(ce), "cpu").scores(pairs), expected, atol=1e-6)
    with pytest.raises(ValueError, match="cross-encoder has 2 labels"):
        CrossEncoder.load(str(save_tiny_cross_encoder(tmp_path / "two", num_labels=2)), "cpu")


def test_identical_pairs_are_scored_once(models):
    nli = NLIModel.load(str(models[0]), "cpu", batch_size=2)
    seen = []
    nli.model.register_forward_hook(lambda module, args, out: seen.append(out.logits.shape[0]))
    nli.probabilities([("a", "b"), ("a", "b"), ("b", "a"), ("a", "b")])
    assert sum(seen) == 2


def test_pairs_go_through_the_model_shortest_first_with_the_values_of_one_pair_at_a_time(models):
    nli = NLIModel.load(str(models[0]), "cpu", batch_size=2)
    shapes = []
    nli.model.register_forward_hook(lambda module, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)),
                                    with_kwargs=True)
    pairs = [("q " + "long " * 30, "a"), ("q", "b"), ("q " + "long " * 20, "c"), ("q", "d b")]
    got = nli.probabilities(pairs)
    lengths = sorted(len(nli.tokenizer(a, b)["input_ids"]) for a, b in pairs)
    assert shapes == [(2, lengths[1]), (2, lengths[3])]  # the two short pairs together, then the two long ones
    assert np.allclose(got, nli_rows(models[0], pairs), atol=1e-6)



def test_a_pair_longer_than_the_model_is_truncated_to_its_positions_when_the_tokenizer_sets_no_limit(models):
    ce = CrossEncoder.load(str(models[1]), "cpu")  # RoBERTa, 600 positions (2 taken by its offset); no model_max_length
    assert ce.tokenizer.model_max_length > 10**6
    widths = []
    ce.model.register_forward_hook(lambda module, args, kwargs, out: widths.append(kwargs["input_ids"].shape[1]),
                                   with_kwargs=True)
    long_answer = "what is water made of ? " * 80  # ~500 tokens a side
    scores = ce.scores([(long_answer, long_answer + "ice"), ("q a", "q b")])
    assert np.all(np.isfinite(scores)) and max(widths) == 598

def test_a_missing_default_model_says_how_to_pass_a_local_path():
    with pytest.raises(ValueError, match="(?s)semgrad_nli=microsoft/deberta-v2-xlarge-mnli: the NLI model could not be "
                                         "loaded .* pass semgrad_nli=/path/to/its/folder"):
        NLIModel.load("microsoft/deberta-v2-xlarge-mnli", "cpu")


def test_a_folder_that_does_not_exist_is_named_as_such(tmp_path):
    with pytest.raises(ValueError, match="semgrad_cross_encoder=.*/nope: no such folder"):
        CrossEncoder.load(str(tmp_path / "nope"), "cpu")


@pytest.mark.parametrize("device, said", [
    ("tpu9", "semgrad_aux_device=tpu9: not a torch device"),
    pytest.param("cuda", "semgrad_aux_device=cuda: this torch sees no CUDA device; pass semgrad_aux_device=cpu",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is there")),
])
def test_a_device_that_is_not_there_is_refused_naming_the_option(models, device, said):
    nli_dir, _ = models
    with pytest.raises(ValueError, match=said):
        NLIModel.load(str(nli_dir), device)


# --------------------------------------------------------------------------- the methods, end to end


def tiny_lm_and_questions():
    tokenizer = build_chat_tokenizer()
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, initializer_range=0.3)).eval()
    lm.generation_config.eos_token_id = tokenizer.eos_token_id
    questions = []
    for text in ("what is water made of ?", "which organ pumps blood ?"):
        prompt = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
        prompt = list(prompt["input_ids"]) if hasattr(prompt, "keys") else list(prompt)
        questions.append(Question(prompt, text, " water", 6, (tokenizer.eos_token,)))
    return tokenizer, lm, questions


def scorer_of(lm, tokenizer, methods, nli_dir, ce_dir):
    return SamplingScorer(
        lm, tokenizer, methods, answer_cutter=answer_cutter(tokenizer, {tokenizer.eos_token_id}),
        decode_raw=lambda ids: tokenizer.decode(ids, skip_special_tokens=False), k=4, seed=11,
        nli=lambda: NLIModel.load(str(nli_dir), "cpu", batch_size=7),
        cross_encoder=lambda: CrossEncoder.load(str(ce_dir), "cpu", batch_size=5),
    )


@pytest.fixture(scope="module")
def scored(models):
    nli_dir, ce_dir = models
    tokenizer, lm, questions = tiny_lm_and_questions()
    methods = ["se", "discrete_se", "self_con", "deg", "eigv", "ecc", "sar", "token_sar", "sentence_sar"]
    return tokenizer, questions, scorer_of(lm, tokenizer, methods, nli_dir, ce_dir).score(questions), nli_dir, ce_dir


def nli_rows(folder, pairs):
    raw, names = raw_probabilities(folder, pairs)
    order = [next(i for i, name in names.items() if name == cls) for cls in ("contradiction", "neutral", "entailment")]
    return raw[:, order]


def test_semantic_entropy_clusters_the_unstripped_texts_with_argmax_classes(scored):
    _, questions, results, nli_dir, _ = scored
    for question, result in zip(questions, results):
        samples = result.samples["se"]
        texts = [f"{question.question} {s['text']}" for s in samples]  # f'{q} {r}', no strip
        k = len(texts)
        classes = np.full((k, k), 2)
        for i in range(k):
            for j in range(k):
                if i != j:
                    classes[i, j] = nli_rows(nli_dir, [(texts[i], texts[j])])[0].argmax()
        assert result.similarity["se"] == classes.tolist()
        ids = [-1] * k
        for i, cluster in ((i, max(ids) + 1) for i in range(k)):
            if ids[i] == -1:
                ids[i] = cluster
                for j in range(i + 1, k):
                    if classes[i, j] * classes[j, i] >= 2:
                        ids[j] = cluster
        assert result.clusters["se"] == ids
        lam = np.array([np.mean(s["token_logprobs"]) for s in samples])
        log_z = math.log(np.exp(lam).sum())
        p = [math.exp(math.log(sum(math.exp(lam[m] - log_z) for m in range(k) if ids[m] == c))) for c in set(ids)]
        assert result.scores["se"] == pytest.approx(-sum(x * math.log(x) for x in p), abs=1e-12)
        sizes = [ids.count(c) / k for c in set(ids)]
        assert result.scores["discrete_se"] == pytest.approx(-sum(x * math.log(x) for x in sizes), abs=1e-12)


def test_self_consistency_and_the_graph_scores(scored):
    _, questions, results, nli_dir, _ = scored
    for question, result in zip(questions, results):
        texts = [f"{question.question.strip()} {s['text'].strip()}" for s in result.samples["sc"]]
        greedy = f"{question.question.strip()} {question.answer.strip()}"
        k = len(texts)
        s = [(nli_rows(nli_dir, [(greedy, t)])[0, 2] + nli_rows(nli_dir, [(t, greedy)])[0, 2]) / 2 for t in texts]
        assert result.scores["self_con"] == pytest.approx(1 - sum(x > 0.5 for x in s) / k)
        e = np.eye(k)
        for i in range(k):
            for j in range(k):
                if i != j:
                    e[i, j] = nli_rows(nli_dir, [(texts[i], texts[j])])[0, 2]
        w = ((e + e.T) / 2).astype(np.float32).astype(np.float64)
        assert np.allclose(result.similarity["sc"], w, atol=1e-6)
        assert result.scores["deg"] == pytest.approx(1 - w.mean(), abs=1e-6)
        d = np.diag(1 / np.sqrt(w.sum(1)))
        laplacian = np.eye(k) - d @ w @ d
        values, vectors = scipy.linalg.eigh(laplacian)
        keep = values < 0.9
        assert result.scores["eigv"] == pytest.approx(float(np.clip(1 - values[keep], 0, None).sum()), abs=1e-4)
        centred = vectors[:, keep] - vectors[:, keep].mean(0)
        assert result.scores["ecc"] == pytest.approx(float(np.linalg.norm(centred, 2)) if keep.any() else 0.0, abs=1e-4)


def test_sar_with_token_removal_relevance_and_sentence_similarity(scored):
    tokenizer, questions, results, _, ce_dir = scored
    ce = AutoModelForSequenceClassification.from_pretrained(ce_dir).eval()
    ce_tok = AutoTokenizer.from_pretrained(ce_dir)

    def similarity(a, b):
        with torch.no_grad():
            return torch.sigmoid(ce(**ce_tok(a, b, truncation=True, return_tensors="pt")).logits[0, 0]).item()

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)

    for question, result in zip(questions, results):
        q = question.question.strip()
        samples = result.samples["sar"]
        taus, sequence = [], []
        for sample in samples:
            ids, lp = sample["token_ids"], np.array(sample["token_logprobs"])
            imp = []
            for t in range(len(ids)):
                removed = (decode(ids[:t]) + " " + decode(ids[t + 1:])) if decode([ids[t]]).startswith(" ") else decode(ids[:t] + ids[t + 1:])
                imp.append(1 - similarity(f"{q} {decode(ids).strip()}", f"{q} {removed.strip()}"))
            imp = np.array(imp)
            taus.append(float((imp / imp.sum() * lp).sum()))
            sequence.append(float(lp.sum()))
        texts = [f"{q} {s['text'].strip()}" for s in samples]
        k = len(texts)
        big_s = np.eye(k)
        for i in range(k):
            for j in range(k):
                if i != j:
                    big_s[i, j] = (similarity(texts[i], texts[j]) + similarity(texts[j], texts[i])) / 2

        def cal(x):
            return float(np.mean([-math.log(math.exp(x[i]) + 1000 * sum(big_s[i, j] * math.exp(x[j]) for j in range(k) if j != i))
                                  for i in range(k)]))

        assert result.scores["token_sar"] == pytest.approx(-np.mean(taus), rel=1e-6)
        assert result.scores["sar"] == pytest.approx(cal(taus), rel=1e-6)
        assert result.scores["sentence_sar"] == pytest.approx(cal(sequence), rel=1e-6)
        assert np.allclose(result.similarity["sar"], big_s, atol=1e-6)


def test_semantic_density_from_the_diverse_beams(models):
    nli_dir, ce_dir = models
    tokenizer, lm, questions = tiny_lm_and_questions()
    results = scorer_of(lm, tokenizer, ["sd"], nli_dir, ce_dir).score(questions)
    checked = 0
    for question, result in zip(questions, results):
        beams = diverse_beams(lm, question.prompt_ids, max_new_tokens=question.max_new_tokens,
                              eos_token_ids=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id)
        texts = [tokenizer.decode(list(beam.token_ids), skip_special_tokens=True) for beam in beams]
        assert [s["text"] for s in result.samples["sd"]] == texts
        greedy = f"{question.question.strip()} {question.answer.strip()}"
        numerator = denominator = 0.0
        for k, text in enumerate(texts):
            if text in texts[:k]:  # unique texts, the first occurrence kept
                continue
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = lm(torch.tensor([question.prompt_ids + ids])).logits[0].double()
            first = len(question.prompt_ids)
            lp = [torch.log_softmax(logits[first - 1 + t] / 0.1, -1)[token].item() for t, token in enumerate(ids)]
            logged = result.samples["sd"][k]  # the ids the log-probs are of, beside them
            assert logged["token_ids"] == ids and logged["token_logprobs"] == pytest.approx(lp, abs=1e-4)
            p = math.exp(np.mean(lp)) if lp else math.nan
            beam_text = f"{question.question.strip()} {text.strip()}"
            (c1, n1, _), (c2, n2, _) = nli_rows(nli_dir, [(greedy, beam_text), (beam_text, greedy)])
            d = ((c1 + 0.5 * n1) + (c2 + 0.5 * n2)) / 2
            numerator += (1 - d) * p
            denominator += p
        expected = 1 - numerator / denominator
        if math.isnan(expected):
            assert "sd" in result.missing
        else:
            assert result.scores["sd"] == pytest.approx(expected, rel=1e-6)
            checked += 1
    assert checked
