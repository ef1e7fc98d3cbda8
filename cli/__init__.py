"""Command-line interface: `resnet-rosetta`."""
