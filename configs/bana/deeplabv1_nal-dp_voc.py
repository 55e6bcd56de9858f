# Supplement Table 5 "DP": NAL with a dot-product classifier (no bias) instead
# of the cosine classifier; sigma still uses cos(phi, W_c).
_base_ = './deeplabv1_nal_voc.py'
model = dict(decode_head=dict(classifier=dict(type='dot')))
