"""The multi-head model: head specs, the model, features, and the model dir (its one owner).

Core: imported by every stage, imports none of them.
"""
