"""Issue 20 classes 2 and 3 for stage 2: one writer per out-dir (a lock a
crashed run does not leave stuck), ``--overwrite`` deletes only what stage
2 wrote, and a rerun reuses only labels whose inputs are unchanged."""
import json
import os
import os.path as osp
import re
import shutil
import signal
import subprocess
import sys

import pytest
from test_stage2_tool import CONFIG, VAL, _run, make_checkpoint

from bana_mm.apis.stage2 import StaleLabelsError
from bana_mm.core.baselines import GrabCutOptions
from bana_mm.utils.io import LOCK_FILE, FolderLockedError, read_split
from conftest import REPO


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    return make_checkpoint(str(tmp_path_factory.mktemp('ckpt') / 'ok.pth'))


def _args(root, ckpt, out, *extra):
    return [
        CONFIG, ckpt, '--data-root', root, '--out-dir', out, '--split', VAL,
        '--workers', '0', '--num-vis', '0', '--no-eval', '--no-grabcut', *extra
    ]


def _files(folder: str) -> dict:
    """{relative path: bytes} of every file under ``folder`` but the lock
    file (it names its holder)."""
    found = {}
    for parent, _, names in os.walk(folder):
        for name in set(names) - {LOCK_FILE}:
            path = osp.join(parent, name)
            with open(path, 'rb') as f:
                found[osp.relpath(path, folder)] = f.read()
    return found


# -- class 3: one writer ------------------------------------------------------
HOLD = """
import sys
from bana_mm.utils.io import folder_lock
with folder_lock(sys.argv[1], 'stage-2 run'):
    print('locked', flush=True)
    sys.stdin.read()
"""


def test_a_second_writer_stops_and_a_killed_one_leaves_no_lock(
        synthetic_root, checkpoint, tmp_path):
    """Before: a second run with --overwrite into the folder of a running
    one went ahead (both rc 0, labels of two checkpoints mixed)."""
    out = str(tmp_path / 'out')
    _run(_args(synthetic_root, checkpoint, out))
    before = _files(out)
    env = dict(os.environ, PYTHONPATH=REPO)
    holder = subprocess.Popen([sys.executable, '-c', HOLD, out],
                              stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE,
                              env=env,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(FolderLockedError) as info:
            _run(_args(synthetic_root, checkpoint, out, '--overwrite'))
        message = str(info.value)
        assert out in message and f'pid {holder.pid}' in message
        assert _files(out) == before  # nothing removed or written
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the killed holder's lock went with its process
    again = _run(_args(synthetic_root, checkpoint, out, '--overwrite'))
    assert again['written'] == 6


def test_overwrite_deletes_only_what_stage2_wrote(synthetic_root, checkpoint,
                                                  tmp_path):
    """Before: --overwrite removed the whole vis/ folder, a user's files
    with it."""
    out = str(tmp_path / 'out')
    _run(_args(synthetic_root, checkpoint, out, '--num-vis', '1'))
    mine = {
        'vis/mine.jpg': b'my picture',
        'Ycrf/notes.txt': b'my notes',
        'README.md': b'my readme'
    }
    for name, data in mine.items():
        with open(osp.join(out, name), 'wb') as f:
            f.write(data)
    run = _run(
        _args(synthetic_root, checkpoint, out, '--no-u0', '--overwrite'))
    assert run['written'] == 6
    after = _files(out)
    for name, data in mine.items():
        assert after[name] == data
    assert not [n for n in after if n.startswith('vis/syn_')]


def test_record_files_stage2_did_not_write_are_kept(synthetic_root, checkpoint,
                                                    tmp_path):
    """Before: a user's metrics.json in a folder without a fingerprint was
    replaced (with or without --overwrite)."""
    out = str(tmp_path / 'out')
    os.makedirs(out)
    with open(osp.join(out, 'metrics.json'), 'w') as f:
        f.write('{"mine": 1}\n')
    for extra in ((), ('--overwrite', )):
        with pytest.raises(StaleLabelsError, match='metrics.json'):
            _run(_args(synthetic_root, checkpoint, out, *extra))
        with open(osp.join(out, 'metrics.json')) as f:
            assert f.read() == '{"mine": 1}\n'
        assert not osp.isfile(osp.join(out, 'fingerprint.json'))


# -- class 2: reuse only what is still valid ----------------------------------
@pytest.fixture
def own_root(synthetic_root, tmp_path) -> str:
    root = str(tmp_path / 'root')
    shutil.copytree(synthetic_root, root)
    return root


def _relabel_first_box(root: str, img_id: str) -> None:
    """Give the first box of ``img_id``'s XML another class."""
    xml = osp.join(root, 'Annotations', f'{img_id}.xml')
    with open(xml) as f:
        text = f.read()
    name = re.findall('<name>(.*?)</name>', text)[0]
    other = 'ring' if name != 'ring' else 'disc'
    with open(xml, 'w') as f:
        f.write(
            text.replace(f'<name>{name}</name>', f'<name>{other}</name>', 1))


def test_rerun_redoes_exactly_the_images_whose_inputs_changed(
        own_root, checkpoint, tmp_path):
    """Before: an edited XML or a replaced image kept its stale labels
    ("6 already there")."""
    out = str(tmp_path / 'out')
    first = _run(_args(own_root, checkpoint, out))
    assert first['written'] == 6 and first['redone'] == {}
    ids = read_split(osp.join(own_root, VAL))
    _relabel_first_box(own_root, ids[0])
    image = osp.join(own_root, 'JPEGImages', f'{ids[1]}.jpg')
    shutil.copyfile(osp.join(own_root, 'JPEGImages', f'{ids[2]}.jpg'), image)
    again = _run(_args(own_root, checkpoint, out))
    assert again['redone'] == {
        ids[0]: 'its boxes changed',
        ids[1]: 'its image file changed'
    }
    assert again['written'] == 2 and again['skipped'] == 4
    third = _run(_args(own_root, checkpoint, out))
    assert third['written'] == 0 and third['redone'] == {}


def test_an_empty_label_file_is_not_done(own_root, checkpoint, tmp_path):
    """Before: a 0-byte Ycrf PNG counted as a finished image."""
    out = str(tmp_path / 'out')
    _run(_args(own_root, checkpoint, out))
    stem = read_split(osp.join(own_root, VAL))[3]
    path = osp.join(out, 'Ycrf', f'{stem}.png')
    open(path, 'wb').close()
    again = _run(_args(own_root, checkpoint, out))
    assert again['redone'] == {stem: f'{path} is empty (0 bytes)'}
    assert again['written'] == 1 and osp.getsize(path) > 0


def test_stage3_refuses_labels_of_another_data_root(tmp_path):
    """Before: stage 3 trained on pseudo labels whose fingerprint names
    another data root (labels of other images under the same ids)."""
    from mmengine.registry import init_default_scope
    from PIL import Image
    from test_seg_data import _code_maps, _dataset
    init_default_scope('mmseg')
    root = str(tmp_path / 'voc')
    for sub in ('JPEGImages', 'SegmentationClass', 'pl/Ycrf', 'pl/Yret',
                'ImageSets/Segmentation'):
        os.makedirs(osp.join(root, sub))
    img, crf, ret = _code_maps(20, 24, 0)
    Image.fromarray(img).save(osp.join(root, 'JPEGImages', 'im0.png'))
    for kind, data in (('Ycrf', crf), ('Yret', ret)):
        Image.fromarray(data, 'L').save(osp.join(root, 'pl', kind, 'im0.png'))
    with open(osp.join(root, 'ImageSets/Segmentation/train.txt'), 'w') as f:
        f.write('im0\n')
    record = osp.join(root, 'pl', 'fingerprint.json')
    for made_from, ok in ((root, True), (str(tmp_path / 'other'), False)):
        with open(record, 'w') as f:
            json.dump(dict(dataset=dict(data_root=made_from)), f)
        if ok:
            assert len(_dataset(root, [])) == 1
            continue
        with pytest.raises(ValueError) as info:
            _dataset(root, [])
        for word in (record, made_from, 'not of this data root'):
            assert word in str(info.value)


def test_mdh_proposals_redo_exactly_the_changed_ids(own_root, tmp_path):
    """Before: MDH reused proposals (and so AnnNet and SegNet) made from
    an XML edited since."""
    from bana_mm.apis.common import VOCLayout
    from bana_mm.apis.mdh import make_splits, run_proposals
    layout = VOCLayout.inspect(own_root)
    train = read_split(osp.join(own_root, layout.train_split))
    full = tmp_path / 'full.txt'
    full.write_text('\n'.join(train[:4]) + '\n')
    splits = make_splits(own_root, layout.train_split,
                         str(tmp_path / 'splits'), str(full))
    out = str(tmp_path / 'proposals')
    first = run_proposals(layout, splits, out, grabcut=GrabCutOptions(1))
    assert first['written'] == len(splits.weak)
    _relabel_first_box(own_root, splits.weak[0])
    again = run_proposals(layout, splits, out, grabcut=GrabCutOptions(1))
    assert again['written'] == 1
    assert again['skipped'] == len(splits.weak) - 1
    # the steps downstream (AnnNet, SegNet) see new inputs
    assert again['fingerprint'] != first['fingerprint']
    third = run_proposals(layout, splits, out, grabcut=GrabCutOptions(1))
    assert third['written'] == 0
    assert third['fingerprint'] == again['fingerprint']
