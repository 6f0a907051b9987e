"""Model functions for reviews-attention.yaml: a text classifier on token ids (int32)."""

import keras
from keras import layers


def attention_classifier(sequence_length=16, vocabulary_size=200, dim=16, heads=2, classes=2):
    """Embedding -> self-attention block (MultiHeadAttention + residual + LayerNormalization) ->
    an AdditiveAttention pooling whose query is the mean token -> softmax."""
    tokens = keras.Input((sequence_length,), dtype="int32", name="tokens")
    x = layers.Embedding(vocabulary_size, dim, name="embedding")(tokens)
    attended = layers.MultiHeadAttention(num_heads=heads, key_dim=dim // heads, name="self_attention")(x, x)
    x = layers.LayerNormalization(name="norm")(layers.Add(name="residual")([x, attended]))
    query = layers.Reshape((1, dim), name="query")(layers.GlobalAveragePooling1D(name="mean_token")(x))
    pooled = layers.AdditiveAttention(name="attention_pool")([query, x])
    x = layers.Dropout(0.1)(layers.Flatten(name="pooled")(pooled))
    return keras.Model(
        tokens, layers.Dense(classes, activation="softmax", name="sentiment")(x), name="attention_classifier"
    )
