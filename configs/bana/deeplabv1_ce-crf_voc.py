# Paper Table 3 baseline for DeepLab-V1: plain cross-entropy on Ycrf alone.
_base_ = './deeplabv1_nal_voc.py'
model = dict(decode_head=dict(loss_decode=dict(mode='ce_crf')))
