# annnet_tiny.py with the single-head training of paper Fig. 5 (Table 4).
_base_ = './annnet_tiny.py'
model = dict(decode_head=dict(head_mode='single'))
