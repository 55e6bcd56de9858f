"""mmdet's COCO metric with categories matched to classes by name."""
from __future__ import annotations

from typing import List, Optional

from mmdet.evaluation import CocoMetric
from mmdet.registry import METRICS


@METRICS.register_module()
class NamedCocoMetric(CocoMetric):
    """:class:`mmdet.evaluation.CocoMetric` whose label i is always the json
    category named ``classes[i]``.

    mmdet 3.3 takes the json's categories whose names are in ``classes`` in
    the json's order, so a json that lists its categories in another order
    than the class names scores every prediction as the wrong class; one
    that lacks a class shifts every later label. Here the ids are put in the
    class order, and a class without a category is an error naming the file.
    """

    def __init__(self, ann_file: Optional[str] = None, **kwargs) -> None:
        self._ann_file = ann_file
        super().__init__(ann_file=ann_file, **kwargs)

    @property
    def cat_ids(self) -> Optional[List[int]]:
        return self._cat_ids

    @cat_ids.setter
    def cat_ids(self, ids: Optional[List[int]]) -> None:
        if ids is None:  # CocoMetric.__init__
            self._cat_ids = None
            return
        by_name = {self._coco_api.cats[i]['name']: i for i in ids}
        classes = self.dataset_meta['classes']
        missing = [c for c in classes if c not in by_name]
        if missing:
            raise ValueError(
                f'{self._ann_file or "the COCO json"} has no category named '
                f'{missing}; every class needs one to be scored')
        self._cat_ids = [by_name[c] for c in classes]
