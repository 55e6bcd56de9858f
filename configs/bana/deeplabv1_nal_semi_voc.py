# Semi-supervised DeepLab-V1 + NAL (paper Table 4, "Boxes (9K) with Masks
# (1K)"): the 1464 VOC2012 train images listed in `gt_ids` use their ground
# truth as both Ycrf and Yret; the other train_aug images the pseudo labels.
_base_ = './deeplabv1_nal_voc.py'
train_dataloader = dict(
    dataset=dict(gt_ids='ImageSets/Segmentation/train.txt'))
