# PASCAL VOC boxes for stage 1 (paper §4.1): random scale 0.5-1.5, 321 crop,
# flip, colour jitter. Point data_root at a VOC-layout folder (VOC2012 with
# SegmentationClassAug lists for train_aug, or any folder the generator or
# ../shared/data/coco128_voc20 provide).
dataset_type = 'VOCBoxDataset'
data_root = 'data/VOCdevkit/VOC2012/'
crop_size = (321, 321)
train_split = 'ImageSets/Segmentation/train_aug.txt'
val_split = 'ImageSets/Segmentation/val.txt'

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='RandomRescale', ratio_range=(0.5, 1.5)),
    # Boxes are clipped to the crop; a crop without any box is re-drawn.
    dict(type='RandomCrop', crop_size=crop_size, allow_negative_crop=False),
    # The authors' colour jitter (SPEC §1): brightness, contrast, saturation
    # factors from U(0.5, 1.5), always, in that order (not mmdet's
    # PhotoMetricDistortion: additive, p=0.5 per op, channel swaps).
    dict(type='BANAColorJitter', brightness=0.5, contrast=0.5, saturation=0.5),
    dict(type='RandomFlip', prob=0.5),
    # No Pad here: DetDataPreprocessor pads the batch with the mean colour and
    # img_shape keeps the real crop, so padding never counts as background.
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]

train_dataloader = dict(
    batch_size=20,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=train_split,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=val_split,
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='BoxClassificationMetric')
test_evaluator = val_evaluator
