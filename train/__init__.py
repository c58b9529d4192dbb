"""biascard.train: the multi-head model and its training loop."""
