#!/bin/bash
# usage: tests/cosmic-ray/copy.sh COPY -- a throwaway copy of this work tree's HEAD for one cosmic-ray
# session (docs/mutation.md): cosmic-ray mutates the module in place, so several sessions at once, or
# one while you edit, each need their own. Run `cosmic-ray exec` inside COPY with PYTHONPATH=COPY/_pkg.
set -euo pipefail
COPY=$(realpath -m "$1")
TREE=$(git rev-parse --show-toplevel)
rm -rf "$COPY" && mkdir -p "$COPY/_pkg/resnet_rosetta"
git -C "$TREE" archive HEAD | tar -x -C "$COPY"
ln -s "$TREE/.venv" "$COPY/.venv"
touch "$COPY/_pkg/resnet_rosetta/__init__.py"
for package in common frameworks benchmarks cli parity training guide; do
    ln -s "$COPY/$package" "$COPY/_pkg/resnet_rosetta/$package"
done
