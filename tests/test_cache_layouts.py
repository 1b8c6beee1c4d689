"""Models whose cache cannot stand in for the columns before tau.

Recurrent state beside attention keys and values (LFM2's convolutions, Jamba's and Falcon-H1's Mamba layers,
Qwen3-Next's linear attention) summarises every column seen so far: it cannot be cut back to tau, split by row or
run on from a shared prefix and give the whole pass's values. A sliding-window layer past its window has dropped
its oldest keys: generation's cache can no longer be cut back to tau. Every cheap path must notice and take the
whole pass; the values are checked against plain computations written here, and real `lm_eval` runs score such
models end to end.
"""

from __future__ import annotations

import pytest
import torch
from harness_fixtures import lm_eval_command, read_samples, run_cli, write_tasks
from support import assert_close
from test_sampling import full_forward_logprobs
from test_scoring_exact import reference_scores
from tiny_models import HYBRID_ARCHITECTURES, VOCAB, save_tiny_chat_model, save_tiny_nli_model, tiny_hybrid
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_semgrad import score
from lm_eval_semgrad.sampling.diverse_beams import diverse_beams
from lm_eval_semgrad.sampling.teacher_forcing import continuation_logprobs
from lm_eval_semgrad.scoring import score_with_prefix_cache
from lm_eval_semgrad.scoring.prefix_split import holds_only_keys_and_values

PROMPTS = [[5, 6, 7, 8, 9, 10, 11, 12], [13, 14, 15], [16, 17, 18, 19, 20], [21, 22, 23, 24]]
RESPONSES = [[30, 31, 32], [33], [34, 35, 36, 37, 38], [39, 40]]


@pytest.fixture(scope="module", params=HYBRID_ARCHITECTURES)
def model(request):
    return tiny_hybrid(request.param)


def test_their_cache_is_recognised_as_holding_recurrent_state(model):
    with torch.no_grad():
        cache = model(torch.tensor([PROMPTS[0]]), use_cache=True).past_key_values
    assert not holds_only_keys_and_values(cache)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_scores_equal_plain_autograd_on_the_full_loss(model, batch_size):
    got = score(model, PROMPTS, RESPONSES, position=-2, batch_size=batch_size)
    for i, (prompt, response) in enumerate(zip(PROMPTS, RESPONSES)):
        assert_close(got[i], reference_scores(model, prompt, response, -2, None), i)


def test_a_cache_with_recurrent_state_is_refused_as_a_prefix_cache(model):
    with torch.no_grad():
        cache = model(torch.tensor([PROMPTS[0]]), use_cache=True).past_key_values
    with pytest.raises(ValueError, match="cannot stand in for the columns before tau"):
        score_with_prefix_cache(model, [PROMPTS[0]], [RESPONSES[0]], cache, position=-2)


def test_continuations_of_a_shared_prefix_get_the_values_of_a_full_forward(model):
    shared = PROMPTS[0]
    prefixes = [shared, shared, PROMPTS[1], shared]
    continuations = [[30, 31, 32, 33], [34], [35, 36], [37, 38, 39]]
    got = continuation_logprobs(model, prefixes, continuations, temperature=0.1, batch_size=3)
    for prefix, continuation, row in zip(prefixes, continuations, got):
        assert row == pytest.approx(full_forward_logprobs(model, prefix, continuation, 0.1), rel=1e-5, abs=1e-5)


def test_diverse_beams_equal_group_beam_search_written_with_full_forwards(model):
    """Four groups of one beam, two tokens: each group's pick penalised by the earlier groups' picks at that step;
    the beams' second tokens come from the prompt's cache expanded to the beams, here from uncached forwards."""
    penalty = 1.0

    def next_log_probs(tokens: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return torch.log_softmax(model(torch.tensor([tokens]), use_cache=False).logits[0, -1].float(), -1)

    first = next_log_probs(PROMPTS[0])
    picks, counts = [], torch.zeros(VOCAB)
    for _ in range(4):
        scores = first - penalty * counts
        token = int(scores.argmax())
        picks.append(([token], float(scores[token])))
        counts[token] += 1
    counts = torch.zeros(VOCAB)
    expected = []
    for tokens, total in picks:
        scores = next_log_probs(PROMPTS[0] + tokens) + total - penalty * counts
        token = int(scores.argmax())
        counts[token] += 1
        expected.append((float(scores[token]) / 2, (*tokens, token)))  # length penalty 1: the sum over 2 tokens
    eos = min(set(range(VOCAB)) - {token for _, tokens in expected for token in tokens})  # no beam ends early here
    beams = diverse_beams(model, PROMPTS[0], num_beams=4, num_beam_groups=4, diversity_penalty=penalty,
                          max_new_tokens=2, eos_token_ids=[eos], pad_token_id=eos)
    expected.sort(key=lambda entry: -entry[0])
    assert [beam.token_ids for beam in beams] == [tokens for _, tokens in expected]
    assert [beam.score for beam in beams] == pytest.approx([score for score, _ in expected], abs=1e-4)


@pytest.mark.parametrize("architecture", ["lfm2", "mistral_sliding"])
def test_lm_eval_scores_the_answers_of_its_own_generation(tmp_path, architecture):
    """The default run (the grad pass offered generation's cache), with M.I. and S.D. beside it."""
    model_dir = save_tiny_chat_model(tmp_path / "model", architecture=architecture)
    nli_dir = save_tiny_nli_model(tmp_path / "nli")
    tasks_dir = write_tasks(tmp_path / "tasks")
    run_cli([
        *lm_eval_command(), "--model", "semgrad-hf", "--model_args",
        f"pretrained={model_dir},semgrad_position=-3,semgrad_methods=semgrad:g_nll:mi:sd,semgrad_samples=3,"
        f"semgrad_nli={nli_dir}", "--tasks", "qa_parity", "--include_path", str(tasks_dir), "--limit", "3",
        "--batch_size", "3", "--apply_chat_template", "--log_samples", "--output_path", str(tmp_path / "out"),
    ], cwd=tmp_path)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = read_samples(tmp_path / "out", "qa_parity")
    assert len(rows) == 3
    for row in rows:
        info = row["uncertainty"]
        prompt_ids = tokenizer(row["arguments"]["gen_args_0"]["arg_0"], add_special_tokens=False).input_ids
        assert len(prompt_ids) == info["prompt_len"]
        expected = reference_scores(model, prompt_ids, info["response_ids"], -3, None)
        assert info["scores"]["semgrad"] == pytest.approx(expected["semgrad"], rel=1e-4)
        assert info["scores"]["g_nll"] == pytest.approx(expected["g_nll"], rel=1e-4)
        assert all(name in info["scores"] or name in info.get("missing", {}) for name in ("mi", "sd"))
        assert len(info["samples"]["sd"]) == 10 and len(info["samples"]["mi"]) == 3


def test_a_model_whose_hidden_states_are_not_its_layers_inputs_is_refused():
    """Mamba-1 returns each layer's output as hidden state i: the semantic layers would be other states."""
    from transformers import FalconMambaConfig, FalconMambaForCausalLM

    model = FalconMambaForCausalLM(FalconMambaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=4, state_size=4))
    with pytest.raises(ValueError, match=r"output_hidden_states\[0\] is not the input of its decoder layer 0"):
        score(model, PROMPTS, RESPONSES, position=-2)


def test_a_sliding_window_shorter_than_the_prompt_gives_the_plain_scores():
    from transformers import MistralConfig, MistralForCausalLM

    torch.manual_seed(6)
    model = MistralForCausalLM(MistralConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.3, sliding_window=3,
    )).eval()
    got = score(model, PROMPTS, RESPONSES, position=-2, batch_size=4)
    for i, (prompt, response) in enumerate(zip(PROMPTS, RESPONSES)):
        assert_close(got[i], reference_scores(model, prompt, response, -2, None), i)


def tiny_longrope() -> torch.nn.Module:
    """Phi-3's `longrope`: past 14 positions (its original context here) every column is rotated with the long factors."""
    from transformers import Phi3Config, Phi3ForCausalLM

    torch.manual_seed(7)
    return Phi3ForCausalLM(Phi3Config(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=256, original_max_position_embeddings=14, pad_token_id=0, initializer_range=0.5,
        rope_scaling={"rope_type": "longrope", "short_factor": [1.0] * 4, "long_factor": [8.0] * 4},
    )).eval()


def test_rotary_scaling_that_depends_on_the_length_gets_whole_passes_past_the_original_context():
    model = tiny_longrope()
    prompts, responses = [PROMPTS[0] + PROMPTS[2]], [RESPONSES[2]]  # 13 prompt columns + 5: past 14
    got = score(model, prompts, responses, position=-2, batch_size=1)
    assert_close(got[0], reference_scores(model, prompts[0], responses[0], -2, None), 0)
    prefixes, continuations = [prompts[0]] * 2, [[30, 31, 32, 33], [34, 35]]
    for continuation, row in zip(continuations, continuation_logprobs(model, prefixes, continuations, batch_size=2)):
        assert row == pytest.approx(full_forward_logprobs(model, prompts[0], continuation), rel=1e-5, abs=1e-5)


def test_once_a_prefix_cache_shows_recurrent_state_later_batches_skip_the_prefix_pass():
    model = tiny_hybrid("lfm2", seed=8)  # a model of its own: which models were seen is remembered per model
    passes = []
    hook = model.get_input_embeddings().register_forward_hook(lambda module, args, out: passes.append(args[0].shape[1]))
    try:
        score(model, PROMPTS, RESPONSES, position=-2, batch_size=1, scores=("semgrad",))
    finally:
        hook.remove()
    # the probe of the hidden-state layout (2 columns), the first batch's prefix, then one whole pass per answer
    whole = sorted((len(p) + len(r) for p, r in zip(PROMPTS, RESPONSES)), reverse=True)
    assert passes == [2, len(PROMPTS[0]) - 2, *whole]


def tiny_gemma3n() -> torch.nn.Module:
    from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

    torch.manual_seed(9)
    return Gemma3nForCausalLM(Gemma3nTextConfig(
        vocab_size=VOCAB, vocab_size_per_layer_input=VOCAB, hidden_size=32, intermediate_size=64, num_attention_heads=4,
        num_key_value_heads=2, num_hidden_layers=4, head_dim=8, hidden_size_per_layer_input=8, laurel_rank=4,
        num_kv_shared_layers=2, layer_types=["sliding_attention", "full_attention"] * 2, activation_sparsity_pattern=[0.0] * 4,
    )).eval()


def test_stacked_hidden_states_and_encoder_decoders_are_refused_before_any_scoring():
    from transformers import T5Config, T5ForConditionalGeneration

    with pytest.raises(ValueError, match=r"takes hidden states of shape \(4, 1, 2, 32\), not \(batch, columns, width\)"):
        score(tiny_gemma3n(), PROMPTS, RESPONSES, position=-2)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4))
    with pytest.raises(ValueError, match="is an encoder-decoder model; SemGrad scores decoder-only causal LMs"):
        score(t5, PROMPTS, RESPONSES, position=-2)


def test_lm_eval_refuses_stacked_hidden_states_before_generating(tmp_path):
    import subprocess

    from harness_fixtures import offline_env
    from tiny_models import build_chat_tokenizer
    from transformers import Gemma3nForCausalLM, Gemma3nTextConfig

    tokenizer = build_chat_tokenizer()
    Gemma3nForCausalLM(Gemma3nTextConfig(
        vocab_size=len(tokenizer), vocab_size_per_layer_input=len(tokenizer), hidden_size=32, intermediate_size=64,
        num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=4, head_dim=8, hidden_size_per_layer_input=8,
        laurel_rank=4, num_kv_shared_layers=2, layer_types=["sliding_attention", "full_attention"] * 2,
        activation_sparsity_pattern=[0.0] * 4, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    tasks_dir = write_tasks(tmp_path / "tasks")
    result = subprocess.run([
        *lm_eval_command(), "--model", "semgrad-hf", "--model_args", f"pretrained={tmp_path / 'model'}",
        "--tasks", "qa_parity", "--include_path", str(tasks_dir), "--limit", "2", "--output_path", str(tmp_path / "out"),
    ], cwd=tmp_path, env=offline_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "not (batch, columns, width)" in result.stderr and "Running generate_until" not in result.stderr
