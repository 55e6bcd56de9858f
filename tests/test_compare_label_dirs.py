"""tools/analysis/compare_label_dirs.py on tiny hand-made label PNGs."""
import json
import os
import os.path as osp

import numpy as np
import pytest
from PIL import Image

from tools.analysis import compare_label_dirs as cmp

XML = """<annotation><size><width>{w}</width><height>{h}</height>
<depth>3</depth></size>{objects}</annotation>"""
OBJ = """<object><name>cat</name><bndbox><xmin>{}</xmin><ymin>{}</ymin>
<xmax>{}</xmax><ymax>{}</ymax></bndbox></object>"""


def _write(folder, stem, array, mode='L'):
    os.makedirs(folder, exist_ok=True)
    image = Image.fromarray(np.asarray(array, dtype=np.uint8), mode=mode)
    if mode == 'P':
        image.putpalette([0, 0, 0, 128, 0, 0] * 128)
    image.save(osp.join(folder, f'{stem}.png'))


@pytest.fixture
def two_dirs(tmp_path):
    """A (sub-folders Y_crf / Y_ret) and B (Ycrf / Yret), 2 images of 4x5.

    VOC box of image 'a': xmin=2 ymin=2 xmax=4 ymax=3 (1-based inclusive),
    i.e. 0-based columns 1..3, rows 1..2.
    """
    a, b, voc = tmp_path / 'a', tmp_path / 'b', tmp_path / 'voc'
    base = np.zeros((4, 5), np.uint8)
    base[1:3, 1:4] = 8
    # image a, Ycrf: B drops the box's first row (1 px convention shift)
    other = base.copy()
    other[1, 1:4] = 0
    _write(a / 'Y_crf', 'a', base, 'P')
    _write(b / 'Ycrf', 'a', other)
    # image a, Yret: one disagreeing pixel outside the box
    other_ret = base.copy()
    other_ret[3, 4] = 8
    _write(a / 'Y_ret', 'a', base)
    _write(b / 'Yret', 'a', other_ret)
    # image b: identical, 2 x 2; plus an image only in A
    _write(a / 'Y_crf', 'b', np.ones((2, 2)))
    _write(b / 'Ycrf', 'b', np.ones((2, 2)))
    _write(a / 'Y_ret', 'b', np.ones((2, 2)))
    _write(b / 'Yret', 'b', np.ones((2, 2)))
    _write(a / 'Y_crf', 'c', np.ones((2, 2)))
    os.makedirs(voc / 'Annotations')
    (voc / 'Annotations' / 'a.xml').write_text(
        XML.format(w=5, h=4, objects=OBJ.format(2, 2, 4, 3)))
    (voc / 'Annotations' / 'b.xml').write_text(
        XML.format(w=2, h=2, objects=''))
    return str(a), str(b), str(voc)


def test_agreement_per_image_and_overall(two_dirs, capsys):
    a, b, _ = two_dirs
    rc = cmp.main([a, b, '--subdirs-a', 'Y_crf', 'Y_ret', '--per-image'])
    assert rc == 0
    out = capsys.readouterr().out
    reports = [
        cmp.compare_kind(a, b, 'Ycrf', 'Y_crf', 'Ycrf'),
        cmp.compare_kind(a, b, 'Yret', 'Y_ret', 'Yret')
    ]
    ycrf, yret = reports
    # image a: 3 of 20 pixels differ; image b: all 4 agree
    assert ycrf.images['a']['agreement'] == pytest.approx(85.0)
    assert ycrf.images['b']['agreement'] == pytest.approx(100.0)
    assert ycrf.total['agreement'] == pytest.approx(100 * 21 / 24)
    assert ycrf.total['images'] == 2
    assert ycrf.only_in_a == ['c'] and ycrf.only_in_b == []
    assert yret.images['a']['agreement'] == pytest.approx(95.0)
    assert yret.total['agreement'] == pytest.approx(100 * 23 / 24)
    assert 'Ycrf: 2 images, 24 pixels, agreement 87.50 %' in out
    assert 'Yret: 2 images, 24 pixels, agreement 95.83 %' in out
    assert '1 image(s) only in A: c' in out


def test_box_split_and_edge_free_agreement(two_dirs, tmp_path):
    a, b, voc = two_dirs
    out_json = str(tmp_path / 'figures.json')
    assert cmp.main([
        a, b, '--subdirs-a', 'Y_crf', 'Y_ret', '--voc-root', voc, '--json',
        out_json
    ]) == 0
    figures = json.load(open(out_json))
    ycrf, yret = figures['kinds']
    # Ycrf: the 3 disagreeing pixels lie on the box's top edge (inside)
    t = ycrf['total']
    assert t['disagree_inside_boxes'] == pytest.approx(100 * 3 / 6)
    assert t['disagree_outside_boxes'] == pytest.approx(0.0)
    assert t['disagreeing_pixels_inside_share'] == pytest.approx(100.0)
    assert t['agreement_away_from_box_edges'] == pytest.approx(100.0)
    # image a: the 1-px band around the 3x2 box covers rows 0..3 and
    # columns 0..4, i.e. all 20 pixels; image b has no box: 4 interior
    assert t['away_from_box_edges_share'] == pytest.approx(100 * 4 / 24)
    # Yret: the one disagreeing pixel (3, 4) is outside the box, 1 px from
    # its corner (row 3 = 2 + 1, column 4 = 3 + 1): inside the band
    t = yret['total']
    assert t['disagree_inside_boxes'] == pytest.approx(0.0)
    assert t['disagree_outside_boxes'] == pytest.approx(100 / 18)
    assert t['agreement_away_from_box_edges'] == pytest.approx(100.0)


def test_box_region_masks_by_hand():
    inside, band = cmp.box_region_masks(
        np.array([[2., 2., 5., 5.]]), (8, 8), border=1)
    expected_inside = np.zeros((8, 8), bool)
    expected_inside[2:6, 2:6] = True
    expected_band = np.zeros((8, 8), bool)
    expected_band[1:7, 1:7] = True
    expected_band[3:5, 3:5] = False
    np.testing.assert_array_equal(inside, expected_inside)
    np.testing.assert_array_equal(band, expected_band)
    _, no_band = cmp.box_region_masks(
        np.array([[2., 2., 5., 5.]]), (8, 8), border=0)
    assert not no_band.any()


def test_read_voc_boxes_is_zero_based(tmp_path):
    path = tmp_path / 'x.xml'
    path.write_text(XML.format(w=9, h=9, objects=OBJ.format(1, 2, 9, 8)))
    np.testing.assert_array_equal(
        cmp.read_voc_boxes(str(path)), [[0, 1, 8, 7]])


def test_errors_name_the_files(two_dirs, tmp_path):
    a, b, _ = two_dirs
    _write(osp.join(b, 'Ycrf'), 'b', np.ones((3, 2)))
    with pytest.raises(ValueError, match=r'Y_crf/b\.png is \(2, 2\)'):
        cmp.compare_kind(a, b, 'Ycrf', 'Y_crf', 'Ycrf')
    with pytest.raises(FileNotFoundError, match='nowhere'):
        cmp.compare_kind(a, str(tmp_path / 'nowhere'), 'Ycrf', 'Y_crf', 'Ycrf')
    os.makedirs(osp.join(b, 'empty'))
    with pytest.raises(ValueError, match='no common'):
        cmp.compare_kind(a, b, 'Ycrf', 'Y_crf', 'empty')
    with pytest.raises(SystemExit):
        cmp.parse_args([a, b, '--subdirs-a', 'Y_crf'])
