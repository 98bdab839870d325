"""Turns a Hugging Face BERT-like encoder into a numbered Triton model version."""
