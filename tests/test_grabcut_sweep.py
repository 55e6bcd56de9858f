"""tools/analysis/grabcut_sweep.py: GrabCut settings scored over a split."""
import argparse

import pytest

from tools.analysis import grabcut_sweep


def test_sweep_rows_and_the_filled_box_limit(synthetic_root, capsys):
    """Off fills nothing; a share just below 1 fills every box (GrabCut
    keeps less than all of a box around a synthetic shape), so GrabCut and
    the proposals both become the Box baseline, with nothing ignored."""
    result = grabcut_sweep.sweep(
        synthetic_root,
        'ImageSets/Segmentation/val.txt',
        margins=(0.5, ),
        fill_below=(None, 0.999),
        iterations=1,
        workers=0)
    assert result['images'] == 6 and result['boxes'] >= 6
    off, every = result['rows']
    assert (off['margin'], off['fill_below']) == (0.5, None)
    assert off['filled'] == 0 and off['ignored_share'] > 0
    assert 0 < off['grabcut'] <= 100
    assert every['filled'] == result['boxes']
    assert every['grabcut'] == every['proposal'] == result['box']
    assert every['ignored_share'] == 0
    assert grabcut_sweep.main([
        synthetic_root, '--margins', '1', '--fill-below', 'off', '0.1',
        '--iterations', '1', '--workers', '0'
    ]) == 0
    table = capsys.readouterr().out
    assert '| 1.0 | off |' in table and '| 1.0 | 0.1 |' in table


def test_bad_settings_fail_clearly(synthetic_root):
    with pytest.raises(argparse.ArgumentTypeError, match='share'):
        grabcut_sweep.parse_fill_below('1.5')
    with pytest.raises(argparse.ArgumentTypeError, match='share'):
        grabcut_sweep.parse_fill_below('most')
    with pytest.raises(ValueError, match='margin'):
        grabcut_sweep.sweep(
            synthetic_root, 'ImageSets/Segmentation/val.txt', margins=(-1.0, ))
