"""The helpers of ``tools/benchmarks`` (no timing here: benchmarks print
figures, tests check the machinery)."""
import argparse
from types import SimpleNamespace

import pytest
import torch

from bana_mm.utils.bare_loop import BareCollate
from bana_mm.utils.benchmark import format_table, parse_with_quick


def test_format_table_aligns_columns():
    text = format_table(('name', 'kind', 'value'),
                        [('a', 'x', '1.5'), ('long name', None, '10.25')],
                        left=2)
    header, rule, first, second = text.split('\n')
    assert header == 'name       kind  value'
    assert rule == '---------  ----  -----'
    assert first == 'a          x       1.5'  # numbers right-aligned
    assert second == 'long name  -     10.25'  # None shows as '-'


def _parser():
    parser = argparse.ArgumentParser()
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--sizes', nargs='*', default=['voc', 'coco'])
    return parser


def test_quick_sets_defaults_and_explicit_options_win(capsys):
    quick = dict(steps=2, sizes=['160x120'])
    args = parse_with_quick(_parser(), quick, [])
    assert (args.steps, args.sizes, args.quick) == (10, ['voc', 'coco'], False)
    args = parse_with_quick(_parser(), quick, ['--quick'])
    assert (args.steps, args.sizes) == (2, ['160x120'])
    args = parse_with_quick(_parser(), quick, ['--quick', '--steps', '5'])
    assert (args.steps, args.sizes) == (5, ['160x120'])
    with pytest.raises(SystemExit):
        parse_with_quick(_parser(), quick, ['--help'])
    assert '--steps 2, --sizes 160x120' in ' '.join(
        capsys.readouterr().out.split())


def test_bare_collate_pads_like_the_data_preprocessor():
    """Stage 3: images mean-subtracted, padded with 0 (the mean colour) to
    at least ``size``; label maps padded with 255."""

    def sample(h, w, label):
        maps = [
            SimpleNamespace(
                data=torch.full((1, h, w), label, dtype=torch.uint8))
            for _ in range(2)
        ]
        return dict(
            inputs=torch.full((3, h, w), 10, dtype=torch.uint8),
            data_samples=SimpleNamespace(
                gt_sem_seg=maps[0], gt_ret_seg=maps[1]))

    collate = BareCollate(3, mean=(1.0, 2.0, 3.0), size=(6, 5))
    batch = collate([sample(4, 5, 1), sample(5, 3, 2)])
    assert batch['inputs'].shape == (2, 3, 6, 5)
    assert batch['inputs'][0, :, 0, 0].tolist() == [9.0, 8.0, 7.0]
    assert batch['inputs'][0, :, 4:].abs().sum() == 0  # padding = mean
    assert batch['ycrf'].shape == batch['yret'].shape == (2, 6, 5)
    assert batch['ycrf'][1, 0].tolist() == [2, 2, 2, 255, 255]
    with pytest.raises(ValueError, match='stage must be 1 or 3'):
        BareCollate(2, mean=(0, 0, 0))
