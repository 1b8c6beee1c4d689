"""`python -m lm_eval_semgrad.methods`: print the README's table of methods from the registry."""

from . import markdown_table

print(markdown_table())
