# Paper Table 3 baseline for DeepLab-V1: CE on S + 0.1 x bootstrapping on ~S,
# beta 1 -> 0 by poly (supplement eqs. 6-7).
_base_ = './deeplabv1_nal_voc.py'
model = dict(decode_head=dict(loss_decode=dict(mode='bootstrap')))
