# MDH SegNet (paper §3.3-3.4, §4.2): mmseg DeepLabV3+ R50-D8 whose conv_seg
# is replaced by mixed-dual-head strong/weak heads; RGB input (no priors).
# At inference only the strong head runs: the model predicts like a plain
# EncoderDecoder. F = `full_split` ids (ground truth), W = the other ids of
# `ann_file` labelled by `weak_label_dir/<id>.png` (AnnNet pseudo masks).
# mmseg's auxiliary FCN head is dropped: it would see W's noisy labels outside
# the strong/weak routing (the paper's SegNet has none).
# Recipe (§4.2): SGD momentum 0.9, lr 4e-3, poly 0.9, batch 32 (4 GPUs x 8),
# 60 epochs (19860 iters on VOC aug), scale 0.5-2.0, crop 512, flip.
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py'
]
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

model = dict(
    data_preprocessor=dict(size=crop_size),
    decode_head=dict(
        type='MDHDepthwiseSeparableASPPHead',
        head_mode='mixed',
        mix_ratio=(7, 1),
        num_classes=len(classes) + 1,
        # each head's CE is the mean over its labelled pixels: W's ignored
        # (255) pixels take no part in the loss (§3.1), not even as count
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)),
    auxiliary_head=None)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=test_scale, keep_ratio=True),
    dict(type='LoadOptionalAnnotations'),
    dict(type='PackSegInputs', meta_keys=meta_keys),
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
        weak_label_dir='mdh/pseudo_masks',
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

optim_wrapper = dict(optimizer=dict(lr=4e-3, momentum=0.9))
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
