"""Reproducing the SemGrad paper: its set-up and numbers (`paper`), its tables from a grid (`tables`),
and the `lm-eval-semgrad reproduce` command that runs the grid (`cli`)."""
