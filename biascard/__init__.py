"""biascard: multi-head media-bias classifiers and the bias cards they produce.

Stages, one way: biascard.data -> biascard.train -> biascard.eval -> biascard.serve.
"""
__version__ = "0.1.0"
