"""Hydra configs, shipped as package data so an installed wheel finds them."""
