"""paddle_resnet with a planted bug from the catalogue: torch's BN momentum 0.1 passed as Paddle's
`momentum`, which weighs the old running value (so the batch gets 0.9)."""
import paddle_resnet


def build() -> paddle_resnet.ResNet:
    paddle_resnet.BN_MOMENTUM = 0.1
    try:
        return paddle_resnet.ResNet()
    finally:
        paddle_resnet.BN_MOMENTUM = 0.9
