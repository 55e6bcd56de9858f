# NAL dropped into a stock mmseg DeepLab-V3+ config (docs/stage3.md): the
# decode head gets the cosine classifier + noise-aware loss, the data path
# loads Ycrf (as gt_sem_seg) and Yret (as gt_ret_seg) from the stage-2
# folders. Everything else (ResNet-50-D8, schedule, val on GT) is mmseg's.
_base_ = [
    'mmseg::deeplabv3plus/deeplabv3plus_r50-d8_4xb4-20k_voc12aug-512x512.py'
]
custom_imports = dict(imports=['bana_mm.seg'], allow_failed_imports=False)

model = dict(
    data_preprocessor=dict(type='TwoMapSegDataPreProcessor'),  # pads Yret
    decode_head=dict(
        type='NALDepthwiseSeparableASPPHead',  # = NoiseAwareHeadMixin + head
        classifier=dict(type='cosine', tau=20.0),
        loss_decode=dict(
            _delete_=True,
            type='NoiseAwareLoss',
            mode='nal',
            lam=0.1,
            gamma=7.0)),
    auxiliary_head=None)  # its CE would see the noisy ~S pixels

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadPseudoLabels'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=(512, 512)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackTwoMapSegInputs'),
]
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='PseudoLabelVOCDataset',
        data_root='data/VOCdevkit/VOC2012',
        metainfo=dict(
            classes=('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus',
                     'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
                     'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
                     'sofa', 'train', 'tvmonitor')),
        ann_file='ImageSets/Segmentation/train_aug.txt',
        pseudo_label_dir='data/bana_pseudo_labels',  # Ycrf/, Yret/
        pipeline=train_pipeline))
