"""Writes are atomic however the process ends that can be caught, and follow the umask in every format."""
from __future__ import annotations

import contextlib
import errno
import os
import signal
from pathlib import Path

import pytest

from resnet_rosetta.cli.main import main
from resnet_rosetta.common import atomic
from resnet_rosetta.common.canonical import random_weights, save_canonical
from resnet_rosetta.common.errors import UserError
from resnet_rosetta.common.spec import get_spec

SPEC = get_spec("resnet18_small")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("src") / "w.safetensors"
    save_canonical(path, random_weights(SPEC, seed=0), SPEC)
    return path


@pytest.mark.parametrize("umask", [0o022, 0o027])
@pytest.mark.parametrize("ext", [".safetensors", ".pth", ".pdparams", ".msgpack"])
def test_written_files_follow_the_umask(source: Path, tmp_path: Path, ext: str, umask: int) -> None:
    old = os.umask(umask)
    try:
        assert main(["convert", str(source), str(tmp_path / f"out{ext}")]) == 0
    finally:
        os.umask(old)
    assert (tmp_path / f"out{ext}").stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"out{ext}"]


@pytest.mark.parametrize("ext", [".safetensors", ".pth"])
def test_sigterm_while_writing_leaves_no_temporary_file(source: Path, tmp_path: Path, ext: str,
                                                       capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / f"out{ext}"
    dst.write_bytes(b"an earlier good result")
    real = atomic.atomic_path

    def killed_midway(dest: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
        with real(dest) as tmp:
            tmp.write_bytes(b"half a file")
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
            yield tmp

    import importlib

    writer = atomic if ext == ".safetensors" else importlib.import_module("resnet_rosetta.frameworks.torch.files")
    monkeypatch.setattr(writer, "atomic_path", contextlib.contextmanager(killed_midway))
    before = signal.signal(signal.SIGTERM, lambda *_: None)  # without the CLI's handler: ignored, not fatal
    try:
        rc = main(["convert", str(source), str(dst)])
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if before is None else before)
    assert rc == 143
    assert "terminated" in capsys.readouterr().err
    assert dst.read_bytes() == b"an earlier good result"
    assert sorted(p.name for p in tmp_path.iterdir()) == [dst.name]



def test_a_full_disk_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    dest = tmp_path / "out.npy"
    with pytest.raises(UserError, match=r"out.npy: cannot write \(No space left on device\)"):
        with atomic.atomic_path(dest) as tmp:
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_check_writable_refuses_before_any_work(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(UserError, match="is a directory"):
        atomic.check_writable(tmp_path / "d")
    atomic.check_writable(tmp_path / "new" / "deeper" / "out.npy")  # folders that do not exist yet are made later
    assert not (tmp_path / "new").exists()
