"""`python -m lm_eval_semgrad ...`: the plugin's subcommands, or else `lm_eval ...` with the plugin registered.

`python -m lm_eval_semgrad calibrate ...` = `lm-eval-semgrad calibrate ...`; anything else goes to
lm-eval's own CLI after an explicit registration, which helps where the start-up hook does not
run (e.g. `python -S`) and with `accelerate launch -m lm_eval_semgrad ...` for data parallelism.
"""

import sys

from lm_eval_semgrad.cli import SUBCOMMANDS
from lm_eval_semgrad.cli import main as plugin_main
from lm_eval_semgrad.harness import register


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        return plugin_main(sys.argv[1:])
    register()
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
