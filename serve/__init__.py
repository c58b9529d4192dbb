"""biascard.serve: the card composer, the TorchServe-style handler and the HTTP server."""
