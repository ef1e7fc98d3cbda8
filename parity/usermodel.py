"""Check a port the user wrote: `parity --model FW=module.path:factory` puts the user's own ResNet
in framework FW beside this suite's ports, as the participant `user-FW`.

The factory builds the model from a preset name (one required argument: each --arch, default
DEFAULT_ARCHS) or takes none (then its architecture is read off its tensors, `common/inference.py`).
Its tensors are matched through the rule table's layouts (torch: torchvision / timm, Hugging Face;
paddle: classic source, paddle.vision, PaddleClas; flax: this suite's names), strictly: a name or
shape that does not fit is one line listing what is missing and unexpected (exit 2). The module is
imported with the user's working directory and PYTHONPATH first on sys.path (as `python -m` has
them), in this process or, with --isolate, in each worker, which is told those folders. Every comparison row of a user's
model names the tensor or stage in the user's own module names too (`yours(...)`).
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from resnet_rosetta import frameworks
from resnet_rosetta.common import formats, process, rules
from resnet_rosetta.common.errors import UserError, first_line
from resnet_rosetta.common.spec import ResNetSpec, get_spec
from resnet_rosetta.frameworks import FRAMEWORKS
from .engine import Comparison

_SPEC = re.compile(r"^(?P<fw>[^=]+)=(?P<module>[A-Za-z_][\w.]*):(?P<factory>[A-Za-z_]\w*)$")


@dataclass(frozen=True)
class UserModel:
    """One --model: framework, module, factory, and where the user's Python finds modules."""

    framework: str
    module: str
    factory: str
    path: tuple[str, ...]  # where the user's Python finds modules: working directory, PYTHONPATH (absolute)
    fmt: str = ""  # its layout in the rule table, once matched
    arch: str | None = None  # the preset name its factory takes, or None

    @property
    def name(self) -> str:
        return f"user-{self.framework}"

    @property
    def text(self) -> str:
        return f"{self.framework}={self.module}:{self.factory}"

    def make(self) -> Any:
        """A fresh model from the user's factory; one-line UserError when it cannot be built."""
        factory = load_factory(self)
        try:
            return factory(self.arch) if self.arch is not None else factory()
        except Exception as exc:
            raise UserError(f"--model {self.text}: the factory raised {type(exc).__name__}: "
                            f"{first_line(exc)}") from None

    def port(self) -> "Port":
        """The framework's adapter and trainer over this model (frameworks/<fw>/usermodel.py)."""
        return Port(self.make, self.fmt, frameworks.load(self.framework, "usermodel").UserAdapter,
                    frameworks.load(self.framework, "training").Trainer)


@dataclass(frozen=True)
class Port:
    """What parity's engine builds for a user's model: the framework's `UserAdapter` over it, and the
    framework's own `Trainer` driving that adapter."""

    make: Callable[[], Any]
    fmt: str
    adapter_class: type  # frameworks/<fw>/usermodel.py's UserAdapter
    trainer_class: type  # frameworks/<fw>/training.py's Trainer

    def adapter(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], device: str = "cpu",
                dtype: str = "fp32") -> Any:
        return self.adapter_class(self.make, self.fmt, spec, weights, device, dtype)

    def trainer(self, spec: ResNetSpec, weights: Mapping[str, np.ndarray], *, device: str = "cpu",
                dtype: str = "fp32", **options: Any) -> Any:
        return self.trainer_class(spec, weights, device=device, dtype=dtype,
                                  adapter=self.adapter(spec, weights, device, dtype), **options)


def parse(text: str, cwd: str | None = None) -> UserModel:
    """`FW=module.path:factory` -> UserModel; one-line UserError naming what is wrong."""
    m = _SPEC.match(text.strip())
    if not m:
        raise UserError(f"--model expects FRAMEWORK=module.path:factory (FRAMEWORK in {', '.join(FRAMEWORKS)}), "
                        f"found {text!r}")
    if m["fw"] not in FRAMEWORKS:
        raise UserError(f"--model {text}: unknown framework {m['fw']!r}; known: {', '.join(FRAMEWORKS)}")
    cwd = cwd or os.getcwd()
    extra = [os.path.join(cwd, p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return UserModel(m["fw"], m["module"], m["factory"], tuple(dict.fromkeys([cwd, *extra])))


def load_factory(user: UserModel) -> Callable[..., Any]:
    """Import the user's module (their working directory and PYTHONPATH first on sys.path, as their
    own Python has them, wherever this process runs) and return the factory."""
    added = [p for p in user.path if p not in sys.path]
    sys.path[:0] = added
    try:
        module = importlib.import_module(user.module)
    except Exception as exc:
        raise UserError(f"--model {user.text}: cannot import {user.module} ({type(exc).__name__}: "
                        f"{first_line(exc)}); it must be importable from the working directory or PYTHONPATH") from None
    finally:
        for p in added:
            sys.path.remove(p)
    factory = getattr(module, user.factory, None)
    if not callable(factory):
        raise UserError(f"--model {user.text}: {user.module} has no callable {user.factory!r}")
    return factory


def takes_name(user: UserModel) -> bool:
    """True when the factory has a required positional parameter (the preset name)."""
    try:
        params = inspect.signature(load_factory(user)).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def describe(fields: dict[str, Any], names: list[str]) -> dict[str, Any]:
    """In this process or a worker (where the user's framework is): {"shapes": preset name ("" for
    a factory that takes none) -> the built model's tensor names and shapes} or {"error": one line}.
    A factory that takes a name is given each of `names`."""
    user = UserModel(**fields)
    out = {}
    try:
        for name in names if takes_name(user) else [None]:
            model = dataclasses.replace(user, arch=name).make()
            try:
                shapes = frameworks.load(user.framework, "usermodel").native_shapes(model)
            except TypeError as exc:
                raise UserError(f"--model {user.text}: the factory did not return a model ({exc})") from None
            out[name or ""] = {k: list(v) for k, v in shapes.items()}
    except UserError as exc:
        return {"error": str(exc)}
    return {"shapes": out}


def fit(users: tuple[UserModel, ...], specs: list[ResNetSpec] | None, defaults: tuple[str, ...], isolate: bool,
        python: Mapping[str, str], timeout: float) -> list[tuple[ResNetSpec, tuple[UserModel, ...]]]:
    """Per architecture, its spec and the users' models matched to it (layout and preset name set).

    `specs`: the run's architectures when it names them (--arch, --weights); else a factory that
    takes a name is given each of `defaults`, and a model built without one brings its own. The
    models are built where they will run: in a worker with `isolate` (its framework may live only there)."""
    runs: dict[str, tuple[ResNetSpec, list[UserModel]]] = {}
    for user in users:
        names = [t.name for t in specs] if specs is not None else list(defaults)
        for name, shapes in _describe(user, names, isolate, python.get(user.framework), timeout).items():
            if name:
                targets: list[ResNetSpec | None] = [next((t for t in specs or [] if t.name == name), get_spec(name))]
            else:
                targets = list(specs) if specs is not None else [None]
            native = {k: np.zeros(s, dtype=np.float32) for k, s in shapes.items()}
            for target in targets:
                _, spec, fmt = formats.from_native(native, user.framework, f"--model {user.text}", spec=target)
                if spec.name in runs and runs[spec.name][0] != spec:
                    raise UserError(f"--model {user.text}: builds a {spec.name} unlike the other --model's")
                runs.setdefault(spec.name, (spec, []))[1].append(dataclasses.replace(user, fmt=fmt, arch=name or None))
    return [(spec, tuple(us)) for spec, us in runs.values()]


def _describe(user: UserModel, names: list[str], isolate: bool, python: str | None,
              timeout: float) -> dict[str, dict[str, list[int]]]:
    fields = dataclasses.asdict(user)
    if isolate:
        outcome = process.run_function(f"{__name__}:describe", fields, names, python=python or sys.executable,
                                       timeout=timeout, cwd=user.path[0])
        if outcome.returncode != 0 or not outcome.has_result:
            raise UserError(f"--model {user.text}: the worker building it exited with status {outcome.returncode}: "
                            f"{outcome.last_line()}")
        found = outcome.result
    else:
        found = describe(fields, names)
    if "error" in found:
        raise UserError(found["error"])
    return found["shapes"]


def yours(quantity: str, user: UserModel, spec: ResNetSpec) -> str:
    """A comparison row's quantity with the user's own name for it: a stage (where it was read) or a
    tensor (through the layout's rule table), e.g. `layer3 (yours: output of bb_2_1)`."""
    taps = rules.stage_taps(spec, user.fmt)
    keys = {ck: nk for ck, (nk, _, _) in rules.key_map(spec, user.fmt).items()}
    base = quantity.split(" (worst: ")[-1].rstrip(")")
    name = base.rsplit(":", 1)[-1]
    if name in taps:
        side, module = taps[name]
        return f"{quantity} (yours: {side} of {module})"
    if name in keys and keys[name] != name:
        return f"{quantity} (yours: {keys[name]})"
    if name == "logits":
        return f"{quantity} (yours: the model's output)"
    return quantity


def name_rows(comparisons: list[Comparison], users: tuple[UserModel, ...], spec: ResNetSpec) -> None:
    """Give every row of a comparison with a user's model the user's names (the left side's, if both are)."""
    by_name = {u.name: u for u in users}
    for c in comparisons:
        user = by_name.get(c.left) or by_name.get(c.right)
        if user is not None:
            c.rows = [dataclasses.replace(r, quantity=yours(r.quantity, user, spec)) for r in c.rows]
