"""Shared fixtures: the embedded synthetic dataset and the real shared data."""
import os.path as osp
import socket
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

SHARED_DATA = osp.join(osp.dirname(REPO), 'shared', 'data')


def free_port() -> int:
    """A TCP port free on this machine now (for torch.distributed's
    rendezvous): a fixed number collides with another run on the host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@pytest.fixture(scope='session')
def synthetic_root(tmp_path_factory) -> str:
    """A small synthetic VOC/COCO dataset (16 train, 6 val images)."""
    from bana_mm.datagen import generate_synthetic_dataset
    root = str(tmp_path_factory.mktemp('synthetic'))
    generate_synthetic_dataset(root, num_train=16, num_val=6, seed=0)
    return root


@pytest.fixture(scope='session')
def coco128_voc20() -> str:
    """../shared/data/coco128_voc20 (real COCO images); skipped if absent."""
    root = osp.join(SHARED_DATA, 'coco128_voc20')
    if not osp.isdir(root):
        pytest.skip('../shared/data/coco128_voc20 is not available')
    return root
