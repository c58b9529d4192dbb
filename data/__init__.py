"""biascard.data: datasets -> unified records -> DatasetDicts (adapters, splits, bad-row reports)."""
