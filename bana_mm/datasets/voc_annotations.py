"""PASCAL VOC XML box annotations, read once for every scope (the mmdet box
datasets of stages 1-2 and MDH's mmseg dataset)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import List, Mapping, Tuple

from mmengine.fileio import get_local_path

from ..core.boxes import BoxAnnotationError, voc_box_to_xyxy


@dataclass
class VOCAnnotation:
    """Declared image size and boxes of one XML file; boxes are continuous
    ``(x1, y1, x2, y2)`` (:func:`~bana_mm.core.boxes.voc_box_to_xyxy`),
    not yet clipped; labels from ``class_index``."""
    width: int
    height: int
    boxes: List[Tuple[float, float, float, float]]
    labels: List[int]


def read_voc_xml(xml_path: str,
                 class_index: Mapping[str, int],
                 convention: str = 'voc') -> VOCAnnotation:
    """Parse ``xml_path`` (box ``convention`` as
    :func:`~bana_mm.core.boxes.voc_box_to_xyxy`); an unknown class name or a
    malformed file is a :class:`~bana_mm.core.boxes.BoxAnnotationError`
    naming the file."""
    try:
        with get_local_path(xml_path) as local_path:
            tree = ET.parse(local_path).getroot()
        width = int(tree.find('size/width').text)
        height = int(tree.find('size/height').text)
        boxes, labels = [], []
        for obj in tree.findall('object'):
            name = obj.find('name').text.strip()
            if name not in class_index:
                raise BoxAnnotationError(
                    f'{xml_path}: unknown class {name!r}; known classes: '
                    f'{", ".join(class_index)}')
            bnd = obj.find('bndbox')
            boxes.append(
                voc_box_to_xyxy(
                    *(float(bnd.find(k).text)
                      for k in ('xmin', 'ymin', 'xmax', 'ymax')), convention))
            labels.append(class_index[name])
    except (ET.ParseError, AttributeError, TypeError, ValueError) as err:
        if isinstance(err, BoxAnnotationError):
            raise
        raise BoxAnnotationError(
            f'{xml_path}: malformed VOC annotation ({err})') from err
    return VOCAnnotation(width, height, boxes, labels)
