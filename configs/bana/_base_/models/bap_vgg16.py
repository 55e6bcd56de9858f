# Stage-1 classifier of SPEC §1: VGG-16 LargeFOV (fc6 dilation 1) + BAP head.
num_classes = 20
# Initial weights (SPEC §1, the ONE place to set them): DeepLab's VGG-16 in
# the LargeFOV layout for Caffe-style BGR input. Make the file with
#   python tools/model_converters/vgg16_to_largefov.py \
#       SRC checkpoints/vgg16_largefov.pth
# from torchvision's ImageNet vgg16 (vgg16-397923af.pth) or the authors'
# vgg_caffe.pth (docs/reproduce.md), or load another converted file with
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# A raw torchvision file is refused with an error naming the converter.
pretrained = 'checkpoints/vgg16_largefov.pth'
model = dict(
    type='BAPClassifier',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        # Caffe style: BGR input, mean subtraction, std 1. Padding to the
        # batch shape uses 0, i.e. the mean colour, like the authors' crops.
        mean=[104.008, 116.669, 122.675],
        std=[1.0, 1.0, 1.0],
        bgr_to_rgb=False,
        pad_size_divisor=1),
    backbone=dict(
        type='VGG16LargeFOV',
        fc6_dilation=1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    head=dict(
        type='BAPHead',
        in_channels=1024,
        num_classes=num_classes,
        mode='bap',
        grid_size=4,
        test_grid_size=1,
        roi_size=(2, 2),
        min_background_share=0.125))
