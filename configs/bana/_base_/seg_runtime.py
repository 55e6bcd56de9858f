# Runtime shared by the stage-3 (mmseg scope) configs of bana-mm.
_base_ = ['mmseg::_base_/default_runtime.py']
default_scope = 'mmseg'
custom_imports = dict(imports=['bana_mm.seg'], allow_failed_imports=False)
env_cfg = dict(cudnn_benchmark=False)
# multi-scale + flip (paper, optional) with DenseCRF after the merge; see
# docs/stage3.md ("Test time") for how to switch it on.
tta_model = dict(type='CRFSegTTAModel', crf=None)
