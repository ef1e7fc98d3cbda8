"""Property-based fuzzing of the peers' formats, under test_fuzz_inputs.py's contract (exit 0 with the
same weights read back, or exit 2 with one stderr line, nothing written, an existing output intact):
timm state dicts (.pth, .safetensors without our header; ResNet-D names), PaddleClas .pdparams (vd
names) and Hugging Face folders (config.json + model.safetensors): bytes truncated or flipped, keys,
dtypes, shapes and values changed, and config.json fields given wrong values or dropped. The files
are written by the rule table (no peer needed), for narrow nets that convert in milliseconds.
"""
from __future__ import annotations

import io
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from hypothesis import example, given, settings, strategies as st
from safetensors.numpy import save_file

from resnet_rosetta.common import hf, rules
from resnet_rosetta.common.canonical import random_weights
from resnet_rosetta.common.pdparams import write_pdparams
from resnet_rosetta.common.spec import get_spec
from resnet_rosetta.frameworks.weights import read_weights

from test_fuzz_inputs import EXTENSIONS, PROFILE, _mutate_bytes, _mutate_dict, _run, byte_mutation, json_values, \
    structure

NARROW = dict(depths=(1, 1, 1, 1), widths=(4, 4, 4, 4), stem_width=8, num_classes=3)
D_SPEC = get_spec("resnet50d").replace(**NARROW)  # timm's and PaddleClas' ResNet-D / vd layout
HF_SPEC = get_spec("resnet50").replace(**NARROW)  # Hugging Face has only the 7x7 stem and conv shortcuts
# source -> (file or folder name, the file in it that is mutated, rule format, spec)
SOURCES = {"timm.pth": ("timm.pth", "", "torch", D_SPEC),
           "timm.safetensors": ("timm.safetensors", "", "torch", D_SPEC),
           "paddleclas": ("clas.pdparams", "", "paddleclas", D_SPEC),
           "hf-weights": ("hf", hf.WEIGHTS, "hf", HF_SPEC),
           "hf-config": ("hf", hf.CONFIG, "hf", HF_SPEC)}


def _native(source: str) -> dict[str, np.ndarray]:
    _, _, fmt, spec = SOURCES[source]
    return rules.to_native(random_weights(spec, seed=0), spec, fmt)


def _write_source(folder: Path, source: str, native: dict[str, object], config: object = None) -> Path:
    """The peer's file (or folder) holding `native`; a Hugging Face folder's config.json is `config`
    (default: the one `--to hf` writes), a str written as is."""
    name, _, _, spec = SOURCES[source]
    path = folder / name
    if source == "timm.pth":
        torch.save({k: torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                    for k, v in native.items()}, path)
    elif source == "timm.safetensors":
        save_file({k: np.ascontiguousarray(v) for k, v in native.items()}, str(path))  # type: ignore[arg-type]
    elif source == "paddleclas":
        write_pdparams(path, native)  # type: ignore[arg-type]
    else:
        path.mkdir()
        save_file({k: np.ascontiguousarray(v) for k, v in native.items()}, str(path / hf.WEIGHTS))  # type: ignore
        config = hf.config_for(spec, None) if config is None else config
        (path / hf.CONFIG).write_text(config if isinstance(config, str) else json.dumps(config), encoding="utf-8")
    return path


def _contract(folder: Path, src: Path, dst_ext: str, precious: bool) -> None:
    dst = folder / f"out{dst_ext}"
    rc, _ = _run(["convert", str(src), str(dst)], folder, dst, precious)
    if rc == 0:  # a correct result: DST holds exactly what SRC holds
        got, _, _ = read_weights(dst)
        want, _, _ = read_weights(src)
        assert got.keys() == want.keys()
        assert all(np.array_equal(got[k].astype(np.float64), want[k].astype(np.float64)) for k in want)


def test_valid_peer_files_convert() -> None:
    """The unmutated files convert (so the mutations below start from files that are read)."""
    for source in SOURCES:
        with tempfile.TemporaryDirectory() as d:
            src = _write_source(Path(d), source, _native(source))  # type: ignore[arg-type]
            _, spec, fmt = read_weights(src)
            assert fmt == SOURCES[source][2]  # timm's names are torch's (canonical)
            assert (spec.stem, spec.downsample) == (SOURCES[source][3].stem, SOURCES[source][3].downsample)


@settings(settings.get_profile(PROFILE))
@given(source=st.sampled_from(sorted(SOURCES)), how=byte_mutation, dst_ext=st.sampled_from(EXTENSIONS),
       precious=st.booleans())
@example(source="timm.pth", how=("flip", 3165, 110), dst_ext=".safetensors", precious=False)  # a key's "e" -> "\v"
def test_peer_bytes_truncated_or_flipped(source: str, how: tuple, dst_ext: str, precious: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        src = _write_source(Path(d), source, _native(source))  # type: ignore[arg-type]
        target = src / SOURCES[source][1] if SOURCES[source][1] else src
        target.write_bytes(_mutate_bytes(target.read_bytes(), how))
        _contract(Path(d), src, dst_ext, precious)


@settings(settings.get_profile(PROFILE))
@given(source=st.sampled_from(["timm.pth", "timm.safetensors", "paddleclas", "hf-weights"]), how=structure,
       dst_ext=st.sampled_from(EXTENSIONS))
def test_peer_keys_dtypes_shapes_and_values_changed(source: str, how: tuple, dst_ext: str) -> None:
    if source != "timm.pth" and how[0] == "dtype" and how[2] == "complex64":  # safetensors cannot store it
        how = ("dtype", how[1], "int16")
    with tempfile.TemporaryDirectory() as d:
        try:
            src = _write_source(Path(d), source, _mutate_dict(_native(source), how))
        except (TypeError, ValueError, RuntimeError):
            return  # the writer itself cannot store this mutation: nothing to read
        _contract(Path(d), src, dst_ext, precious=True)


CONFIG_FIELDS = sorted(hf.config_for(HF_SPEC, None)) + ["num_labels"]


@settings(settings.get_profile(PROFILE), max_examples=settings.get_profile(PROFILE).max_examples * 3)
@given(field=st.sampled_from(CONFIG_FIELDS), value=st.one_of(json_values, st.just(KeyError),
       st.dictionaries(st.text(max_size=3), st.one_of(st.integers(), st.text(max_size=3)), max_size=3)),
       whole=st.sampled_from([None, "[]", "3", '"resnet"', "null", "{", "", "\xff"]))
def test_hf_config_changed(field: str, value: object, whole: str | None) -> None:
    """A field given any JSON value or dropped (KeyError), or the whole file not a JSON object."""
    config = hf.config_for(HF_SPEC, None)
    if value is KeyError:
        config.pop(field, None)
    else:
        config[field] = value
    with tempfile.TemporaryDirectory() as d:
        src = _write_source(Path(d), "hf-config", _native("hf-config"), config if whole is None else whole)
        _contract(Path(d), src, ".msgpack", precious=True)


def test_hf_bare_weights_and_torch_pickle_in_place_of_config() -> None:
    """A config.json that is a torch pickle, and a folder whose weights are a .pth: one line, exit 2."""
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        buf = io.BytesIO()
        torch.save({"model_type": "resnet"}, buf)
        src = _write_source(folder, "hf-config", _native("hf-config"), buf.getvalue().decode("latin-1"))
        assert _run(["convert", str(src), str(folder / "o.safetensors")], folder, folder / "o.safetensors",
                    precious=True)[0] == 2
        (src / hf.CONFIG).write_text(json.dumps(hf.config_for(HF_SPEC, None)), encoding="utf-8")
        (src / hf.WEIGHTS).write_bytes(buf.getvalue())
        assert _run(["convert", str(src), str(folder / "o.safetensors")], folder, folder / "o.safetensors",
                    precious=False)[0] == 2
