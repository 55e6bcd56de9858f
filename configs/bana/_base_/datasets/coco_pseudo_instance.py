# COCO instance data for Mask R-CNN on stage-2 pseudo masks (paper §4.3,
# SPEC §4). Training reads boxes + TWO pseudo masks per annotation: the
# stage-2 `instances_ycrf.json` (ann_file) and `instances_yret.json`
# (ret_ann_file), both relative to data_root unless absolute. They are packed
# as one BitmapMasks (Ycrf + 2*Yret) so mmdet's transforms keep them paired.
# Evaluation is mmdet's CocoMetric (bbox + segm) on the REAL ground truth,
# with categories matched to classes by name (NamedCocoMetric).
dataset_type = 'CocoAgreementDataset'
data_root = 'data/coco/'
# `python tools/gen_pseudo_labels.py ... --out-dir data/coco/pseudo_masks`
pseudo_ycrf = 'pseudo_masks/instances_ycrf.json'
pseudo_yret = 'pseudo_masks/instances_yret.json'
train_img_prefix = 'train2017/'
val_ann_file = 'annotations/instances_val2017.json'
val_img_prefix = 'val2017/'
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    # boxes + the packed (Ycrf, Yret) pair
    dict(type='LoadAgreementMasks', with_bbox=True),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    batch_sampler=dict(type='AspectRatioBatchSampler'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file=pseudo_ycrf,
        ret_ann_file=pseudo_yret,
        data_prefix=dict(img=train_img_prefix),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='CocoDataset',
        data_root=data_root,
        ann_file=val_ann_file,
        data_prefix=dict(img=val_img_prefix),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader
val_evaluator = dict(
    type='NamedCocoMetric',
    ann_file=data_root + val_ann_file,
    metric=['bbox', 'segm'],
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
