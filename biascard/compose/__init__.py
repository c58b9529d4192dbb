"""The card composer: from a model's head outputs to a bias card, with sentence splitting,
the composer's settings and its calibrated cut points.

Core: imported by every stage, imports none of them.
"""
