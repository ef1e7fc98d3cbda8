from resnet_rosetta.training.evaluate import add_parser, run  # noqa: F401
