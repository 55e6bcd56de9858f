# Stage-3 data (SPEC §3): VOC2012 train_aug with the stage-2 pseudo-label
# folders PSEUDO_LABEL_DIR/{Ycrf,Yret}/<id>.png, val with ground truth.
dataset_type = 'PseudoLabelVOCDataset'
data_root = 'data/VOCdevkit/VOC2012/'
# absolute, or relative to data_root
pseudo_label_dir = 'data/bana_pseudo_labels/'
classes = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car',
           'cat', 'chair', 'cow', 'diningtable', 'dog', 'horse', 'motorbike',
           'person', 'pottedplant', 'sheep', 'sofa', 'train', 'tvmonitor')
crop_size = (321, 321)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabels'),  # Ycrf -> gt_seg_map, Yret -> gt_ret_map
    # about x0.5-1.5 of a VOC image (longer side ~500)
    dict(
        type='RandomResize',
        scale=(500, 500),
        ratio_range=(0.5, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=1.0),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackTwoMapSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs'),
]
# multi-scale + flip as the authors (tools/test.py --tta): 8 views whose
# logits are averaged before the softmax (CRFSegTTAModel)
img_ratios = [0.5, 0.75, 1.0, 1.5]
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [
                dict(type='Resize', scale_factor=r, keep_ratio=True)
                for r in img_ratios
            ],
            [
                dict(type='RandomFlip', prob=0., direction='horizontal'),
                dict(type='RandomFlip', prob=1., direction='horizontal')
            ],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]

train_dataloader = dict(
    batch_size=20,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='ImageSets/Segmentation/train_aug.txt',
        pseudo_label_dir=pseudo_label_dir,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=dict(classes=classes),
        ann_file='ImageSets/Segmentation/val.txt',
        pseudo_label_dir=None,  # ground truth
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
