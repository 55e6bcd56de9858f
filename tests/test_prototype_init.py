"""Stage 1's optional start at the class prototypes (PrototypeInitHook)."""
import os.path as osp
import random

import numpy as np
import pytest
import torch

from bana_mm.core.bap import prototype_classifier_rows

TINY = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', 'bana',
    'bap_vgg16_tiny.py')


def test_rows_are_scaled_class_means():
    sums = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]])
    counts = torch.tensor([2.0, 1.0, 0.0])
    rows = prototype_classifier_rows(
        sums, counts, mean_norm=5.0, logit_scale=10.0)
    # means (1, 0) and (0, 3), unit length times 10 / 5
    assert torch.allclose(rows[:2], torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    assert torch.isnan(rows[2]).all()  # no vectors: caller keeps its row


def test_rows_reject_bad_input():
    with pytest.raises(ValueError, match='mean_norm'):
        prototype_classifier_rows(torch.ones(2, 3), torch.ones(2), 0.0)
    with pytest.raises(ValueError, match='counts'):
        prototype_classifier_rows(torch.ones(2, 3), torch.ones(3), 1.0)


def test_set_class_rows_keeps_rows_without_a_prototype():
    from bana_mm.det import BAPHead
    head = BAPHead(in_channels=3, num_classes=2)
    before = head.classifier.weight.detach().clone()
    rows = torch.tensor([[1.0, 2, 3], [float('nan')] * 3, [4.0, 5, 6]])
    assert head.set_class_rows(rows) == 2
    weight = head.class_weights
    assert torch.equal(weight[0], rows[0]) and torch.equal(weight[2], rows[2])
    assert torch.equal(weight[1], before.flatten(1)[1])
    with pytest.raises(ValueError, match='rows must be'):
        head.set_class_rows(torch.ones(2, 3))


def _seed(seed: int = 3) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _pooled(model, dataset, indices):
    """Pooled training vectors and their targets, computed here without the
    hook (same pipeline, same seed)."""
    from mmengine.dataset import pseudo_collate

    from bana_mm.det.bap_head import gt_boxes_of
    head = model.head
    vectors, targets = [], []
    with torch.no_grad():
        batch = pseudo_collate([dataset[i] for i in indices])
        data = model.data_preprocessor(batch, False)
        feats = model.extract_feat(data['inputs'])
        for result, sample in zip(
                head.pool(feats, data['data_samples'], head.grid_size),
                data['data_samples']):
            _, labels = gt_boxes_of(sample)
            bins = result['box_feats'].shape[1]
            vectors += [result['box_feats'].flatten(0, 1), result['queries']]
            targets += [(labels + 1).repeat_interleave(bins),
                        labels.new_zeros(result['queries'].shape[0])]
    return torch.cat(vectors), torch.cat(targets)


def test_hook_sets_each_row_to_its_class_mean(synthetic_root, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    import bana_mm.det  # noqa: F401
    from bana_mm.det import PrototypeInitHook
    cfg = Config.fromfile(TINY)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = synthetic_root + '/'
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'proto_{tmp_path.name}'
    runner = Runner.from_cfg(cfg)
    model = runner.model
    dataset = runner.train_dataloader.dataset
    n = 6
    model.eval()
    _seed()
    vectors, targets = _pooled(model, dataset, list(range(n)))
    random_rows = model.head.class_weights.detach().clone()

    _seed()
    PrototypeInitHook(
        logit_scale=10.0, batch_size=n, max_images=n).before_train(runner)
    rows = model.head.class_weights.detach()
    mean_norm = vectors.norm(dim=1).mean()
    for c in range(rows.shape[0]):
        members = vectors[targets == c]
        if len(members) == 0:  # no such class in these images: untouched
            assert torch.equal(rows[c], random_rows[c])
            continue
        mean = members.mean(dim=0)
        assert torch.allclose(
            rows[c],
            mean / mean.norm() * 10.0 / mean_norm,
            rtol=1e-4,
            atol=1e-6), c
    # the prototypes classify the training vectors, the random rows do not
    accuracy = (vectors @ rows.t()).argmax(1).eq(targets).float().mean()
    chance = (vectors @ random_rows.t()).argmax(1).eq(targets).float().mean()
    assert accuracy > 2 * chance, (accuracy, chance)


def test_resumed_run_keeps_its_classifier(synthetic_root, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner

    import bana_mm.det  # noqa: F401
    from bana_mm.det import PrototypeInitHook
    cfg = Config.fromfile(TINY)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[key].dataset.data_root = synthetic_root + '/'
    cfg.work_dir = str(tmp_path)
    cfg.experiment_name = f'proto_resume_{tmp_path.name}'
    runner = Runner.from_cfg(cfg)
    before = runner.model.head.class_weights.detach().clone()
    runner.train_loop._iter = 5  # as after loading an iteration-5 checkpoint
    PrototypeInitHook(max_images=2).before_train(runner)
    assert torch.equal(runner.model.head.class_weights, before)
