"""Makes the stock `lm_eval` command see `semgrad-hf` and the semgrad tasks; imported at start-up.

`lm_eval_semgrad_autoload.pth` imports this module in every interpreter, so it must stay cheap and
must never break Python: it only installs an import hook. When `lm_eval.models` or `lm_eval.tasks`
finishes loading, the hook hands over to `lm_eval_semgrad.harness.registration`. Registering any
earlier would leave lm-eval's own models unregistered (its registry imports them only when empty).
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys

_WATCHED = {"lm_eval.models": "register_model", "lm_eval.tasks": "register_task_path"}


def _after_load(module_name: str) -> None:
    try:
        from lm_eval_semgrad.harness import registration

        getattr(registration, _WATCHED[module_name])()
    except Exception as error:  # never let the plugin break an unrelated lm_eval run
        print(f"lm-eval-semgrad: could not register with lm_eval ({error!r})", file=sys.stderr)


class _Loader(importlib.abc.Loader):
    def __init__(self, inner: importlib.abc.Loader, name: str) -> None:
        self._inner, self._name = inner, name

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:
        self._inner.exec_module(module)
        _after_load(self._name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _WATCHED:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _Loader(spec.loader, name)
                return spec
        return None


def install() -> None:
    """Add the import hook once; modules already imported are handled at once."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for name in _WATCHED:
        if name in sys.modules:
            _after_load(name)


install()
