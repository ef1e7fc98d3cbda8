from resnet_rosetta.training.loop import add_parser, run  # noqa: F401
