# GAP baseline of paper Table 1: same as BAP but A = 0 (plain average pooling
# inside each box, no background queries in the loss).
_base_ = './bap_vgg16_voc.py'
model = dict(head=dict(mode='gap'))
