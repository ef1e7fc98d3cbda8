"""PyTorch implementation (torch.nn, NCHW); state_dict keys identical to torchvision."""
