"""A tiny BERT configuration shared by the tests that write Hugging Face folders: small enough
for dense float64 Hessians, with three labels for the classifier heads."""

TINY_BERT = dict(
    vocab_size=16,
    hidden_size=4,
    num_hidden_layers=1,
    num_attention_heads=2,
    intermediate_size=8,
    max_position_embeddings=8,
    type_vocab_size=1,
    num_labels=3,
)
