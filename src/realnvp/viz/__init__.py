"""Pictures: 2-D plots, image grids, the layer-by-layer animation, the HTML report (matplotlib loads
only when a picture is drawn)."""
