"""Classifier rows for a dataset whose classes differ from the stage-1
model's (e.g. a VOC-trained classifier labelling COCO boxes, paper §4.3).

Classes found in the model (by name, after aliases) reuse their classifier
weight w_c; the others become class-agnostic (u_c = 1 - u0 inside their
boxes, eq. 7 of the reproduction report).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Tuple

from torch import Tensor

#: COCO name -> VOC name, for the 20 classes the two share.
COCO_TO_VOC: Dict[str, str] = {
    'airplane': 'aeroplane',
    'motorcycle': 'motorbike',
    'couch': 'sofa',
    'tv': 'tvmonitor',
    'dining table': 'diningtable',
    'potted plant': 'pottedplant'
}


def map_class_weights(
    weights: Tensor,
    model_classes: Sequence[str],
    data_classes: Sequence[str],
    aliases: Optional[Mapping[str,
                              str]] = None) -> Tuple[Tensor, Tuple[int, ...]]:
    """Rows of ``weights`` ((1 + len(model_classes), D), row 0 background)
    for ``data_classes``.

    Returns (1 + len(data_classes), D) weights (zero rows for classes
    without a match) and the 0-based data labels that are class-agnostic.
    """
    aliases = dict(COCO_TO_VOC if aliases is None else aliases)
    if weights.shape[0] != len(model_classes) + 1:
        raise ValueError(
            f'classifier has {weights.shape[0]} rows but the model lists '
            f'{len(model_classes)} classes (+ background)')
    index = {name: i for i, name in enumerate(model_classes)}
    out = weights.new_zeros((len(data_classes) + 1, weights.shape[1]))
    out[0] = weights[0]
    agnostic = []
    for label, name in enumerate(data_classes):
        row = index.get(name, index.get(aliases.get(name, name)))
        if row is None:
            agnostic.append(label)
        else:
            out[label + 1] = weights[row + 1]
    return out, tuple(agnostic)
