"""The sampling baselines: sampled answers, their warped log-probs, and each method against an independent computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from rouge_score import rouge_scorer
from tiny_models import build_chat_tokenizer, tiny_gemma2_softcapped, tiny_llama, tiny_qwen2, tiny_qwen3_tied
from transformers import LlamaConfig, LlamaForCausalLM, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from lm_eval_semgrad.hf.options import pop_settings
from lm_eval_semgrad.sampling.generation import draw_samples
from lm_eval_semgrad.sampling.p_true import p_true_prompt
from lm_eval_semgrad.sampling.scorer import Question, SamplingScorer
from lm_eval_semgrad.sampling.sets import SAMPLE_SETS, sample_set
from lm_eval_semgrad.sampling.teacher_forcing import continuation_logprobs

EOS = 3
PROMPTS = [[5, 6, 7, 8, 9], [10, 11, 12], [13, 14, 15, 16, 17, 18]]


def cut_at_eos(ids: list[int]) -> tuple[list[int], str]:
    end = next((i + 1 for i, t in enumerate(ids) if t == EOS), len(ids))
    return ids[:end], " ".join(map(str, ids[:end]))


@pytest.fixture(scope="module")
def model():
    model = tiny_llama()
    model.generation_config.eos_token_id = EOS
    with torch.no_grad():  # make EOS a likely token, so that answers of several lengths end with it
        model.lm_head.weight[EOS] = model.lm_head.weight[EOS] * 3
    return model


def draw(model, name, prompts=PROMPTS, seed=1, rows_per_call=7, k=None):
    return draw_samples(model, prompts, sample_set(name, k), seed=seed, max_new_tokens=10, cut=cut_at_eos,
                        pad_token_id=0, rows_per_call=rows_per_call)


def hf_warped_logprobs(model, prompt, tokens, config) -> torch.Tensor:
    """Teacher-forced log-probs of `tokens` under transformers' own sampling warpers (temperature, top-k, top-p)."""
    with torch.no_grad():
        logits = model(torch.tensor([prompt + tokens])).logits[0, len(prompt) - 1 : len(prompt) - 1 + len(tokens)].float()
    warpers = [TemperatureLogitsWarper(config.temperature)] if config.temperature != 1.0 else []
    warpers.append(TopKLogitsWarper(config.top_k))
    if config.top_p < 1.0:
        warpers.append(TopPLogitsWarper(config.top_p))
    for warper in warpers:
        logits = warper(None, logits)
    return torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None])[:, 0]


@pytest.mark.parametrize("name", sorted(SAMPLE_SETS))
def test_sampled_token_logprobs_are_those_of_the_warped_distribution_eos_included(model, name):
    config = sample_set(name)
    ended_with_eos = 0
    for prompt, samples in zip(PROMPTS, draw(model, name)):
        assert len(samples) == config.k
        for sample in samples:
            assert len(sample.token_logprobs) == len(sample.token_ids) and sample.token_ids
            ended_with_eos += sample.token_ids[-1] == EOS
            expected = hf_warped_logprobs(model, prompt, sample.token_ids, config)
            assert torch.allclose(torch.tensor(sample.token_logprobs), expected, atol=1e-4), (name, sample.token_ids)
    assert ended_with_eos > 0


def test_samples_do_not_depend_on_batching_but_on_the_seed(model):
    together = draw(model, "se", rows_per_call=30)
    alone = draw(model, "se", prompts=PROMPTS[1:2], rows_per_call=1)
    assert [s.token_ids for s in together[1]] == [s.token_ids for s in alone[0]]
    other_seed = draw(model, "se", seed=2)
    assert [s.token_ids for s in other_seed[1]] != [s.token_ids for s in together[1]]
    assert [s.token_ids for s in draw(model, "se")[0]] == [s.token_ids for s in together[0]]


def test_inside_embedding_is_the_middle_layer_state_at_the_position_that_emitted_the_last_token(model):
    (samples,) = draw(model, "inside", prompts=PROMPTS[:1])
    prompt, index = PROMPTS[0], model.config.num_hidden_layers // 2
    for sample in samples:
        ids = torch.tensor([prompt + sample.token_ids])
        with torch.no_grad():
            hidden = model(ids, output_hidden_states=True).hidden_states[index][0]
        column = len(prompt) + len(sample.token_ids) - 2  # the token before the last one (EOS) was fed there
        assert np.allclose(sample.embedding, hidden[column].double().numpy(), atol=1e-4)


# --------------------------------------------------------------------------- the methods from their inputs


class WordTokenizer:
    """Whitespace 'tokenizer' over a fixed vocabulary, enough for P(True) and M.I. prompts on the tiny model."""

    eos_token_id, pad_token_id, chat_template = EOS, 0, None

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size

    def _id(self, word: str) -> int:
        return 4 + sum(map(ord, word)) % (self.vocab_size - 4)

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": ([1] if add_special_tokens else []) + [self._id(w) for w in text.split()]}

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        return " ".join(str(i) for i in ids)


@pytest.fixture(scope="module")
def scored(model):
    tokenizer = WordTokenizer(model.config.vocab_size)
    scorer = SamplingScorer(
        model, tokenizer, ["ln_pe", "pe", "lex_sim", "inside", "mi", "p_true"], answer_cutter=lambda stops: cut_at_eos,
        decode_raw=lambda ids: " ".join(map(str, ids)), k=4, seed=3, rows_per_call=5,
    )
    questions = [Question(p, f"what is {i} ?", "an answer", 10) for i, p in enumerate(PROMPTS)]
    return tokenizer, questions, scorer.score(questions)


def test_predictive_entropies_from_the_logged_samples(scored):
    _, _, results = scored
    for result in results:
        logprobs = [s["token_logprobs"] for s in result.samples["se"]]
        assert result.scores["ln_pe"] == pytest.approx(-sum(sum(lp) / len(lp) for lp in logprobs) / len(logprobs), rel=1e-12)
        assert result.scores["pe"] == pytest.approx(-sum(sum(lp) for lp in logprobs) / len(logprobs), rel=1e-12)
        assert result.sampling["se"] == {"k": 4, "temperature": 1.0, "top_p": 0.9, "top_k": 50, "max_new_tokens": 10,
                                         "seed": 3}


def test_lexical_similarity_from_the_logged_samples(scored):
    _, _, results = scored
    rouge = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    for result in results:
        texts = [s["text"] for s in result.samples["se"]]
        pairs = [(a, b) for i, a in enumerate(texts) for b in texts[i + 1 :]]
        expected = 1 - np.mean([rouge.score(b, a)["rougeL"].fmeasure for a, b in pairs])
        assert result.scores["lex_sim"] == pytest.approx(expected, abs=1e-12)


def test_inside_from_an_independent_forward_pass(model, scored):
    _, questions, results = scored
    index = model.config.num_hidden_layers // 2
    for question, result in zip(questions, results):
        rows = []
        for sample in result.samples["inside"]:
            ids = torch.tensor([question.prompt_ids + sample["token_ids"]])
            with torch.no_grad():
                hidden = model(ids, output_hidden_states=True).hidden_states[index][0]
            rows.append(hidden[len(question.prompt_ids) + len(sample["token_ids"]) - 2].double().numpy())
        z = np.array(rows)
        centred = z - z.mean(axis=1, keepdims=True)
        covariance = centred @ centred.T / (z.shape[1] - 1) + 0.001 * np.eye(len(rows))
        assert result.scores["inside"] == pytest.approx(np.linalg.slogdet(covariance)[1] / len(rows), rel=1e-6)


def test_p_true_from_an_independent_forward_pass(model, scored):
    tokenizer, questions, results = scored
    for question, result in zip(questions, results):
        ids = tokenizer(p_true_prompt(question.question, question.answer) + " True")["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -2].float()
        assert result.scores["p_true"] == pytest.approx(-torch.log_softmax(logits, -1)[ids[-1]].item(), rel=1e-5)


def squad_f1(a: str, b: str) -> float:
    ta, tb = a.lower().split(), b.lower().split()
    common = sum(min(ta.count(w), tb.count(w)) for w in set(ta))
    if not common:
        return 0.0
    precision, recall = common / len(ta), common / len(tb)
    return 2 * precision * recall / (precision + recall)


def test_mutual_information_from_the_logged_samples_and_independent_mu2_passes(model, scored):
    """The tiny model's answers are digit strings: SQuAD normalisation leaves them as they are."""
    tokenizer, questions, results = scored
    for question, result in zip(questions, results):
        texts = [s["text"] for s in result.samples["mi"]]
        probability = {t: math.exp(sum(s["token_logprobs"])) for t, s in zip(texts, result.samples["mi"])}
        clusters: dict[str, list[str]] = {}
        for text in dict.fromkeys(texts):
            home = next((rep for rep in clusters if squad_f1(text, rep) > 0.25), text)
            clusters.setdefault(home, []).append(text)
        total = sum(probability.values())
        mu1 = np.array([sum(probability[m] for m in members) / total for members in clusters.values()])
        reps = list(clusters)
        if len(reps) == 1:
            assert result.scores["mi"] == 0.0
            continue
        raw = np.zeros((len(reps), len(reps)))
        for i, a1 in enumerate(reps):
            prompt = (f"Consider the following question: Q: {question.question}\nOne answer to question Q is "
                      f"{a1[:-1] if a1.endswith('.') else a1}.\nPlease directly provide an answer to the following "
                      f"question with one or few words:\n{question.question}")
            prefix = tokenizer(prompt)["input_ids"]
            for j, a2 in enumerate(reps):
                tokens = tokenizer(a2, add_special_tokens=False)["input_ids"]
                with torch.no_grad():
                    logits = model(torch.tensor([prefix + tokens])).logits[0, len(prefix) - 1 : -1].float()
                raw[i, j] = math.exp(torch.log_softmax(logits, -1).gather(-1, torch.tensor(tokens)[:, None]).sum().item())
        mu2 = raw / raw.sum(1, keepdims=True)
        joint = mu1[:, None] * mu2
        marginal = (mu1[:, None] * mu2).sum(0)
        expected = float((joint * np.log(np.maximum(joint / (mu1[:, None] * marginal[None, :]), 1e-100))).sum())
        assert result.scores["mi"] == pytest.approx(expected, rel=1e-5, abs=1e-12)



class WithoutLogitsToKeep(torch.nn.Module):
    """A causal LM whose forward has no `logits_to_keep`: every column's logits are computed."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, input_ids, attention_mask, use_cache):
        return self.inner(input_ids=input_ids, attention_mask=attention_mask, use_cache=use_cache)


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_continuation_logprobs_equal_one_full_forward_per_pair(model, temperature):
    prefixes = [[5, 6, 7, 8, 9, 10, 11, 12], [13, 14], [15, 16, 17, 18, 19], [20, 21, 22]]
    continuations = [[30, 31], [32, 33, 34, 35, 36, 37], [38], [39, 40]]
    expected = []
    for prefix, continuation in zip(prefixes, continuations):
        with torch.no_grad():
            logits = model(torch.tensor([prefix + continuation])).logits[0, len(prefix) - 1 : -1].float()
        expected.append(torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(continuation)[:, None])[:, 0])
    columns = []
    hook = model.lm_head.register_forward_hook(lambda module, args, out: columns.append(args[0].shape[1]))
    try:
        fast = continuation_logprobs(model, prefixes, continuations, temperature=temperature, batch_size=3)
        full = continuation_logprobs(WithoutLogitsToKeep(model), prefixes, continuations, temperature=temperature,
                                     batch_size=3)
    finally:
        hook.remove()
    for got in (fast, full):
        for row, want in zip(got, expected):
            assert row == pytest.approx(want.tolist(), abs=1e-5)
    # the longest rows first: lengths 10, 8, 6 (prefixes 8, 2, 5) in one batch, 5 (prefix 3) in the other; the
    # projection runs from each batch's earliest continuation on, or over every column without logits_to_keep
    assert columns == [10 - 2 + 1, 5 - 3 + 1, 10, 5]



def full_forward_logprobs(model, prefix, continuation, temperature=1.0):
    """log_softmax(logits / T) at each continuation token, from one uncached forward over prefix + continuation."""
    with torch.no_grad():
        logits = model(torch.tensor([prefix + continuation]), use_cache=False).logits[0, len(prefix) - 1 : -1].float()
    return torch.log_softmax(logits / temperature, -1).gather(-1, torch.tensor(continuation)[:, None])[:, 0].tolist()


@pytest.mark.parametrize("build", [tiny_llama, tiny_qwen2, tiny_qwen3_tied, tiny_gemma2_softcapped])
def test_a_shared_prefix_runs_once_and_its_continuations_get_the_values_of_a_full_forward(build):
    """M.I.'s layout (every cluster's answer after the same prompt) beside pairs with a prefix of their own."""
    model = build()
    shared, other = [5, 6, 7, 8, 9, 10, 11], [12, 13, 14]
    prefixes = [shared, other, shared, shared, shared, [15, 16]]
    continuations = [[30, 31, 32], [33], [34], [35, 36, 37, 38, 39], [40, 41], [42, 43]]
    calls = []
    hook = model.get_input_embeddings().register_forward_hook(lambda module, args, out: calls.append(tuple(args[0].shape)))
    try:
        got = continuation_logprobs(model, prefixes, continuations, temperature=0.1, batch_size=3)
    finally:
        hook.remove()
    without_cache = continuation_logprobs(WithoutLogitsToKeep(model), prefixes, continuations, temperature=0.1,
                                          batch_size=3)  # a forward that takes no KV cache: every pair whole
    for prefix, continuation, row, whole in zip(prefixes, continuations, got, without_cache):
        expected = full_forward_logprobs(model, prefix, continuation, 0.1)
        assert row == pytest.approx(expected, rel=1e-5, abs=1e-5) and whole == pytest.approx(expected, rel=1e-5, abs=1e-5)
    # the shared prefix once; its continuations of 5, 3 and 2 tokens (all but their last token) together, the one of
    # 1 token from the prefix's last logits alone; then the two pairs with a prefix of their own, whole
    assert calls == [(1, 7), (3, 4), (2, 4)]


# --------------------------------------------------------------------------- missing scores, bad settings


def test_missing_scores_carry_their_reason(model):
    tokenizer = WordTokenizer(model.config.vocab_size)
    scorer = SamplingScorer(model, tokenizer, ["p_true", "mi"], answer_cutter=lambda stops: lambda ids: ([EOS], ""),
                            decode_raw=str, k=3, seed=0)
    long_question = "word " * 300  # the tiny model has 256 positions
    (result,) = scorer.score([Question(PROMPTS[0], long_question, "x", 4)])
    assert "more than the model's 256 positions" in result.missing["p_true"]
    assert result.scores["mi"] == 0.0  # every sample is the empty answer: one cluster
    assert "p_true" not in result.scores


def test_an_empty_answer_among_several_clusters_makes_mi_missing_not_zero(model):
    tokenizer = WordTokenizer(model.config.vocab_size)
    answers = iter([([EOS], ""), ([7, EOS], "7"), ([8, EOS], "8")] * 3)
    scorer = SamplingScorer(model, tokenizer, ["mi"], answer_cutter=lambda stops: lambda ids: next(answers),
                            decode_raw=str, k=3, seed=0)
    (result,) = scorer.score([Question(PROMPTS[0], "q", "x", 4)])
    assert "mi" not in result.scores and "empty answer is a cluster representative" in result.missing["mi"]


def test_sample_count_and_seed_options():
    settings = pop_settings({"semgrad_methods": "semgrad:ln_pe", "semgrad_samples": 4.0, "semgrad_sample_seed": "7"})
    assert (settings.samples, settings.sample_seed) == (4, 7)
    with pytest.raises(ValueError, match="semgrad_samples=1: ln_pe compare several sampled answers"):
        pop_settings({"semgrad_methods": "ln_pe", "semgrad_samples": 1})
    with pytest.raises(ValueError, match="semgrad_sample_seed=-1.0 is not valid"):
        pop_settings({"semgrad_sample_seed": -1.0})
    assert pop_settings({"semgrad_methods": "semgrad", "semgrad_samples": 1}).samples == 1  # no sampling method


def test_paper_and_all_expand_to_what_can_run_and_say_what_is_left_out(tmp_path):
    """No NLI model or cross-encoder is given or cached here: their methods are left out, with the arg to pass."""
    paper = pop_settings({"semgrad_methods": "paper"})
    assert paper.methods == ("ln_pe", "g_nll", "exgrad", "paragrad", "semgrad", "hybridgrad", "p_true", "inside", "mi")
    left_out = dict(paper.left_out)
    assert set(left_out) == {"sar", "se", "self_con", "deg", "sd"}
    assert "semgrad_cross_encoder=PATH_OR_ID" in left_out["sar"] and "semgrad_nli=PATH_OR_ID" in left_out["se"]
    everything = pop_settings({"semgrad_methods": "all"})
    assert {"lex_sim", "response_len", "mi"} <= set(everything.methods) and "se" not in everything.methods
    given = pop_settings({"semgrad_methods": "paper", "semgrad_nli": str(tmp_path), "semgrad_cross_encoder": str(tmp_path)})
    assert given.methods == ("ln_pe", "g_nll", "sar", "se", "exgrad", "paragrad", "semgrad", "hybridgrad", "p_true",
                             "self_con", "deg", "inside", "sd", "mi") and not given.left_out


def test_temperature_must_be_positive():
    from lm_eval_semgrad.sampling.generation import warp

    with pytest.raises(ValueError, match="temperature must be > 0"):
        warp(torch.zeros(1, 5), 0.0, 0, 1.0)


def test_a_chat_model_samples_the_stop_token_of_its_template():
    """A real tokenizer: samples end at <|im_end|>, which is kept, as in the greedy answer."""
    tokenizer = build_chat_tokenizer()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1)).eval()
    eos = tokenizer.eos_token_id
    with torch.no_grad():
        model.lm_head.bias = None
        model.lm_head.weight[eos] *= 20

    def cut(ids):
        end = next((i + 1 for i, t in enumerate(ids) if t == eos), len(ids))
        return ids[:end], tokenizer.decode(ids[:end], skip_special_tokens=True)

    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "what is water ?"}], add_generation_prompt=True)
    prompt = list(prompt["input_ids"]) if hasattr(prompt, "keys") else list(prompt)
    (samples,) = draw_samples(model, [prompt], sample_set("sar"), seed=0, max_new_tokens=8, cut=cut,
                              pad_token_id=tokenizer.pad_token_id)
    assert any(s.token_ids[-1] == eos for s in samples)
    assert all(eos not in s.token_ids[:-1] for s in samples)
