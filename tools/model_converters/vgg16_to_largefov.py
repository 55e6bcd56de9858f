"""ImageNet VGG-16 -> VGG16LargeFOV initial weights (SPEC §1).

    python tools/model_converters/vgg16_to_largefov.py SRC DST [--fc drop]

SRC: torchvision's ``vgg16`` state dict (e.g. ``vgg16-397923af.pth``), the
BANA authors' DeepLab ``vgg_caffe.pth``, or a VGG16LargeFOV / stage-1
checkpoint. DST loads with ``init_cfg=dict(type='Pretrained', checkpoint=DST)``
(the ``pretrained`` variable of the stage-1 and DeepLab-V1 paper configs).
torchvision weights get conv1_1 folded for Caffe-style BGR input and fc6/fc7
decimated to 1024 channels as DeepLab-LargeFOV did
(bana_mm/models/converters/torchvision_vgg.py documents every step).
"""
import argparse
import os.path as osp
import sys

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from bana_mm.models.converters.torchvision_vgg import (VGGConversionError,
                                                       convert_vgg16_file)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert ImageNet VGG-16 weights to VGG16LargeFOV')
    parser.add_argument(
        'src',
        help='torchvision vgg16 / vgg_caffe.pth / '
        'VGG16LargeFOV checkpoint')
    parser.add_argument('dst', help='output checkpoint')
    parser.add_argument(
        '--fc',
        choices=('decimate', 'drop'),
        default='decimate',
        help='fc6/fc7: decimate 4096 -> 1024 as DeepLab-LargeFOV did '
        '(default), or drop them (random init)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        ckpt = convert_vgg16_file(args.src, args.dst, fc=args.fc)
    except VGGConversionError as e:
        print(f'error: {e}', file=sys.stderr)
        return 1
    meta = ckpt['meta']
    print(f'{args.src} ({meta["source_layout"]} layout) -> {args.dst}: '
          f'{len(ckpt["state_dict"])} tensors; fc6/fc7 {meta["fc6_fc7"]}; '
          f'input {meta["input_convention"]}')
    if meta['dropped_keys']:
        print(f'  dropped: {meta["dropped_keys"]}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
