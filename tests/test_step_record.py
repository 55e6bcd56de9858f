"""bana_mm.utils.step_record: a step folder is reused only for the same
inputs, cleared otherwise."""
import json
import os

from bana_mm.utils.step_record import (FINGERPRINT_FILE, config_digest, digest,
                                       recorded_fingerprint, refresh_step)


def test_digest_is_canonical():
    assert digest({'a': 1, 'b': [1, 2]}) == digest({'b': [1, 2], 'a': 1})
    assert digest({'a': 1}) != digest({'a': 2})
    assert len(digest(None)) == 64


def test_config_digest_ignores_the_experiment_name():
    from mmengine.config import Config
    a = Config(dict(model=dict(lr=0.1), experiment_name='run_1'))
    b = Config(dict(model=dict(lr=0.1), experiment_name='run_2'))
    c = Config(dict(model=dict(lr=0.2), experiment_name='run_1'))
    assert config_digest(a) == config_digest(b) != config_digest(c)


def test_refresh_step_reuses_same_inputs_and_clears_others(tmp_path):
    folder = str(tmp_path / 'step')
    assert refresh_step(folder, 'aaa', 'demo') is False  # new folder
    assert recorded_fingerprint(folder) == 'aaa'
    with open(os.path.join(folder, 'out.png'), 'w') as f:
        f.write('x')
    assert refresh_step(folder, 'aaa', 'demo') is True  # same inputs
    assert os.path.isfile(os.path.join(folder, 'out.png'))
    assert refresh_step(folder, 'bbb', 'demo') is False  # other inputs
    assert os.listdir(folder) == [FINGERPRINT_FILE]
    with open(os.path.join(folder, FINGERPRINT_FILE)) as f:
        assert json.load(f) == dict(step='demo', fingerprint='bbb')
    # files without a record (an older run) are not trusted either
    legacy = tmp_path / 'legacy'
    legacy.mkdir()
    (legacy / 'old.png').write_text('x')
    assert refresh_step(str(legacy), 'ccc', 'demo') is False
    assert os.listdir(legacy) == [FINGERPRINT_FILE]
