"""Hugging Face transformers' ResNet in and out: a save_pretrained folder (or its model.safetensors)
converts without --arch, its config mapped to the spec and its label names kept; all three frameworks
give its logits; `--to hf` from another framework's file writes a folder ResNetForImageClassification
loads with no missing or unexpected keys and bit-identical logits. And the folders it refuses."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from resnet_rosetta.cli.main import main
from resnet_rosetta.common.canonical import load_canonical, load_labels
from peer_helpers import batch, bn_statistics, convert, forward_everywhere

transformers = pytest.importorskip("transformers")
LABELS = [f"class {chr(97 + i)}" for i in range(10)]
# ResNet-50's and ResNet-18's layouts (bottleneck 3-4-6-3, basic 2-2-2-2) at narrow widths, to stay fast
CONFIGS = {"resnet-50": dict(layer_type="bottleneck", depths=[3, 4, 6, 3], hidden_sizes=[32, 64, 128, 256],
                             embedding_size=16),
           "resnet-18": dict(layer_type="basic", depths=[2, 2, 2, 2], hidden_sizes=[8, 16, 32, 64],
                             embedding_size=8)}


def hf_peer(folder: Path, layout: dict) -> torch.nn.Module:
    """ResNetForImageClassification of that layout, seeded, non-trivial BN statistics, saved with save_pretrained."""
    torch.manual_seed(0)
    config = transformers.ResNetConfig(**layout, id2label=dict(enumerate(LABELS)),
                                       label2id={n: i for i, n in enumerate(LABELS)})
    model = transformers.ResNetForImageClassification(config)
    state = model.state_dict()
    bn = [k for k in state if ".normalization." in k and not k.endswith("tracked")]
    values = bn_statistics(bn, {k: tuple(state[k].shape) for k in bn})
    model.load_state_dict({**state, **{k: torch.from_numpy(v) for k, v in values.items()}})
    model.save_pretrained(folder)
    return model.eval()


def logits(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(pixel_values=torch.from_numpy(x)).logits.numpy()


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_hf_folder_round_trip(tmp_path: Path, name: str) -> None:
    peer = hf_peer(tmp_path / "peer", CONFIGS[name])
    x, x_path = batch(tmp_path)
    expected = logits(peer, x)
    convert(tmp_path / "peer", tmp_path / "c.safetensors", as_user=name == "resnet-50", says="(hf)")  # once as a user
    _, spec = load_canonical(tmp_path / "c.safetensors")
    layout = CONFIGS[name]
    assert spec is not None and (spec.block, list(spec.depths), spec.stem_width, spec.num_classes) == (
        layout["layer_type"], layout["depths"], layout["embedding_size"], 10)
    assert [w * spec.expansion for w in spec.widths] == layout["hidden_sizes"]
    assert load_labels(tmp_path / "c.safetensors") == LABELS
    forward_everywhere(tmp_path / "peer", x_path, expected, tmp_path)  # forward --weights FOLDER
    # the bare model.safetensors is recognised by its keys too
    assert main(["convert", str(tmp_path / "peer" / "model.safetensors"), str(tmp_path / "bare.pth")]) == 0
    # back from Flax's file: the labels travel in the canonical header, not in .msgpack
    assert main(["convert", str(tmp_path / "c.safetensors"), str(tmp_path / "f.msgpack")]) == 0
    assert main(["convert", str(tmp_path / "f.msgpack"), str(tmp_path / "back"), "--to", "hf"]) == 0
    back, info = transformers.ResNetForImageClassification.from_pretrained(tmp_path / "back", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert np.array_equal(logits(back.eval(), x), expected)
    assert main(["convert", str(tmp_path / "c.safetensors"), str(tmp_path / "named"), "--to", "hf"]) == 0
    assert json.loads((tmp_path / "named" / "config.json").read_text())["id2label"]["3"] == LABELS[3]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], pattern: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and pattern in err, err


def test_hf_folders_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hf_peer(tmp_path / "good", CONFIGS["resnet-18"])
    capsys.readouterr()  # save_pretrained's progress bar
    out = tmp_path / "out.safetensors"
    for case, edit, pattern in [
        ("vit", lambda c: c.update(model_type="vit"), "config.json: model_type is 'vit', expected 'resnet'"),
        ("v1", lambda c: c.update(downsample_in_bottleneck=True), "downsample_in_bottleneck is true"),
        ("deeper", lambda c: c.update(depths=[2, 2, 3, 2]), "hf weights do not match"),
    ]:
        shutil.copytree(tmp_path / "good", tmp_path / case)
        config = json.loads((tmp_path / case / "config.json").read_text())
        edit(config)
        (tmp_path / case / "config.json").write_text(json.dumps(config))
        _refused(capsys, ["convert", str(tmp_path / case), str(out)], pattern)
    (tmp_path / "empty").mkdir()
    shutil.copy(tmp_path / "good" / "config.json", tmp_path / "empty")
    _refused(capsys, ["convert", str(tmp_path / "empty"), str(out)], "no model.safetensors beside config.json")
    assert not out.exists()
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    _refused(capsys, ["convert", str(tmp_path / "good"), str(tmp_path / "taken"), "--to", "hf"],
             "folder exists and is not empty; pass --overwrite")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]
    assert main(["convert", str(tmp_path / "good"), str(tmp_path / "taken"), "--to", "hf", "--overwrite"]) == 0
    assert sorted(p.name for p in (tmp_path / "taken").iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind


def test_parity_takes_a_hugging_face_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`parity --weights FOLDER`: the folder's config gives the spec, its weights are checked against the oracle."""
    hf_peer(tmp_path / "peer", CONFIGS["resnet-18"])
    assert main(["parity", "--no-proof", "--weights", str(tmp_path / "peer"), "--frameworks", "torch", "--checks", "eval",
                 "--size", "16", "--batch", "1", "--json", str(tmp_path / "p.json")]) == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["settings"]["weights"] == str(tmp_path / "peer") and report["passed"]
