# Stage 1 on MS-COCO train2017 boxes (paper §4.3 "COCO-to-COCO", Table 2):
# the paper recipe of bap_vgg16_voc.py (VGG-16 LargeFOV from `pretrained`,
# BAP N=4, 2x2 RoI bins, the authors' jitter, batch 20, crop 321) on the 80
# COCO classes (CocoBoxDataset; crowd boxes ignored). The paper gives no COCO
# schedule: its VOC one, 15 epochs with lr x0.1 after 10, is applied to the
# 117k train2017 images (88k iterations, x0.1 at 58.6k).
_base_ = './bap_vgg16_voc.py'

dataset_type = 'CocoBoxDataset'
data_root = 'data/coco/'
num_classes = 80
max_iters = 88000

model = dict(head=dict(num_classes=num_classes))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=None,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=None,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader
param_scheduler = [
    dict(type='MultiStepLR', by_epoch=False, milestones=[58600], gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
