"""The SemGrad paper's sampling and NLI baselines: pure post-processing formulas, and what draws their inputs.

Each formula module holds one family and follows docs/method.md §3 (the reference code's exact
computation, its degenerate cases included). The functions take numbers and strings that the caller
has already produced (token log-probs, NLI probabilities, embeddings, similarity matrices); none of
them runs a model.

- `entropy`: LN-PE and PE (§3.1), semantic clustering and semantic entropy (§3.7).
- `graph`: Self-Con (§3.4); Deg, EigV and Ecc (§3.5).
- `inside`: INSIDE / EigenScore (§3.6).
- `density`: semantic density (§3.8).
- `mutual_information`: M.I. with SQuAD-F1 clustering (§3.9).
- `sar`: token-SAR, sentence-SAR and SAR (§3.10).
- `p_true`: the P(True) prompt (§3.3).
- `lexical`: lexical similarity with ROUGE-L, as LM-Polygraph computes it (§3.12).

These modules need no torch. The ones that run a model: `sets` (how each sample set is drawn),
`generation` (drawing a set, warped token log-probs, INSIDE's hidden states), `teacher_forcing`
(P(True) and M.I.'s mu2 passes) and `scorer` (all of it for a batch of questions).
"""
