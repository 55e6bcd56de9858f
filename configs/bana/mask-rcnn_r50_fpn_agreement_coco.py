# Mask R-CNN R50-FPN trained on BANA's COCO instance pseudo masks with the
# agreement-only mask loss (paper §4.3, Table 6; SPEC §4): the mask BCE is
# computed only on RoI pixels where the instance's Ycrf and Yret masks agree.
# Pseudo masks: stage 1 on COCO boxes (CocoBoxDataset), stage 2
#   python tools/gen_pseudo_labels.py STAGE1_CFG CKPT --data-root data/coco/ \
#       --split annotations/instances_train2017.json \
#       --out-dir data/coco/pseudo_masks
# Everything else is mmdet's Mask R-CNN R50-FPN 1x recipe.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
    './_base_/datasets/coco_pseudo_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['bana_mm.det'], allow_failed_imports=False)

model = dict(
    roi_head=dict(
        mask_head=dict(
            type='AgreementFCNMaskHead',
            # gt masks are packed pairs Ycrf + 2*Yret (LoadAgreementMasks)
            packed=True)))
