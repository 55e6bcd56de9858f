"""Convert a checkpoint released by the BANA authors (SPEC §7).

Example::

    python tools/convert_bana_checkpoint.py \
        ClsNet.pt checkpoints/bana_stage1_voc.pth
    python tools/convert_bana_checkpoint.py --stage deeplabv1 \
        deeplab_largefov.pt checkpoints/bana_deeplabv1_voc.pth

Initial ImageNet VGG-16 weights (torchvision's vgg16 or the authors'
vgg_caffe.pth) are converted by tools/model_converters/vgg16_to_largefov.py.
"""
import argparse
import sys

from bana_mm.models.converters.bana_checkpoint import (
    CONVERSIONS, CheckpointConversionError, convert_file)
from bana_mm.utils.checkpoint import CheckpointReadError

EXAMPLES = """examples:
  # the authors' stage-1 classifier (ClsNet.pt) -> BAPClassifier keys
  python tools/convert_bana_checkpoint.py ClsNet.pt \\
      checkpoints/bana_stage1_voc.pth
  python tools/test.py configs/bana/bap_vgg16_voc.py \\
      checkpoints/bana_stage1_voc.pth
  # their DeepLab-V1 LargeFOV stage-3 checkpoint
  python tools/convert_bana_checkpoint.py --stage deeplabv1 \\
      deeplab_largefov.pt checkpoints/bana_deeplabv1_voc.pth
"""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a BANA authors\' checkpoint to bana-mm keys',
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help='source checkpoint (authors\' layout)')
    parser.add_argument('dst', help='destination checkpoint (mmengine)')
    parser.add_argument(
        '--stage',
        default='stage1',
        choices=sorted(CONVERSIONS),
        help='which checkpoint SRC is: ' +
        '; '.join(f'{k}: {v.description}'
                  for k, v in sorted(CONVERSIONS.items())))
    parser.add_argument(
        '--num-classes',
        type=int,
        default=None,
        help='expected num_classes of the converted model (checked)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ckpt = convert_file(
            args.src, args.dst, stage=args.stage, num_classes=args.num_classes)
    except (CheckpointConversionError, CheckpointReadError,
            FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    state_dict = ckpt['state_dict']
    prefixes = sorted({k.split('.')[0] for k in state_dict})
    counts = ', '.join(f'{p}: {sum(k.startswith(p + ".") for k in state_dict)}'
                       for p in prefixes)
    print(f'Converted {args.src} ({CONVERSIONS[args.stage].description})')
    print(f'  -> {args.dst}: {len(state_dict)} tensors ({counts}), '
          f'num_classes={ckpt["meta"]["num_classes"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
