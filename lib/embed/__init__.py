"""User and customer embeddings for the causal study: storage, bag-of-items SVD, export."""
