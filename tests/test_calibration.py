"""SPS calibration: prompts as the harness builds them, the score tables, the choice, the file, the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from tiny_models import build_chat_tokenizer, save_tiny_chat_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lm_eval_semgrad.calibration import (
    DEFAULT_PROMPT_TEMPLATE,
    Calibration,
    calibrate,
    encode_prompt,
    known_family_position,
    load_calibration,
    measure_features,
    read_paraphrases,
    same_model,
    save_calibration,
)
from lm_eval_semgrad.calibration import cli as calibration_cli
from lm_eval_semgrad.calibration.features import common_prefix_length, prompt_hidden_states
from lm_eval_semgrad.calibration.prompts import special_tokens_kwargs
from lm_eval_semgrad.calibration.sps import best_contiguous_band, choose_position
from lm_eval_semgrad.scoring import upper_half_layers

POSITIONS = [-1, -2, -3, -4, -5, -6]
ITEMS = [
    ("what gas do plants absorb ?", ["which gas is absorbed by plants ?", "plants absorb what gas ?", "what gas does a plant absorb ?"]),
    ("what is water made of ?", ["water is made of what ?", "what makes up water ?"]),
    ("what carries a negative charge ?", ["which particle is negatively charged ?", "what has a negative charge ?", "negative charge is carried by what ?"]),
    ("what is the centre of an atom ?", ["what is at the centre of an atom ?", "the nucleus of an atom is called what ?", "an atom has what at its centre ?"]),
    ("which organ pumps blood ?", ["what organ pumps blood in the body ?", "blood is pumped by which organ ?", "which body organ pumps blood ?"]),
    ("what is the capital of france ?", ["the capital of france is what ?", "which city is the capital of france ?", "what city is france's capital ?"]),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_chat_model(tmp_path_factory.mktemp("calib_model"), num_layers=4)


@pytest.fixture(scope="module")
def model_and_tokenizer(model_dir):
    return AutoModelForCausalLM.from_pretrained(model_dir).eval(), AutoTokenizer.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def calibration(model_and_tokenizer, model_dir) -> Calibration:
    model, tokenizer = model_and_tokenizer
    return calibrate(model, tokenizer, ITEMS, apply_chat_template=True, positions=POSITIONS, limit=None,
                     batch_size=4, model_name=str(model_dir))


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), encoding="utf-8")
    return path


# -- prompts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("chat", [True, False])
def test_prompt_ids_match_hflm_generation_context(model_dir, model_and_tokenizer, chat):
    from lm_eval.models.huggingface import HFLM

    _, tokenizer = model_and_tokenizer
    lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=1)
    question = "what gas do plants absorb ?"
    text = DEFAULT_PROMPT_TEMPLATE.replace("{question}", question)
    context = lm.apply_chat_template([{"role": "user", "content": text}]) if chat else text
    ids, _ = lm.tok_batch_encode([context])
    assert encode_prompt(tokenizer, "  " + question + "\n", apply_chat_template=chat) == ids[0].tolist()


@pytest.fixture(scope="module")
def bos_model_dir(tmp_path_factory) -> Path:
    """A Llama-style tokenizer: adds BOS by default, and its chat template writes BOS itself."""
    from tiny_models import CHATML_TEMPLATE
    from tokenizers.processors import TemplateProcessing

    directory = save_tiny_chat_model(tmp_path_factory.mktemp("bos_model"), num_layers=2)
    tokenizer = build_chat_tokenizer()
    bos = "<|endoftext|>"
    tokenizer._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A $B", special_tokens=[(bos, tokenizer.convert_tokens_to_ids(bos))]
    )
    tokenizer.bos_token = bos
    tokenizer.chat_template = "{{ bos_token }}" + CHATML_TEMPLATE
    tokenizer.save_pretrained(directory)
    return directory


@pytest.mark.parametrize("chat", [True, False])
def test_bos_handling_matches_hflm(bos_model_dir, chat):
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(bos_model_dir), device="cpu", batch_size=1)
    text = DEFAULT_PROMPT_TEMPLATE.replace("{question}", "what is frozen water ?")
    context = lm.apply_chat_template([{"role": "user", "content": text}]) if chat else text
    ids, _ = lm.tok_batch_encode([context])
    mine = encode_prompt(lm.tokenizer, "what is frozen water ?", apply_chat_template=chat)
    assert mine == ids[0].tolist()
    bos_id = lm.tokenizer.bos_token_id
    assert mine[0] == bos_id and mine[1] != bos_id  # exactly one BOS, from the template or the tokenizer


def test_special_tokens_follow_hflm_rules():
    class Tok:
        bos_token = "<s>"

    assert special_tokens_kwargs(Tok(), "<s>[INST] hi", None) == {"add_special_tokens": False}
    assert special_tokens_kwargs(Tok(), "<s>[INST] hi", True) == {"add_special_tokens": False}
    assert special_tokens_kwargs(Tok(), "hi", True) == {"add_special_tokens": True}
    assert special_tokens_kwargs(Tok(), "hi", False) == {"add_special_tokens": False}
    assert special_tokens_kwargs(Tok(), "hi", None) == {}


def test_chat_template_required_when_asked(model_and_tokenizer):
    model, _ = model_and_tokenizer
    tokenizer = build_chat_tokenizer()
    tokenizer.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        calibrate(model, tokenizer, ITEMS, apply_chat_template=True, limit=None)


# -- hidden states -------------------------------------------------------------------------------


def test_hidden_states_batched_with_shared_prefix_equal_single_prompts(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    prompts = [encode_prompt(tokenizer, q) for q, _ in ITEMS[:4]]
    assert common_prefix_length(prompts) >= 10  # the template's header and the instruction
    batched = prompt_hidden_states(model, prompts, POSITIONS, batch_size=3)
    assert batched.shape == (4, model.config.num_hidden_layers + 1, len(POSITIONS), model.config.hidden_size)
    for index, ids in enumerate(prompts):
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        expected = torch.stack([torch.stack([h[0, p] for p in POSITIONS]) for h in hidden])
        torch.testing.assert_close(batched[index], expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("architecture", ["lfm2", "qwen3_next"])
def test_hidden_states_of_a_model_with_recurrent_state_equal_single_prompts(model_and_tokenizer, architecture):
    """Its prefix cache cannot be repeated for the prompts (recurrent state): every prompt runs in full."""
    from tiny_models import tiny_hybrid

    _, tokenizer = model_and_tokenizer
    model = tiny_hybrid(architecture, vocab_size=len(tokenizer))
    prompts = [encode_prompt(tokenizer, q) for q, _ in ITEMS[:4]]
    batched = prompt_hidden_states(model, prompts, POSITIONS, batch_size=3)
    for index, ids in enumerate(prompts):
        with torch.no_grad():
            hidden = model(torch.tensor([ids]), output_hidden_states=True).hidden_states
        expected = torch.stack([torch.stack([h[0, p] for p in POSITIONS]) for h in hidden])
        torch.testing.assert_close(batched[index], expected, atol=1e-4, rtol=1e-4)


def test_positions_deeper_than_a_prompt_are_rejected(model_and_tokenizer):
    model, _ = model_and_tokenizer
    with pytest.raises(ValueError, match="fewer than the deepest position"):
        prompt_hidden_states(model, [[5, 6, 7]], [-1, -4])
    with pytest.raises(ValueError, match="negative"):
        prompt_hidden_states(model, [[5, 6, 7]], [0])


# -- the SPS tables and the choice ---------------------------------------------------------------


def test_tables_have_one_row_per_hidden_state_and_bounded_values(calibration):
    n = calibration.num_layers
    assert n == 4 and calibration.positions == POSITIONS
    assert set(calibration.sps) == {"paper", "centred", "raw", "retrieval"}
    for variant in ("paper", "centred", "raw", "retrieval"):
        table = torch.tensor(calibration.sps[variant])
        assert table.shape == (n + 1, len(POSITIONS))
        assert bool(table.isfinite().all())
        low, high = (0.0, 1.0) if variant == "retrieval" else (-2.0, 2.0)
        assert float(table.min()) >= low and float(table.max()) <= high
        band = table[upper_half_layers(n)].mean(0)
        torch.testing.assert_close(torch.tensor(calibration.band_sps[variant], dtype=band.dtype), band, atol=1e-5, rtol=0)
    assert calibration.n_questions == len(ITEMS) and calibration.paraphrases_per_question == 3


@pytest.mark.parametrize("rule", ["paper", "centred"])
def test_choice_is_argmax_of_band_averaged_sps(model_and_tokenizer, calibration, rule):
    model, tokenizer = model_and_tokenizer
    if rule != "paper":
        calibration = calibrate(model, tokenizer, ITEMS, apply_chat_template=True, positions=POSITIONS, limit=None,
                                batch_size=4, sps_rule=rule)
    assert calibration.sps_rule == rule
    scores = calibration.band_sps[rule]
    chosen = calibration.positions.index(calibration.position)
    for other in ("paper", "centred"):  # both selectors' positions are recorded, whichever chose
        band = calibration.band_sps[other]
        assert band[calibration.positions.index(calibration.position_by_sps[other])] == max(band)
    assert calibration.position_by_sps[rule] == calibration.position
    assert scores[chosen] == max(scores)
    # nearer the prompt end than the choice: strictly lower (ties go to -1)
    assert all(scores[j] < scores[chosen] for j, p in enumerate(calibration.positions) if p > calibration.position)
    assert calibration.layers == upper_half_layers(calibration.num_layers) and calibration.layers_rule == "upper_half"
    width = len(calibration.upper_half_layers)
    assert len(calibration.best_band_layers) == width
    assert calibration.best_band_layers[0] >= 1 and calibration.best_band_layers[-1] <= calibration.num_layers - 1
    column = [row[chosen] for row in calibration.sps[rule]]  # the best band is the chosen rule's, at its position
    means = {start: sum(column[start:start + width]) / width for start in range(1, calibration.num_layers - width + 1)}
    assert calibration.best_band_layers[0] == max(means, key=lambda start: (round(means[start], 9), start))


def test_default_rule_is_the_papers(calibration):
    assert calibration.sps_rule == "paper"
    with pytest.raises(ValueError, match="sps_rule='median'"):
        calibrate(None, None, ITEMS, apply_chat_template=True, sps_rule="median")


def test_choice_is_deterministic(model_and_tokenizer, model_dir, calibration):
    model, tokenizer = model_and_tokenizer
    again = calibrate(model, tokenizer, ITEMS, apply_chat_template=True, positions=POSITIONS, limit=None,
                      batch_size=4, model_name=str(model_dir))
    for name in ("position", "layers", "best_band_layers", "sps", "band_sps"):
        assert getattr(again, name) == getattr(calibration, name), name
    # another batch size changes float rounding only
    rebatched = calibrate(model, tokenizer, ITEMS, apply_chat_template=True, positions=POSITIONS, limit=None, batch_size=3)
    assert rebatched.position == calibration.position
    for variant in ("paper", "centred", "raw"):
        assert torch.tensor(rebatched.sps[variant]) == pytest.approx(torch.tensor(calibration.sps[variant]), abs=1e-4)


def test_tie_break_and_band_rules():
    assert choose_position([0.5, 0.7, 0.6], [-1, -2, -3]) == -2
    assert choose_position([0.7, 0.7, 0.6], [-1, -2, -3]) == -1
    assert choose_position([0.7, 0.7], [-3, -2]) == -2
    assert best_contiguous_band([9, 0, 5, 5, 1, 0, 9], 6, width=2) == [2, 3]  # h0 and h6 are never in the band
    assert best_contiguous_band([0, 1, 1, 1, 1, 0], 5, width=2) == [3, 4]  # ties: the higher band
    assert best_contiguous_band([0, 1, 3, 1, 5], 4) == [2, 3]  # default width floor(N/2); 1..2 and 2..3 tie


def _brute_force(vectors_q, vectors_p):
    """Centred and raw SPS and retrieval accuracy with plain loops (mean over every text)."""
    everything = list(vectors_q) + [v for group in vectors_p for v in group]
    mean = torch.stack(everything).mean(0)
    cos = lambda a, b: float(F.cosine_similarity(a, b, dim=0))  # noqa: E731
    out = {}
    for name, shift in (("raw", torch.zeros_like(mean)), ("centred", mean)):
        q = [v - shift for v in vectors_q]
        p = [[v - shift for v in group] for group in vectors_p]
        total = 0.0
        for i in range(len(q)):
            same = sum(cos(q[i], v) for v in p[i]) / len(p[i])
            other = sum(cos(q[i], q[j]) for j in range(len(q)) if j != i) / (len(q) - 1)
            total += same - other
        out[name] = total / len(q)
        if name == "centred":
            hits = [
                all(cos(v, q[i]) > cos(v, q[j]) for j in range(len(q)) if j != i)
                for i in range(len(q)) for v in p[i]
            ]
            out["retrieval"] = sum(hits) / len(hits)
    # the paper's Sec. 3.2: all ordered pairs among a question and its paraphrases, raw cosines,
    # minus the mean cosine over ordered pairs of different original questions
    within = []
    for question, group in zip(vectors_q, vectors_p):
        texts = [question, *group]
        pairs = [(i, j) for i in range(len(texts)) for j in range(len(texts)) if i != j]
        assert len(pairs) == len(group) * (len(group) + 1)
        within.append(sum(cos(texts[i], texts[j]) for i, j in pairs) / len(pairs))
    n = len(vectors_q)
    across = sum(cos(vectors_q[a], vectors_q[b]) for a in range(n) for b in range(n) if a != b) / (n * (n - 1))
    out["paper"] = sum(within) / n - across
    return out


@pytest.mark.parametrize("layer,position", [(3, -1), (2, -4)])
def test_sps_matches_brute_force(model_and_tokenizer, calibration, layer, position):
    model, tokenizer = model_and_tokenizer

    def vector(text):
        ids = encode_prompt(tokenizer, text)
        with torch.no_grad():
            return model(torch.tensor([ids]), output_hidden_states=True).hidden_states[layer][0, position].double()

    expected = _brute_force([vector(q) for q, _ in ITEMS], [[vector(p) for p in ps] for _, ps in ITEMS])
    column = calibration.positions.index(position)
    for variant in ("paper", "centred", "raw", "retrieval"):
        assert calibration.sps[variant][layer][column] == pytest.approx(expected[variant], abs=2e-4), variant


def test_limit_seed_and_features_reuse(model_and_tokenizer, calibration):
    model, tokenizer = model_and_tokenizer
    features = measure_features(model, tokenizer, [(q, ps) for q, ps in ITEMS], apply_chat_template=True, positions=POSITIONS,
                                batch_size=4)
    reused = calibrate(model, tokenizer, features=features, apply_chat_template=True)
    assert reused.sps == calibration.sps and reused.position == calibration.position
    four = calibrate(model, tokenizer, features=features.subset([0, 1, 2, 3]), apply_chat_template=True)
    direct = calibrate(model, tokenizer, ITEMS, apply_chat_template=True, positions=POSITIONS, limit=4, batch_size=4)
    assert four.n_questions == 4 and set(four.sps) == set(direct.sps)
    for variant in four.sps:  # other batches around the same prompts: float32 rounding only
        assert torch.tensor(four.sps[variant]) == pytest.approx(torch.tensor(direct.sps[variant]), abs=1e-4), variant
    seeded = calibrate(model, tokenizer, ITEMS, apply_chat_template=True, positions=POSITIONS, limit=3, seed=7,
                       paraphrases_per_question=1)
    assert seeded.n_questions == 3 and seeded.paraphrases_per_question == 1
    with pytest.raises(ValueError, match="prompt settings"):
        calibrate(model, tokenizer, features=features, apply_chat_template=False)


def test_without_chat_template_uses_raw_prompt(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    cal = calibrate(model, tokenizer, ITEMS, apply_chat_template=False, positions=[-1, -2], limit=None,
                    prompt_template="Question: {question}\nAnswer:")
    assert cal.chat_template_sha256 is None and not cal.apply_chat_template
    assert cal.example_prompt.startswith("Question: ") and cal.example_prompt.endswith("\nAnswer:")


def test_known_family_position_delegates_to_chat_positions(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    assert known_family_position(tokenizer) == -3  # ChatML: the assistant turn's <|im_start|>


# -- the calibration file ------------------------------------------------------------------------


def test_file_round_trip(calibration, tmp_path, model_dir):
    path = save_calibration(calibration, tmp_path / "sub" / "cal.json")
    data = json.loads(path.read_text())
    assert data["format"] == "lm-eval-semgrad-calibration" and data["format_version"] == 1
    assert data["package_version"] and data["created"] and data["chat_template_sha256"]
    loaded = load_calibration(path, model_name=str(model_dir), num_layers=4)
    assert loaded == calibration
    assert load_calibration(path, model_name=f"someorg/{Path(model_dir).name}") == calibration  # same last component


def test_files_from_before_the_papers_sps_read_as_centred(calibration, tmp_path):
    """Earlier files have no sps_rule: they were chosen by the centred SPS, and say so when read."""
    old = dataclasses.replace(calibration, sps_rule="centred")
    data = json.loads(save_calibration(old, tmp_path / "new.json").read_text())
    for key in ("sps_rule", "position_by_sps"):
        data.pop(key)
    data["sps"].pop("paper")
    (tmp_path / "old.json").write_text(json.dumps(data))
    loaded = load_calibration(tmp_path / "old.json")
    assert loaded.sps_rule == "centred" and loaded.position_by_sps == {} and loaded.position == calibration.position


def _broken(calibration, tmp_path, edit) -> Path:
    data = json.loads(save_calibration(calibration, tmp_path / "ok.json").read_text())
    edit(data)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda d: d.pop("position"), "missing field.*position"),
        (lambda d: d.pop("sps"), "missing field.*sps"),
        (lambda d: d.update(layers="15-29"), "'layers' must be a list of integers"),
        (lambda d: d.update(position=-1.5), "'position' must be a integer"),
        (lambda d: d.update(apply_chat_template="yes"), "'apply_chat_template' must be a boolean"),
        (lambda d: d.update(sps={"centred": [["x"]]}), "'sps' must be"),
        (lambda d: d.update(format_version=99), "newer than this lm-eval-semgrad reads"),
        (lambda d: d.pop("format"), "not a calibration file"),
        (lambda d: d.update(layers=[2, 9]), "hidden-state indices 0..4"),
        (lambda d: d.update(sps_rule="median"), "sps_rule 'median' is not one of"),
        (lambda d: d.update(position_by_sps={"paper": -40}), "position_by_sps"),
        (lambda d: d.update(position=3), "not negative"),
    ],
)
def test_bad_files_give_clear_errors(calibration, tmp_path, edit, message):
    with pytest.raises(ValueError, match=message):
        load_calibration(_broken(calibration, tmp_path, edit))


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "cal.json"
    path.write_text("position: -3\n")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_calibration(path)
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a calibration file"):
        load_calibration(path)
    with pytest.raises(FileNotFoundError, match="lm-eval-semgrad calibrate"):
        load_calibration(tmp_path / "absent.json")


def test_file_for_another_model_is_refused(calibration, tmp_path):
    path = save_calibration(calibration, tmp_path / "cal.json")
    with pytest.raises(ValueError) as error:
        load_calibration(path, model_name="meta-llama/Llama-3.1-8B-Instruct")
    text = str(error.value)
    assert calibration.model_name in text and "meta-llama/Llama-3.1-8B-Instruct" in text and "calibrate" in text
    with pytest.raises(ValueError, match="decoder layers"):
        load_calibration(path, num_layers=32)


def test_same_model():
    assert same_model("HuggingFaceTB/SmolLM2-135M-Instruct", "/models/smollm2-135m-instruct/")
    assert not same_model("Qwen/Qwen3-4B", "Qwen/Qwen3-8B")


# -- paraphrase files ------------------------------------------------------------------------------


def test_packaged_paraphrases():
    items = read_paraphrases()
    assert len(items) == 1000 and all(item.paraphrases for item in items)


@pytest.mark.parametrize(
    "rows,message",
    [
        ([{"query": "a ?", "paraphrases": ["b ?"]}, "{not json"], "line 2: not valid JSON"),
        ([{"query": "a ?"}], "line 1: missing field 'paraphrases'"),
        ([{"paraphrases": ["b ?"]}], "line 1: missing field 'query'"),
        ([{"query": "a ?", "paraphrases": "b ?"}], "line 1: 'paraphrases' must be a list of strings"),
        ([{"query": "a ?", "paraphrases": []}], "line 1: 'paraphrases' is empty"),
        ([{"query": 3, "paraphrases": ["b"]}], "line 1: 'query' must be a non-empty string"),
        ([{"query": "a ?", "paraphrases": ["b ?"]}], "at least 2"),
    ],
)
def test_bad_paraphrase_files(tmp_path, rows, message):
    with pytest.raises(ValueError, match=message):
        read_paraphrases(write_jsonl(tmp_path / "p.jsonl", rows))


# -- the CLI ---------------------------------------------------------------------------------------


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    calibration_cli.add_arguments(parser)
    return calibration_cli.run(parser.parse_args(argv))


def test_cli_end_to_end(model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "para.jsonl", [{"query": q, "paraphrases": ps, "truthful answer": ["x"]} for q, ps in ITEMS])
    out, plot = tmp_path / "cal.json", tmp_path / "sps.png"
    code = _run_cli([
        "--model_args", f"pretrained={model_dir},dtype=float32,semgrad_position=-3", "--apply_chat_template",
        "--paraphrases", str(data), "--limit", "5", "--paraphrases_per_question", "2", "--positions", "-6..-1",
        "--batch_size", "4", "--device", "cpu", "--output_path", str(out), "--plot", str(plot),
    ])
    assert code == 0
    printed = capsys.readouterr()
    assert "centred (upper half)" in printed.out and "paper (upper half)" in printed.out
    assert "choice (paper SPS): position" in printed.out and "best position by SPS: paper" in printed.out
    assert "ignoring model args" in printed.err and "semgrad_position" in printed.err
    cal = load_calibration(out, model_name=str(model_dir))
    assert cal.n_questions == 5 and cal.paraphrases_per_question == 2 and cal.positions == POSITIONS
    assert cal.apply_chat_template and cal.data_source == str(data.resolve())
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_sps_option_chooses_and_is_recorded(model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "para.jsonl", [{"query": q, "paraphrases": ps} for q, ps in ITEMS])
    files = {}
    for rule in ("centred", "paper"):
        files[rule] = tmp_path / f"{rule}.json"
        assert _run_cli(["--model_args", f"pretrained={model_dir}", "--apply_chat_template", "--paraphrases", str(data),
                         "--positions", "-6..-1", "--sps", rule, "--output_path", str(files[rule])]) == 0
        assert f"choice ({rule} SPS)" in capsys.readouterr().out
    centred, paper = (load_calibration(files[rule]) for rule in ("centred", "paper"))
    assert (centred.sps_rule, paper.sps_rule) == ("centred", "paper")
    assert centred.position == centred.position_by_sps["centred"] and paper.position == paper.position_by_sps["paper"]
    assert centred.position_by_sps == paper.position_by_sps and centred.sps == paper.sps
    with pytest.raises(SystemExit):
        _run_cli(["--model_args", f"pretrained={model_dir}", "--sps", "median", "--output_path", str(tmp_path / "x.json")])
    assert "invalid choice: 'median'" in capsys.readouterr().err


def test_cli_reports_bad_input(model_dir, tmp_path, capsys):
    data = write_jsonl(tmp_path / "para.jsonl", [{"query": "a ?", "paraphrases": ["b ?"]}, {"query": "c ?"}])
    assert _run_cli(["--model_args", f"pretrained={model_dir}", "--paraphrases", str(data), "--output_path", str(tmp_path / "x.json")]) == 2
    assert "line 2: missing field 'paraphrases'" in capsys.readouterr().err
    assert _run_cli(["--model_args", f"pretrained={model_dir}", "--positions=1..3", "--output_path", str(tmp_path / "x.json")]) == 2
    assert "negative" in capsys.readouterr().err
    assert _run_cli(["--model_args", "dtype=float32", "--output_path", str(tmp_path / "x.json")]) == 2
    assert "pretrained" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()


def test_positions_option_takes_negative_values():
    parser = argparse.ArgumentParser()
    calibration_cli.add_arguments(parser)
    for value in ("-8..-1", "-1,-3,-5", "-2"):
        args = parser.parse_args(["--model_args", "pretrained=x", "--output_path", "o.json", "--positions", value])
        assert args.positions == value
    assert parser.parse_args(["--model_args", "pretrained=x", "--output_path", "o.json", "--positions=-4..-1"]).positions == "-4..-1"


def test_subcommand_through_the_plugin_cli(model_dir, tmp_path, capsys):
    from lm_eval_semgrad import cli

    out = tmp_path / "cal.json"
    code = cli.main(["calibrate", "--model_args", f"pretrained={model_dir}", "--apply_chat_template", "--positions",
                     "-4..-1", "--limit", "3", "--paraphrases_per_question", "1", "--output_path", str(out)])
    assert code == 0 and load_calibration(out).positions == [-1, -2, -3, -4]


def test_parse_positions():
    assert calibration_cli.parse_positions("-8..-1") == [-1, -2, -3, -4, -5, -6, -7, -8]
    assert calibration_cli.parse_positions("-1..-3") == [-1, -2, -3]
    assert calibration_cli.parse_positions("-1, -3,-5") == [-1, -3, -5]
    for bad in ("a", "-1,-1", "0..-2", ""):
        with pytest.raises(ValueError):
            calibration_cli.parse_positions(bad)


def test_calibration_fields_are_documented_in_the_schema():
    from lm_eval_semgrad.calibration.file_format import _SCHEMA

    assert set(_SCHEMA) == {f.name for f in dataclasses.fields(Calibration)}


def test_format_warnings_spot_other_prompt_formats(calibration, model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    assert calibration.prompt_suffix == "<|im_end|>\n<|im_start|>assistant\n"
    chat_context = tokenizer.apply_chat_template([{"role": "user", "content": "q"}], add_generation_prompt=True, tokenize=False)
    assert calibration.format_warnings(tokenizer, chat_context) == []
    assert any("--apply_chat_template" in w for w in calibration.format_warnings(tokenizer, "Please answer: q"))
    other = build_chat_tokenizer()
    other.chat_template = "{% for m in messages %}[{{ m['content'] }}]{% endfor %}"
    assert any("chat template differs" in w for w in calibration.format_warnings(other))


def test_model_args_parsing():
    kept, ignored = calibration_cli.parse_model_args("pretrained=/m/x,dtype=bfloat16,batch_size=8,semgrad_position=-3")
    assert kept == {"pretrained": "/m/x", "dtype": "bfloat16"} and ignored == ["batch_size", "semgrad_position"]
    with pytest.raises(ValueError, match="pretrained"):
        calibration_cli.parse_model_args("dtype=float32")
