"""Generate the synthetic box-supervised segmentation dataset.

    python tools/make_synthetic_dataset.py OUT_DIR [--num-train 48]
        [--num-val 16] [--seed 0] [--min-size 160] [--max-size 240]

Example (the dataset of ``make demo``)::

    python tools/make_synthetic_dataset.py data/synthetic --num-train 48 \\
        --num-val 16 --seed 0
"""
import sys
from pathlib import Path

try:
    from bana_mm.datagen.synthetic import main
except ImportError:  # a source checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bana_mm.datagen.synthetic import main

if __name__ == '__main__':
    main()
