# Supplement Table 9 baseline: Mask R-CNN trained on Ycrf instance masks only.
# With one mask source LoadAgreementMasks packs Ycrf twice, every pixel agrees
# and AgreementFCNMaskHead's loss is exactly mmdet's Mask R-CNN mask loss.
_base_ = './mask-rcnn_r50_fpn_agreement_coco.py'

train_dataloader = dict(
    dataset=dict(
        ann_file='pseudo_masks/instances_ycrf.json', ret_ann_file=None))
