# Stage 1 of BANA (paper §3.1, §4.1): BAP classifier on PASCAL VOC 2012
# train_aug boxes, VGG-16 LargeFOV, batch 20, 321 crops, 8k iterations.
# Initialise the backbone from ImageNet VGG-16 weights, e.g.
#   --cfg-options model.backbone.init_cfg.checkpoint=PATH
# (torchvision's vgg16 layout and DeepLab's caffe-converted layout both load).
_base_ = [
    './_base_/models/bap_vgg16.py', './_base_/datasets/voc_boxes.py',
    './_base_/schedules/bap_8k.py', './_base_/default_runtime.py'
]
