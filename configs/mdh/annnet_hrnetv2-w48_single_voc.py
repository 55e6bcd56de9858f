# MDH AnnNet with the single-head training of paper Fig. 5 (Table 4).
_base_ = './annnet_hrnetv2-w48_voc.py'
model = dict(decode_head=dict(head_mode='single'))
