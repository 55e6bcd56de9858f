# Tiny CPU preset of mask-rcnn_r50_fpn_agreement_coco.py, for the coco128
# end-to-end run and the tests: no pretrained weights (backbone init_cfg=None),
# 320-px images, batch 2, 40 iterations, evaluation on the real masks of
# coco128's val split. The model and the loss are the paper's; the schedule
# is not (it only shows the pipeline runs; AP from scratch is ~0).
# Point the pseudo jsons at the stage-2 output (absolute paths), e.g.
#   --cfg-options train_dataloader.dataset.ann_file=$W/instances_ycrf.json \
#                 train_dataloader.dataset.ret_ann_file=$W/instances_yret.json
# and data_root / evaluator ann_file at the data (docs/coco.md).
_base_ = './mask-rcnn_r50_fpn_agreement_coco.py'

data_root = 'data/coco128_coco/'
val_ann_file = 'annotations/instances_val.json'
img_scale = (320, 320)

model = dict(
    backbone=dict(frozen_stages=-1, init_cfg=None),
    # fewer sampled RoIs (the mask head dominates the CPU cost)
    train_cfg=dict(
        rpn_proposal=dict(max_per_img=500), rcnn=dict(sampler=dict(num=128))),
    # score_thr 0: a few-iteration model still outputs detections, so that
    # CocoMetric reports (near-zero) AP instead of an empty result
    test_cfg=dict(
        rpn=dict(max_per_img=300), rcnn=dict(score_thr=0.0, max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAgreementMasks', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    batch_sampler=None,
    dataset=dict(
        data_root=data_root,
        data_prefix=dict(img='images/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        ann_file=val_ann_file,
        data_prefix=dict(img='images/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + val_ann_file)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=10)
]
train_cfg = dict(
    _delete_=True, type='IterBasedTrainLoop', max_iters=40, val_interval=40)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(by_epoch=False, interval=40, max_keep_ckpts=1))
log_processor = dict(by_epoch=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
