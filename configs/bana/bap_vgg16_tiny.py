# Tiny CPU preset of stage 1, used by `make demo` and the tests: the embedded
# synthetic dataset, a quarter-width VGG-16 LargeFOV trained from scratch,
# 161 crops, batch 4, 400 iterations. The BAP maths and the learning rates are
# the paper's; the sizes shrink, and the backbone gets BatchNorm and gradient
# clipping because there are no ImageNet weights to start from on CPU.
_base_ = './bap_vgg16_voc.py'

data_root = 'data/synthetic/'
classes = ('disc', 'triangle', 'ring', 'star', 'blob')
crop_size = (161, 161)
width_mult = 0.25

model = dict(
    # from scratch: the backbone's default init instead of `pretrained`
    backbone=dict(
        width_mult=width_mult,
        norm_cfg=dict(type='BN'),
        init_cfg=dict(
            _delete_=True,
            type='Kaiming',
            layer='Conv2d',
            mode='fan_out',
            nonlinearity='relu',
            distribution='normal',
            bias=0)),
    head=dict(in_channels=int(1024 * width_mult), num_classes=len(classes)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomRescale', ratio_range=(0.5, 1.5)),
    dict(type='RandomCrop', crop_size=crop_size, allow_negative_crop=False),
    # (mmdet's jitter kept here so that `make demo` figures stay comparable;
    # the paper configs use the authors' BANAColorJitter)
    dict(
        type='PhotoMetricDistortion',
        brightness_delta=32,
        contrast_range=(0.5, 1.5),
        saturation_range=(0.5, 1.5),
        hue_delta=0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=1,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='ImageSets/Segmentation/val.txt'))
test_dataloader = val_dataloader

optim_wrapper = dict(clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[300], gamma=0.1)
]
train_cfg = dict(max_iters=400, val_interval=400)
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=100, max_keep_ckpts=1))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
# a fixed seed so that `make demo` figures are reproducible run to run
randomness = dict(seed=0)
