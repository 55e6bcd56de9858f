#!/usr/bin/env bash
# COCO end to end (docs/coco.md; paper §4.3, SPEC §2 and §4), boxes only:
#   1. stage 1: BAP classifier on the COCO boxes (CocoBoxDataset)
#   2. stage 2: Ycrf / Yret instance pseudo masks + their mask AP against
#      the real masks (pseudo/metrics.json)
#   3. Mask R-CNN + FPN with the agreement-only mask loss on the pseudo masks
#   4. tools/test.py: mmdet's CocoMetric, bbox and segm AP on the real masks
# Usage: [PRESET=tiny|lite0] tools/run_coco_pipeline.sh [DATA_ROOT] [WORK_DIR]
#                                                      [MASK_RCNN_ITERS]
#   DATA_ROOT defaults to ../shared/data/coco128_coco (annotations/
#   instances_{train,val}.json, images/). Set PYTHON to choose the interpreter.
#   PRESET=tiny (default): bap_vgg16_coco_tiny.py + Mask R-CNN R50-FPN tiny,
#     both from scratch, 40 Mask R-CNN iterations.
#   PRESET=lite0: bap_lite0_coco.py + mask-rcnn_lite0_fpn_agreement_coco.py,
#     EfficientNet-Lite0 with its ImageNet weights, 600 iterations.
#   STAGE1_CFG / MRCNN_CFG override the preset's configs; STAGE1_ITERS
#   overrides the stage-1 config's iterations (its lr steps stay where the
#   config puts them). With PRESET=lite0 the Mask R-CNN lr step follows
#   MASK_RCNN_ITERS (at 3/4).
#   TWIN=1: also train and test the same Mask R-CNN on the real masks of the
#   training images (the fully supervised reference; mask_rcnn_gt*/).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/coco128_coco}
WORK=${2:-work_dirs/coco128_e2e}
PRESET=${PRESET:-tiny}
case "$PRESET" in
    tiny)
        DEFAULT_STAGE1=configs/bana/bap_vgg16_coco_tiny.py
        DEFAULT_MRCNN=configs/bana/mask-rcnn_r50_fpn_agreement_coco_tiny.py
        DEFAULT_ITERS=40
        SCHED_LR_STEP=0 ;;
    lite0)
        DEFAULT_STAGE1=configs/bana/bap_lite0_coco.py
        DEFAULT_MRCNN=configs/bana/mask-rcnn_lite0_fpn_agreement_coco.py
        DEFAULT_ITERS=600
        SCHED_LR_STEP=1 ;;
    *)
        echo "PRESET must be tiny or lite0, got '$PRESET'" >&2
        exit 2 ;;
esac
ITERS=${3:-$DEFAULT_ITERS}
PY=${PYTHON:-python}
DATA=$(cd "$DATA" && pwd)/
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
STAGE1_CFG=${STAGE1_CFG:-$DEFAULT_STAGE1}
MRCNN_CFG=${MRCNN_CFG:-$DEFAULT_MRCNN}
STAGE1_OPTS=()
if [ -n "${STAGE1_ITERS:-}" ]; then
    STAGE1_OPTS=(train_cfg.max_iters="$STAGE1_ITERS"
        train_cfg.val_interval="$STAGE1_ITERS"
        default_hooks.checkpoint.interval="$STAGE1_ITERS")
fi
VAL_ANN=${DATA}annotations/instances_val.json
SCHED_OPTS=()
if [ "$SCHED_LR_STEP" = 1 ]; then
    SCHED_OPTS=(param_scheduler.1.milestones="[$((ITERS * 3 / 4))]"
        param_scheduler.1.end="$ITERS")
fi

echo "== stage 1 ($PRESET): BAP classifier on COCO boxes"
$PY tools/train.py $STAGE1_CFG --work-dir "$WORK/stage1" --cfg-options \
    train_dataloader.dataset.data_root="$DATA" \
    val_dataloader.dataset.data_root="$DATA" \
    test_dataloader.dataset.data_root="$DATA" ${STAGE1_OPTS[@]+"${STAGE1_OPTS[@]}"}
STAGE1_CKPT=$(cat "$WORK/stage1/last_checkpoint")

echo "== stage 2: instance pseudo masks (and their AP against the real masks)"
$PY tools/gen_pseudo_labels.py $STAGE1_CFG "$STAGE1_CKPT" --data-root "$DATA" \
    --split annotations/instances_train.json --out-dir "$WORK/pseudo" \
    --no-grabcut

echo "== stage 3 ($PRESET): Mask R-CNN with the agreement-only mask loss"
DATA_OPTS=(
    train_dataloader.dataset.data_root="$DATA"
    val_dataloader.dataset.data_root="$DATA"
    test_dataloader.dataset.data_root="$DATA"
    val_evaluator.ann_file="$VAL_ANN" test_evaluator.ann_file="$VAL_ANN")
MRCNN_OPTS=("${DATA_OPTS[@]}"
    train_dataloader.dataset.ann_file="$WORK/pseudo/instances_ycrf.json"
    train_dataloader.dataset.ret_ann_file="$WORK/pseudo/instances_yret.json")
$PY tools/train.py $MRCNN_CFG --work-dir "$WORK/mask_rcnn" --cfg-options \
    "${MRCNN_OPTS[@]}" train_cfg.max_iters="$ITERS" \
    train_cfg.val_begin=$((ITERS + 1)) default_hooks.checkpoint.interval="$ITERS" \
    ${SCHED_OPTS[@]+"${SCHED_OPTS[@]}"}

echo "== evaluation: bbox and segm AP on the real masks"
$PY tools/test.py $MRCNN_CFG "$WORK/mask_rcnn/iter_$ITERS.pth" \
    --work-dir "$WORK/mask_rcnn_test" --out "$WORK/mask_rcnn_predictions.pkl" \
    --cfg-options "${MRCNN_OPTS[@]}"
echo "pseudo-mask AP: $WORK/pseudo/metrics.json"
echo "Mask R-CNN AP:  $WORK/mask_rcnn_test/<timestamp>/<timestamp>.json"

if [ "${TWIN:-0}" = 1 ]; then
    echo "== reference: the same Mask R-CNN on the real masks"
    # one mask source: every pixel agrees, the loss is ordinary Mask R-CNN
    GT_OPTS=("${DATA_OPTS[@]}"
        train_dataloader.dataset.ann_file="${DATA}annotations/instances_train.json"
        train_dataloader.dataset.ret_ann_file=None)
    $PY tools/train.py $MRCNN_CFG --work-dir "$WORK/mask_rcnn_gt" \
        --cfg-options "${GT_OPTS[@]}" train_cfg.max_iters="$ITERS" \
        train_cfg.val_begin=$((ITERS + 1)) \
        default_hooks.checkpoint.interval="$ITERS" \
        ${SCHED_OPTS[@]+"${SCHED_OPTS[@]}"}
    $PY tools/test.py $MRCNN_CFG "$WORK/mask_rcnn_gt/iter_$ITERS.pth" \
        --work-dir "$WORK/mask_rcnn_gt_test" --cfg-options "${GT_OPTS[@]}"
    echo "reference AP:   $WORK/mask_rcnn_gt_test/<timestamp>/<timestamp>.json"
fi
