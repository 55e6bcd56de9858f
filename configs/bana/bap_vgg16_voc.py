# Stage 1 of BANA (paper §3.1, §4.1): BAP classifier on PASCAL VOC 2012
# train_aug boxes, VGG-16 LargeFOV, batch 20, 321 crops, 8k iterations.
# The backbone starts from `pretrained` = checkpoints/vgg16_largefov.pth
# (_base_/models/bap_vgg16.py): ImageNet VGG-16 converted by
# tools/model_converters/vgg16_to_largefov.py (docs/reproduce.md); another
# file: --cfg-options model.backbone.init_cfg.checkpoint=PATH. The authors'
# colour jitter, SGD 1e-3 (biases 2x, no decay; classifier x10), 8k its.
_base_ = [
    './_base_/models/bap_vgg16.py', './_base_/datasets/voc_boxes.py',
    './_base_/schedules/bap_8k.py', './_base_/default_runtime.py'
]
