# MDH AnnNet (paper §3.2-3.4, §4.2): mmseg HRNetV2-W48 + FCN head with a
# 5-channel input (BGR image + position prior G + class prior, eq. 1-2) and
# mixed-dual-head prediction heads (strong/weak, 1x1 conv+BN+ReLU, 1x1 conv;
# mmseg's conv_seg is the strong head's last conv). F = ids of `full_split`
# (ground truth), W = the other ids of `ann_file`, labelled by
# `weak_label_dir/<id>.png` (proposal masks in round 0).
# Recipe (§4.2): SGD momentum 0.9, lr 8e-4, poly 0.9, batch 32 (4 GPUs x 8),
# 60 epochs of VOC aug (10582 images / 32 = 331 iters per epoch -> 19860
# iters), random scale 0.5-2.0, crop 512, flip. The weight decay (5e-4) is
# mmseg's (the paper gives none).
_base_ = ['mmseg::hrnet/fcn_hr48_4xb4-20k_voc12aug-512x512.py']
custom_imports = dict(imports=['bana_mm.seg'], allow_failed_imports=False)

classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
           'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
           'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
data_root = 'data/VOCdevkit/VOC2012'
crop_size = (512, 512)
test_scale = (2048, 512)
max_iters = 19860
meta_keys = ('img_path', 'seg_map_path', 'ori_shape', 'img_shape', 'pad_shape',
             'scale_factor', 'flip', 'flip_direction', 'reduce_zero_label',
             'is_full', 'img_id')

# channels: B, G, R (image; swapped to RGB), position prior G in [0, 255],
# class prior (VOC indices 0..20); the prior statistics are fixed choices.
model = dict(
    data_preprocessor=dict(
        type='MultiChannelSegDataPreProcessor',
        mean=[123.675, 116.28, 103.53, 128.0, 10.0],
        std=[58.395, 57.12, 57.375, 64.0, 10.0],
        bgr_to_rgb=True,
        size=crop_size),
    pretrained=None,  # the ImageNet HRNetV2-W48 comes in through init_cfg:
    backbone=dict(  # RGB filters kept, prior channels of conv1 start at 0
        in_channels=5,
        init_cfg=dict(
            type='PretrainedExtraChannels',
            checkpoint='open-mmlab://msra/hrnetv2_w48')),
    decode_head=dict(
        type='MDHFCNHead',
        head_mode='mixed',
        mix_ratio=(7, 1),
        num_classes=len(classes) + 1,
        # each head's CE is the mean over its labelled pixels: W's ignored
        # (255) pixels take no part in the loss (§3.1), not even as count
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='BoxRandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='Pad', size=crop_size),  # before the priors: padding gets
    dict(type='AddBoxPriors'),  # real (background) priors
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadOptionalAnnotations'),
    dict(type='AddBoxPriors'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
# multi-scale + flip test (mmseg --tta): the priors are computed per view
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
            ],
            [
                dict(type='RandomFlip', prob=0.0, direction='horizontal'),
                dict(type='RandomFlip', prob=1.0, direction='horizontal')
            ], [dict(type='LoadOptionalAnnotations')],
            [dict(type='AddBoxPriors')],
            [dict(type='PackSegInputs', meta_keys=meta_keys)]
        ])
]
train_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True),
    batch_sampler=dict(
        type='MixedBatchSampler', batch_ratio=(1, 1), infinite=True),
    dataset=dict(
        _delete_=True,
        type='MDHVOCDataset',
        data_root=data_root,
        ann_file='ImageSets/Segmentation/train_aug.txt',
        full_split='ImageSets/Segmentation/train.txt',
        weak_label_dir='mdh/proposals',
        metainfo=dict(classes=classes),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='MDHVOCDataset',
        data_root=data_root,
        ann_file='ImageSets/Segmentation/val.txt',
        metainfo=dict(classes=classes),
        pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=8e-4, momentum=0.9))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
randomness = dict(seed=0)
