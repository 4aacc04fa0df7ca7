"""Data sets (embedded MNIST-5k and sklearn digits, local CIFAR-10, generated 3-D) and reference networks."""
