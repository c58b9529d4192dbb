"""biascard.data: datasets -> unified records -> DatasetDicts, and the card contract."""
