# DeepLab-V1 LargeFOV + NAL on Ycrf/Yret (paper Table 3, SPEC §3 recipe):
# 45 epochs of VOC2012 train_aug (10582 images) at batch 20 = 23810 iters,
# crop 321, SGD lr 1e-3 (biases 2x without weight decay, classifier x10),
# poly 0.9, the authors' colour jitter; the backbone starts from
# `pretrained` (_base_/models/deeplabv1_largefov.py). tools/test.py applies
# the DeepLab-V1 DenseCRF (--no-crf: raw output, --tta: multi-scale + flip).
_base_ = [
    './_base_/models/deeplabv1_largefov.py',
    './_base_/datasets/voc_pseudo_labels.py',
    './_base_/schedules/deeplab_poly.py', './_base_/seg_runtime.py'
]
max_iters = 23810
optim_wrapper = dict(
    paramwise_cfg=dict(
        bias_lr_mult=2.0,
        bias_decay_mult=0.0,
        custom_keys={'decode_head': dict(lr_mult=10.0)}))
param_scheduler = [
    dict(
        type='PolyLR',
        eta_min=0.0,
        power=0.9,
        begin=0,
        end=max_iters,
        by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabels'),  # Ycrf -> gt_seg_map, Yret -> gt_ret_map
    dict(
        type='RandomResize',
        scale=(500, 500),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(321, 321), cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    # the authors' jitter (SPEC §1, §3: V1 uses the stage-1 one)
    dict(type='BANAColorJitter', brightness=0.5, contrast=0.5, saturation=0.5),
    dict(type='PackTwoMapSegInputs'),
]
train_dataloader = dict(batch_size=20, dataset=dict(pipeline=train_pipeline))
