# MDH SegNet with ResNet-101 (paper Table 1): as the R50 config, mmseg's
# R101-D8 backbone and ImageNet weights.
_base_ = './segnet_deeplabv3plus_r50_voc.py'
model = dict(pretrained='open-mmlab://resnet101_v1c', backbone=dict(depth=101))
