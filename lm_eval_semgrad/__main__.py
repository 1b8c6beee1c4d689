"""`python -m lm_eval_semgrad ...` = `lm_eval ...` with the plugin registered explicitly.

Useful where the start-up hook does not run (e.g. `python -S`) and with
`accelerate launch -m lm_eval_semgrad ...` for data-parallel runs.
"""

from lm_eval_semgrad.harness import register


def main() -> None:
    register()
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()


if __name__ == "__main__":
    main()
