# Paper Table 3 baseline for DeepLab-V2: CE on S only, ~S ignored.
_base_ = './deeplabv2_nal_voc.py'
model = dict(decode_head=dict(loss_decode=dict(mode='ignore')))
