"""Pictures of pseudo labels (palette, heat maps, overlay sheets)."""
from .palette import colorize, heatmap, voc_palette
from .pseudo_label_sheet import pseudo_label_sheet

__all__ = ['voc_palette', 'colorize', 'heatmap', 'pseudo_label_sheet']
