"""Every documented `semgrad_*` option, typed as users type it, through lm-eval's own command-line parser.

lm-eval's CLI turns `semgrad_position=-4` into the float -4.0, `true` into a bool, `512` into an
int and `[1, 2]` into a list, and takes `--model_args` as one `k=v,k2=v2` string, as space-separated
pairs, or as JSON. Each form of each documented value must reach semgrad-hf as the value meant.
"""

from __future__ import annotations

import json
import math

import pytest
from lm_eval._cli import HarnessCLI

from lm_eval_semgrad.hf.options import pop_settings

# (arg, value as typed on the command line, value as written in JSON, expected setting name, expected value)
DOCUMENTED = [
    ("semgrad_position", "-4", -4, "position", -4),
    ("semgrad_position", "auto", "auto", "position", "auto"),
    ("semgrad_layers", "upper_half", "upper_half", "layers", None),
    ("semgrad_layers", "16-31", "16-31", "layers", tuple(range(16, 32))),
    ("semgrad_layers", "12:14:16", [12, 14, 16], "layers", (12, 14, 16)),
    ("semgrad_layers", "3", 3, "layers", (3,)),
    ("semgrad_methods", "semgrad:exgrad:g_nll", "semgrad:exgrad:g_nll", "methods", ("semgrad", "exgrad", "g_nll")),
    ("semgrad_methods", "mean_entropy", ["mean_entropy"], "methods", ("mean_entropy",)),
    ("semgrad_correctness", "exact_match", "exact_match", "correctness_metric", "exact_match"),
    ("semgrad_correctness", "f1:0.75", "f1:0.75", "correctness_threshold", 0.75),
    ("semgrad_reuse_cache", "false", False, "reuse_cache", False),
    ("semgrad_reuse_cache", "true", True, "reuse_cache", True),
    ("semgrad_batch_size", "4", 4, "batch_size", 4),
    ("semgrad_memory", "generation", "generation", "memory", "generation"),
    ("semgrad_memory", "unbounded", "unbounded", "memory", "unbounded"),
    ("semgrad_memory", "512", 512, "memory", 512.0),
    ("semgrad_memory", "0.5", 0.5, "memory", 0.5),
    ("semgrad_samples", "4", 4, "samples", 4),
    ("semgrad_sample_seed", "7", 7, "sample_seed", 7),
    ("semgrad_nli", "/models/nli", "/models/nli", "nli", "/models/nli"),
    ("semgrad_cross_encoder", "org/cross", "org/cross", "cross_encoder", "org/cross"),
    ("semgrad_aux_device", "cuda:1", "cuda:1", "aux_device", "cuda:1"),
    ("semgrad_aux_batch_size", "16", 16, "aux_batch_size", 16),
    ("semgrad_calibration", "calib.json", "calib.json", "calibration", "calib.json"),
    ("semgrad_confidence", "conf.json", "conf.json", "confidence", "conf.json"),
]


def parsed_model_args(*tokens: str) -> dict:
    """`--model_args TOKENS...` as lm-eval's own parser hands them to the model."""
    namespace = HarnessCLI()._parser.parse_args(["run", "--model", "semgrad-hf", "--model_args", *tokens, "--tasks", "t"])
    return namespace.model_args


def three_forms(arg: str, typed: str, as_json) -> dict[str, dict]:
    return {
        "comma-separated": parsed_model_args(f"pretrained=m,{arg}={typed}"),
        "space-separated": parsed_model_args("pretrained=m", f"{arg}={typed}"),
        "json": parsed_model_args(json.dumps({"pretrained": "m", arg: as_json})),
    }


@pytest.mark.parametrize("arg, typed, as_json, setting, expected", DOCUMENTED, ids=[f"{a}={t}" for a, t, *_ in DOCUMENTED])
def test_every_documented_value_in_every_model_args_form(arg, typed, as_json, setting, expected):
    for form, model_args in three_forms(arg, typed, as_json).items():
        settings = pop_settings(dict(model_args))
        assert getattr(settings, setting) == expected, (form, model_args[arg])
        assert arg in settings.given


def test_the_cli_really_hands_over_floats_and_bools():
    """The premise of this module: what a Python int or str test would never see."""
    args = parsed_model_args("pretrained=m,semgrad_position=-4,semgrad_reuse_cache=false,semgrad_memory=512")
    assert args["semgrad_position"] == -4.0 and isinstance(args["semgrad_position"], float)
    assert args["semgrad_reuse_cache"] is False and args["semgrad_memory"] == 512


@pytest.mark.parametrize("typed, message", [
    ("semgrad_position=-3.5", "semgrad_position=-3.5 is not valid"),
    ("semgrad_position=-inf", "semgrad_position=-inf is not valid"),
    ("semgrad_position=nan", "semgrad_position=nan is not valid"),
    ("semgrad_position=2", "semgrad_position=2 is not valid"),
    ("semgrad_layers=1.5", "semgrad_layers=1.5 is not valid"),
    ("semgrad_layers=-1", "semgrad_layers=-1.0 is not valid"),
    ("semgrad_batch_size=2.5", "semgrad_batch_size=2.5 is not valid"),
    ("semgrad_batch_size=0", "semgrad_batch_size=0 is not valid"),
    ("semgrad_memory=-1", "semgrad_memory=-1.0 is not valid"),
    ("semgrad_memory=inf", "semgrad_memory=inf is not valid"),
    ("semgrad_correctness=contains:nan", "must be a number"),
    ("semgrad_correctness=contains:inf", "must be a number"),
    ("semgrad_reuse_cache=maybe", "semgrad_reuse_cache='maybe' is not valid"),
    ("semgrad_methods=semgrad:nope", "unknown method(s) ['nope']"),
    ("semgrad_methods=", "names no method"),
    ("semgrad_samples=1.5", "semgrad_samples=1.5 is not valid"),
    ("semgrad_sample_seed=-1", "semgrad_sample_seed=-1.0 is not valid"),
    ("semgrad_aux_device=true", "semgrad_aux_device=True is not valid: pass a device"),
    ("semgrad_nli=false", "semgrad_nli=False is not valid: pass a local model folder or a Hugging Face hub id"),
    ("semgrad_aux_batch_size=0", "semgrad_aux_batch_size=0 is not valid"),
])
def test_bad_values_as_typed_are_refused_naming_the_arg(typed, message):
    with pytest.raises(ValueError) as error:
        pop_settings(parsed_model_args(f"pretrained=m,{typed}"))
    assert message in str(error.value)


@pytest.mark.parametrize("typed, methods, said", [
    ("semgrad_samples=4", "semgrad:g_nll", "semgrad_samples has no effect: it is for the sample sets"),
    ("semgrad_sample_seed=3", "semgrad", "semgrad_sample_seed has no effect: it is for the sample sets"),
    ("semgrad_nli=/m/nli", "semgrad:ln_pe:sar", "semgrad_nli has no effect: it is for the NLI-based baselines"),
    ("semgrad_cross_encoder=/m/ce", "se", "semgrad_cross_encoder has no effect: it is for SAR"),
    ("semgrad_aux_device=cpu", "ln_pe", "semgrad_aux_device has no effect: it is for the NLI model and cross-encoder"),
])
def test_an_option_no_asked_for_method_reads_is_said_to_have_no_effect(typed, methods, said, caplog):
    with caplog.at_level("WARNING"):
        pop_settings(parsed_model_args(f"pretrained=m,semgrad_methods={methods},{typed}"))
    assert said in caplog.text


def test_an_option_a_method_reads_gives_no_such_warning(caplog):
    with caplog.at_level("WARNING"):
        pop_settings(parsed_model_args("pretrained=m,semgrad_methods=se:sar,semgrad_samples=3,semgrad_nli=/m/nli,"
                                       "semgrad_cross_encoder=/m/ce,semgrad_aux_device=cpu"))
    assert "has no effect" not in caplog.text


def test_integral_floats_from_json_are_accepted():
    settings = pop_settings(parsed_model_args(json.dumps(
        {"pretrained": "m", "semgrad_position": -3.0, "semgrad_batch_size": 4.0, "semgrad_layers": [1.0, 2.0]}
    )))
    assert (settings.position, settings.batch_size, settings.layers) == (-3, 4, (1, 2))
    assert not math.isnan(settings.correctness_threshold)


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tiny_models import save_tiny_chat_model

    return save_tiny_chat_model(tmp_path_factory.mktemp("options") / "model")


def test_semgrad_hf_built_from_the_parsed_args_resolves_what_was_typed(tiny_model_dir):
    from lm_eval_semgrad.harness.model import SemGradHFLM

    for tokens in (
        [f"pretrained={tiny_model_dir},semgrad_position=-2,semgrad_layers=1:3,semgrad_methods=semgrad:exgrad"],
        [f"pretrained={tiny_model_dir}", "semgrad_position=-2", "semgrad_layers=1:3", "semgrad_methods=semgrad:exgrad"],
        [json.dumps({"pretrained": str(tiny_model_dir), "semgrad_position": -2, "semgrad_layers": [1, 3],
                     "semgrad_methods": "semgrad:exgrad"})],
    ):
        model = SemGradHFLM.create_from_arg_obj(parsed_model_args(*tokens), {"device": "cpu"})
        assert (model.semgrad_position, model.semgrad_layers) == (-2, [1, 3]), tokens
        assert model.semgrad.methods == ("semgrad", "exgrad")
        info = model.get_model_info()["semgrad"]
        assert info["position"] == -2 and info["position_source"] == "semgrad_position"
        assert info["layers"] == [1, 3] and info["layers_source"] == "semgrad_layers"


def test_layers_beyond_the_model_fail_when_it_loads_naming_the_arg(tiny_model_dir):
    from lm_eval_semgrad.harness.model import SemGradHFLM

    with pytest.raises(ValueError, match=r"semgrad_layers=\[2, 9\].*out of range.*4 decoder layers"):
        SemGradHFLM.create_from_arg_obj(parsed_model_args(f"pretrained={tiny_model_dir},semgrad_layers=2:9"), {"device": "cpu"})


def test_think_end_token_is_refused_with_the_reason(tiny_model_dir):
    from lm_eval_semgrad.harness.model import SemGradHFLM

    with pytest.raises(ValueError, match="does not support think_end_token"):
        SemGradHFLM.create_from_arg_obj(parsed_model_args(f"pretrained={tiny_model_dir},think_end_token=</think>"), {"device": "cpu"})
