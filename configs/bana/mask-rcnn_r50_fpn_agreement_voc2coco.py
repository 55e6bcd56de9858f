# VOC-to-COCO (paper Table 6): the same Mask R-CNN with the agreement-only mask
# loss, but its COCO pseudo masks come from a stage-1 classifier trained on
# PASCAL VOC boxes (20 classes). Stage 2 runs on the COCO images with the
# class-agnostic mapping for the 60 classes without a classifier weight
# (uc = 1 - u0 inside their boxes; SPEC §2 "Variants"), e.g.
#   python tools/gen_pseudo_labels.py configs/bana/bap_vgg16_voc.py VOC_CKPT \
#       --data-root data/coco/ --split annotations/instances_train2017.json \
#       --out-dir data/coco/pseudo_masks_voc2coco
# (with the class mapping options of tools/gen_pseudo_labels.py).
_base_ = './mask-rcnn_r50_fpn_agreement_coco.py'

train_dataloader = dict(
    dataset=dict(
        ann_file='pseudo_masks_voc2coco/instances_ycrf.json',
        ret_ann_file='pseudo_masks_voc2coco/instances_yret.json'))
