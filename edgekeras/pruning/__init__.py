"""Pruning on Keras 3: magnitude and N:M sparsity with schedules, and structured channel pruning.

Layout (one concept per module):
- registry: which layers can be pruned and which of their weights (data, not code paths)
- schedules: when and how much (constant; polynomial decay between a begin and an end step)
- masks: magnitude masks, unstructured and N:M along the input-channel axis
- channels/: structured channel pruning (dependency groups, importance, rebuilding a smaller model)
- flops: parameters and FLOPs of a Keras model, per layer
"""
