"""The registry of uncertainty methods: each method's name, what it is, its direction, and what it needs.

Every list of methods in the project comes from here: `semgrad_methods` validation, the keys
`score()` returns, the report's method order and the README's table. What a method needs is
declared as data (in the spirit of LM-Polygraph's estimators declaring their statistics), and the
scorers compute, in one fused pass, exactly what the requested methods need. No torch import:
reports and the sample-log contract read it too.

Adding a method: one `Method` entry below, its computation where its needs are produced (the
single pass: `scoring.core._per_sample_scores`), and a test against an independent computation.

    >>> from lm_eval_semgrad import methods
    >>> methods.get("semgrad").needs
    frozenset({'grad_pass'})
    >>> "g_nll" in methods.available()
    True
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

#: Every score is oriented the same way, as the reference code's are (and AUROC etc. assume).
DIRECTION = "higher = less confident"

#: What a method can need, and what each costs beyond the greedy generation.
NEEDS = {
    "token_statistics": "the teacher-forced pass over the greedy answer (token log-probs and entropies)",
    "grad_pass": "the backward pass to the semantic layers' hidden states at tau",
    "output_projection": "a reduction over the output projection's gradient |dL_ce/dW_out| (as much arithmetic as the answer's logits)",
    "weighted_output_projection": "a reduction over the output projection's gradient |dL_w/dW_out| (G_w; as much arithmetic as the answer's logits)",
}
#: Needs the single scoring pass (`score()`) provides; the first two come with every SemGrad score.
SINGLE_PASS_NEEDS = frozenset(NEEDS)
FREE_NEEDS = frozenset({"token_statistics", "grad_pass"})
NEEDS.update({
    "samples": "a set of sampled answers per question (the method's `sample_set`, drawn once and shared)",
    "hidden_states": "a hidden state of every sampled answer, recorded while sampling",
    "p_true_pass": "one teacher-forced pass over the P(True) prompt",
    "mi_passes": "teacher-forced passes over M.I.'s iterative prompts (one per ordered pair of answer clusters)",
    "nli": "an entailment (NLI) model over pairs of answers (`semgrad_nli`)",
    "cross_encoder": "a cross-encoder similarity model over pairs of answers (`semgrad_cross_encoder`)",
    "beams": "diverse beam search (10 groups of one beam), the beams rescored at temperature 0.1",
})
#: Auxiliary models a need stands for, by the model arg that names them.
AUXILIARY = {"nli": "semgrad_nli", "cross_encoder": "semgrad_cross_encoder"}


@dataclass(frozen=True)
class Method:
    """One uncertainty method. `paper_row`: its row in the SemGrad paper's Table 1, when it has one."""

    name: str
    description: str
    needs: frozenset[str]
    paper_row: str | None = None
    sample_set: str | None = None  # the set of sampled answers it reads (`sampling.sets`), when it needs one
    direction: str = DIRECTION

    @property
    def free(self) -> bool:
        """Computed at no extra cost with SemGrad, so always logged as a baseline."""
        return self.needs <= FREE_NEEDS


def _method(
    name: str, description: str, *needs: str, paper_row: str | None = None, sample_set: str | None = None
) -> Method:
    unknown = set(needs) - set(NEEDS)
    if unknown:
        raise ValueError(f"method {name!r} declares unknown needs {sorted(unknown)}")
    if ("samples" in needs) != (sample_set is not None):
        raise ValueError(f"method {name!r}: a method needs samples exactly when it names its sample_set")
    return Method(name, description, frozenset(needs), paper_row, sample_set)


_REGISTRY: dict[str, Method] = {
    method.name: method
    for method in (
        _method("semgrad", "mean |dL_w/dh| over the semantic layers at the semantic position tau", "grad_pass",
                paper_row="SemGrad"),
        _method("hybridgrad", "alpha G_w + (1 - alpha) SemGrad, alpha = exp(-mean token entropy)", "grad_pass",
                "weighted_output_projection", "token_statistics", paper_row="HybridGrad"),
        _method("exgrad", "mean |dL_ce/dW_out| over the output projection (mean token NLL loss)", "output_projection",
                paper_row="ExGrad"),
        _method("paragrad", "G_w: mean |dL_w/dW_out| over the output projection (entropy-weighted loss)",
                "weighted_output_projection", paper_row="ParaGrad"),
        _method("g_nll", "sum of the greedy answer's token NLLs", "token_statistics", paper_row="G-NLL"),
        _method("mean_entropy", "mean token entropy of the greedy answer (nats)", "token_statistics"),
        _method("max_prob_nll", "largest token NLL of the greedy answer", "token_statistics"),
        _method("response_len", "number of answer tokens, the one that ended it included", "token_statistics"),
        _method("ln_pe", "length-normalised predictive entropy: -mean over samples of mean token log-prob",
                "samples", paper_row="LN-PE", sample_set="se"),
        _method("pe", "predictive entropy: -mean over samples of summed token log-probs", "samples", sample_set="se"),
        _method("p_true", "-log P(' True') after the six-shot 'Is the possible answer True/False' prompt",
                "p_true_pass", paper_row="P(True)"),
        _method("inside", "INSIDE / EigenScore: ln det(cov of the samples' middle-layer states + 0.001 I) / K",
                "samples", "hidden_states", paper_row="INSIDE", sample_set="inside"),
        _method("mi", "mutual information of iterative prompting over SQuAD-F1 answer clusters", "samples",
                "mi_passes", paper_row="M.I.", sample_set="mi"),
        _method("lex_sim", "1 - mean pairwise ROUGE-L F of the sampled answers (LM-Polygraph's lexical similarity)",
                "samples", sample_set="se"),
        _method("se", "semantic entropy: entropy over NLI-equivalence clusters of the samples' length-normalised "
                "probabilities", "samples", "nli", paper_row="S.E.", sample_set="se"),
        _method("discrete_se", "discrete semantic entropy: entropy of the NLI-cluster sizes", "samples", "nli",
                sample_set="se"),
        _method("self_con", "self-consistency: 1 - share of samples the greedy answer entails both ways (> 0.5)",
                "samples", "nli", paper_row="Self-Con", sample_set="sc"),
        _method("deg", "1 - mean of the samples' symmetrised entailment matrix W", "samples", "nli", paper_row="Deg",
                sample_set="sc"),
        _method("eigv", "sum of 1 - lambda over the eigenvalues < 0.9 of W's normalised Laplacian", "samples", "nli",
                sample_set="sc"),
        _method("ecc", "spectral norm of the centred Laplacian eigenvectors with eigenvalues < 0.9", "samples", "nli",
                sample_set="sc"),
        _method("sd", "1 - semantic density: NLI closeness of 10 diverse beams to the greedy answer, weighted by their "
                "temperature-0.1 probability", "beams", "nli", paper_row="S.D."),
        _method("sar", "SAR: relevance-shifted log-likelihoods with cross-encoder sentence similarity", "samples",
                "cross_encoder", paper_row="SAR", sample_set="sar"),
        _method("token_sar", "token-SAR: -mean of the relevance-weighted token log-likelihoods", "samples",
                "cross_encoder", sample_set="sar"),
        _method("sentence_sar", "sentence-SAR: sentence-similarity-weighted sequence log-likelihoods", "samples",
                "cross_encoder", sample_set="sar"),
    )
}


#: The rows of the SemGrad paper's Table 1, in its order (docs/method.md §7).
PAPER_TABLE_1 = (
    "LN-PE", "G-NLL", "SAR", "S.E.", "ExGrad", "ParaGrad", "SemGrad", "HybridGrad", "P(True)", "Self-Con", "Deg",
    "INSIDE", "S.D.", "M.I.",
)
def paper_methods(available_auxiliary: Collection[str] = ()) -> tuple[tuple[str, ...], dict[str, str]]:
    """The methods of the paper's Table 1 (in its order) whose auxiliary models are available, and the ones
    left out, with the model arg that would let them run."""
    by_row = {method.paper_row: name for name, method in _REGISTRY.items() if method.paper_row}
    chosen, left_out = [], {}
    for row in PAPER_TABLE_1:
        name = by_row[row]
        lacking = [AUXILIARY[need] for need in sorted(get(name).needs & set(AUXILIARY)) if need not in available_auxiliary]
        if lacking:
            left_out[name] = f"needs {' and '.join(lacking)}=PATH_OR_ID (no such model is given or in the local cache)"
        else:
            chosen.append(name)
    return tuple(chosen), left_out


def runnable(available_auxiliary: Collection[str] = ()) -> tuple[str, ...]:
    """Every method whose auxiliary models are available (what `semgrad_methods=all` runs)."""
    return tuple(name for name, method in _REGISTRY.items() if not (method.needs & set(AUXILIARY)) - set(available_auxiliary))


def available() -> tuple[str, ...]:
    """Every registered method name, in display order."""
    return tuple(_REGISTRY)


def get(name: str) -> Method:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown uncertainty method {name!r}; choose from {', '.join(_REGISTRY)}") from None


def single_pass_methods() -> tuple[str, ...]:
    """The methods `score()` computes from one forward and one partial backward pass."""
    return tuple(name for name, method in _REGISTRY.items() if method.needs <= SINGLE_PASS_NEEDS)


def with_free_methods(requested: Iterable[str]) -> tuple[str, ...]:
    """The requested methods plus every free one, in registry order: what a scoring run computes and logs."""
    wanted = set(requested)
    return tuple(name for name, method in _REGISTRY.items() if name in wanted or method.free)


def sample_sets_of(names: Collection[str]) -> tuple[str, ...]:
    """The sample sets the named methods read, each once, in registry order."""
    return tuple(dict.fromkeys(method.sample_set for name, method in _REGISTRY.items() if name in names and method.sample_set))


def needs_of(names: Collection[str]) -> frozenset[str]:
    """Everything the named methods need together."""
    return frozenset(need for name in names for need in get(name).needs)


def ordered(names: Iterable[str]) -> list[str]:
    """Registered names in registry order first, then unknown ones (e.g. from newer logs) sorted."""
    present = set(names)
    return [name for name in _REGISTRY if name in present] + sorted(present - set(_REGISTRY))


def markdown_table(names: Sequence[str] | None = None) -> str:
    """The README's table of methods (a test keeps the README's copy equal to this)."""
    lines = ["| method | what it is | needs | sample set | paper's Table 1 row |", "|---|---|---|---|---|"]
    for name in names or available():
        method = get(name)
        needs = ", ".join(sorted(method.needs))
        description = method.description.replace("|", "\\|")  # a literal | would end the cell
        lines.append(f"| `{name}` | {description} | {needs} | {method.sample_set or ''} | {method.paper_row or ''} |")
    return "\n".join(lines)
