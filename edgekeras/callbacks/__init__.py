"""Keras callbacks edgekeras adds to every training run, one per module."""
