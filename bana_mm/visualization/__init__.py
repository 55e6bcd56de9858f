"""Pictures of pseudo labels (palette PNGs, overlay sheets)."""
from .palette import colorize, voc_palette
from .pseudo_label_sheet import pseudo_label_sheet

__all__ = ['voc_palette', 'colorize', 'pseudo_label_sheet']
