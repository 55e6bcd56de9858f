# Tiny CPU preset of stage 3: the embedded synthetic dataset with pseudo labels
# in PSEUDO_LABEL_DIR/{Ycrf,Yret}, a quarter-width VGG-16 LargeFOV with
# BatchNorm trained from scratch (no ImageNet weights on CPU), 161 crops,
# batch 4, 300 iterations. The loss (NAL, tau 20, gamma 7, lambda 0.1) is the
# paper's; sizes and the learning rate shrink/grow for a from-scratch run.
_base_ = './deeplabv1_nal_voc.py'

data_root = 'data/synthetic/'
pseudo_label_dir = 'pseudo_labels/'
classes = ('disc', 'triangle', 'ring', 'star', 'blob')
crop_size = (161, 161)
width_mult = 0.25
max_iters = 300

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        width_mult=width_mult,
        norm_cfg=dict(type='BN'),
        dropout_ratio=0.1,
        init_cfg=dict(
            _delete_=True,
            type='Kaiming',
            layer='Conv2d',
            mode='fan_out',
            nonlinearity='relu')),
    decode_head=dict(
        in_channels=int(1024 * width_mult), num_classes=len(classes) + 1))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabels'),
    dict(
        type='RandomResize',
        scale=(200, 200),
        ratio_range=(0.75, 1.25),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackTwoMapSegInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='ImageSets/Segmentation/train.txt',
        pseudo_label_dir=pseudo_label_dir,
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes)))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10.0))
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
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='SegVisualizationHook', draw=False))
custom_hooks = [
    dict(type='ConfidenceMapHook', interval=max_iters, num_images=2)
]
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
