"""PaddlePaddle dygraph implementation (paddle.nn, NCHW), after the classic Paddle ResNet source."""
