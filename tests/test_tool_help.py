"""``--help`` of the tools ends with examples a person can copy."""
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


@pytest.mark.parametrize('tool,example', [
    ('tools/test.py', '  python tools/test.py '
     'configs/bana/deeplabv2_nal_voc.py CKPT --tta\n'),
    ('tools/run_pipeline.py', '  python tools/run_pipeline.py --data-root '
     '../shared/data/coco128_voc20 --work-dir work_dirs/coco128 --stages '
     '1,2\n'),
    ('tools/make_synthetic_dataset.py', 'example: python '
     'tools/make_synthetic_dataset.py data/synthetic --num-train 48 '
     '--num-val 16 --seed 0\n'),
    ('tools/benchmarks/stage2_cost.py',
     '  python tools/benchmarks/stage2_cost.py --quick\n'),
    ('tools/benchmarks/train_step_cost.py',
     '  python tools/benchmarks/train_step_cost.py --quick\n'),
    ('tools/benchmarks/authors_step.py',
     '  python tools/benchmarks/authors_step.py --authors-dir /tmp/BANA '
     '--quick\n'),
])
def test_help_shows_an_example(tool, example):
    env = dict(os.environ, PYTHONPATH=REPO)
    out = subprocess.run(
        [sys.executable, osp.join(REPO, tool), '--help'],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=REPO).stdout
    # RawDescriptionHelpFormatter keeps the example on one line
    assert example in out
