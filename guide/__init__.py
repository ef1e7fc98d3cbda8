"""The differences guide (`resnet-rosetta explain`, docs/differences.md): PyTorch, Paddle and Flax side by side.

`topics` holds the content as data, `source` reads the code cells from this repository's files,
`pitfalls` and `measure` produce the figures, `terminal` and `markdown` render; `explain` is the
command's one entry point. No framework is imported here: framework code is reached through
`resnet_rosetta.frameworks.load`, each framework in its own process when measuring.
"""
