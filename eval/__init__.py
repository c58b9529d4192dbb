"""biascard.eval: metrics, baselines and reports."""
