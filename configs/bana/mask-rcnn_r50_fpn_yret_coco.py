# Supplement Table 9 baseline: Mask R-CNN trained on Yret instance masks only
# (ordinary Mask R-CNN loss; see mask-rcnn_r50_fpn_ycrf_coco.py).
_base_ = './mask-rcnn_r50_fpn_agreement_coco.py'

train_dataloader = dict(
    dataset=dict(
        ann_file='pseudo_masks/instances_yret.json', ret_ann_file=None))
