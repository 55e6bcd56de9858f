# MDH SegNet (R50) with the dual-head training of paper Fig. 5 (Table 4).
_base_ = './segnet_deeplabv3plus_r50_voc.py'
model = dict(decode_head=dict(head_mode='dual'))
