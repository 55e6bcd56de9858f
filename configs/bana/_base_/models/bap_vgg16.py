# Stage-1 classifier of SPEC §1: VGG-16 LargeFOV (fc6 dilation 1) + BAP head.
num_classes = 20
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
    backbone=dict(type='VGG16LargeFOV', fc6_dilation=1),
    head=dict(
        type='BAPHead',
        in_channels=1024,
        num_classes=num_classes,
        mode='bap',
        grid_size=4,
        test_grid_size=1,
        roi_size=(2, 2),
        min_background_share=0.125))
