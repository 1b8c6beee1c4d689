"""The P(True) prompt (docs/method.md §3.3): six fixed True/False demonstrations, then the question and answer.

No chat template is applied. The caller appends `" True"` to `p_true_prompt(q, r)`, tokenises the
text with `add_special_tokens=True` (BOS for Llama and Mistral, none for Qwen), scores only the last
token (every other label -100) and reports `-log P(last token | all before)`, the HF loss; higher =
more uncertain. If `" True"` splits into several tokens, only its last piece is scored.
"""

from __future__ import annotations

__all__ = ["p_true_prompt"]

_DEMONSTRATIONS = (
    ("Who was the third president of the United States?", "James Monroe", "False"),
    ("Calculate 33 + 4", "37", "True"),
    (
        "Fill in the blank in the sentence 'I went to the grocery and then to the pharmacy. "
        "I was disappointed that they didn't have any vegetarian sausage at the _____.'",
        "grocery",
        "True",
    ),
    ("Name a celebrated civil rights leader.", "Martin Luther King", "True"),
    ("Calculate 33 * 849", "28347", "False"),
    (
        "Fill in the blank in the sentence 'I shot the _____ and it went swish. "
        "We walked away the winners of that battle!'",
        "gun",
        "False",
    ),
)


def _block(question: str, answer: str) -> str:
    return (
        f"Question: {question}\nPossible answer: {answer}\n"
        "Is the possible answer:\nA) True\nB) False\nThe possible answer is:"
    )


def p_true_prompt(question: str, answer: str) -> str:
    """The few-shot P(True) text of §3.3 for the raw question and the unstripped greedy answer, without " True".

    The `--pt_zero_shot` flag of the reference code has no effect, so the demonstrations are always
    there. An empty answer gives "Possible answer: \\n".
    """
    demonstrations = "".join(f"{_block(q, a)} {verdict}\n\n" for q, a, verdict in _DEMONSTRATIONS)
    return demonstrations + _block(question, answer)
