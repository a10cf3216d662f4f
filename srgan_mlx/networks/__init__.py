"""The networks and how they compute: SRResNet's generator, the discriminator, VGG19's features, ESRGAN's RRDBNet,
their convolution layer and the kernels between convolutions, and the device and convolution path they run on."""
