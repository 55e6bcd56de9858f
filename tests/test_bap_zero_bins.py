"""tools/analysis/bap_zero_bins.py on real boxes: after the stage-1
augmentation at stride 16 some boxes are narrower than a feature cell, and
none of their bins pools to a zero vector."""
import json

from tools.analysis import bap_zero_bins


def test_no_zero_bins_on_coco128_at_stride_16(coco128_voc20, tmp_path):
    out = tmp_path / 'zero_bins.json'
    summary = bap_zero_bins.main([
        '--data-root', coco128_voc20, '--passes', '1', '--stride', '16',
        '--dim', '4', '--json',
        str(out)
    ])
    assert json.loads(out.read_text()) == json.loads(json.dumps(summary))
    assert summary['images'] == 71 and summary['boxes'] > 200
    assert summary['bins'] == 4 * summary['boxes']
    assert summary['boxes_attention_pooled'] > 0
    assert summary['zero_bins'] == 0 and summary['boxes_any_zero'] == 0
