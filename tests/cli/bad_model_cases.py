"""Bad `parity --model` options (a user's own port); appended to `bad_cases.CASES`."""
from __future__ import annotations

from bad_cases import CASES, Case, _options

for _model, _expect in [
    ("torch_resnet", "--model expects FRAMEWORK=module.path:factory (FRAMEWORK in torch, paddle, flax), found "
                     "'torch_resnet'"),
    ("jax=my_resnet:build", "--model jax=my_resnet:build: unknown framework 'jax'; known: torch, paddle, flax"),
    ("torch=no_such_module:build", "--model torch=no_such_module:build: cannot import no_such_module "
                                   "(ModuleNotFoundError: No module named 'no_such_module')"),
]:
    CASES.append(Case(f"option-parity--model={_model}", "options", f"`parity --model {_model}`",
                      _options(["parity", "--model", _model, "--checks", "eval"], "--json", "p.json"), _expect))
