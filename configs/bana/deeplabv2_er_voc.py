# Paper Table 3 baseline for DeepLab-V2: CE on S + 0.1 x entropy regularisation
# on ~S (supplement eq. 4).
_base_ = './deeplabv2_nal_voc.py'
model = dict(decode_head=dict(loss_decode=dict(mode='entropy')))
