"""MDH proposal and pseudo masks (Chen et al., "Mixed-dual-head Meets Box
Priors", §3.1 and eq. 3), registry-free numpy / torch.

Proposal masks (§3.1): per object, GrabCut on its box fused with a second
proposal (MCG in the paper; here BANA's Ycrf or the box itself): pixels where
both say "object" keep the box class, pixels where both say "not object" are
background, disagreements are ignored (255). The fused objects are pasted in
descending order of foreground area, so a small object covers a large one;
ignored pixels have the lowest priority among objects (any object's
foreground covers them). Pixels outside every box are background (0): there
GrabCut (which only labels inside its rectangle) and a box-bounded second
proposal agree, and the paper's class prior calls them background (§3.2).

Maps use 0 = background, ``label + 1`` = class ``label``, 255 = ignore.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .boxes import box_masks_at

IGNORE_INDEX = 255
ArrayLike = Union[np.ndarray, torch.Tensor, Sequence]


@dataclass
class FusedObject:
    """One object's fused proposal (§3.1): ``fg`` both proposals agree on the
    object, ``ignore`` they disagree (or the second one is unknown)."""
    label: int
    fg: np.ndarray
    ignore: np.ndarray

    @property
    def area(self) -> int:
        return int(self.fg.sum())


def box_masks(boxes: ArrayLike, image_hw: Tuple[int, int]) -> np.ndarray:
    """(N, H, W) bool: pixel centres inside each ``(x1, y1, x2, y2)`` box."""
    boxes = torch.as_tensor(np.asarray(boxes, dtype=np.float32)).reshape(-1, 4)
    return box_masks_at(boxes, image_hw, image_hw).numpy()


def labelled_box_masks(boxes: ArrayLike, labels: Sequence[int],
                       image_hw: Tuple[int, int]):
    """:func:`box_masks` and the 0-based ``labels`` as an int64 array,
    checked to pair up (one label per box)."""
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    masks = box_masks(boxes, image_hw)
    if len(masks) != len(labels):
        raise ValueError(f'{len(masks)} boxes but {len(labels)} labels')
    return masks, labels


def fuse_object(grabcut_fg: np.ndarray,
                second_fg: np.ndarray,
                label: int,
                second_unknown: Optional[np.ndarray] = None) -> FusedObject:
    """Keep only the pixels where the two proposals agree (§3.1).

    Args:
        grabcut_fg / second_fg: (H, W) bool foreground of the two proposals.
        label: the object's 0-based class.
        second_unknown: (H, W) bool where the second proposal has no opinion
            (Ycrf's ignored pixels inside the box): no agreement is possible
            there, so they are ignored.
    """
    a = np.asarray(grabcut_fg, dtype=bool)
    b = np.asarray(second_fg, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f'GrabCut proposal {a.shape} and second proposal '
                         f'{b.shape} differ in size')
    fg = a & b
    ignore = a ^ b
    if second_unknown is not None:
        unknown = np.asarray(second_unknown, dtype=bool)
        fg &= ~unknown
        ignore |= unknown
    return FusedObject(label=int(label), fg=fg, ignore=ignore)


def paste_order(objects: Sequence[FusedObject]) -> np.ndarray:
    """Indices by descending foreground area (stable): painted in this
    order, a small object ends on top of a large one."""
    areas = np.array([o.area for o in objects], dtype=np.int64)
    return np.argsort(-areas, kind='stable')


def paste_objects(objects: Sequence[FusedObject],
                  image_hw: Tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 proposal mask: background 0, then every object's ignored
    pixels (255, lowest priority), then foregrounds, largest first."""
    out = np.zeros(image_hw, dtype=np.uint8)
    for obj in objects:
        out[obj.ignore] = IGNORE_INDEX
    for index in paste_order(objects):
        out[objects[index].fg] = objects[index].label + 1
    return out


def ycrf_object_proposal(ycrf: np.ndarray, box_mask: np.ndarray,
                         label: int) -> Tuple[np.ndarray, np.ndarray]:
    """Second proposal of one object from BANA's Ycrf: the pixels of its box
    that Ycrf gives its class; Ycrf's ignored pixels are unknown.
    Returns (fg, unknown), both (H, W) bool."""
    ycrf = np.asarray(ycrf)
    if ycrf.shape != box_mask.shape:
        raise ValueError(f'Ycrf {ycrf.shape} does not match the image size '
                         f'{box_mask.shape}')
    fg = box_mask & (ycrf == label + 1)
    unknown = box_mask & (ycrf == IGNORE_INDEX)
    return fg, unknown


def proposal_mask(grabcut_fgs: Sequence[np.ndarray],
                  boxes: ArrayLike,
                  labels: Sequence[int],
                  image_hw: Tuple[int, int],
                  ycrf: Optional[np.ndarray] = None) -> np.ndarray:
    """The proposal mask of one image (§3.1).

    Args:
        grabcut_fgs: per box, its (H, W) bool GrabCut foreground.
        boxes / labels: (N, 4) xyxy pixel boxes and (N,) 0-based classes.
        ycrf: BANA's Ycrf of the image, the second proposal; None uses each
            box itself (then the mask is GrabCut inside the box, the rest of
            the box ignored).
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    masks = box_masks(boxes, image_hw)
    if len(grabcut_fgs) != len(labels) or len(masks) != len(labels):
        raise ValueError(f'{len(grabcut_fgs)} GrabCut masks, {len(masks)} '
                         f'boxes and {len(labels)} labels')
    objects = []
    for gc, box, label in zip(grabcut_fgs, masks, labels):
        if ycrf is None:
            second, unknown = box, None
        else:
            second, unknown = ycrf_object_proposal(ycrf, box, int(label))
        objects.append(fuse_object(gc, second, int(label), unknown))
    return paste_objects(objects, image_hw)


def check_tau(tau: float) -> float:
    """τ of eq. 3 must lie in (0, 1)."""
    tau = float(tau)
    if not 0.0 < tau < 1.0:
        raise ValueError(f'tau (the pseudo-mask confidence threshold of '
                         f'eq. 3) must lie in (0, 1); got {tau}')
    return tau


#: Box constraints of :func:`pseudo_mask_from_probs` (not in the paper).
BOX_CONSTRAINTS = ('drop', 'restrict')


def check_box_constraint(mode: Union[None, bool, str]) -> Optional[str]:
    """None, False or ``'off'``: no constraint (None); True: ``'drop'``;
    else one of BOX_CONSTRAINTS."""
    if mode is None or mode is False or mode == 'off':
        return None
    if mode is True:
        return 'drop'
    if mode not in BOX_CONSTRAINTS:
        raise ValueError(f'box constraint must be one of {BOX_CONSTRAINTS} '
                         f"or 'off', got {mode!r}")
    return mode


def restrict_to_box_classes(probs: torch.Tensor, boxes: ArrayLike,
                            labels: Sequence[int]) -> torch.Tensor:
    """(C, H, W) probabilities restricted to what the boxes allow at each
    pixel (background, and class ``label + 1`` inside a box of ``label``),
    renormalised to sum to 1 (what the class prior of §3.2 says)."""
    masks, labels = labelled_box_masks(boxes, labels, tuple(probs.shape[1:]))
    if labels.size and (labels.min() < 0 or labels.max() + 1 >= len(probs)):
        raise ValueError(f'box labels {sorted(set(labels.tolist()))} do not '
                         f'fit {len(probs)} classes (background included)')
    allowed = torch.zeros(probs.shape, dtype=torch.bool)
    allowed[0] = True
    for mask, label in zip(masks, labels):
        allowed[int(label) + 1] |= torch.as_tensor(mask)
    kept = probs * allowed
    return kept / kept.sum(dim=0, keepdim=True).clamp(min=1e-12)


def pseudo_mask_from_probs(
        probs: ArrayLike,
        tau: float = 0.9,
        boxes: Optional[ArrayLike] = None,
        labels: Optional[Sequence[int]] = None,
        box_constraint: Optional[str] = 'drop') -> np.ndarray:
    """Eq. 3: a pixel keeps argmax_c p_c where max_c p_c > τ, else 255.

    Args:
        probs: (C, H, W) class probabilities (channel 0 = background).
        tau: confidence threshold in (0, 1); the paper uses 0.9.
        boxes / labels: optional box constraint (not in the paper, off by
            default), applied as ``box_constraint`` says:
            ``'drop'``: a foreground class is kept only inside a box of
            that class, elsewhere the pixel becomes 255;
            ``'restrict'``: eq. 3 on the probabilities restricted to the
            classes the boxes allow at the pixel and renormalised
            (:func:`restrict_to_box_classes`).
    """
    tau = check_tau(tau)
    probs = torch.as_tensor(
        np.asarray(probs) if not isinstance(probs, torch.Tensor) else probs
    ).float()
    if probs.dim() != 3:
        raise ValueError(f'probs must be (C, H, W); got {tuple(probs.shape)}')
    mode = check_box_constraint(box_constraint) if boxes is not None else None
    labels = labels if labels is not None else []
    if mode == 'restrict':
        probs = restrict_to_box_classes(probs, boxes, labels)
    conf, pred = probs.max(dim=0)
    out = pred.to(torch.int64).numpy().astype(np.uint8)
    out[~(conf > tau).numpy()] = IGNORE_INDEX
    if mode == 'drop':
        out = constrain_to_boxes(out, boxes, labels)
    return out


def constrain_to_boxes(mask: np.ndarray, boxes: ArrayLike,
                       labels: Sequence[int]) -> np.ndarray:
    """Set to 255 every foreground pixel whose class has no box covering
    it (the optional box constraint of :func:`pseudo_mask_from_probs`)."""
    mask = np.array(mask, dtype=np.uint8, copy=True)
    masks, labels = labelled_box_masks(boxes, labels, mask.shape)
    allowed = np.zeros(mask.shape, dtype=bool)
    for box, label in zip(masks, labels):
        allowed |= box & (mask == label + 1)
    foreground = (mask != 0) & (mask != IGNORE_INDEX)
    mask[foreground & ~allowed] = IGNORE_INDEX
    return mask


#: Where the pseudo masks come from (:func:`fill_ignored`; not in the paper).
PSEUDO_MASK_MODES = ('eq3', 'fill_ignored')


def check_pseudo_mask_mode(mode: Optional[str]) -> str:
    """None -> ``'eq3'`` (the paper); else one of PSEUDO_MASK_MODES."""
    mode = 'eq3' if mode is None else mode
    if mode not in PSEUDO_MASK_MODES:
        raise ValueError(f'pseudo masks must be one of {PSEUDO_MASK_MODES}, '
                         f'got {mode!r}')
    return mode


def fill_ignored(training_mask: np.ndarray,
                 pseudo_mask: np.ndarray) -> np.ndarray:
    """The mask AnnNet was trained on (round 1: the proposal) with its
    ignored pixels (255) taken from AnnNet's eq. 3 pseudo mask; its
    labelled pixels are kept (the ``'fill_ignored'`` pseudo masks, not in
    the paper: with few F images AnnNet loses small objects the proposals
    kept, docs/mdh.md "Pseudo masks that fill the proposals")."""
    training_mask = np.asarray(training_mask)
    pseudo_mask = np.asarray(pseudo_mask)
    if training_mask.shape != pseudo_mask.shape:
        raise ValueError(f'training mask {training_mask.shape} and pseudo '
                         f'mask {pseudo_mask.shape} differ in size')
    out = np.array(training_mask, dtype=np.uint8, copy=True)
    ignored = out == IGNORE_INDEX
    out[ignored] = pseudo_mask[ignored]
    return out


def ignored_share(mask: np.ndarray) -> float:
    """Share of pixels marked 255."""
    mask = np.asarray(mask)
    return float((mask == IGNORE_INDEX).mean()) if mask.size else 0.0
