# Paper Table 3 baseline for DeepLab-V2: plain cross-entropy on Ycrf alone.
_base_ = './deeplabv2_nal_voc.py'
model = dict(decode_head=dict(loss_decode=dict(mode='ce_crf')))
