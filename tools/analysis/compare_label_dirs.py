"""Pixel agreement of two folders of label maps (e.g. this project's stage-2
output against another implementation's), per image and overall.

    python tools/analysis/compare_label_dirs.py DIR_A DIR_B \\
        [--kinds Ycrf Yret] [--subdirs-a Y_crf Y_ret] \\
        [--subdirs-b Ycrf Yret] \\
        [--voc-root ROOT [--border 1]] [--per-image] [--json OUT.json]

For each kind K, ``DIR_A/<subdir_a>/<id>.png`` is compared with
``DIR_B/<subdir_b>/<id>.png`` for every id present in both (subdir defaults
to K). Agreement = share of pixels with the same value, in percent; overall
figures are pixel-weighted over all common images.

With ``--voc-root`` the boxes of ``ROOT/Annotations/<id>.xml`` (VOC 1-based
inclusive pixels) split the disagreement into pixels inside / outside the
union of the boxes, and agreement is also given on the pixels farther than
``--border`` px from every box edge (a one-pixel difference in the box
convention of two implementations only changes pixels on box edges).
Always exits 0 once the comparison ran (it measures, it does not judge).
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

#: Key of the agreement measured away from every box edge.
AWAY = 'agreement_away_from_box_edges'

sys.path.insert(0,
                osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))

from bana_mm.utils.label_io import read_label_png


@dataclass
class Counts:
    """Pixel counts of one comparison (one image or a total)."""
    pixels: int = 0
    agree: int = 0
    inside: int = 0
    inside_agree: int = 0
    interior: int = 0  # pixels farther than `border` from every box edge
    interior_agree: int = 0

    def add(self, other: 'Counts') -> None:
        for key in asdict(self):
            setattr(self, key, getattr(self, key) + getattr(other, key))

    def summary(self, with_boxes: bool) -> Dict[str, Optional[float]]:

        def pct(num: int, den: int) -> Optional[float]:
            return 100.0 * num / den if den else None

        out = dict(pixels=self.pixels, agreement=pct(self.agree, self.pixels))
        if with_boxes:
            outside = self.pixels - self.inside
            out.update(
                disagree_inside_boxes=pct(self.inside - self.inside_agree,
                                          self.inside),
                disagree_outside_boxes=pct(
                    outside - (self.agree - self.inside_agree), outside),
                disagreeing_pixels_inside_share=pct(
                    self.inside - self.inside_agree, self.pixels - self.agree),
                agreement_away_from_box_edges=pct(self.interior_agree,
                                                  self.interior),
                away_from_box_edges_share=pct(self.interior, self.pixels))
        return out


@dataclass
class KindReport:
    """Agreement of one kind of map (e.g. Ycrf)."""
    kind: str
    images: Dict[str, Dict[str, Optional[float]]] = field(default_factory=dict)
    total: Dict[str, Optional[float]] = field(default_factory=dict)
    only_in_a: List[str] = field(default_factory=list)
    only_in_b: List[str] = field(default_factory=list)


def read_voc_boxes(xml_path: str) -> np.ndarray:
    """(N, 4) 0-based inclusive pixel boxes ``(x1, y1, x2, y2)`` of a VOC
    XML file (``xmin - 1 .. xmax - 1``)."""
    if not osp.isfile(xml_path):
        raise FileNotFoundError(f'annotation file not found: {xml_path}')
    boxes = []
    for obj in ET.parse(xml_path).getroot().iter('object'):
        bnd = obj.find('bndbox')
        if bnd is None:
            raise ValueError(f'{xml_path}: an object without <bndbox>')
        xmin, ymin, xmax, ymax = (
            float(bnd.find(k).text) for k in ('xmin', 'ymin', 'xmax', 'ymax'))
        boxes.append((xmin - 1, ymin - 1, xmax - 1, ymax - 1))
    return np.asarray(boxes, dtype=np.float64).reshape(-1, 4)


def box_region_masks(boxes: np.ndarray, shape: Tuple[int, int],
                     border: int) -> Tuple[np.ndarray, np.ndarray]:
    """Union of the boxes and the band of pixels within ``border`` px of a
    box edge (the box grown by ``border`` minus the box shrunk by
    ``border``), both (H, W) bool. Boxes are inclusive pixel indices."""
    H, W = shape
    inside = np.zeros((H, W), dtype=bool)
    band = np.zeros((H, W), dtype=bool)

    def fill(mask, x1, y1, x2, y2, value=True):
        x1, y1 = max(int(np.ceil(x1)), 0), max(int(np.ceil(y1)), 0)
        x2, y2 = min(int(np.floor(x2)), W - 1), min(int(np.floor(y2)), H - 1)
        if x2 >= x1 and y2 >= y1:
            mask[y1:y2 + 1, x1:x2 + 1] = value

    for x1, y1, x2, y2 in boxes:
        fill(inside, x1, y1, x2, y2)
        if border > 0:
            grown = np.zeros((H, W), dtype=bool)
            fill(grown, x1 - border, y1 - border, x2 + border, y2 + border)
            fill(grown, x1 + border, y1 + border, x2 - border, y2 - border,
                 False)
            band |= grown
    return inside, band


def compare_maps(a: np.ndarray,
                 b: np.ndarray,
                 inside: Optional[np.ndarray] = None,
                 band: Optional[np.ndarray] = None) -> Counts:
    """Pixel counts of one pair of (H, W) maps."""
    same = a == b
    counts = Counts(pixels=int(same.size), agree=int(same.sum()))
    if inside is not None:
        counts.inside = int(inside.sum())
        counts.inside_agree = int((same & inside).sum())
        interior = ~band if band is not None else np.ones_like(same)
        counts.interior = int(interior.sum())
        counts.interior_agree = int((same & interior).sum())
    return counts


def _stems(folder: str) -> set:
    if not osp.isdir(folder):
        raise FileNotFoundError(f'label folder not found: {folder}')
    return {f[:-4] for f in os.listdir(folder) if f.endswith('.png')}


def compare_kind(dir_a: str,
                 dir_b: str,
                 kind: str,
                 sub_a: str,
                 sub_b: str,
                 voc_root: Optional[str] = None,
                 border: int = 1) -> KindReport:
    """Compare ``dir_a/sub_a`` with ``dir_b/sub_b`` image by image."""
    folder_a, folder_b = osp.join(dir_a, sub_a), osp.join(dir_b, sub_b)
    stems_a, stems_b = _stems(folder_a), _stems(folder_b)
    report = KindReport(
        kind=kind,
        only_in_a=sorted(stems_a - stems_b),
        only_in_b=sorted(stems_b - stems_a))
    common = sorted(stems_a & stems_b)
    if not common:
        raise ValueError(f'no common <id>.png in {folder_a} and {folder_b}')
    total = Counts()
    for stem in common:
        path_a = osp.join(folder_a, f'{stem}.png')
        path_b = osp.join(folder_b, f'{stem}.png')
        a, b = read_label_png(path_a), read_label_png(path_b)
        if a.shape != b.shape:
            raise ValueError(f'{path_a} is {a.shape} but {path_b} is '
                             f'{b.shape}')
        inside = band = None
        if voc_root is not None:
            boxes = read_voc_boxes(
                osp.join(voc_root, 'Annotations', f'{stem}.xml'))
            inside, band = box_region_masks(boxes, a.shape, border)
        counts = compare_maps(a, b, inside, band)
        report.images[stem] = counts.summary(voc_root is not None)
        total.add(counts)
    report.total = total.summary(voc_root is not None)
    report.total['images'] = len(common)
    return report


def _fmt(value: Optional[float]) -> str:
    return '    -' if value is None else f'{value:6.2f}'


def format_reports(reports: Sequence[KindReport], per_image: bool,
                   with_boxes: bool, border: int) -> str:
    lines = []
    kinds = [r.kind for r in reports]
    if per_image:
        head = 'image'.ljust(16) + ''.join(f'{k + " %":>10}' for k in kinds)
        if with_boxes:
            head += ''.join(f'{k + " edge-free %":>20}' for k in kinds)
        lines.append(head)
        for stem in reports[0].images:
            row = stem.ljust(16)
            row += ''.join(
                f'{_fmt(r.images.get(stem, {}).get("agreement")):>10}'
                for r in reports)
            if with_boxes:
                row += ''.join(f'{_fmt(r.images.get(stem, {}).get(AWAY)):>20}'
                               for r in reports)
            lines.append(row)
        lines.append('')
    for r in reports:
        t = r.total
        line = (f'{r.kind}: {t["images"]} images, {t["pixels"]} pixels, '
                f'agreement {_fmt(t["agreement"]).strip()} %')
        if with_boxes:
            line += (
                f'; disagreement inside boxes '
                f'{_fmt(t["disagree_inside_boxes"]).strip()} %, outside '
                f'{_fmt(t["disagree_outside_boxes"]).strip()} %; agreement '
                f'farther than {border} px from every box edge '
                f'{_fmt(t["agreement_away_from_box_edges"]).strip()} % (on '
                f'{_fmt(t["away_from_box_edges_share"]).strip()} % of the '
                'pixels)')
        lines.append(line)
        for side, stems in (('A', r.only_in_a), ('B', r.only_in_b)):
            if stems:
                lines.append(f'  {len(stems)} image(s) only in {side}: '
                             f'{", ".join(stems[:10])}' +
                             (' ...' if len(stems) > 10 else ''))
    return '\n'.join(lines)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Pixel agreement of two folders of label maps')
    parser.add_argument('dir_a', help='first folder (holds the sub-folders)')
    parser.add_argument('dir_b', help='second folder')
    parser.add_argument(
        '--kinds',
        nargs='+',
        default=['Ycrf', 'Yret'],
        help='names of the maps compared (default: Ycrf '
        'Yret); also the sub-folder names unless given')
    parser.add_argument(
        '--subdirs-a',
        nargs='+',
        help='sub-folders of DIR_A, one per kind '
        '(e.g. Y_crf Y_ret)')
    parser.add_argument(
        '--subdirs-b', nargs='+', help='sub-folders of DIR_B, one per kind')
    parser.add_argument(
        '--voc-root',
        help='VOC-layout folder whose '
        'Annotations/<id>.xml boxes split the disagreement')
    parser.add_argument(
        '--border',
        type=int,
        default=1,
        help='with --voc-root: also report agreement on '
        'pixels farther than this from every box edge')
    parser.add_argument(
        '--per-image', action='store_true', help='print one line per image')
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args(argv)
    for name in ('subdirs_a', 'subdirs_b'):
        value = getattr(args, name)
        if value is None:
            setattr(args, name, list(args.kinds))
        elif len(value) != len(args.kinds):
            parser.error(f'--{name.replace("_", "-")} needs one folder per '
                         f'kind ({len(args.kinds)})')
    if args.border < 0:
        parser.error('--border must be >= 0')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    reports = [
        compare_kind(args.dir_a, args.dir_b, kind, sub_a, sub_b, args.voc_root,
                     args.border) for kind, sub_a, sub_b in zip(
                         args.kinds, args.subdirs_a, args.subdirs_b)
    ]
    print(
        format_reports(reports, args.per_image, args.voc_root is not None,
                       args.border))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(
                dict(
                    dir_a=args.dir_a,
                    dir_b=args.dir_b,
                    voc_root=args.voc_root,
                    border=args.border,
                    kinds=[asdict(r) for r in reports]),
                f,
                indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
