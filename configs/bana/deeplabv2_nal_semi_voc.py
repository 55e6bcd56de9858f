# Semi-supervised DeepLab-V2 + NAL (paper Tables 4-5): the images listed in
# `gt_ids` (VOC2012 train, 1464 images with masks) use their ground truth as
# both Ycrf and Yret; the other train_aug images use the pseudo labels.
_base_ = './deeplabv2_nal_voc.py'
train_dataloader = dict(
    dataset=dict(gt_ids='ImageSets/Segmentation/train.txt'))
