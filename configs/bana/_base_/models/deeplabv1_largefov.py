# DeepLab-V1 LargeFOV (SPEC §3): VGG-16 LargeFOV with fc6 dilation 12,
# cosine classifier on fc7, NAL on Ycrf + Yret, DenseCRF at test time.
num_classes = 21  # background + 20
# Initial weights (SPEC §1; same file as stage 1, see
# _base_/models/bap_vgg16.py): ImageNet VGG-16 converted by
#   python tools/model_converters/vgg16_to_largefov.py \
#       SRC checkpoints/vgg16_largefov.pth
# or --cfg-options model.backbone.init_cfg.checkpoint=PATH. A raw torchvision
# file is refused with an error naming the converter.
pretrained = 'checkpoints/vgg16_largefov.pth'
# tools/test.py runs the DenseCRF below (the paper reports after the CRF;
# --no-crf for the raw output); validation during training skips it.
crf_at_test = True
data_preprocessor = dict(
    type='TwoMapSegDataPreProcessor',
    # Caffe style (SPEC §1): BGR, mean subtraction, std 1; pad with the mean
    mean=[104.008, 116.669, 122.675],
    std=[1.0, 1.0, 1.0],
    bgr_to_rgb=False,
    pad_val=0,
    seg_pad_val=255,
    size=(321, 321))
model = dict(
    type='CRFEncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='VGG16LargeFOV',
        fc6_dilation=12,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    decode_head=dict(
        type='DeepLabV1Head',
        in_channels=1024,
        num_classes=num_classes,
        classifier=dict(type='cosine', tau=20.0),
        # feature cell i sits at input pixel 8i (authors, SPEC §2)
        align_corners=True,
        loss_decode=dict(
            type='NoiseAwareLoss',
            mode='nal',
            lam=0.1,
            gamma=7.0,
            detach_sigma=False)),
    train_cfg=dict(),
    test_cfg=dict(
        mode='whole',
        # DeepLab-V1 test-time CRF (SPEC §3). enabled=False: validation
        # during training skips it; tools/test.py enables it (crf_at_test)
        crf=dict(
            enabled=False,
            bilateral=dict(sxy=121, srgb=5, compat=4),
            gaussian=dict(sxy=3, compat=3),
            iterations=10)))
