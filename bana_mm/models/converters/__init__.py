"""Checkpoint converters into this project's layouts (registry-free):
the authors' released BANA checkpoints (:mod:`.bana_checkpoint`) and an
ImageNet VGG-16 from torchvision into VGG-16 LargeFOV
(:mod:`.torchvision_vgg`).
They live beside the backbone whose parameter names they produce."""
