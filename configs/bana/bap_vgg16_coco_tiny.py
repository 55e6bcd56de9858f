# Tiny CPU preset of stage 1 on COCO boxes (paper §4.3 "COCO-to-COCO"):
# the BAP classifier of bap_vgg16_tiny.py (quarter-width VGG-16 LargeFOV with
# BatchNorm, 161 crops, batch 4, 400 iterations, from scratch) trained on the
# boxes of a COCO json through CocoBoxDataset (80 classes; crowd boxes are
# ignored). Defaults to ../shared/data/coco128_coco's train split:
#   D=../shared/data/coco128_coco/
#   python tools/train.py configs/bana/bap_vgg16_coco_tiny.py --cfg-options \
#       train_dataloader.dataset.data_root=$D \
#       val_dataloader.dataset.data_root=$D
# test_dataloader.dataset.data_root=$D
_base_ = './bap_vgg16_tiny.py'

dataset_type = 'CocoBoxDataset'
data_root = 'data/coco128_coco/'
num_classes = 80

model = dict(head=dict(num_classes=num_classes))

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        # None: CocoDataset's 80 COCO classes
        metainfo=None,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='images/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=None,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader
