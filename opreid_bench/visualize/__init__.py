"""Pictures of what models do: rank-list pages (self-contained HTML + PNG grids) and Grad-CAM overlays.

``render`` draws the lists that :mod:`opreid_bench.evaluation.ranklists` computes; ``attention`` computes
class-activation maps of a ReIDModel for the shown crops. Imports of PIL/torch happen inside functions.
"""
