# DeepLab-V2 (ResNet-101, OS 8) + NAL on Ycrf/Yret (paper Table 3, SPEC §3):
# 20 epochs of VOC2012 train_aug (10582 images) at batch 10 = 21164 iters,
# crop 321, SGD lr 1e-3 (head x10), poly 0.9; DenseCRF at test time.
_base_ = [
    './_base_/models/deeplabv2_r101.py',
    './_base_/datasets/voc_pseudo_labels.py',
    './_base_/schedules/deeplab_poly.py', './_base_/seg_runtime.py'
]
max_iters = 21164
param_scheduler = [
    dict(type='PolyLR', eta_min=0.0, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters)
train_dataloader = dict(batch_size=10)
