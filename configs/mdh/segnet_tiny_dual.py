# segnet_tiny.py with the dual-head training of paper Fig. 5 (Table 4).
_base_ = './segnet_tiny.py'
model = dict(decode_head=dict(head_mode='dual'))
