"""Makes the stock `lm_eval` command see `semgrad-hf` and the semgrad tasks; imported at start-up.

`lm_eval_semgrad_autoload.pth` imports this module in every interpreter, so it must cost nothing
measurable and must never break Python: it imports nothing beyond `sys` and only adds a finder to
`sys.meta_path` that answers for two module names. When `lm_eval.models` or `lm_eval.tasks`
finishes loading, registration hands over to `lm_eval_semgrad.harness.registration`. Registering
any earlier would leave lm-eval's own models unregistered (its registry imports them only when empty).

The module keeps its own spec and loader (so `importlib.resources.files("lm_eval.tasks")`,
`pkgutil.get_data` and everything else a loader offers work as without the plugin); only that
loader instance's `exec_module` is wrapped.
"""

import sys

_WATCHED = {"lm_eval.models": "register_model", "lm_eval.tasks": "register_task_path"}


def _after_load(module_name):
    try:
        from lm_eval_semgrad.harness import registration

        getattr(registration, _WATCHED[module_name])()
    except Exception as error:  # never let the plugin break an unrelated lm_eval run
        print(f"lm-eval-semgrad: could not register with lm_eval ({error!r})", file=sys.stderr)


def _register_after(loader, module_name):
    """Make this one loader instance register the plugin once it has executed `module_name`."""
    execute = loader.exec_module

    def exec_module(module):
        execute(module)
        _after_load(module_name)

    loader.exec_module = exec_module


class _Finder:
    """A meta-path finder that only watches for the two lm-eval modules (duck-typed: no importlib.abc)."""

    def find_spec(self, name, path, target=None):
        if name not in _WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                try:
                    _register_after(spec.loader, name)
                except (AttributeError, TypeError):  # a loader that takes no attributes: `python -m lm_eval_semgrad` still registers
                    return None
                return spec
        return None


def install():
    """Add the finder once; modules already imported are handled at once."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name in _WATCHED:
        if name in sys.modules:
            _after_load(name)


install()
