"""Hugging Face conventions shared by `semgrad-hf`, `rescore` and `calibrate`.

How a prompt is encoded (HFLM's special-token rule), the reference semantic position of known chat
templates, short names of embedded models, the `semgrad_*` model args, and one resolution of the
semantic position and layers. Nothing here imports lm-eval's evaluator or the harness glue.
"""
