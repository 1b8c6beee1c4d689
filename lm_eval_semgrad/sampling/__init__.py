"""Post-processing formulas of the SemGrad paper's sampling and NLI baselines, as pure functions.

Each module holds one family and follows `/work/shared/BASELINES.md` (the reference code's exact
computation, its degenerate cases included). The functions take numbers and strings that the caller
has already produced (token log-probs, NLI probabilities, embeddings, similarity matrices); none of
them runs a model, and none imports torch.

- `entropy`: LN-PE and PE (2.1), semantic clustering and semantic entropy (2.7).
- `graph`: Self-Con (2.4); Deg, EigV and Ecc (2.5).
- `inside`: INSIDE / EigenScore (2.6).
- `density`: semantic density (2.8).
- `mutual_information`: M.I. with SQuAD-F1 clustering (2.9).
- `sar`: token-SAR, sentence-SAR and SAR (2.10).
- `p_true`: the P(True) prompt (2.3).
- `lexical`: lexical similarity with ROUGE-L, as LM-Polygraph computes it.
"""
