"""tools/analysis/annnet_diagnosis.py: the label maps it compares."""
import numpy as np
import torch

from tools.analysis.annnet_diagnosis import label_maps


def test_label_maps_of_one_box():
    # classes: 0 background, 1, 2; image 1 x 4; one box of class 1 (0-based
    # label 0) over columns 0-1
    probs = torch.tensor([
        [[0.02, 0.50, 0.95, 0.10]],  # background
        [[0.03, 0.10, 0.03, 0.10]],  # class 1
        [[0.95, 0.40, 0.02, 0.80]],  # class 2
    ])
    boxes = np.array([[0.0, 0.0, 2.0, 1.0]])
    maps = label_maps(probs, boxes, np.array([0]), tau=0.9)
    assert maps['eq3'].tolist() == [[2, 255, 0, 255]]
    # restricted to background + class 1 in the box, background outside:
    # 0.03 / 0.05 = 0.6 and 0.50 / 0.60 = 0.83 stay below tau
    assert maps['eq3_restrict'].tolist() == [[255, 255, 0, 0]]
    assert maps['argmax'].tolist() == [[2, 0, 0, 2]]
    # class 2 has no box: only background or class 1 inside, background out
    assert maps['argmax_box_classes'].tolist() == [[1, 0, 0, 0]]
    # foreground 0.98 in column 0 takes the box's class; column 2 is
    # confident background; the rest is below tau
    assert maps['foreground_box_class'].tolist() == [[1, 255, 0, 255]]
    assert maps['box'].tolist() == [[1, 1, 0, 0]]
