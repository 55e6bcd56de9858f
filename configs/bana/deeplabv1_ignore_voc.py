# Paper Table 3 baseline for DeepLab-V1: CE on S only, ~S ignored.
_base_ = './deeplabv1_nal_voc.py'
model = dict(decode_head=dict(loss_decode=dict(mode='ignore')))
