"""Model-arg parsing, answer-token cutting and chat-template positions of `semgrad-hf`."""

from __future__ import annotations

import math

import pytest
from tiny_models import build_chat_tokenizer

from lm_eval_semgrad.hf.chat_positions import chat_template_position
from lm_eval_semgrad.hf.options import DEFAULT_METHODS, pop_settings
from lm_eval_semgrad.hf.response_tokens import answer_token_ids


def test_settings_are_popped_and_parsed():
    args = {
        "pretrained": "x", "semgrad_position": -4, "semgrad_layers": "16-31", "semgrad_batch_size": 2,
        "semgrad_methods": "semgrad:exgrad", "semgrad_correctness": "contains:0.7",
    }
    settings = pop_settings(args)
    assert args == {"pretrained": "x"}
    assert settings.position == -4 and settings.layers == tuple(range(16, 32)) and settings.batch_size == 2
    assert settings.methods == ("semgrad", "exgrad")
    assert (settings.correctness_metric, settings.correctness_threshold) == ("contains", 0.7)


def test_defaults():
    settings = pop_settings({"pretrained": "x"})
    assert settings.position is None and settings.layers is None and settings.methods == DEFAULT_METHODS
    assert settings.correctness_metric is None and settings.correctness_threshold == 0.5
    assert pop_settings({"semgrad_position": "auto", "semgrad_layers": "upper_half"}).position == "auto"
    assert pop_settings({"semgrad_layers": "12:14:16"}).layers == (12, 14, 16)
    assert settings.memory == "generation"
    assert pop_settings({"semgrad_memory": "unbounded"}).memory == "unbounded"
    assert pop_settings({"semgrad_memory": "512"}).memory == 512.0


@pytest.mark.parametrize(
    "args, message",
    [
        ({"semgrad_postion": -1}, "unknown semgrad-hf model arg(s) semgrad_postion; valid ones are"),
        ({"semgrad_position": 0}, "semgrad_position=0 is not valid"),
        ({"semgrad_position": "last"}, "semgrad_position='last' is not valid"),
        ({"semgrad_layers": "31-16"}, "semgrad_layers='31-16' is not valid"),
        ({"semgrad_batch_size": 0}, "semgrad_batch_size=0 is not valid"),
        ({"semgrad_methods": "semgrad:saar"}, "unknown method(s) ['saar']"),
        ({"semgrad_correctness": "acc:high"}, "the threshold after ':' must be a number"),
        ({"semgrad_memory": "lots"}, "semgrad_memory='lots' is not valid"),
        ({"semgrad_memory": 0}, "semgrad_memory=0 is not valid"),
    ],
)
def test_bad_settings_are_named(args, message):
    with pytest.raises(ValueError) as error:
        pop_settings(dict(args))
    assert message in str(error.value)
    if "unknown semgrad-hf" in message:
        assert "semgrad_position" in str(error.value) and "semgrad_methods" in str(error.value)


def _decode(tokens):
    return "".join(chr(96 + t) if t < 90 else f"<{t}>" for t in tokens)


@pytest.mark.parametrize(
    "generated, stops, eos, expected",
    [
        ([1, 2, 3, 99, 0, 0], ["<99>"], {99}, [1, 2, 3, 99]),  # ended by EOS: keep it, drop padding
        ([1, 2, 3, 4, 5], ["c"], {99}, [1, 2, 3]),  # stop string: keep the token completing it
        ([1, 2, 3, 4, 5], ["cd"], {99}, [1, 2, 3, 4]),  # stop string across two tokens
        ([1, 2, 3, 4, 5], ["z"], {99}, [1, 2, 3, 4, 5]),  # ran to max_gen_toks
        ([3, 99, 0], ["c"], {99}, [3]),  # stop string before EOS wins
        ([99, 0, 0], ["<99>"], {99}, [99]),  # immediate end of turn: one token
        ([1, 2, 3], [], set(), [1, 2, 3]),
    ],
)
def test_answer_token_ids(generated, stops, eos, expected):
    assert answer_token_ids(generated, stops, eos, _decode) == expected


def test_chat_template_position_of_chatml_and_unknown_templates():
    tokenizer = build_chat_tokenizer()
    assert chat_template_position(tokenizer) == -3  # <|im_start|> assistant \n
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    assert chat_template_position(tokenizer) is None
    tokenizer.chat_template = None
    assert chat_template_position(tokenizer) is None


def test_unknown_model_arg_fails_before_loading_the_model():
    from lm_eval_semgrad.harness.model import SemGradHFLM

    with pytest.raises(ValueError, match="unknown semgrad-hf model arg"):
        SemGradHFLM.create_from_arg_string("pretrained=/nonexistent,semgrad_bogus=1")


def test_auto_position_without_known_template_says_how_to_fix(tmp_path):
    from tiny_models import save_tiny_chat_model

    from lm_eval_semgrad.harness.model import SemGradHFLM

    model_dir = save_tiny_chat_model(tmp_path / "m")
    config = (model_dir / "tokenizer_config.json")
    import json

    data = json.loads(config.read_text())
    data.pop("chat_template", None)
    config.write_text(json.dumps(data))
    for template_file in model_dir.glob("chat_template*"):
        template_file.unlink()
    with pytest.raises(ValueError, match="Pass a number .* or run `lm-eval-semgrad calibrate`"):
        SemGradHFLM(pretrained=str(model_dir), device="cpu", semgrad_position="auto")
    model = SemGradHFLM(pretrained=str(model_dir), device="cpu")
    assert model.semgrad_position == -1 and model.semantic.position_source.startswith("default")


def test_calibration_file_sets_position_and_layers(tmp_path):
    import dataclasses

    from tiny_models import save_tiny_chat_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lm_eval_semgrad.calibration import calibrate, save_calibration
    from lm_eval_semgrad.harness.model import SemGradHFLM

    model_dir = save_tiny_chat_model(tmp_path / "m")
    items = [(f"what is the number {i} ?", [f"which number is {i} ?", f"name the number {i} ."]) for i in range(4)]
    calibration = calibrate(
        AutoModelForCausalLM.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir), items,
        apply_chat_template=True, limit=4, positions=[-1, -2, -3], model_name=str(model_dir),
    )
    calibration = dataclasses.replace(calibration, position=-2, layers=[1, 2])  # a choice distinct from the defaults
    path = save_calibration(calibration, tmp_path / "calib.json")
    model = SemGradHFLM(pretrained=str(model_dir), device="cpu", semgrad_calibration=str(path))
    assert (model.semgrad_position, model.semgrad_layers) == (-2, [1, 2])
    with pytest.raises(ValueError, match="without semgrad_position"):
        SemGradHFLM(pretrained=str(model_dir), device="cpu", semgrad_calibration=str(path), semgrad_position=-1)


def test_output_projection_scores_are_computed_only_when_asked_for(tmp_path):
    from tiny_models import save_tiny_chat_model

    from lm_eval_semgrad.harness.model import SemGradHFLM
    from lm_eval_semgrad.sample_metrics import UncertaintySample

    model_dir = save_tiny_chat_model(tmp_path / "m")
    default = SemGradHFLM(pretrained=str(model_dir), device="cpu", semgrad_position=-1)
    assert default.computed_scores == ("semgrad", "hybridgrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len")
    with_exgrad = SemGradHFLM(pretrained=str(model_dir), device="cpu", semgrad_position=-1, semgrad_methods="exgrad")
    assert with_exgrad.computed_scores == ("semgrad", "exgrad", "g_nll", "mean_entropy", "max_prob_nll", "response_len")
    # a record cached by an earlier run without that method reads as missing, not as an error or zero
    sample = UncertaintySample(record={"scores": {"semgrad": 0.5}}, correct=1, label="contains")
    assert sample.score("semgrad") == 0.5 and math.isnan(sample.score("exgrad"))


def test_grad_pass_takes_the_lower_layers_outputs_from_generation(tmp_path):
    """semgrad-hf does not run the layers below the semantic band again, and gets the fresh scores."""
    from lm_eval.api.instance import Instance
    from support import assert_close
    from tiny_models import save_tiny_chat_model

    from lm_eval_semgrad import score
    from lm_eval_semgrad.harness.model import SemGradHFLM

    model_dir = save_tiny_chat_model(tmp_path / "m")
    lm = SemGradHFLM(pretrained=str(model_dir), device="cpu", batch_size=3, semgrad_position=-2, semgrad_memory="unbounded")
    contexts = ["what is the number 1 ?", "name the gas called oxygen", "is the sun a star ? answer yes or no"]
    requests = [
        Instance("generate_until", doc={}, arguments=(c, {"until": ["\n\n"], "max_gen_toks": 7, "do_sample": False}), idx=0)
        for c in contexts
    ]
    lowest_layer_runs = []
    original = lm._score_answers

    def count_lowest_layer_runs(*args, **kwargs):
        handle = lm.model.model.layers[0].mlp.register_forward_hook(lambda *a: lowest_layer_runs.append(1))
        try:
            return original(*args, **kwargs)
        finally:
            handle.remove()

    lm._score_answers = count_lowest_layer_runs
    lm.generate_until(requests)
    assert lm._lower_layer_reuse is True
    assert lowest_layer_runs == [1]  # once, in the one-answer check that reruns them
    records = [request.semgrad_answers[0].record for request in requests]
    prompts = [lm.tok_encode(c) for c in contexts]
    fresh = score(lm.model, prompts, [r["response_ids"] for r in records], position=-2, scores=lm.computed_scores)
    for i, record in enumerate(records):
        assert_close(record["scores"], fresh[i], i)


def test_lower_layer_outputs_are_not_reused_when_upper_layers_need_more_than_them(tmp_path):
    """A model whose upper layer reads a value its lowest layer computes (as key/value sharing does)."""
    from lm_eval.api.instance import Instance
    from support import assert_close
    from tiny_models import save_tiny_chat_model

    from lm_eval_semgrad import score
    from lm_eval_semgrad.harness.model import SemGradHFLM

    model_dir = save_tiny_chat_model(tmp_path / "m")
    lm = SemGradHFLM(pretrained=str(model_dir), device="cpu", batch_size=2, semgrad_position=-1)
    layers = lm.model.model.layers
    side = {}  # per column, so the model stays causal: prefix and suffix passes compute what one pass would
    layers[0].mlp.register_forward_hook(lambda module, args, output: side.__setitem__("x", output.mean(-1, keepdim=True)))
    layers[3].mlp.register_forward_hook(lambda module, args, output: output + side["x"])
    contexts = ["what is the number 1 ?", "name the gas called oxygen"]
    requests = [
        Instance("generate_until", doc={}, arguments=(c, {"until": ["\n\n"], "max_gen_toks": 6, "do_sample": False}), idx=0)
        for c in contexts
    ]
    lm.generate_until(requests)
    assert lm._lower_layer_reuse is False
    records = [request.semgrad_answers[0].record for request in requests]
    fresh = score(lm.model, [lm.tok_encode(c) for c in contexts], [r["response_ids"] for r in records], position=-1,
                  scores=lm.computed_scores)
    for i, record in enumerate(records):
        assert_close(record["scores"], fresh[i], i)


def test_a_correctness_metric_the_task_lacks_fails_before_generation(tmp_path):
    from harness_fixtures import write_tasks
    from lm_eval.tasks import TaskManager, get_task_dict

    from lm_eval_semgrad.harness.task_hooks import attach_uncertainty_metrics

    tasks_dir = write_tasks(tmp_path / "tasks")
    task = get_task_dict(["qa_parity"], TaskManager(include_path=str(tasks_dir)))["qa_parity"]
    with pytest.raises(ValueError, match=r"semgrad_correctness=f1: task 'qa_parity' has no such metric; its metrics are "
                                         r"parity, exact_match"):
        attach_uncertainty_metrics(task, pop_settings({"semgrad_correctness": "f1"}))
    attach_uncertainty_metrics(task, pop_settings({"semgrad_correctness": "exact_match:1"}))
